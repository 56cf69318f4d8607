//! `gridwatch cases export`: one case as a zip for the enforcement system's archive
//! ([`crate::cases::export`]).

use std::path::PathBuf;

use anyhow::Context;

use clap::Args;

use super::cases::DataArgs;
use crate::cases::export::write_zip;
use crate::cases::DedupConfig;

/// Arguments of `cases export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The case.
    id: i64,
    /// The zip to write (default: case-<ID>.zip in the current directory). An existing
    /// file is replaced only once the new one is complete.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// Writes the zip; fails, writing nothing, if the case's evidence does not verify.
pub fn export(a: ExportArgs) -> anyhow::Result<()> {
    let store = a.data.open(DedupConfig::default())?;
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("case-{}.zip", a.id)));
    let mut part = out.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let file = std::fs::File::create(&part)
        .with_context(|| format!("{}: cannot write it", part.display()))?;
    let now = chrono::Utc::now().timestamp_millis();
    let written = write_zip(&*store, a.id, now, &file).and_then(|m| {
        file.sync_all()?;
        Ok(m)
    });
    let manifest = match written {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e.into());
        }
    };
    std::fs::rename(&part, &out).with_context(|| format!("{}: cannot write it", out.display()))?;
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    println!(
        "case {}: {} file(s), {bytes} bytes, chain head {} -> {}",
        a.id,
        manifest.files.len() + 1,
        manifest.chain_head,
        out.display()
    );
    Ok(())
}

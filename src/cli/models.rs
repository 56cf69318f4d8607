//! `gridwatch models check`: a model validated against its manifest.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ModelArgs;
use crate::detect::{layout_name, ModelManifest};

/// `gridwatch models …`
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Check a model against its manifest: file and sha256, input name, shape and
    /// layout, output names and shapes for the declared layout and class count, then
    /// one inference. Prints what it found; exits non-zero on the first disagreement.
    Check(CheckArgs),
}

/// Arguments of `gridwatch models check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The model manifest (TOML).
    pub manifest: PathBuf,
    /// Execution provider to load the model with (cpu, cuda[:N], tensorrt[:N]).
    #[arg(long, default_value = "cpu")]
    pub provider: crate::detect::Provider,
}

/// Runs `gridwatch models …`.
pub fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Check(a) => check(a),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let manifest = ModelManifest::load(&args.manifest)?;
    println!("manifest  {}", manifest.path.display());
    println!(
        "model     {} ({})",
        manifest.name,
        manifest.model_path.display()
    );
    match &manifest.sha256 {
        Some(s) => println!("sha256    {s} (checked)"),
        None => println!("sha256    not given in the manifest (not checked)"),
    }
    let model_args = ModelArgs {
        model: Some(args.manifest.clone()),
        provider: args.provider,
        threads: None,
        spin: false,
        batch: crate::detect::DEFAULT_MAX_BATCH,
    };
    let det = model_args.load()?;
    let report = det.report();
    for i in &report.inputs {
        println!("input     {i}");
    }
    for o in &report.outputs {
        println!("output    {o}");
    }
    println!(
        "batch     {}",
        report
            .fixed_batch
            .map_or("dynamic".to_string(), |n| format!("fixed at {n}"))
    );
    println!(
        "layout    {} with {} classes ({}{})",
        layout_name(&manifest.output),
        manifest.classes.len(),
        manifest
            .classes
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        if manifest.classes.len() > 5 {
            ", …"
        } else {
            ""
        }
    );
    println!("provider  {}", det.provider());
    println!("ok: the model matches its manifest and runs");
    Ok(())
}

//! `gridwatch cameras …` (the camera registry) and `gridwatch tokens …` (API tokens):
//! straight on the store, as an admin named `cli`; running nodes see the changes at
//! their next registry poll.

use anyhow::bail;
use clap::Subcommand;

use super::cases::DataArgs;
use crate::registry::catalogue::{self, Format};
use crate::registry::view::{CameraQuery, View};
use crate::registry::{Actor, Role};

/// `gridwatch cameras` subcommands.
#[derive(Debug, Subcommand)]
pub enum CamerasCommand {
    /// List the registered cameras (id, enabled, source with its password hidden,
    /// labels).
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Only cameras with this label (`key:value`).
        #[arg(long, value_name = "KEY:VALUE")]
        label: Vec<String>,
        /// Print JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import a catalogue (CSV or JSON, columns in docs/api.md): every row checked
    /// first; any bad row is reported with its line and nothing is stored.
    Import {
        #[command(flatten)]
        data: DataArgs,
        /// The catalogue file (`.csv` or `.json`; else guessed from its content).
        file: std::path::PathBuf,
        /// Check the rows and say what would change, storing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a camera (it stops on every node; its cases stay).
    Delete {
        #[command(flatten)]
        data: DataArgs,
        /// The camera's id.
        id: String,
    },
}

/// `gridwatch tokens` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token and print it (only this once; the store keeps its digest).
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// Who holds it (shown in the audit log and on reviews).
        #[arg(long)]
        name: String,
        /// viewer, reviewer or admin.
        #[arg(long)]
        role: Role,
    },
    /// List the tokens (without their secrets).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a token by its id (the 8 hex digits after `gw_`).
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        /// The token's id.
        id: String,
    },
}

fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Runs a `gridwatch cameras` subcommand.
pub fn cameras(c: CamerasCommand) -> anyhow::Result<()> {
    let cli = Actor::system("cli");
    match c {
        CamerasCommand::List { data, label, json } => {
            let reg = data.registry()?;
            let view = View::of_registry();
            view.sync(&reg)?;
            let mut labels = Vec::new();
            for l in &label {
                let Some((k, v)) = l.split_once(':') else {
                    bail!("--label {l:?}: give key:value");
                };
                labels.push((k.to_string(), v.to_string()));
            }
            let (list, total) = view.list(&CameraQuery {
                labels,
                limit: usize::MAX,
                ..CameraQuery::default()
            });
            for r in &list {
                if json {
                    let mut v = serde_json::to_value(r)?;
                    r.camera.hide_passwords(&mut v);
                    println!("{v}");
                } else {
                    let labels: Vec<String> = r
                        .camera
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    println!(
                        "{:<24} {:<8} {:<50} {}",
                        r.camera.id,
                        if r.camera.enabled {
                            "enabled"
                        } else {
                            "disabled"
                        },
                        r.camera.source_redacted(),
                        labels.join(",")
                    );
                }
            }
            eprintln!("{total} cameras (registry revision {})", view.revision());
        }
        CamerasCommand::Import {
            data,
            file,
            dry_run,
        } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let format = Format::guess(&file.display().to_string(), &bytes);
            let cams = catalogue::parse(&bytes, format)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let reg = data.registry()?;
            if dry_run {
                eprintln!(
                    "{}: {} cameras, every row valid; nothing stored (--dry-run)",
                    file.display(),
                    cams.len()
                );
                return Ok(());
            }
            let t = std::time::Instant::now();
            let s = reg.import(&cli, &cams)?;
            eprintln!(
                "{}: {} cameras imported in {:.2?}: {} new, {} changed, {} unchanged; registry revision {} ({})",
                file.display(),
                cams.len(),
                t.elapsed(),
                s.created,
                s.updated,
                s.unchanged,
                s.revision,
                reg.name()
            );
        }
        CamerasCommand::Delete { data, id } => {
            data.registry()?.delete(&cli, &id)?;
            eprintln!("camera {id} deleted (its cases stay)");
        }
    }
    Ok(())
}

/// Runs a `gridwatch tokens` subcommand.
pub fn tokens(c: TokensCommand) -> anyhow::Result<()> {
    let cli = Actor::system("cli");
    match c {
        TokensCommand::Create { data, name, role } => {
            let (secret, info) = data.registry()?.create_token(&cli, &name, role)?;
            eprintln!(
                "token {} for {:?} ({}); it is shown only now:",
                info.id, info.name, info.role
            );
            println!("{secret}");
        }
        TokensCommand::List { data } => {
            for t in data.registry()?.tokens()? {
                println!(
                    "{}  {:<8} {:<24} made {} by {}{}",
                    t.id,
                    t.role.as_str(),
                    t.name,
                    ms_text(t.created_ms),
                    t.created_by,
                    t.revoked_ms
                        .map(|r| format!(", revoked {}", ms_text(r)))
                        .unwrap_or_default()
                );
            }
        }
        TokensCommand::Revoke { data, id } => {
            data.registry()?.revoke_token(&cli, &id)?;
            eprintln!("token {id} revoked");
        }
    }
    Ok(())
}

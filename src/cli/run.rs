//! `gridwatch run` (the service) and `gridwatch config check`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::Config;

/// Arguments of `gridwatch run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Without --config it runs the built-in default: the bundled street clip \
as a looping camera, the bundled model, the sample scene's calibration, zones and grid, the \
embedded store and the built-in Open311 inbox, with the review page on http://127.0.0.1:8080/. \
The config is documented field by field in docs/config.md.\n\nWith a PostgreSQL store \
(store_env in the config), every node running the same config shares the cameras with the \
others through leases in the database; give each node its own name (GRIDWATCH_NODE or \
cluster.node). See docs/scaling.md.\n\nExamples:\n  gridwatch run\n  \
gridwatch run --config /etc/gridwatch/gridwatch.toml\n  gridwatch run --listen 127.0.0.1:9090 --data /tmp/gw\n  \
GRIDWATCH_NODE=gw-2 GRIDWATCH_STORE_URL=postgres://… gridwatch run --config cluster.toml"
)]
pub struct RunArgs {
    /// The config file (TOML). Default: the built-in demo config.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override api.listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Override data_dir.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// `gridwatch config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file: every error, each with its path in the file.
    Check {
        /// The config file.
        file: PathBuf,
    },
    /// Print the built-in default config.
    Default,
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|errs| {
        anyhow::anyhow!(
            "{} error{} in the config:\n  {}",
            errs.len(),
            if errs.len() == 1 { "" } else { "s" },
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    })
}

/// Runs `gridwatch config ...`.
pub fn config(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { file } => {
            let cfg = load(&file)?;
            let mut problems = crate::service::check::check_files(&cfg);
            // the caption font and the plate detector: `run` loads them once, when it
            // builds the scenes' rules
            problems.extend(cfg.cases.captions.load().err());
            if let Some(p) = &cfg.cases.privacy.plates {
                problems.extend(crate::rules::plates::Plates::load(p).err());
            }
            if !problems.is_empty() {
                anyhow::bail!(
                    "{} error{} in the files the config names:\n  {}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    problems.join("\n  ")
                );
            }
            println!(
                "{}: ok ({} camera{}, data in {})",
                file.display(),
                cfg.cameras.len(),
                if cfg.cameras.len() == 1 { "" } else { "s" },
                cfg.data_dir.display()
            );
            Ok(())
        }
        ConfigCommand::Default => {
            print!("{}", crate::config::BUILT_IN.trim_start());
            Ok(())
        }
    }
}

/// The config file at `path`, or the built-in demo's.
pub(super) fn config_of(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => load(p),
        None => Config::built_in().map_err(|errs| {
            anyhow::anyhow!(
                "the built-in demo needs the sample files under gridwatch's home {} \
                 (a checkout, or a bundle from scripts/make-bundle.sh; GRIDWATCH_HOME names another):\n  {}",
                crate::source_dir().display(),
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            )
        }),
    }
}

/// Runs the service until Ctrl-C or SIGTERM.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let mut cfg = config_of(a.config.as_deref())?;
    if let Some(l) = a.listen {
        cfg.api.listen = l;
    }
    if let Some(d) = a.data {
        cfg.data_dir = d;
    }
    let mut problems = cfg.check();
    problems.extend(crate::service::check::check_files(&cfg));
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(crate::service::run(cfg, async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        // a second signal while shutting down ends the process at once
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            eprintln!("gridwatch: second signal, exiting now");
            std::process::exit(130);
        });
    }));
    // decode jobs left behind by the watchdog must not hold the exit
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

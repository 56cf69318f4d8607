//! The `gridwatch` command line: one file per subcommand.

mod bench;
mod bench_ingest;
mod calibrate;
mod cases;
mod cases_export;
mod cases_verify;
mod detect;
mod eval;
mod eval_rules;
mod interrupt;
mod models;
mod registry;
mod run;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use interrupt::Interrupted;

use crate::detect::{Detector, EngineOptions, ModelManifest, Provider};

/// gridwatch watches city camera and drone feeds, detects illegal parking, street
/// vending, dumping and illegal construction, and files each problem once as a case
/// in the city's case workflow.
#[derive(Debug, Parser)]
#[command(
    name = "gridwatch",
    version,
    propagate_version = true,
    after_long_help = ENVIRONMENT
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). GRIDWATCH_LOG overrides, e.g.
    /// GRIDWATCH_LOG=gridwatch=debug.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// The environment variables every command reads (`gridwatch --help`).
const ENVIRONMENT: &str = "\
Environment:
  GRIDWATCH_HOME    the folder with models/, samples/, scripts/ and .venv/ that the
                    built-in defaults use (default: the folder above the executable's
                    when it holds models/nanodet-coco-416.toml, else the checkout the
                    binary was built from)
  ORT_DYLIB_PATH    the libonnxruntime.so to load (default: .venv in the home, or
                    lib/ beside the executable or in the home)
  GRIDWATCH_LOG     a log filter, e.g. gridwatch=debug (overrides -v and -q)
  GRIDWATCH_NODE    this node's name in a cluster (gridwatch run; docs/scaling.md)
  GRIDWATCH_PYTHON  the Python for bench --compare-baseline (default: .venv/bin/python)
  SSL_CERT_FILE, SSL_CERT_DIR
                    the CA store for https delivery (default: the system's, e.g.
                    /etc/ssl/certs; [delivery] ca_file adds a city's own CA)";

impl Cli {
    /// The tracing filter the flags ask for.
    pub fn log_filter(&self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "warn",
            (false, 0) => "info,ort=warn",
            (false, 1) => "gridwatch=debug,ort=warn,info",
            _ => "gridwatch=trace,debug",
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: cameras → detection → rules → cases → delivery, with the HTTP
    /// API and the review page. Without --config: the built-in demo on the sample clip.
    Run(run::RunArgs),
    /// Check or print service configs.
    #[command(subcommand)]
    Config(run::ConfigCommand),
    /// Run a detector over an image, a directory of images, or a video clip, writing
    /// detections as JSON Lines and annotated JPEGs.
    Detect(detect::DetectArgs),
    /// Run the ingest pool on cameras (RTSP, files, image folders) and show their
    /// state and counters until Ctrl-C.
    Watch(watch::WatchArgs),
    /// Check a camera calibration: per-point and RMS errors in metres, and an overlay
    /// of zones and grid cells on a frame of the camera.
    Calibrate(calibrate::CalibrateArgs),
    /// Inspect and validate models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// The case store: record violations, list and show cases, review them, and
    /// deliver them to the workflow API.
    #[command(subcommand)]
    Cases(cases::CasesCommand),
    /// The camera registry: list cameras, import a catalogue (CSV or JSON), delete.
    #[command(subcommand)]
    Cameras(registry::CamerasCommand),
    /// API tokens: create (viewer, reviewer or admin), list, revoke.
    #[command(subcommand)]
    Tokens(registry::TokensCommand),
    /// Serve the built-in Open311 GeoReport v2 inbox (the embedded workflow receiver).
    Inbox(cases::InboxArgs),
    /// Measure accuracy: a detector against labelled images (COCO's mAP, per-class
    /// precision and recall).
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Measure per-stage time and end-to-end throughput of a model on a clip, with the
    /// raw inference-only rate of the same model measured in the same run.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Config(c) => run::config(c),
        Command::Detect(a) => detect::run(a),
        Command::Models(c) => models::run(c),
        Command::Watch(a) => watch::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Eval(c) => eval::run(c),
        Command::Cases(c) => cases::run(c),
        Command::Cameras(c) => registry::cameras(c),
        Command::Tokens(c) => registry::tokens(c),
        Command::Inbox(a) => cases::inbox(a),
    }
}

/// Options shared by every command that runs a model.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model manifest (TOML). Defaults to the bundled NanoDet COCO-80 model.
    #[arg(long, value_name = "MANIFEST")]
    pub model: Option<PathBuf>,
    /// Execution provider: cpu, cuda[:N] or tensorrt[:N]. A GPU provider that cannot
    /// be used is an error, never a silent fall-back to the CPU.
    #[arg(long, default_value = "cpu", value_name = "PROVIDER")]
    pub provider: Provider,
    /// Threads ONNX Runtime uses inside one operator (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Let idle inference threads spin waiting for work (faster only when nothing
    /// else runs on the cores, e.g. inference-only tests; off by default).
    #[arg(long)]
    pub spin: bool,
    /// Frames per model call for models with a dynamic batch dimension.
    #[arg(long, value_name = "N", default_value_t = crate::detect::DEFAULT_MAX_BATCH)]
    pub batch: usize,
}

impl ModelArgs {
    /// Reads the manifest and loads its model, warmed up.
    pub fn load(&self) -> anyhow::Result<Detector> {
        self.load_with(|_| ())
    }

    /// As [`Self::load`], with `adjust` changing the manifest first (e.g. `eval`'s
    /// lower score threshold).
    pub fn load_with(&self, adjust: impl FnOnce(&mut ModelManifest)) -> anyhow::Result<Detector> {
        let path = self
            .model
            .clone()
            .unwrap_or_else(crate::detect::default_model);
        let mut manifest = ModelManifest::load(&path)?;
        adjust(&mut manifest);
        let opts = EngineOptions {
            provider: self.provider.clone(),
            intra_threads: self.threads,
            spin: self.spin,
        };
        let mut det = Detector::load(manifest, &opts)?;
        det.set_batch_size(self.batch);
        det.warm_up()?;
        Ok(det)
    }
}

//! `gridwatch watch`: run the ingest pool on cameras given on the command line and
//! show each camera's state and counters — what an operator checks before wiring
//! cameras into the full service.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use crate::decode::Sampling;
use crate::ingest::telemetry::TelemetrySource;
use crate::ingest::{CameraConfig, CameraStatus, Pool, PoolOptions, RtspTransport, Source};

/// Arguments of `gridwatch watch`.
#[derive(Debug, Args)]
#[command(
    after_help = "Cameras are ID=SOURCE, where SOURCE is an rtsp:// URL (credentials may be in \
the URL), a video file (played in real time, looping) or a directory of images (one a second).\n\n\
Examples:\n  gridwatch watch --camera gate=rtsp://user:pass@10.0.0.7/stream1 --every 2s\n  \
gridwatch watch --camera demo=samples/street.mp4 --every keyframes --for 20s"
)]
pub struct WatchArgs {
    /// A camera as ID=SOURCE (repeat for more).
    #[arg(long = "camera", value_name = "ID=SOURCE", required = true)]
    pub cameras: Vec<String>,
    /// Which frames to decode: `keyframes`, an interval like `2s`, or `all`.
    #[arg(long, default_value = "2s")]
    pub every: Sampling,
    /// RTP transport for RTSP cameras.
    #[arg(long, default_value = "tcp")]
    pub transport: RtspTransport,
    /// Drone telemetry for a camera as ID=SOURCE, SOURCE a JSON Lines file,
    /// udp://HOST:PORT to listen on, or an http:// JSON Lines feed.
    #[arg(long = "telemetry", value_name = "ID=SOURCE")]
    pub telemetry: Vec<String>,
    /// Seconds without a frame before a camera reconnects.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// How often to print the table.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print one JSON line per camera per interval instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_source(id: &str, s: &str, transport: RtspTransport) -> anyhow::Result<Source> {
    if s.starts_with("rtsp://") {
        let url = s
            .parse()
            .with_context(|| format!("camera `{id}`: `{s}` is not a valid URL"))?;
        return Ok(Source::Rtsp { url, transport });
    }
    let path = PathBuf::from(s.strip_prefix("file:").unwrap_or(s));
    if path.is_dir() {
        Ok(Source::Images {
            dir: path,
            interval: Duration::from_secs(1),
            looping: true,
        })
    } else if path.is_file() {
        Ok(Source::File {
            path,
            realtime: true,
            looping: true,
        })
    } else {
        bail!("camera `{id}`: `{s}` is neither an rtsp:// URL nor an existing file or directory")
    }
}

fn split(spec: &str, what: &str) -> anyhow::Result<(String, String)> {
    let (id, src) = spec
        .split_once('=')
        .with_context(|| format!("{what} `{spec}` must be ID=SOURCE"))?;
    if id.is_empty() {
        bail!("{what} `{spec}` has an empty id");
    }
    Ok((id.to_string(), src.to_string()))
}

/// Runs `gridwatch watch`.
pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let mut configs = Vec::new();
    for spec in &args.cameras {
        let (id, src) = split(spec, "camera")?;
        let mut c =
            CameraConfig::with_source(&id, parse_source(&id, &src, args.transport)?, args.every);
        c.stall_timeout = args.stall_timeout;
        configs.push(c);
    }
    for spec in &args.telemetry {
        let (id, src) = split(spec, "telemetry")?;
        let source = TelemetrySource::parse(&src)
            .map_err(|e| anyhow::anyhow!("telemetry for `{id}`: {e}"))?;
        let cam = configs
            .iter_mut()
            .find(|c| c.id == id)
            .with_context(|| format!("telemetry for `{id}`: no camera has that id"))?;
        cam.telemetry = Some(source);
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let pool = Pool::new(PoolOptions::default());
        for c in configs {
            pool.add(c)?;
        }
        let started = Instant::now();
        let mut frames = Vec::new();
        let mut tick = tokio::time::interval(args.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown_signal() => break,
            }
            // stand in for detection: take what the cameras hand on
            pool.take_frames(&mut frames);
            pool.recycle(frames.drain(..));
            print_status(&pool.status(), args.json)?;
            if args.duration.is_some_and(|d| started.elapsed() >= d) {
                break;
            }
        }
        pool.shutdown().await;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn print_status(st: &[CameraStatus], json: bool) -> anyhow::Result<()> {
    if json {
        for s in st {
            println!("{}", serde_json::to_string(s)?);
        }
        return Ok(());
    }
    println!(
        "{:<14} {:<12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}  last error",
        "camera", "state", "received", "keyfr", "decoded", "handed", "dropped", "reconn", "lag ms"
    );
    for s in st {
        println!(
            "{:<14} {:<12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}  {}",
            s.id,
            s.state.to_string(),
            s.received,
            s.keyframes,
            s.decoded,
            s.handed_on,
            s.dropped,
            s.reconnects,
            s.lag_ms,
            s.last_error.as_deref().unwrap_or("-")
        );
    }
    println!();
    Ok(())
}

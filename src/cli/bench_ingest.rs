//! `gridwatch bench ingest`: what the ingest pool costs per camera, by sampling mode,
//! and how many cameras this machine holds with bounded lag — ingest and decode only.
//!
//! The cameras are served by the local RTSP server (scripts/rtsp-server.py, a separate
//! process whose CPU is not counted) from one 1080p 25 fps H.264 clip at about 2 Mbit/s
//! with a keyframe every 2 s. For each mode and each camera count of the ladder, a
//! fresh pool runs for a warm-up and then a measured window, while a consumer takes the
//! handed-on frames as detection would (and gives their buffers back). Cameras start
//! spread over one GOP, as real cameras are not in phase. CPU time is this process's
//! (user + system, getrusage) over the window.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use crate::decode::Sampling;
use crate::ingest::{CameraConfig, CameraState, Pool, PoolOptions};

/// Arguments of `gridwatch bench ingest`.
#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// Camera counts to try, in order; the largest count that keeps lag bounded is
    /// reported as max_cameras.
    #[arg(long, value_delimiter = ',', default_values_t = [8usize, 16, 32, 64, 96])]
    pub cameras: Vec<usize>,
    /// Sampling modes to compare in the same run.
    #[arg(long, value_delimiter = ',', default_values_t = ["keyframes".to_string(), "every=2s".to_string(), "all".to_string()])]
    pub modes: Vec<String>,
    /// Measured seconds per rung (after a warm-up until every camera streams).
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Lag (receipt → hand-off) above which a rung counts as not held, in ms.
    #[arg(long, default_value_t = 2000)]
    pub max_lag_ms: u64,
    /// The clip to serve (H.264 in MP4). Default: made once with ffmpeg from the
    /// street sample, 1920x1080, 25 fps, 2 Mbit/s, x264 defaults (B-frames), keyframe
    /// every 2 s, cached in .cache/bench/.
    #[arg(long, value_name = "FILE")]
    pub clip: Option<PathBuf>,
    /// Also run every mode on a D1 substream of the same scene (720x576, 25 fps,
    /// 512 kbit/s, made once like the default clip), side by side: what detecting on a
    /// camera's substream instead of its main stream saves.
    #[arg(long)]
    pub substream: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One mode × camera count.
#[derive(Debug, Serialize)]
pub struct Rung {
    /// Cameras in the pool.
    pub cameras: usize,
    /// All cameras were streaming at the end of the window.
    pub all_streaming: bool,
    /// CPU seconds of this process over the window.
    pub cpu_s: f64,
    /// CPU seconds per camera per minute of video.
    pub cpu_s_per_camera_minute: f64,
    /// Share of the machine's cores used.
    pub cpu_share: f64,
    /// Largest receipt → hand-off lag seen, ms.
    pub max_lag_ms: u64,
    /// Access units received, decoded; frames handed on; drops (replaced or backlog).
    pub received: u64,
    /// Access units decoded.
    pub decoded: u64,
    /// Frames handed on.
    pub handed_on: u64,
    /// Frames or units dropped.
    pub dropped: u64,
    /// Whether this rung counts as held (all streaming, lag bounded, CPU not saturated).
    pub held: bool,
}

/// Results for one sampling mode.
#[derive(Debug, Serialize)]
pub struct ModeReport {
    /// The mode.
    pub mode: String,
    /// CPU seconds per camera-minute at the first rung.
    pub cpu_s_per_camera_minute: f64,
    /// Most cameras held with bounded lag.
    pub max_cameras: usize,
    /// Every rung tried.
    pub rungs: Vec<Rung>,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct IngestReport {
    /// The clip served.
    pub clip: String,
    /// Cores on this machine.
    pub cores: usize,
    /// Seconds measured per rung.
    pub seconds: u64,
    /// Per mode.
    pub modes: Vec<ModeReport>,
    /// keyframes' cost over all's, per camera.
    pub keyframes_over_all: Option<f64>,
    /// The same modes on the D1 substream clip (`--substream`).
    pub substream: Option<SubstreamReport>,
}

/// The modes on the D1 substream, beside the main clip's.
#[derive(Debug, Serialize)]
pub struct SubstreamReport {
    /// The clip served.
    pub clip: String,
    /// Per mode.
    pub modes: Vec<ModeReport>,
}

fn parse_mode(s: &str) -> anyhow::Result<Sampling> {
    let v = s.strip_prefix("every=").unwrap_or(s);
    v.parse::<Sampling>()
        .map_err(|e| anyhow::anyhow!("bad mode `{s}`: {e}"))
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The default benchmark clip's name under .cache/bench/.
pub(crate) const DEFAULT_CLIP: &str = "street-1080p25-2mbps-bframes.mp4";

/// The D1 substream clip's name under .cache/bench/ (`--substream`).
const SUBSTREAM_CLIP: &str = "street-d1-25-512kbps-bframes.mp4";

/// Makes (once) the default benchmark clip: 1080p 25 fps at a camera's 2 Mbit/s, with
/// x264's default B-frames (preset medium) and a keyframe every 2 s.
pub(crate) fn default_clip() -> anyhow::Result<PathBuf> {
    make_clip(DEFAULT_CLIP, "1920:1080", "2M")
}

/// Makes (once) the street sample as `name` in .cache/bench/: scaled to `scale`, 25 fps,
/// at `rate` (constrained), x264 preset medium with its default B-frames, a keyframe
/// every 2 s.
fn make_clip(name: &str, scale: &str, rate: &str) -> anyhow::Result<PathBuf> {
    let dir = crate::source_dir().join(".cache/bench");
    let out = dir.join(name);
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("making {} (once) with ffmpeg …", out.display());
    let tmp = dir.join("tmp.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(crate::source_dir().join("samples/street.mp4"))
        .args([
            "-t",
            "60",
            "-an",
            "-vf",
            &format!("scale={scale},fps=25"),
            "-c:v",
            "libx264",
            "-preset",
            "medium",
            "-b:v",
            rate,
            "-maxrate",
            rate,
            "-bufsize",
            rate,
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&tmp)
        .status()
        .context("running ffmpeg (apt-get install ffmpeg)")?;
    if !status.success() {
        bail!("ffmpeg could not make the benchmark clip");
    }
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// The local RTSP server with `n` mounts of the clip.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(clip: &Path, n: usize) -> anyhow::Result<Self> {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(crate::source_dir().join("scripts/rtsp-server.py"))
            .args(["--port", "0"]);
        for i in 0..n {
            cmd.arg("--mount")
                .arg(format!("c{i}=h264:{}", clip.display()));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting scripts/rtsp-server.py (scripts/setup.sh installs GStreamer)")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(p) = l.strip_prefix("PORT ") {
                        break p.trim().parse::<u16>()?;
                    }
                }
                _ => bail!("the RTSP server exited before printing its port"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, port })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `gridwatch bench ingest`.
pub fn run(args: IngestBenchArgs) -> anyhow::Result<()> {
    let clip = match &args.clip {
        Some(c) => c.clone(),
        None => default_clip()?,
    };
    let modes: Vec<(String, Sampling)> = args
        .modes
        .iter()
        .map(|m| parse_mode(m).map(|s| (m.clone(), s)))
        .collect::<anyhow::Result<_>>()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let reports = run_clip(&clip, &modes, &args, cores)?;
    let substream = match args.substream {
        true => {
            let sub = make_clip(SUBSTREAM_CLIP, "720:576", "512k")?;
            let modes = run_clip(&sub, &modes, &args, cores)?;
            Some(SubstreamReport {
                clip: sub.display().to_string(),
                modes,
            })
        }
        false => None,
    };
    let cost = |m: &str| {
        reports
            .iter()
            .find(|r| r.mode == m)
            .map(|r| r.cpu_s_per_camera_minute)
    };
    let report = IngestReport {
        clip: clip.display().to_string(),
        cores,
        seconds: args.seconds,
        keyframes_over_all: cost("keyframes").zip(cost("all")).map(|(k, a)| k / a),
        modes: reports,
        substream,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "clip: {} ({} cores, {} s per rung)",
        report.clip, cores, args.seconds
    );
    println!(
        "{:<12} {:>24} {:>12}",
        "mode", "cpu-s per camera-minute", "max cameras"
    );
    for m in &report.modes {
        println!(
            "{:<12} {:>24.3} {:>12}",
            m.mode, m.cpu_s_per_camera_minute, m.max_cameras
        );
    }
    if let Some(r) = report.keyframes_over_all {
        println!("keyframes / all cost per camera: {r:.3}");
    }
    if let Some(sub) = &report.substream {
        println!("substream clip: {}", sub.clip);
        println!(
            "{:<12} {:>24} {:>12} {:>16}",
            "mode", "D1 cpu-s/camera-min", "D1 max cams", "1080p/D1 cost"
        );
        for (d1, main) in sub.modes.iter().zip(&report.modes) {
            println!(
                "{:<12} {:>24.3} {:>12} {:>16.2}",
                d1.mode,
                d1.cpu_s_per_camera_minute,
                d1.max_cameras,
                main.cpu_s_per_camera_minute / d1.cpu_s_per_camera_minute.max(1e-9)
            );
        }
    }
    Ok(())
}

/// Every mode on `clip`, up the ladder of camera counts until one is not held.
fn run_clip(
    clip: &Path,
    modes: &[(String, Sampling)],
    args: &IngestBenchArgs,
    cores: usize,
) -> anyhow::Result<Vec<ModeReport>> {
    let max_n = args.cameras.iter().copied().max().unwrap_or(1);
    let server = Server::start(clip, max_n)?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut reports = Vec::new();
    let tag = clip
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    for (name, sampling) in modes {
        let mut rungs = Vec::new();
        for &n in &args.cameras {
            let rung = rt.block_on(measure(server.port, n, *sampling, args, cores))?;
            if !args.json {
                eprintln!(
                    "{tag}: {name:>10} {n:>4} cameras: {:.3} cpu-s/camera-min, {:.0} % of {cores} cores, max lag {} ms, {}",
                    rung.cpu_s_per_camera_minute,
                    rung.cpu_share * 100.0,
                    rung.max_lag_ms,
                    if rung.held { "held" } else { "NOT held" }
                );
            }
            let held = rung.held;
            rungs.push(rung);
            if !held {
                break;
            }
        }
        let max_cameras = rungs
            .iter()
            .filter(|r| r.held)
            .map(|r| r.cameras)
            .max()
            .unwrap_or(0);
        reports.push(ModeReport {
            mode: name.clone(),
            cpu_s_per_camera_minute: rungs.first().map_or(0.0, |r| r.cpu_s_per_camera_minute),
            max_cameras,
            rungs,
        });
    }
    Ok(reports)
}

async fn measure(
    port: u16,
    n: usize,
    sampling: Sampling,
    args: &IngestBenchArgs,
    cores: usize,
) -> anyhow::Result<Rung> {
    let pool = Pool::new(PoolOptions::default());
    // Real cameras are not in phase: start them spread over one GOP (2 s), so their
    // keyframes do not all arrive in the same instant.
    let stagger = Duration::from_secs(2) / n.max(1) as u32;
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(stagger).await;
        }
        let mut c = CameraConfig::new(
            format!("cam{i:03}"),
            format!("rtsp://127.0.0.1:{port}/c{i}").parse()?,
            sampling,
        );
        c.backoff_min = Duration::from_millis(200);
        c.backoff_max = Duration::from_secs(2);
        pool.add(c)?;
    }
    let mut frames = Vec::new();
    // warm-up: every camera streaming and past its first keyframe
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        pool.take_frames(&mut frames);
        pool.recycle(frames.drain(..));
        let st = pool.status();
        if st
            .iter()
            .all(|s| s.state == CameraState::Streaming && s.keyframes > 0)
            || Instant::now() > warm_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = pool.status();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let window = Duration::from_secs(args.seconds);
    let mut max_lag = 0;
    while t0.elapsed() < window {
        pool.frames_ready(Duration::from_millis(200)).await;
        pool.take_frames(&mut frames);
        pool.recycle(frames.drain(..));
        max_lag = pool
            .status()
            .iter()
            .map(|s| s.lag_ms)
            .max()
            .unwrap_or(0)
            .max(max_lag);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let after = pool.status();
    pool.shutdown().await;
    let sum = |v: &[crate::ingest::CameraStatus],
               f: fn(&crate::ingest::CameraStatus) -> u64|
     -> u64 { v.iter().map(f).sum() };
    let all_streaming = after.iter().all(|s| s.state == CameraState::Streaming);
    let cpu_share = cpu / elapsed / cores as f64;
    let dropped = sum(&after, |s| s.dropped) - sum(&before, |s| s.dropped);
    let held = all_streaming && max_lag <= args.max_lag_ms && cpu_share < 0.9;
    Ok(Rung {
        cameras: n,
        all_streaming,
        cpu_s: cpu,
        cpu_s_per_camera_minute: cpu / (n as f64 * elapsed / 60.0),
        cpu_share,
        max_lag_ms: max_lag,
        received: sum(&after, |s| s.received) - sum(&before, |s| s.received),
        decoded: sum(&after, |s| s.decoded) - sum(&before, |s| s.decoded),
        handed_on: sum(&after, |s| s.handed_on) - sum(&before, |s| s.handed_on),
        dropped,
        held,
    })
}

//! `gridwatch bench`: per-stage time and end-to-end throughput on a clip, beside the
//! raw inference-only rate of the same model, measured in the same run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::ModelArgs;
use crate::decode::{FileDecoder, Frame, Sampler, Sampling};

/// Arguments of `gridwatch bench`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Other benchmarks (without one: the detector on a clip).
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The clip to run over. Defaults to the bundled street clip; `1080p` is a 1080p
    /// 25 fps H.264 clip with a keyframe every 2 s, made once from it with ffmpeg.
    #[arg(long, value_name = "FILE")]
    pub clip: Option<PathBuf>,
    /// One frame per interval (e.g. 1s), `keyframes`, or `all`.
    #[arg(long, default_value = "all", value_name = "INTERVAL")]
    pub every: Sampling,
    /// Inference-only calls for the raw rate (default: as many as the pipeline made,
    /// at least 20).
    #[arg(long, value_name = "N")]
    pub raw_calls: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also run scripts/bench-python-baseline.py (OpenCV VideoCapture + onnxruntime in
    /// Python) on the same clip, model and sampling, and report the ratio.
    #[arg(long)]
    pub compare_baseline: bool,
}

/// Benchmarks other than the detector's.
#[derive(Debug, clap::Subcommand)]
pub enum BenchMode {
    /// The ingest pool over the local RTSP server: CPU seconds per camera-minute and
    /// the most cameras held with bounded lag, per sampling mode (ingest and decode
    /// only).
    Ingest(super::bench_ingest::IngestBenchArgs),
}

/// The result of one bench run.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Model name.
    pub model: String,
    /// Execution provider.
    pub provider: String,
    /// Frames per model call.
    pub batch: usize,
    /// Clip path.
    pub clip: String,
    /// Sampling rule, as given.
    pub sampling: String,
    /// Frames detected on.
    pub frames: u64,
    /// Frames the codec decoded (including those not sampled).
    pub decoded_frames: u64,
    /// Keyframe seeks that skipped unneeded frames.
    pub seeks: u64,
    /// Decoding and colour conversion, ms per detected frame (on the decode thread,
    /// overlapping the detector's work).
    pub decode_ms: f64,
    /// Preprocessing, ms per frame.
    pub preprocess_ms: f64,
    /// Inference, ms per frame.
    pub inference_ms: f64,
    /// Postprocessing, ms per frame.
    pub postprocess_ms: f64,
    /// Wall time of the whole pipeline, ms per frame.
    pub e2e_ms: f64,
    /// Frames per second through the whole pipeline.
    pub e2e_fps: f64,
    /// Frames per second of inference alone, same model and input.
    pub raw_inference_fps: f64,
    /// e2e_fps / raw_inference_fps.
    pub e2e_over_raw: f64,
    /// The Python baseline's frames per second, with --compare-baseline.
    pub baseline_fps: Option<f64>,
    /// Frames the baseline detected.
    pub baseline_frames: Option<u64>,
    /// e2e_fps / baseline_fps.
    pub e2e_over_baseline: Option<f64>,
}

/// What the decode thread hands the detector: a sampled frame, or the end (with the
/// decoder's statistics and time spent), or an error.
enum Decoded {
    Frame(Frame),
    End {
        stats: crate::decode::DecodeStats,
        time: Duration,
    },
    Failed(anyhow::Error),
}

/// Decodes and samples the clip on its own thread, so decoding overlaps inference as
/// it does in the service (where the pool's decode workers feed detection). Frame
/// buffers go round: the detector sends each back for the next picture.
fn spawn_decoder(
    clip: PathBuf,
    every: Sampling,
    depth: usize,
) -> (
    std::sync::mpsc::Receiver<Decoded>,
    std::sync::mpsc::Sender<Frame>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel(depth);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Frame>();
    let handle = std::thread::spawn(move || {
        let mut dec = match FileDecoder::open(&clip) {
            Ok(d) => d,
            Err(e) => {
                let _ = tx.send(Decoded::Failed(e.into()));
                return;
            }
        };
        let mut sampler = Sampler::new(every);
        let mut time = Duration::ZERO;
        loop {
            let mut frame = back_rx.try_recv().unwrap_or_default();
            let t = Instant::now();
            let got = dec.next_sampled(&mut sampler, &mut frame);
            time += t.elapsed();
            match got {
                Ok(true) => {
                    if tx.send(Decoded::Frame(frame)).is_err() {
                        return;
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    let _ = tx.send(Decoded::Failed(e.into()));
                    return;
                }
            }
        }
        let _ = tx.send(Decoded::End {
            stats: dec.stats(),
            time,
        });
    });
    (rx, back_tx, handle)
}

/// The clip `--clip` names: the bundled street clip by default, `1080p` for the 1080p
/// 25 fps benchmark clip (made once with ffmpeg).
fn resolve_clip(clip: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match clip {
        None => Ok(crate::source_dir().join("samples/street.mp4")),
        Some(p) if p.as_os_str() == "1080p" => super::bench_ingest::default_clip(),
        Some(p) => Ok(p.clone()),
    }
}

/// The Python baseline's answer.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Baseline {
    /// Frames detected.
    pub frames: u64,
    /// Frames read (decoded) from the clip.
    pub read: u64,
    /// Wall time, s.
    pub wall_s: f64,
    /// Frames detected per second.
    pub fps: f64,
}

/// Runs scripts/bench-python-baseline.py on the same clip, model and sampling.
fn run_baseline(
    manifest: &std::path::Path,
    clip: &std::path::Path,
    every: Sampling,
) -> anyhow::Result<Baseline> {
    let every_ms = match every {
        Sampling::All => 0.0,
        Sampling::Every(d) => d.as_secs_f64() * 1000.0,
        Sampling::Keyframes => anyhow::bail!(
            "--compare-baseline needs --every all or an interval: OpenCV's VideoCapture cannot pick keyframes"
        ),
    };
    let root = crate::source_dir();
    let python = root.join(".venv/bin/python");
    anyhow::ensure!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let out = std::process::Command::new(&python)
        .arg(root.join("scripts/bench-python-baseline.py"))
        .arg("--manifest")
        .arg(manifest)
        .arg("--clip")
        .arg(clip)
        .arg("--every-ms")
        .arg(format!("{every_ms}"))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the Python baseline failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .map_err(|e| anyhow::anyhow!("the Python baseline printed {text:?}: {e}"))
}

/// Runs `gridwatch bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchMode::Ingest(a)) = args.mode {
        return super::bench_ingest::run(a);
    }
    let clip = resolve_clip(&args.clip)?;
    let mut det = args.model.load()?;
    let info = FileDecoder::open(&clip)?.info().clone();
    let n = det.batch_size();
    let (rx, back, decoder) = spawn_decoder(clip.clone(), args.every, 2 * n);
    let mut frames: Vec<Frame> = Vec::with_capacity(n);
    let mut out = Vec::new();
    let mut end = None;
    det.reset_times();
    let start = Instant::now();
    while end.is_none() {
        // wait for one frame, then take what else is ready up to a batch
        match rx.recv() {
            Ok(Decoded::Frame(f)) => frames.push(f),
            Ok(Decoded::End { stats, time }) => end = Some((stats, time)),
            Ok(Decoded::Failed(e)) => return Err(e),
            Err(_) => anyhow::bail!("the decoder thread stopped"),
        }
        while frames.len() < n && end.is_none() {
            match rx.recv() {
                Ok(Decoded::Frame(f)) => frames.push(f),
                Ok(Decoded::End { stats, time }) => end = Some((stats, time)),
                Ok(Decoded::Failed(e)) => return Err(e),
                Err(_) => anyhow::bail!("the decoder thread stopped"),
            }
        }
        if !frames.is_empty() {
            det.detect(&frames, &mut out)?;
            for f in frames.drain(..) {
                let _ = back.send(f);
            }
        }
    }
    let wall = start.elapsed();
    let _ = decoder.join();
    let (stats, decode_time) = end.expect("the loop ends with the decoder's end");
    let times = det.times();
    anyhow::ensure!(
        times.frames > 0,
        "no frame of {} was sampled",
        clip.display()
    );
    let calls = args.raw_calls.unwrap_or((times.calls as usize).max(20));
    let raw_start = Instant::now();
    let mut raw_frames = 0;
    for _ in 0..calls {
        raw_frames += det.infer_only()?;
    }
    let raw = raw_start.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / times.frames as f64;
    let e2e_fps = times.frames as f64 / wall.as_secs_f64();
    let raw_fps = raw_frames as f64 / raw.as_secs_f64();
    let baseline = if args.compare_baseline {
        let manifest = args
            .model
            .model
            .clone()
            .unwrap_or_else(super::default_model);
        eprintln!("running the Python baseline on the same clip …");
        Some(run_baseline(&manifest, &clip, args.every)?)
    } else {
        None
    };
    let report = BenchReport {
        model: det.manifest().name.clone(),
        provider: det.provider().to_string(),
        batch: n,
        clip: clip.display().to_string(),
        sampling: args.every.to_string(),
        frames: times.frames,
        decoded_frames: stats.decoded,
        seeks: stats.seeks,
        decode_ms: per(decode_time),
        preprocess_ms: per(times.preprocess),
        inference_ms: per(times.inference),
        postprocess_ms: per(times.postprocess),
        e2e_ms: per(wall),
        e2e_fps,
        raw_inference_fps: raw_fps,
        e2e_over_raw: e2e_fps / raw_fps,
        baseline_fps: baseline.as_ref().map(|b| b.fps),
        baseline_frames: baseline.as_ref().map(|b| b.frames),
        e2e_over_baseline: baseline.as_ref().map(|b| e2e_fps / b.fps),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "model        {} on {} (batch {})",
        report.model, report.provider, report.batch
    );
    println!(
        "clip         {} ({} {}x{} {:.2} fps{})",
        report.clip,
        info.codec,
        info.width,
        info.height,
        info.fps,
        info.frames
            .map_or(String::new(), |f| format!(", {f} frames"))
    );
    println!(
        "sampling     {} → {} frames detected, {} decoded, {} keyframe seeks",
        report.sampling, report.frames, report.decoded_frames, report.seeks
    );
    println!("stage        ms/frame");
    println!(
        "decode       {:8.2}   (own thread, overlapping inference)",
        report.decode_ms
    );
    println!("preprocess   {:8.2}", report.preprocess_ms);
    println!("inference    {:8.2}", report.inference_ms);
    println!("postprocess  {:8.2}", report.postprocess_ms);
    println!(
        "end-to-end   {:8.2}   {:.1} frames/s",
        report.e2e_ms, report.e2e_fps
    );
    println!(
        "raw infer    {:8.2}   {:.1} frames/s ({calls} calls, inference only, same run)",
        1000.0 / report.raw_inference_fps,
        report.raw_inference_fps
    );
    println!("e2e / raw    {:8.3}", report.e2e_over_raw);
    if let Some(b) = &baseline {
        println!(
            "python       {:8.2}   {:.1} frames/s (OpenCV VideoCapture + onnxruntime, {} frames detected, {} read, same run)",
            1000.0 / b.fps,
            b.fps,
            b.frames,
            b.read
        );
        println!(
            "e2e / python {:8.2}",
            report.e2e_over_baseline.unwrap_or_default()
        );
    }
    Ok(())
}

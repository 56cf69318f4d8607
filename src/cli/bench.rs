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
    /// The clip to run over. Defaults to the bundled street clip.
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
    /// Decoding and colour conversion, ms per detected frame.
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
}

/// Runs `gridwatch bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchMode::Ingest(a)) = args.mode {
        return super::bench_ingest::run(a);
    }
    let clip = args
        .clip
        .clone()
        .unwrap_or_else(|| crate::source_dir().join("samples/street.mp4"));
    let mut det = args.model.load()?;
    let mut dec = FileDecoder::open(&clip)?;
    let info = dec.info().clone();
    let mut sampler = Sampler::new(args.every);
    let n = det.batch_size();
    let mut frames: Vec<Frame> = (0..n).map(|_| Frame::default()).collect();
    let mut out = Vec::new();
    let mut decode_time = Duration::ZERO;
    det.reset_times();
    let start = Instant::now();
    loop {
        let t = Instant::now();
        let mut filled = 0;
        while filled < n && dec.next_sampled(&mut sampler, &mut frames[filled])? {
            filled += 1;
        }
        decode_time += t.elapsed();
        if filled == 0 {
            break;
        }
        det.detect(&frames[..filled], &mut out)?;
        if filled < n {
            break;
        }
    }
    let wall = start.elapsed();
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
    let stats = dec.stats();
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
    println!("decode       {:8.2}", report.decode_ms);
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
    Ok(())
}

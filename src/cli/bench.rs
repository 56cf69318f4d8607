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
    /// More models: every model runs on every clip at every sampling (a matrix).
    #[arg(long = "and-model", value_name = "MANIFEST")]
    pub and_model: Vec<PathBuf>,
    /// The clip to run over (repeat for more). Defaults to the bundled street clip;
    /// `1080p` is a 1080p 25 fps H.264 clip (x264 defaults: B-frames) with a keyframe
    /// every 2 s, made once from it with ffmpeg.
    #[arg(long, value_name = "FILE")]
    pub clip: Vec<PathBuf>,
    /// One frame per interval (e.g. 1s), `keyframes`, or `all` (repeat for more).
    #[arg(long, default_value = "all", value_name = "INTERVAL")]
    pub every: Vec<Sampling>,
    /// Write a chart of the results (SVG).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Inference-only calls for the raw rate (default: as many as the pipeline made,
    /// at least 20).
    #[arg(long, value_name = "N")]
    pub raw_calls: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also run scripts/bench-python-baseline.py (OpenCV VideoCapture + onnxruntime in
    /// Python) on the same clip, model and sampling, and report the ratio. It runs
    /// under .venv/bin/python, or the interpreter GRIDWATCH_PYTHON names.
    #[arg(long)]
    pub compare_baseline: bool,
    /// FFmpeg threads decoding the clip (0: one per core plus one). One thread leaves
    /// the other cores to inference, which is what the service does per camera.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub decode_threads: usize,
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
    /// Inference threads asked for (None: ONNX Runtime's choice, one per core).
    pub inference_threads: Option<usize>,
    /// Whether idle inference threads spin.
    pub spin: bool,
    /// FFmpeg decoding threads (0: FFmpeg's choice).
    pub decode_threads: usize,
    /// Clip path.
    pub clip: String,
    /// Sampling rule, as given.
    pub sampling: String,
    /// Frames detected on.
    pub frames: u64,
    /// Frames the codec decoded (including those not sampled).
    pub decoded_frames: u64,
    /// Video packets read from the clip.
    pub packets: u64,
    /// Of those, packets the decoder was given (the others were never decoded).
    pub fed_packets: u64,
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
    /// With an interval: cameras one detector keeps up with at that sampling
    /// (e2e frames/s × interval).
    pub cameras_held: Option<f64>,
}

/// One measured combination, with what the detailed table shows beside the report.
struct Measured {
    report: BenchReport,
    info: crate::decode::ClipInfo,
    calls: usize,
    baseline: Option<Baseline>,
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
    threads: usize,
) -> (
    std::sync::mpsc::Receiver<Decoded>,
    std::sync::mpsc::Sender<Frame>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel(depth);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Frame>();
    let handle = std::thread::spawn(move || {
        let mut dec = match FileDecoder::open_with_threads(&clip, threads) {
            Ok(d) => d,
            Err(e) => {
                let _ = tx.send(Decoded::Failed(e.into()));
                return;
            }
        };
        let mut sampler = Sampler::new(every);
        let mut time = Duration::ZERO;
        loop {
            if super::interrupt::asked() {
                let _ = tx.send(Decoded::Failed(super::Interrupted(String::new()).into()));
                return;
            }
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

/// The clip `--clip` names: `1080p` for the 1080p 25 fps benchmark clip (made once
/// with ffmpeg), else the file.
fn resolve_clip(clip: &std::path::Path) -> anyhow::Result<PathBuf> {
    if clip.as_os_str() == "1080p" {
        super::bench_ingest::default_clip()
    } else {
        Ok(clip.to_path_buf())
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
    // GRIDWATCH_PYTHON: another interpreter with OpenCV and onnxruntime (a machine
    // where scripts/setup.sh cannot run, e.g. one without network access)
    let python = std::env::var_os("GRIDWATCH_PYTHON")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    anyhow::ensure!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh (or set GRIDWATCH_PYTHON to a Python with opencv-python and onnxruntime)",
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
    super::interrupt::install();
    if let Some(BenchMode::Ingest(a)) = args.mode {
        return super::bench_ingest::run(a);
    }
    let mut models = vec![args.model.clone()];
    for m in &args.and_model {
        models.push(ModelArgs {
            model: Some(m.clone()),
            ..args.model.clone()
        });
    }
    let clips = if args.clip.is_empty() {
        vec![crate::source_dir().join("samples/street.mp4")]
    } else {
        args.clip.clone()
    };
    let mut results = Vec::new();
    for model in &models {
        for clip in &clips {
            for every in &args.every {
                results.push(measure(
                    model,
                    clip,
                    *every,
                    args.raw_calls,
                    args.compare_baseline,
                    args.decode_threads,
                )?);
            }
        }
    }
    if let Some(path) = &args.svg {
        let reports: Vec<&BenchReport> = results.iter().map(|m| &m.report).collect();
        std::fs::write(path, chart(&reports))
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        eprintln!("chart: {}", path.display());
    }
    if args.json {
        if results.len() == 1 {
            println!("{}", serde_json::to_string(&results[0].report)?);
        } else {
            let reports: Vec<&BenchReport> = results.iter().map(|m| &m.report).collect();
            println!("{}", serde_json::to_string(&reports)?);
        }
        return Ok(());
    }
    if results.len() == 1 {
        print_detail(&results[0]);
    } else {
        print_matrix(&results);
    }
    Ok(())
}

/// Measures one model on one clip at one sampling.
fn measure(
    model: &ModelArgs,
    clip: &std::path::Path,
    every: Sampling,
    raw_calls: Option<usize>,
    compare_baseline: bool,
    decode_threads: usize,
) -> anyhow::Result<Measured> {
    let clip = resolve_clip(clip)?;
    let mut det = model.load()?;
    let info = FileDecoder::open(&clip)?.info().clone();
    let n = det.batch_size();
    let (rx, back, decoder) = spawn_decoder(clip.clone(), every, 2 * n, decode_threads);
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
    let calls = raw_calls.unwrap_or((times.calls as usize).max(20));
    let raw_start = Instant::now();
    let mut raw_frames = 0;
    for _ in 0..calls {
        if super::interrupt::asked() {
            return Err(super::Interrupted(String::new()).into());
        }
        raw_frames += det.infer_only()?;
    }
    let raw = raw_start.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / times.frames as f64;
    let e2e_fps = times.frames as f64 / wall.as_secs_f64();
    let raw_fps = raw_frames as f64 / raw.as_secs_f64();
    let baseline = if compare_baseline {
        let manifest = model
            .model
            .clone()
            .unwrap_or_else(crate::detect::default_model);
        eprintln!("running the Python baseline on the same clip …");
        Some(run_baseline(&manifest, &clip, every)?)
    } else {
        None
    };
    let report = BenchReport {
        model: det.manifest().name.clone(),
        provider: det.provider().to_string(),
        batch: n,
        inference_threads: model.threads,
        spin: model.spin,
        decode_threads,
        clip: clip.display().to_string(),
        sampling: every.to_string(),
        frames: times.frames,
        decoded_frames: stats.decoded,
        packets: stats.packets,
        fed_packets: stats.fed,
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
        cameras_held: match every {
            Sampling::Every(d) => Some(e2e_fps * d.as_secs_f64()),
            _ => None,
        },
    };
    Ok(Measured {
        report,
        info,
        calls,
        baseline,
    })
}

/// The detailed table of one combination.
fn print_detail(m: &Measured) {
    let (report, info, calls, baseline) = (&m.report, &m.info, m.calls, &m.baseline);
    println!(
        "model        {} on {} (batch {})",
        report.model, report.provider, report.batch
    );
    println!(
        "threads      inference {} (idle threads {}), decode {}",
        report
            .inference_threads
            .map_or("one per core".to_string(), |n| n.to_string()),
        if report.spin { "spin" } else { "sleep" },
        if report.decode_threads == 0 {
            "FFmpeg's choice".to_string()
        } else {
            report.decode_threads.to_string()
        }
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
        "sampling     {} → {} frames detected, {} decoded ({} of {} packets fed)",
        report.sampling, report.frames, report.decoded_frames, report.fed_packets, report.packets
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
    if let Some(c) = report.cameras_held {
        println!(
            "cameras held {c:8.1}   at {} each (e2e frames/s × interval)",
            report.sampling
        );
    }
    if let Some(b) = baseline {
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
}

/// One line per combination.
fn print_matrix(results: &[Measured]) {
    println!(
        "{:<22} {:<28} {:<14} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} {:>8} {:>8}",
        "model",
        "clip",
        "sampling",
        "frames",
        "dec ms",
        "pre ms",
        "inf ms",
        "e2e f/s",
        "raw f/s",
        "e2e/raw",
        "cameras",
        "python"
    );
    for m in results {
        let r = &m.report;
        let clip = std::path::Path::new(&r.clip)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{:<22} {:<28} {:<14} {:>6} {:>7.2} {:>7.2} {:>7.2} {:>8.1} {:>8.1} {:>7.3} {:>8} {:>8}",
            r.model,
            clip,
            r.sampling,
            r.frames,
            r.decode_ms,
            r.preprocess_ms,
            r.inference_ms,
            r.e2e_fps,
            r.raw_inference_fps,
            r.e2e_over_raw,
            r.cameras_held
                .map_or("-".to_string(), |c| format!("{c:.1}")),
            r.e2e_over_baseline
                .map_or("-".to_string(), |x| format!("{x:.2}x")),
        );
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart: end-to-end and raw inference frames/s per combination.
pub fn chart(reports: &[&BenchReport]) -> String {
    let row_h = 46.0;
    let (left, width) = (330.0, 420.0);
    let height = 60.0 + row_h * reports.len() as f64 + 30.0;
    let max = reports
        .iter()
        .map(|r| r.e2e_fps.max(r.raw_inference_fps))
        .fold(1.0, f64::max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\">gridwatch bench: frames/s (end-to-end, and raw inference in the same run)</text>\n\
         <rect x=\"{left}\" y=\"34\" width=\"12\" height=\"10\" fill=\"#2f6fdf\"/><text x=\"{lx1}\" y=\"43\">end-to-end</text>\n\
         <rect x=\"{lx2}\" y=\"34\" width=\"12\" height=\"10\" fill=\"#b8c7e6\"/><text x=\"{lx3}\" y=\"43\">raw inference</text>\n",
        w = left + width + 90.0,
        lx1 = left + 16.0,
        lx2 = left + 110.0,
        lx3 = left + 126.0,
    );
    for (i, r) in reports.iter().enumerate() {
        let y = 60.0 + row_h * i as f64;
        let clip = std::path::Path::new(&r.clip)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bar = |v: f64| v / max * width;
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{ty}\">{}</text>\n<text x=\"10\" y=\"{ty2}\" fill=\"#555\">{} · {}</text>\n\
             <rect x=\"{left}\" y=\"{y}\" width=\"{rw:.1}\" height=\"16\" fill=\"#b8c7e6\"/>\n\
             <rect x=\"{left}\" y=\"{y2}\" width=\"{ew:.1}\" height=\"16\" fill=\"#2f6fdf\"/>\n\
             <text x=\"{rx:.1}\" y=\"{ty}\">{:.1}</text>\n<text x=\"{ex:.1}\" y=\"{ty2}\">{:.1}</text>\n",
            xml(&r.model),
            xml(&clip),
            xml(&r.sampling),
            r.raw_inference_fps,
            r.e2e_fps,
            ty = y + 13.0,
            ty2 = y + 31.0,
            y2 = y + 18.0,
            rw = bar(r.raw_inference_fps),
            ew = bar(r.e2e_fps),
            rx = left + bar(r.raw_inference_fps) + 6.0,
            ex = left + bar(r.e2e_fps) + 6.0,
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

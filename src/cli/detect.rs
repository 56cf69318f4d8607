//! `gridwatch detect`: a detector over images or a clip → detections.jsonl + JPEGs.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opencv::core::Mat;
use serde::Serialize;

use super::ModelArgs;
use crate::decode::{read_image, FileDecoder, Frame, Input, Sampler, Sampling};
use crate::detect::{Detection, Detector};
use crate::draw::{write_annotated, write_png};

/// Arguments of `gridwatch detect`.
#[derive(Debug, Args)]
#[command(
    after_help = "Output: DIR/detections.jsonl has one JSON object per detection with the keys \
source, frame, pts_ms, class, class_id, score and box ([x1,y1,x2,y2] in source pixels); \
DIR/frames.jsonl one per image or sampled frame (source, frame, pts_ms, keyframe, width, \
height, detections, image); DIR also receives one annotated JPEG per image or sampled \
frame, and with --raw-frames the frame itself as PNG.\n\n\
Examples:\n  gridwatch detect samples/street.mp4 --every 1s --out out/street\n  \
gridwatch detect samples/ --model models/nanodet-coco-416.toml"
)]
pub struct DetectArgs {
    /// An image, a directory of images, or a video clip (mp4, mkv, avi, …).
    pub input: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// For clips: one frame per interval (e.g. 500ms, 1s, 2m), `keyframes` (decode
    /// only random-access frames), or `all`.
    #[arg(long, default_value = "all", value_name = "INTERVAL")]
    pub every: Sampling,
    /// Where detections.jsonl and the annotated JPEGs go.
    #[arg(long, default_value = "out/detect", value_name = "DIR")]
    pub out: PathBuf,
    /// Write detections only, no annotated JPEGs.
    #[arg(long)]
    pub no_images: bool,
    /// Also write each sampled frame as it was decoded, without drawing, as a PNG
    /// (NAME_FRAME.png): for labelling, or for checking decoding against another tool.
    #[arg(long)]
    pub raw_frames: bool,
}

/// One line of detections.jsonl.
#[derive(Serialize)]
struct Line<'a> {
    source: &'a str,
    frame: u64,
    pts_ms: Option<i64>,
    class: &'a str,
    class_id: u32,
    score: f32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
}

/// One line of frames.jsonl.
#[derive(Serialize)]
struct FrameLine<'a> {
    source: &'a str,
    frame: u64,
    pts_ms: Option<i64>,
    keyframe: bool,
    width: u32,
    height: u32,
    detections: usize,
    image: Option<&'a str>,
}

/// Writes detections and annotated frames for one run.
struct Sink {
    out_dir: PathBuf,
    jsonl: BufWriter<File>,
    frames_jsonl: BufWriter<File>,
    images: bool,
    raw: bool,
    canvas: Mat,
    frames: u64,
    detections: u64,
}

impl Sink {
    fn new(out_dir: &Path, images: bool, raw: bool) -> anyhow::Result<Self> {
        fs::create_dir_all(out_dir)
            .with_context(|| format!("cannot create the output directory {}", out_dir.display()))?;
        let create = |name: &str| {
            let path = out_dir.join(name);
            File::create(&path)
                .map(BufWriter::new)
                .with_context(|| format!("cannot create {}", path.display()))
        };
        Ok(Self {
            out_dir: out_dir.to_path_buf(),
            jsonl: create("detections.jsonl")?,
            frames_jsonl: create("frames.jsonl")?,
            images,
            raw,
            canvas: Mat::default(),
            frames: 0,
            detections: 0,
        })
    }

    fn write(
        &mut self,
        source: &Path,
        frame: &Frame,
        dets: &[Detection],
        classes: &[String],
    ) -> anyhow::Result<()> {
        let src = source.to_string_lossy();
        for d in dets {
            let line = Line {
                source: &src,
                frame: frame.index,
                pts_ms: frame.pts_ms,
                class: classes.get(d.class_id as usize).map_or("?", String::as_str),
                class_id: d.class_id,
                score: d.score,
                bbox: d.bbox,
            };
            serde_json::to_writer(&mut self.jsonl, &line)?;
            self.jsonl.write_all(b"\n")?;
        }
        let stem = source
            .file_stem()
            .map_or("frame".into(), |s| s.to_string_lossy());
        let name = match frame.pts_ms {
            Some(_) => format!("{stem}_{:06}", frame.index),
            None => stem.to_string(),
        };
        if self.images {
            let path = self.out_dir.join(format!("{name}.jpg"));
            write_annotated(&path, frame, dets, classes, 90, &mut self.canvas)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if self.raw {
            let path = self.out_dir.join(format!("{name}.png"));
            write_png(&path, frame).with_context(|| format!("cannot write {}", path.display()))?;
        }
        let image = format!("{name}.jpg");
        let line = FrameLine {
            source: &src,
            frame: frame.index,
            pts_ms: frame.pts_ms,
            keyframe: frame.keyframe,
            width: frame.width,
            height: frame.height,
            detections: dets.len(),
            image: self.images.then_some(image.as_str()),
        };
        serde_json::to_writer(&mut self.frames_jsonl, &line)?;
        self.frames_jsonl.write_all(b"\n")?;
        self.frames += 1;
        self.detections += dets.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<(u64, u64)> {
        self.jsonl.flush()?;
        self.frames_jsonl.flush()?;
        Ok((self.frames, self.detections))
    }
}

/// Runs `gridwatch detect`.
pub fn run(args: DetectArgs) -> anyhow::Result<()> {
    super::interrupt::install();
    let input = Input::classify(&args.input)?;
    let mut det = args.model.load()?;
    let mut sink = Sink::new(&args.out, !args.no_images, args.raw_frames)?;
    let classes = det.manifest().classes.clone();
    match &input {
        Input::Image(p) => {
            let mut frame = Frame::default();
            read_image(p, &mut frame)?;
            detect_frames(
                &mut det,
                &mut sink,
                &classes,
                std::slice::from_ref(p),
                &[frame],
            )?;
        }
        Input::Images(_, paths) => {
            let bar = progress(paths.len() as u64, "images");
            let mut frames: Vec<Frame> = Vec::new();
            for chunk in paths.chunks(det.batch_size()) {
                if super::interrupt::asked() {
                    break;
                }
                frames.resize_with(chunk.len(), Frame::default);
                for (frame, p) in frames.iter_mut().zip(chunk) {
                    read_image(p, frame)?;
                }
                detect_frames(&mut det, &mut sink, &classes, chunk, &frames)?;
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
        }
        Input::Clip(p) => run_clip(&mut det, &mut sink, &classes, p, args.every)?,
    }
    let (frames, detections) = sink.finish()?;
    if super::interrupt::asked() {
        return Err(super::Interrupted(format!(
            " after {frames} frame(s); {} holds their detections",
            args.out.join("detections.jsonl").display()
        ))
        .into());
    }
    let t = det.times();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / t.frames.max(1) as f64;
    println!(
        "{frames} frame(s), {detections} detection(s) with {} on {}",
        det.manifest().name,
        det.provider()
    );
    println!(
        "per frame: preprocess {:.2} ms, inference {:.2} ms, postprocess {:.2} ms",
        per(t.preprocess),
        per(t.inference),
        per(t.postprocess)
    );
    println!(
        "detections: {}",
        args.out.join("detections.jsonl").display()
    );
    if !args.no_images {
        println!("annotated frames: {}/*.jpg", args.out.display());
    }
    Ok(())
}

/// A progress bar over `len` items called `unit`.
pub(super) fn progress(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
        ))
        .expect("valid template"),
    );
    bar
}

fn detect_frames(
    det: &mut Detector,
    sink: &mut Sink,
    classes: &[String],
    paths: &[PathBuf],
    frames: &[Frame],
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    det.detect(frames, &mut out)?;
    for ((path, frame), dets) in paths.iter().zip(frames).zip(&out) {
        sink.write(path, frame, dets, classes)?;
    }
    Ok(())
}

fn run_clip(
    det: &mut Detector,
    sink: &mut Sink,
    classes: &[String],
    path: &Path,
    every: Sampling,
) -> anyhow::Result<()> {
    let mut dec = FileDecoder::open(path)?;
    let info = dec.info().clone();
    let expected = match (every, info.duration_ms, info.frames) {
        (Sampling::Every(d), Some(ms), _) => Some(ms as u64 / (d.as_millis() as u64).max(1) + 1),
        (Sampling::All, _, Some(n)) => Some(n),
        (Sampling::Keyframes, _, Some(n)) => Some(n / 20 + 1),
        _ => None,
    };
    let bar = progress(expected.unwrap_or(0), "frames");
    let mut sampler = Sampler::new(every);
    let n = det.batch_size();
    let mut frames: Vec<Frame> = (0..n).map(|_| Frame::default()).collect();
    let mut out = Vec::new();
    loop {
        let mut filled = 0;
        while filled < n
            && !super::interrupt::asked()
            && dec.next_sampled(&mut sampler, &mut frames[filled])?
        {
            filled += 1;
        }
        if filled == 0 {
            break;
        }
        det.detect(&frames[..filled], &mut out)?;
        for (frame, dets) in frames[..filled].iter().zip(&out) {
            sink.write(path, frame, dets, classes)?;
        }
        bar.inc(filled as u64);
        if filled < n {
            break;
        }
    }
    bar.finish_and_clear();
    if super::interrupt::asked() {
        return Ok(());
    }
    let s = dec.stats();
    tracing::info!(
        file = %path.display(),
        decoded = s.decoded,
        converted = s.converted,
        fed = s.fed,
        discontinuities = s.discontinuities,
        corrupt_packets = s.corrupt_packets,
        damaged = s.damaged,
        size_changes = s.size_changes,
        "clip done"
    );
    if s.corrupt_packets > 0 || s.truncated || s.damaged > 0 {
        tracing::warn!(
            "{}: skipped {} corrupt packet(s), {} picture(s) concealed over damage{}; \
             detections cover the frames that decoded",
            path.display(),
            s.corrupt_packets,
            s.damaged,
            if s.truncated {
                " and stopped at damaged data (truncated file?)"
            } else {
                ""
            }
        );
    }
    if s.converted == 0 {
        anyhow::bail!(
            "cannot decode video {}: no frame could be decoded ({} packets read, {} corrupt)",
            path.display(),
            s.packets,
            s.corrupt_packets
        );
    }
    Ok(())
}

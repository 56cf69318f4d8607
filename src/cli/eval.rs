//! `gridwatch eval`: accuracy figures for model developers.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::ModelArgs;
use crate::eval::chart::pr_chart;
use crate::eval::detect::{self, Boxes, Figures};
use crate::eval::labels::{ClassMap, LabelSet};

/// `gridwatch eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// A detector against labelled images: mAP@0.5 and mAP@0.5:0.95 as COCO computes
    /// them, and per class AP, and precision / recall at the model's own score
    /// threshold. Without --images / --labels: the bundled labelled samples.
    Detect(DetectArgs),
    /// Violations on clips: a config's file cameras replayed through the service's
    /// model, scenes and dedup faster than real time, their cases judged against truth
    /// files — true and false positives, misses, repeats, delay, precision, recall, F1
    /// per rule. Without --config: the built-in demo on the bundled truth files.
    Rules(super::eval_rules::RulesArgs),
}

/// Arguments of `gridwatch eval detect`.
#[derive(Debug, Args)]
#[command(
    after_help = "Labels: a .json file is read as COCO (images[].file_name relative to \
--images; categories by name; annotations' bbox [x, y, width, height] in pixels; crowd regions \
are not supported). A folder is read as YOLO txt: for each image under --images, the txt file at \
the same relative path (class cx cy w h, in 0..1 of the image), class names one a line in the \
folder's classes.txt or obj.names, or --names.\n\n\
Classes are matched to the model's by name; a --map TOML file renames them (\"motorbike\" = \
\"motorcycle\") or leaves them out (\"traffic cone\" = \"\"). Detections of model classes no \
label maps to are not counted.\n\n\
Figures: AP at IoU 0.5 and averaged over IoU 0.5..0.95 (101-point, at most 100 detections an \
image, pycocotools' rules); recall the highest reached; P and R at the manifest's \
score_threshold, at IoU 0.5.\n\n\
Examples:\n  gridwatch eval detect\n  gridwatch eval detect --model my.toml --images data/val \
--labels data/val/labels.json --json out/eval.json --chart out/pr.svg"
)]
pub struct DetectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The folder the images are in (default: the bundled samples/).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// COCO labels JSON, or a YOLO label folder (default: samples/labels/coco.json).
    #[arg(long, value_name = "FILE|DIR")]
    pub labels: Option<PathBuf>,
    /// Class names of YOLO labels, one a line (default: classes.txt or obj.names in
    /// the label folder).
    #[arg(long, value_name = "FILE")]
    pub names: Option<PathBuf>,
    /// TOML table mapping label class names to the model's ("" leaves one out).
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,
    /// Lowest detection score counted for AP (the PR curve runs down to it); P and R
    /// are reported at the manifest's own threshold.
    #[arg(long, default_value_t = 0.001, value_name = "SCORE")]
    pub min_score: f32,
    /// Also write the figures, PR curves included, as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also draw the PR curves at IoU 0.5 as an SVG chart.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// Also write the detections in COCO's results format (image_id, category_id,
    /// bbox, score), for pycocotools or another tool to score (COCO labels only).
    #[arg(long, value_name = "FILE")]
    pub detections: Option<PathBuf>,
}

/// Runs an `eval` subcommand.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Detect(a) => eval_detect(a),
        EvalCommand::Rules(a) => super::eval_rules::eval_rules(a),
    }
}

/// What `--json` writes.
#[derive(Serialize)]
struct Report<'a> {
    model: &'a str,
    model_sha256: Option<&'a str>,
    labels: String,
    images: usize,
    score_threshold: f32,
    min_score: f32,
    #[serde(flatten)]
    figures: &'a Figures,
}

fn eval_detect(args: DetectArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.min_score) {
        anyhow::bail!("--min-score must lie in 0..1, not {}", args.min_score);
    }
    let home = crate::source_dir();
    let images = args.images.clone().unwrap_or_else(|| home.join("samples"));
    let labels = args
        .labels
        .clone()
        .unwrap_or_else(|| home.join("samples/labels/coco.json"));
    let set = LabelSet::load(&labels, &images, args.names.as_deref())?;
    let mut threshold = 0.0;
    let mut det = args.model.load_with(|m| {
        threshold = m.postprocess.score_threshold;
        m.postprocess.score_threshold = args.min_score.min(threshold);
    })?;
    let manifest = det.manifest().clone();
    let map = ClassMap::new(&set, &manifest.classes, args.map.as_deref())?;
    let bar = super::detect::progress(set.images.len() as u64, "images");
    let boxes = detect::run(&mut det, &set, &map, &images, || bar.inc(1))?;
    bar.finish_and_clear();
    let figures = detect::figures(&boxes, &map, set.images.len(), f64::from(threshold));
    print!("{}", table(&manifest.name, &set, &figures, threshold));
    let report = Report {
        model: &manifest.name,
        model_sha256: manifest.sha256.as_deref(),
        labels: labels.display().to_string(),
        images: set.images.len(),
        score_threshold: threshold,
        min_score: args.min_score,
        figures: &figures,
    };
    if let Some(p) = &args.json {
        write(p, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if let Some(p) = &args.chart {
        let curves: Vec<(String, &[f64])> = figures
            .classes
            .iter()
            .map(|c| {
                (
                    format!("{} (AP50 {:.3})", c.class, c.ap50),
                    c.pr_curve.as_slice(),
                )
            })
            .collect();
        let title = format!("{}: precision / recall at IoU 0.5", manifest.name);
        write(p, pr_chart(&title, &curves))?;
    }
    if let Some(p) = &args.detections {
        write(p, coco_results(&set, &map, &boxes)?)?;
    }
    Ok(())
}

/// Writes an output file, making its folder.
pub(super) fn write(path: &Path, text: String) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The figures as a table.
fn table(model: &str, set: &LabelSet, f: &Figures, threshold: f32) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let labels: usize = f.classes.iter().map(|c| c.labels).sum();
    let _ = writeln!(
        s,
        "{model} on {} images, {labels} labels ({})",
        set.images.len(),
        set.source.display()
    );
    let _ = writeln!(
        s,
        "{:<16} {:>6} {:>6} {:>7} {:>9} {:>7} {:>8} {:>8}",
        "class",
        "labels",
        "found",
        "AP50",
        "AP50:95",
        "recall",
        format!("P@{threshold}"),
        format!("R@{threshold}")
    );
    let p = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for c in &f.classes {
        let _ = writeln!(
            s,
            "{:<16} {:>6} {:>6} {:>7.3} {:>9.3} {:>7.3} {:>8} {:>8.3}",
            c.class,
            c.labels,
            c.detections,
            c.ap50,
            c.ap,
            c.recall,
            p(c.at_threshold.precision),
            c.at_threshold.recall
        );
    }
    let _ = writeln!(
        s,
        "{:<16} {:>6} {:>6} {:>7.3} {:>9.3} {:>7} {:>8} {:>8.3}",
        "all (mean AP)",
        labels,
        f.classes.iter().map(|c| c.detections).sum::<usize>(),
        f.map50,
        f.map,
        "",
        p(f.at_threshold.precision),
        f.at_threshold.recall
    );
    s
}

/// The detections of the evaluated classes in COCO's results format.
fn coco_results(set: &LabelSet, map: &ClassMap, boxes: &Boxes) -> anyhow::Result<String> {
    if set.normalized {
        anyhow::bail!(
            "--detections writes COCO results, which need COCO labels (image and category ids)"
        );
    }
    #[derive(Serialize)]
    struct Result {
        image_id: u64,
        category_id: u64,
        bbox: [f64; 4],
        score: f64,
    }
    let category = |class: usize| {
        map.of_label
            .iter()
            .position(|m| *m == Some(class))
            .map(|l| set.classes[l].0)
    };
    let out: Vec<Result> = boxes
        .found
        .iter()
        .filter_map(|d| {
            Some(Result {
                image_id: set.images[d.image].id,
                category_id: category(d.class)?,
                bbox: [
                    d.bbox[0],
                    d.bbox[1],
                    d.bbox[2] - d.bbox[0],
                    d.bbox[3] - d.bbox[1],
                ],
                score: d.score,
            })
        })
        .collect();
    Ok(serde_json::to_string(&out)? + "\n")
}

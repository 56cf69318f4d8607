//! `gridwatch eval detect`: a detector over labelled images → COCO's figures per
//! class, and precision / recall at the model's own score threshold.

use std::path::Path;

use serde::Serialize;

use super::coco::{self, Found, Label};
use super::labels::{ClassMap, LabelSet};
use crate::decode::{read_image, Frame};
use crate::detect::Detector;

/// One image's detections, as the evaluator counts them.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    /// Index into the label set's images.
    pub image: usize,
    /// Index into the model's class list.
    pub model_class: usize,
    /// Corners in pixels.
    pub bbox: [f64; 4],
    /// Confidence.
    pub score: f64,
}

/// The boxes of a run: labels in pixels and detections, both by evaluated class.
#[derive(Debug, Clone, Default)]
pub struct Boxes {
    /// Labels, class as in [`ClassMap::classes`].
    pub labels: Vec<Label>,
    /// Detections of the evaluated classes, class likewise.
    pub found: Vec<Found>,
    /// Every detection of the run, of any class.
    pub detected: Vec<Detected>,
}

/// Runs `det` over every image of `set` (read from `images_dir`), `progress` called
/// after each. An image the labels size differently from what it is, or one that
/// cannot be read, is an error naming it.
pub fn run(
    det: &mut Detector,
    set: &LabelSet,
    map: &ClassMap,
    images_dir: &Path,
    mut progress: impl FnMut(),
) -> anyhow::Result<Boxes> {
    let mut boxes = Boxes::default();
    let batch = det.batch_size().max(1);
    let mut frames: Vec<Frame> = Vec::with_capacity(batch);
    let mut out = Vec::new();
    for (start, chunk) in set
        .images
        .chunks(batch)
        .enumerate()
        .map(|(i, c)| (i * batch, c))
    {
        frames.resize_with(chunk.len(), Frame::default);
        for (frame, im) in frames.iter_mut().zip(chunk) {
            let path = images_dir.join(&im.name);
            read_image(&path, frame)?;
            if let Some((w, h)) = im.size {
                if (w, h) != (frame.width, frame.height) {
                    anyhow::bail!(
                        "{}: the labels ({}) say image {} is {w}x{h}, but it is {}x{}",
                        path.display(),
                        set.source.display(),
                        im.id,
                        frame.width,
                        frame.height
                    );
                }
            }
        }
        det.detect(&frames, &mut out)?;
        for (k, dets) in out.iter().enumerate() {
            let image = start + k;
            for d in dets {
                let bbox = d.bbox.map(f64::from);
                let model_class = d.class_id as usize;
                boxes.detected.push(Detected {
                    image,
                    model_class,
                    bbox,
                    score: f64::from(d.score),
                });
                if let Some(class) = map.of_model(model_class) {
                    boxes.found.push(Found {
                        image,
                        class,
                        bbox,
                        score: f64::from(d.score),
                    });
                }
            }
            let (w, h) = (frames[k].width as f64, frames[k].height as f64);
            for b in set.boxes.iter().filter(|b| b.image == image) {
                let Some(class) = map.of_label[b.class] else {
                    continue;
                };
                let bbox = if set.normalized {
                    [b.bbox[0] * w, b.bbox[1] * h, b.bbox[2] * w, b.bbox[3] * h]
                } else {
                    b.bbox
                };
                boxes.labels.push(Label { image, class, bbox });
            }
            progress();
        }
    }
    Ok(boxes)
}

/// One class's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ClassFigures {
    /// The model's name for it.
    pub class: String,
    /// Labelled boxes.
    pub labels: usize,
    /// Detections counted (any score down to the run's minimum).
    pub detections: usize,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP averaged over IoU 0.5 to 0.95.
    pub ap: f64,
    /// Highest recall reached at IoU 0.5.
    pub recall: f64,
    /// At the score threshold: precision and recall at IoU 0.5.
    pub at_threshold: AtThreshold,
    /// Precision at IoU 0.5 at recall 0, 0.01, …, 1 (the PR curve AP@0.5 reads).
    pub pr_curve: Vec<f64>,
}

/// Precision and recall counting only detections at or above a score.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AtThreshold {
    /// Detections that matched a label.
    pub true_positives: usize,
    /// Detections that matched none.
    pub false_positives: usize,
    /// Labels no detection matched.
    pub misses: usize,
    /// TP / (TP + FP); `None` with no detections.
    pub precision: Option<f64>,
    /// TP / labels.
    pub recall: f64,
}

impl AtThreshold {
    fn new(tp: usize, fp: usize, labels: usize) -> Self {
        Self {
            true_positives: tp,
            false_positives: fp,
            misses: labels.saturating_sub(tp),
            precision: (tp + fp > 0).then(|| tp as f64 / (tp + fp) as f64),
            recall: if labels == 0 {
                0.0
            } else {
                tp as f64 / labels as f64
            },
        }
    }
}

/// The figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Per evaluated class with labels, in the map's order.
    pub classes: Vec<ClassFigures>,
    /// Mean AP@0.5 over those classes.
    pub map50: f64,
    /// Mean AP@0.5:0.95.
    pub map: f64,
    /// All classes' counts together at the score threshold.
    pub at_threshold: AtThreshold,
}

/// COCO's figures for `boxes`, with precision / recall at `threshold`.
pub fn figures(boxes: &Boxes, map: &ClassMap, images: usize, threshold: f64) -> Figures {
    let per = coco::evaluate(&boxes.labels, &boxes.found, map.classes.len(), images);
    let (mut tp, mut fp, mut labels) = (0, 0, 0);
    let mut classes = Vec::new();
    for (c, ap) in per.iter().enumerate() {
        let Some(ap) = ap else { continue };
        let (t, f) = ap.at_score(threshold);
        tp += t;
        fp += f;
        labels += ap.labels;
        classes.push(ClassFigures {
            class: map.classes[c].1.clone(),
            labels: ap.labels,
            detections: ap.found,
            ap50: ap.ap50(),
            ap: ap.ap_all(),
            recall: ap.recall[0],
            at_threshold: AtThreshold::new(t, f, ap.labels),
            pr_curve: ap.points.clone(),
        });
    }
    Figures {
        classes,
        map50: coco::mean(&per, coco::ClassAp::ap50).unwrap_or(0.0),
        map: coco::mean(&per, coco::ClassAp::ap_all).unwrap_or(0.0),
        at_threshold: AtThreshold::new(tp, fp, labels),
    }
}

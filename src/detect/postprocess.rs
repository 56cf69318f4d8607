//! Postprocessing: candidates → class-aware non-maximum suppression → boxes in frame
//! pixels.

use serde::Serialize;

use super::layout::{BBox, Candidate};
use super::preprocess::InputTransform;

/// A detection in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    /// Index into the model's class list.
    pub class_id: u32,
    /// Confidence in 0..1.
    pub score: f32,
    /// `[x1, y1, x2, y2]` in frame pixels, clipped to the frame.
    pub bbox: BBox,
}

/// Intersection over union of two boxes; 0 when either is empty.
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &BBox| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Greedy class-aware NMS. Sorts `cands` by score (highest first; ties keep their
/// order), then keeps a candidate unless a kept box of the same class overlaps it by
/// more than `iou_threshold`. With no threshold every candidate is kept. Stops at
/// `max` kept. `kept` is cleared first and reused.
pub fn nms(
    cands: &mut [Candidate],
    iou_threshold: Option<f32>,
    max: usize,
    kept: &mut Vec<Candidate>,
) {
    kept.clear();
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    for c in cands.iter() {
        if kept.len() >= max {
            break;
        }
        let suppressed = iou_threshold.is_some_and(|thr| {
            kept.iter()
                .any(|k| k.class_id == c.class_id && iou(&k.bbox, &c.bbox) > thr)
        });
        if !suppressed {
            kept.push(*c);
        }
    }
}

/// Maps kept candidates into frame pixels, appending to `out`.
pub fn to_detections(kept: &[Candidate], t: &InputTransform, out: &mut Vec<Detection>) {
    out.extend(kept.iter().map(|c| Detection {
        class_id: c.class_id,
        score: c.score,
        bbox: t.to_frame(c.bbox),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(bbox: BBox, score: f32, class_id: u32) -> Candidate {
        Candidate {
            bbox,
            score,
            class_id,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 0.0, 3.0, 2.0]), 2.0 / 6.0);
        assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn suppresses_only_within_a_class() {
        let mut cands = vec![
            c([0.0, 0.0, 10.0, 10.0], 0.6, 0),
            c([1.0, 1.0, 11.0, 11.0], 0.9, 0),
            c([1.0, 1.0, 11.0, 11.0], 0.8, 1),
            c([50.0, 50.0, 60.0, 60.0], 0.5, 0),
        ];
        let mut kept = Vec::new();
        nms(&mut cands, Some(0.5), 100, &mut kept);
        let scores: Vec<f32> = kept.iter().map(|k| k.score).collect();
        assert_eq!(scores, [0.9, 0.8, 0.5]);
        nms(&mut cands, None, 2, &mut kept);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn a_box_at_exactly_the_threshold_survives() {
        // IoU exactly 0.5 is not "more than" 0.5
        let mut cands = vec![
            c([0.0, 0.0, 2.0, 1.0], 0.9, 0),
            c([0.0, 0.0, 1.0, 1.0], 0.8, 0),
        ];
        let mut kept = Vec::new();
        nms(&mut cands, Some(0.5), 100, &mut kept);
        assert_eq!(kept.len(), 2);
    }
}

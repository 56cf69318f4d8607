//! Box accuracy as COCO measures it (pycocotools' `COCOeval`, box IoU, area "all",
//! 100 detections an image): for each class, detections matched greedily to labels in
//! score order at each IoU threshold 0.50, 0.55, …, 0.95; precision made monotone and
//! read at 101 recall points; AP the mean of those. mAP@0.5 is the mean over classes
//! with labels at the first threshold, mAP@0.5:0.95 over all ten.
//!
//! Written to give pycocotools' numbers (checked to 1e-4 in `tests/eval_coco.rs`):
//! the same stable orders (detections of an image by score, then all images' in image
//! order by score), the same tie rule (of labels equally overlapping, the later one),
//! the same `eps` in precision.

/// A labelled box: image, class, `[x1, y1, x2, y2]` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    /// Image index.
    pub image: usize,
    /// Class index.
    pub class: usize,
    /// Corners.
    pub bbox: [f64; 4],
}

/// A detected box with its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// Image index.
    pub image: usize,
    /// Class index.
    pub class: usize,
    /// Corners.
    pub bbox: [f64; 4],
    /// Confidence.
    pub score: f64,
}

/// The IoU thresholds: 0.50 to 0.95 by 0.05, computed as numpy's `linspace` does (so
/// that an IoU of exactly 0.6 meets the third, as in pycocotools).
pub fn thresholds() -> [f64; 10] {
    linspace(0.5, 0.95)
}

/// `N` values from `a` to `b` as `numpy.linspace(a, b, N)`: `a + i·step`, the last `b`.
fn linspace<const N: usize>(a: f64, b: f64) -> [f64; N] {
    let step = (b - a) / (N - 1) as f64;
    std::array::from_fn(|i| if i == N - 1 { b } else { a + i as f64 * step })
}

/// Detections an image (per class) counted, as COCO's `maxDets`.
pub const MAX_DETS: usize = 100;

/// One class's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    /// Labels of the class.
    pub labels: usize,
    /// Detections of the class counted.
    pub found: usize,
    /// AP at each threshold of [`thresholds`].
    pub ap: [f64; 10],
    /// Recall reached at each threshold.
    pub recall: [f64; 10],
    /// The precision curve at IoU 0.5: (recall, precision) at each detection, in
    /// score order, precision made monotone.
    pub curve: Vec<(f64, f64)>,
    /// Precision at IoU 0.5 read at the 101 recall points 0, 0.01, …, 1 (0 past the
    /// highest recall): the points AP@0.5 is the mean of.
    pub points: Vec<f64>,
    /// Each counted detection at IoU 0.5, in score order: its score and whether it
    /// matched a label.
    pub hits: Vec<(f64, bool)>,
}

impl ClassAp {
    /// AP at IoU 0.5.
    pub fn ap50(&self) -> f64 {
        self.ap[0]
    }

    /// AP averaged over IoU 0.5 to 0.95.
    pub fn ap_all(&self) -> f64 {
        self.ap.iter().sum::<f64>() / 10.0
    }

    /// Counting only detections scored at least `score`, at IoU 0.5: (true
    /// positives, false positives).
    pub fn at_score(&self, score: f64) -> (usize, usize) {
        let kept = self.hits.iter().take_while(|(s, _)| *s >= score);
        kept.fold(
            (0, 0),
            |(tp, fp), (_, hit)| {
                if *hit {
                    (tp + 1, fp)
                } else {
                    (tp, fp + 1)
                }
            },
        )
    }
}

/// Intersection over union of two corner boxes (COCO's: no +1 on widths).
pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Stable order of `scores`, highest first (numpy's mergesort of the negated scores).
fn by_score(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    idx
}

/// Each class's figures (`None` for a class without labels: COCO leaves it out).
pub fn evaluate(
    labels: &[Label],
    found: &[Found],
    classes: usize,
    images: usize,
) -> Vec<Option<ClassAp>> {
    let ts = thresholds();
    (0..classes)
        .map(|c| {
            let n_labels = labels.iter().filter(|l| l.class == c).count();
            if n_labels == 0 {
                return None;
            }
            // per image: its detections in score order (at most MAX_DETS), each
            // matched or not at each threshold
            let mut scores = Vec::new();
            let mut matched: Vec<[bool; 10]> = Vec::new();
            for i in 0..images {
                let gts: Vec<&Label> = labels
                    .iter()
                    .filter(|l| l.image == i && l.class == c)
                    .collect();
                let dts: Vec<&Found> = found
                    .iter()
                    .filter(|d| d.image == i && d.class == c)
                    .collect();
                let order = by_score(&dts.iter().map(|d| d.score).collect::<Vec<_>>());
                let dts: Vec<&Found> = order.iter().take(MAX_DETS).map(|&k| dts[k]).collect();
                let mut taken = vec![[false; 10]; gts.len()];
                for d in &dts {
                    let mut m = [false; 10];
                    for (t, &thr) in ts.iter().enumerate() {
                        let mut best = thr.min(1.0 - 1e-10);
                        let mut at = None;
                        for (g, gt) in gts.iter().enumerate() {
                            if taken[g][t] {
                                continue;
                            }
                            let o = iou(&d.bbox, &gt.bbox);
                            if o < best {
                                continue;
                            }
                            best = o;
                            at = Some(g);
                        }
                        if let Some(g) = at {
                            taken[g][t] = true;
                            m[t] = true;
                        }
                    }
                    scores.push(d.score);
                    matched.push(m);
                }
            }
            let order = by_score(&scores);
            let mut ap = [0.0; 10];
            let mut recall = [0.0; 10];
            let mut curve = Vec::new();
            let mut points = Vec::new();
            for t in 0..10 {
                let (mut tp, mut fp) = (0.0f64, 0.0f64);
                let mut rc = Vec::with_capacity(order.len());
                let mut pr = Vec::with_capacity(order.len());
                for &k in &order {
                    if matched[k][t] {
                        tp += 1.0;
                    } else {
                        fp += 1.0;
                    }
                    rc.push(tp / n_labels as f64);
                    pr.push(tp / (tp + fp + f64::EPSILON));
                }
                recall[t] = rc.last().copied().unwrap_or(0.0);
                for i in (1..pr.len()).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                let read: Vec<f64> = linspace::<101>(0.0, 1.0)
                    .iter()
                    // numpy's searchsorted(rc, want, side="left")
                    .map(|&want| {
                        pr.get(rc.partition_point(|&v| v < want))
                            .map_or(0.0, |p| *p)
                    })
                    .collect();
                ap[t] = read.iter().sum::<f64>() / 101.0;
                if t == 0 {
                    curve = rc.into_iter().zip(pr).collect();
                    points = read;
                }
            }
            let hits = order.iter().map(|&k| (scores[k], matched[k][0])).collect();
            Some(ClassAp {
                labels: n_labels,
                found: order.len(),
                ap,
                recall,
                curve,
                points,
                hits,
            })
        })
        .collect()
}

/// The mean over classes with labels of `f` of each; `None` when none has labels.
pub fn mean(per_class: &[Option<ClassAp>], f: impl Fn(&ClassAp) -> f64) -> Option<f64> {
    let v: Vec<f64> = per_class.iter().flatten().map(f).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(image: usize, bbox: [f64; 4]) -> Label {
        Label {
            image,
            class: 0,
            bbox,
        }
    }

    fn found(image: usize, bbox: [f64; 4], score: f64) -> Found {
        Found {
            image,
            class: 0,
            bbox,
            score,
        }
    }

    #[test]
    fn perfect_detections_score_one_and_none_score_zero() {
        let labels = [
            label(0, [0.0, 0.0, 10.0, 10.0]),
            label(1, [5.0, 5.0, 25.0, 30.0]),
        ];
        let dets: Vec<Found> = labels.iter().map(|l| found(l.image, l.bbox, 0.9)).collect();
        let r = evaluate(&labels, &dets, 2, 2);
        let c = r[0].as_ref().unwrap();
        assert!((c.ap50() - 1.0).abs() < 1e-12 && (c.ap_all() - 1.0).abs() < 1e-12);
        assert!(r[1].is_none(), "a class without labels is left out");
        let none = evaluate(&labels, &[], 1, 2);
        assert_eq!(none[0].as_ref().unwrap().ap50(), 0.0);
    }

    #[test]
    fn a_false_positive_above_the_true_one_halves_the_curve() {
        // one label; a wrong box scored higher than the right one: precision 1/2 at
        // recall 1, so AP is 0.5 at every recall point
        let labels = [label(0, [0.0, 0.0, 10.0, 10.0])];
        let dets = [
            found(0, [50.0, 50.0, 60.0, 60.0], 0.9),
            found(0, [0.0, 0.0, 10.0, 10.0], 0.8),
        ];
        let c = evaluate(&labels, &dets, 1, 1)[0].clone().unwrap();
        assert!((c.ap50() - 0.5).abs() < 1e-9, "{}", c.ap50());
        // a box of IoU 0.6 counts at 0.5, 0.55 and 0.6, not from 0.65 on
        let shifted = [found(0, [0.0, 0.0, 10.0, 6.0], 0.9)];
        let c = evaluate(&labels, &shifted, 1, 1)[0].clone().unwrap();
        let hit: Vec<bool> = c.ap.iter().map(|a| *a > 0.0).collect();
        assert_eq!(&hit[..4], [true, true, true, false], "{:?}", c.ap);
    }

    #[test]
    fn iou_of_corner_boxes() {
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
    }
}

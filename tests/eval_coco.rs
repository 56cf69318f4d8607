//! The box evaluator against pycocotools (PyPI, in `.venv`): the same labels and
//! detections give the same mAP@0.5:0.95, mAP@0.5 and per-class AP and recall, to 1e-4.
//! The set is made here, deterministically: 40 images, 4 classes (one with detections
//! but no labels), detections that are labels moved by up to a third of their size,
//! labels missed, boxes where nothing is, duplicates, and scores that tie.

mod common;

use gridwatch::eval::coco::{evaluate, mean, Found, Label};
use serde_json::json;

/// A small deterministic generator (numbers on a quarter-pixel grid, so that box
/// arithmetic is exact in both languages).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// 0 ≤ v < n, in quarters.
    fn quarters(&mut self, n: u64) -> f64 {
        (self.next() % (4 * n)) as f64 / 4.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[test]
fn the_evaluator_gives_pycocotools_figures() {
    let mut r = Lcg(7);
    let (images, classes) = (40usize, 4usize);
    let mut labels = Vec::new();
    let mut found = Vec::new();
    for image in 0..images {
        for _ in 0..(1 + r.next() % 6) {
            // class 3 has no labels
            let class = (r.next() % 3) as usize;
            let (x, y) = (r.quarters(500), r.quarters(400));
            let (w, h) = (8.0 + r.quarters(120), 8.0 + r.quarters(90));
            labels.push(Label {
                image,
                class,
                bbox: [x, y, x + w, y + h],
            });
            if r.chance(80) {
                let (dx, dy) = (
                    r.quarters((w / 3.0) as u64 + 1) - w / 6.0,
                    r.quarters((h / 3.0) as u64 + 1) - h / 6.0,
                );
                let (dw, dh) = (
                    w + r.quarters((w / 4.0) as u64 + 1) - w / 8.0,
                    h + r.quarters((h / 4.0) as u64 + 1) - h / 8.0,
                );
                // scores on a coarse grid: some tie
                let score = (1 + r.next() % 20) as f64 / 20.0;
                found.push(Found {
                    image,
                    class,
                    bbox: [x + dx, y + dy, x + dx + dw, y + dy + dh],
                    score,
                });
                if r.chance(15) {
                    found.push(Found {
                        score: score / 2.0,
                        ..*found.last().unwrap()
                    });
                }
            }
        }
        for _ in 0..(r.next() % 3) {
            let (x, y) = (r.quarters(500), r.quarters(400));
            found.push(Found {
                image,
                class: (r.next() % 4) as usize,
                bbox: [x, y, x + 20.0 + r.quarters(50), y + 20.0 + r.quarters(50)],
                score: (1 + r.next() % 20) as f64 / 20.0,
            });
        }
    }
    let xywh = |b: &[f64; 4]| json!([b[0], b[1], b[2] - b[0], b[3] - b[1]]);
    let gt = json!({
        "info": {},
        "images": (0..images).map(|i| json!({"id": i + 1, "width": 640, "height": 480})).collect::<Vec<_>>(),
        "categories": (0..classes).map(|c| json!({"id": c + 1, "name": format!("c{c}")})).collect::<Vec<_>>(),
        "annotations": labels.iter().enumerate().map(|(n, l)| json!({
            "id": n + 1, "image_id": l.image + 1, "category_id": l.class + 1,
            "bbox": xywh(&l.bbox), "area": (l.bbox[2] - l.bbox[0]) * (l.bbox[3] - l.bbox[1]), "iscrowd": 0,
        })).collect::<Vec<_>>(),
    });
    let dt: Vec<_> = found
        .iter()
        .map(|d| json!({"image_id": d.image + 1, "category_id": d.class + 1, "bbox": xywh(&d.bbox), "score": d.score}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (gt_file, dt_file) = (
        dir.path().join("labels.json"),
        dir.path().join("found.json"),
    );
    std::fs::write(&gt_file, gt.to_string()).unwrap();
    std::fs::write(&dt_file, json!(dt).to_string()).unwrap();
    let script = common::path("tests/fixtures/coco_eval.py");
    let out = common::venv_python([script.as_os_str(), gt_file.as_os_str(), dt_file.as_os_str()]);
    let want: serde_json::Value = serde_json::from_slice(&out).unwrap();
    eprintln!("pycocotools: {want}");

    let got = evaluate(&labels, &found, classes, images);
    let close = |a: f64, b: &serde_json::Value, what: &str| {
        let b = b.as_f64().unwrap();
        assert!(
            (a - b).abs() < 1e-4,
            "{what}: gridwatch {a}, pycocotools {b}"
        );
    };
    close(
        mean(&got, |c| c.ap_all()).unwrap(),
        &want["map"],
        "mAP@0.5:0.95",
    );
    close(mean(&got, |c| c.ap50()).unwrap(), &want["map50"], "mAP@0.5");
    assert!(got[3].is_none(), "the class without labels is left out");
    let per = want["per_class"].as_object().unwrap();
    assert_eq!(per.len(), 3, "{per:?}");
    for (c, figures) in got.iter().enumerate().take(3) {
        let c_ap = figures.as_ref().unwrap();
        let w = &per[&(c + 1).to_string()];
        close(c_ap.ap50(), &w[0], &format!("class {c} AP@0.5"));
        close(c_ap.ap_all(), &w[1], &format!("class {c} AP@0.5:0.95"));
        close(c_ap.recall[0], &w[2], &format!("class {c} recall@0.5"));
    }
    // and the figures mean something: neither perfect nor nothing
    let m = want["map50"].as_f64().unwrap();
    assert!((0.3..0.95).contains(&m), "mAP@0.5 {m}");
}

//! Output layouts on small generated ONNX models whose outputs are known
//! (scripts/make_test_models.py): YOLOv5, YOLOv8/YOLO11 and already-decoded rows,
//! letterboxed input, dynamic batch with frames told apart.

mod common;

use gridwatch::decode::Frame;
use gridwatch::detect::{Detection, Detector, EngineOptions, ModelManifest};

/// Mean of the letterboxed 32x32 input of a 64x32 frame of grey level `v`: half the
/// rows are the frame, half are padding (114).
fn gate(v: f32) -> f32 {
    0.5 * v / 255.0 + 0.5 * 114.0 / 255.0
}

/// The detections the generated table implies for a 64x32 frame of grey level `v`
/// (boxes mapped from the 32x32 letterboxed input: x / 0.5, (y - 8) / 0.5, clipped).
fn expected(v: f32, with_row1: bool) -> Vec<(u32, f32, [f32; 4])> {
    let mut e = vec![
        (0, 0.81, [8.0, 0.0, 24.0, 8.0]),
        (1, 0.63, [10.0, 0.0, 26.0, 10.0]),
    ];
    if with_row1 {
        e.push((0, 0.72, [10.0, 0.0, 26.0, 10.0]));
    }
    let s = 0.81 * gate(v);
    if s >= 0.25 {
        e.push((2, s, [40.0, 24.0, 56.0, 32.0]));
    }
    e.sort_by(|a, b| b.1.total_cmp(&a.1));
    e
}

fn check(dets: &[Detection], want: &[(u32, f32, [f32; 4])], what: &str) {
    assert_eq!(dets.len(), want.len(), "{what}: {dets:?}");
    for (d, (c, s, b)) in dets.iter().zip(want) {
        assert_eq!(d.class_id, *c, "{what}: {dets:?}");
        assert!(
            (d.score - s).abs() < 1e-5,
            "{what}: score {} want {s}",
            d.score
        );
        for (x, y) in d.bbox.iter().zip(b) {
            assert!((x - y).abs() < 1e-4, "{what}: box {:?} want {b:?}", d.bbox);
        }
    }
}

fn run_layout(name: &str, with_row1: bool) {
    let manifest = ModelManifest::load(&common::path(&format!(
        "tests/fixtures/models/{name}-test.toml"
    )))
    .unwrap();
    let mut det = Detector::load(manifest, &EngineOptions::default()).unwrap();
    assert_eq!(
        det.report().fixed_batch,
        None,
        "the test models have a dynamic batch"
    );
    det.set_batch_size(2);
    let white = Frame::filled(64, 32, [255; 3]);
    let black = Frame::filled(64, 32, [0; 3]);
    let mut out = Vec::new();
    det.detect(&[&white, &black, &white], &mut out).unwrap();
    assert_eq!(out.len(), 3);
    check(
        &out[0],
        &expected(255.0, with_row1),
        &format!("{name} white #0"),
    );
    check(
        &out[1],
        &expected(0.0, with_row1),
        &format!("{name} black #1"),
    );
    check(
        &out[2],
        &expected(255.0, with_row1),
        &format!("{name} white #2"),
    );
    // three frames in batches of two: two model calls
    assert_eq!(det.times().calls, 2);
    assert_eq!(det.times().frames, 3);
}

#[test]
fn yolov5_layout() {
    run_layout("yolov5", false);
}

#[test]
fn yolov8_layout() {
    run_layout("yolov8", false);
}

#[test]
fn decoded_layout_without_nms() {
    // nms = false in its manifest: the overlapping row 1 is kept
    run_layout("decoded", true);
}

#[test]
fn nanodet_runs_with_its_fixed_batch_of_one() {
    let manifest = ModelManifest::load(&common::path("models/nanodet-coco-416.toml")).unwrap();
    let mut det = Detector::load(manifest, &EngineOptions::default()).unwrap();
    assert_eq!(det.report().fixed_batch, Some(1));
    det.set_batch_size(4);
    assert_eq!(det.batch_size(), 1, "a fixed batch stays as the model says");
    let grey = Frame::filled(320, 240, [114; 3]);
    let mut out = Vec::new();
    det.detect(&[&grey, &grey], &mut out).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(det.times().calls, 2);
    assert!(
        out[0].is_empty(),
        "a flat grey frame holds no objects: {:?}",
        out[0]
    );
}

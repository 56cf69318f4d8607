//! fp16 where the model allows it: scripts/make-fp16-model.py converts the bundled
//! NanoDet to float16 (float32 inputs and outputs kept), and the half-precision model
//! finds the same objects as the float32 one — same classes, boxes within IoU 0.97,
//! scores within 0.01 — on the sample photos and on frames of the street clip.
//! (NanoDet regresses each box edge as a distribution over bins: in half precision an
//! edge can move by one bin. On the street clip one 32x102 px person box moves 2 px,
//! IoU 0.977; every other box stays above 0.997.) (On a
//! GPU the CUDA provider runs it on tensor cores; here ONNX Runtime's CPU provider
//! runs it, which is what makes the comparison possible without a GPU.)

mod common;

use common::{gridwatch, read_lines, run, Line};

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

fn detect(model: &str, input: &str, out: &std::path::Path, extra: &[&str]) -> Vec<Line> {
    let (o, _, stderr) = run(&mut gridwatch(
        &[
            &["detect", "--model", model, input, "--no-images", "--out"],
            &[out.to_str().unwrap()][..],
            extra,
        ]
        .concat(),
    ));
    assert!(o.status.success(), "{stderr}");
    assert!(
        !stderr.contains("truncated"),
        "a whole clip is not truncated: {stderr}"
    );
    read_lines(&out.join("detections.jsonl"))
}

#[test]
fn the_fp16_model_finds_what_the_fp32_model_finds() {
    let tmp = tempfile::tempdir().unwrap();
    common::venv_python([
        common::path("scripts/make-fp16-model.py"),
        common::path("models/nanodet-coco-416.toml"),
        tmp.path().join("fp16"),
    ]);
    let half = tmp.path().join("fp16/nanodet-coco-416-fp16.onnx");
    let full = common::path("models/nanodet-coco-416.onnx");
    let (hs, fs) = (
        std::fs::metadata(&half).unwrap().len(),
        std::fs::metadata(&full).unwrap().len(),
    );
    assert!(hs * 10 < fs * 6, "half the weights: {hs} vs {fs} bytes");
    let manifest = tmp.path().join("fp16/nanodet-coco-416-fp16.toml");
    // the manifest's SHA-256 is checked when the model loads
    let (o, stdout, stderr) = run(&mut gridwatch(&[
        "models",
        "check",
        manifest.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("(checked)"), "{stdout}");

    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for p in ["dog.jpg", "person.jpg", "kite.jpg"] {
        std::fs::copy(common::path("samples").join(p), photos.join(p)).unwrap();
    }
    let clip = common::path("samples/street.mp4");
    let mut compared = 0;
    for (input, extra) in [
        (photos.to_str().unwrap(), &[][..]),
        (clip.to_str().unwrap(), &["--every", "4s"][..]),
    ] {
        let a = detect(
            common::path("models/nanodet-coco-416.toml")
                .to_str()
                .unwrap(),
            input,
            &tmp.path().join("a"),
            extra,
        );
        let b = detect(
            manifest.to_str().unwrap(),
            input,
            &tmp.path().join("b"),
            extra,
        );
        assert!(!a.is_empty());
        assert_eq!(a.len(), b.len(), "as many detections");
        let mut unmatched = b.clone();
        for d in &a {
            let i = unmatched
                .iter()
                .position(|e| {
                    e.source == d.source
                        && e.frame == d.frame
                        && e.class == d.class
                        && iou(&e.bbox, &d.bbox) >= 0.97
                        && (e.score - d.score).abs() <= 0.01
                })
                .unwrap_or_else(|| panic!("fp16 lacks {d:?}"));
            unmatched.swap_remove(i);
            compared += 1;
        }
    }
    assert!(compared > 100, "{compared} detections compared");
}

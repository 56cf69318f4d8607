//! Bad input: each case is a clear error naming the file (and field), exit code 1, no
//! panic. Also the CLI's happy paths that the other tests do not reach.

mod common;

use std::fs;
use std::path::Path;

use common::{expect_clean_failure, gridwatch, path, read_lines, root, run};

fn write_manifest(dir: &Path, onnx: &str, edit: impl Fn(String) -> String) -> String {
    let text = fs::read_to_string(path("tests/fixtures/models/yolov8-test.toml")).unwrap();
    let text = edit(text.replace("yolov8-test.onnx", onnx));
    let p = dir.join("m.toml");
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Puts the generated YOLOv8 test model into `dir` as y.onnx.
fn copy_test_model(dir: &Path) {
    fs::copy(
        path("tests/fixtures/models/yolov8-test.onnx"),
        dir.join("y.onnx"),
    )
    .unwrap();
}

fn dog() -> String {
    path("samples/dog.jpg").to_str().unwrap().to_string()
}

#[test]
fn missing_onnx_file() {
    let tmp = tempfile::tempdir().unwrap();
    let m = write_manifest(tmp.path(), "absent.onnx", |t| t);
    expect_clean_failure(
        &mut gridwatch(&["detect", &dog(), "--model", &m]),
        &["absent.onnx", "manifest field `file`", "No such file"],
    );
}

#[test]
fn corrupt_onnx_file() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("garbage.onnx"),
        b"\x08\x07not a protobuf at all\xff\xfe",
    )
    .unwrap();
    let m = write_manifest(tmp.path(), "garbage.onnx", |t| t);
    expect_clean_failure(
        &mut gridwatch(&["models", "check", &m]),
        &[
            "cannot load model",
            "garbage.onnx",
            "m.toml",
            "field `file`",
        ],
    );
}

#[test]
fn checksum_that_does_not_match() {
    let tmp = tempfile::tempdir().unwrap();
    copy_test_model(tmp.path());
    let m = write_manifest(tmp.path(), "y.onnx", |t| {
        t.replace(
            "classes =",
            &format!("sha256 = \"{}\"\nclasses =", "0".repeat(64)),
        )
    });
    expect_clean_failure(
        &mut gridwatch(&["models", "check", &m]),
        &["m.toml", "`sha256`", "y.onnx"],
    );
}

#[test]
fn manifest_with_the_wrong_input_name() {
    let tmp = tempfile::tempdir().unwrap();
    copy_test_model(tmp.path());
    let m = write_manifest(tmp.path(), "y.onnx", |t| {
        t.replace("name = \"images\"", "name = \"input\"")
    });
    expect_clean_failure(
        &mut gridwatch(&["models", "check", &m]),
        &[
            "does not match its manifest",
            "`input.name`",
            "no input named `input`",
            "images",
        ],
    );
}

#[test]
fn manifest_with_the_wrong_class_count() {
    let tmp = tempfile::tempdir().unwrap();
    copy_test_model(tmp.path());
    let m = write_manifest(tmp.path(), "y.onnx", |t| {
        t.replace("\"umbrella\"]", "\"umbrella\", \"bus\"]")
    });
    expect_clean_failure(
        &mut gridwatch(&["detect", &dog(), "--model", &m]),
        &["`classes`", "4 classes", "output0", "should have 8"],
    );
}

#[test]
fn manifest_with_the_wrong_input_size_and_layout() {
    let tmp = tempfile::tempdir().unwrap();
    copy_test_model(tmp.path());
    let m = write_manifest(tmp.path(), "y.onnx", |t| {
        t.replace("width = 32", "width = 640")
    });
    expect_clean_failure(
        &mut gridwatch(&["models", "check", &m]),
        &["`input.width`", "640"],
    );
    let m = write_manifest(tmp.path(), "y.onnx", |t| {
        t.replace("height = 32", "height = 32\nlayout = \"nhwc\"")
    });
    expect_clean_failure(&mut gridwatch(&["models", "check", &m]), &["`input."]);
    let m = write_manifest(tmp.path(), "y.onnx", |t| {
        t.replace("layout = \"yolov8\"", "layout = \"yolov5\"")
    });
    expect_clean_failure(
        &mut gridwatch(&["models", "check", &m]),
        &["`classes`", "yolov5"],
    );
}

#[test]
fn malformed_manifest_names_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let m = write_manifest(tmp.path(), "y.onnx", |t| {
        t.replace("width = 32", "width = \"wide\"")
    });
    expect_clean_failure(
        &mut gridwatch(&["models", "check", &m]),
        &["m.toml", "line 10", "width = \"wide\"", "invalid type"],
    );
    let m = write_manifest(tmp.path(), "y.onnx", |t| {
        t.replace("layout = \"yolov8\"", "layout = \"yolov9\"")
    });
    expect_clean_failure(
        &mut gridwatch(&["models", "check", &m]),
        &["m.toml", "yolov9"],
    );
    expect_clean_failure(
        &mut gridwatch(&["models", "check", "/nonexistent/m.toml"]),
        &["cannot read model manifest /nonexistent/m.toml"],
    );
}

#[test]
fn missing_onnx_runtime_says_what_to_run() {
    expect_clean_failure(
        gridwatch(&["detect", &dog()]).env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so"),
        &[
            "ORT_DYLIB_PATH",
            "/nonexistent/libonnxruntime.so",
            "scripts/setup.sh",
            "onnxruntime==1.31.1",
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("libonnxruntime.so");
    fs::write(&fake, b"not a shared library").unwrap();
    expect_clean_failure(
        gridwatch(&["detect", &dog()]).env("ORT_DYLIB_PATH", &fake),
        &[
            "cannot load ONNX Runtime from",
            "libonnxruntime.so",
            "scripts/setup.sh",
        ],
    );
}

#[test]
fn unreadable_image_clip_and_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let jpg = tmp.path().join("broken.jpg");
    fs::write(&jpg, [0xFFu8, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 5]).unwrap();
    expect_clean_failure(
        &mut gridwatch(&["detect", jpg.to_str().unwrap()]),
        &["cannot read image", "broken.jpg"],
    );
    let mp4 = tmp.path().join("broken.mp4");
    fs::write(&mp4, vec![0x5Au8; 50_000]).unwrap();
    expect_clean_failure(
        &mut gridwatch(&["detect", mp4.to_str().unwrap()]),
        &["cannot open video", "broken.mp4"],
    );
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    fs::write(empty.join("notes.txt"), "not an image").unwrap();
    expect_clean_failure(
        &mut gridwatch(&["detect", empty.to_str().unwrap()]),
        &["empty", "holds no images"],
    );
    expect_clean_failure(
        &mut gridwatch(&["detect", "/nonexistent/clip.mp4"]),
        &["/nonexistent/clip.mp4", "No such file"],
    );
    // a directory where one image is corrupt names that image
    let dir = tmp.path().join("photos");
    fs::create_dir(&dir).unwrap();
    fs::copy(path("samples/dog.jpg"), dir.join("a.jpg")).unwrap();
    fs::copy(&jpg, dir.join("b.jpg")).unwrap();
    expect_clean_failure(
        &mut gridwatch(&[
            "detect",
            dir.to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ]),
        &["cannot read image", "b.jpg"],
    );
}

#[test]
fn truncated_clip_keeps_what_decoded_and_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let full = fs::read(path("samples/street.mp4")).unwrap();
    let cut = tmp.path().join("cut.mp4");
    fs::write(&cut, &full[..full.len() / 4]).unwrap();
    let out = tmp.path().join("o");
    let (o, _, stderr) = run(&mut gridwatch(&[
        "detect",
        cut.to_str().unwrap(),
        "--every",
        "1s",
        "--no-images",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("cut.mp4") && stderr.contains("truncated"),
        "{stderr}"
    );
    let lines = read_lines(&out.join("detections.jsonl"));
    let last = lines.iter().map(|l| l.pts_ms.unwrap()).max().unwrap();
    assert!(
        last > 5_000,
        "frames before the cut are detected (last at {last} ms)"
    );
    assert!(last < 40_000, "nothing after the cut (last at {last} ms)");
}

#[test]
fn unknown_provider_and_gpu_without_support_are_errors() {
    expect_clean_failure(
        &mut gridwatch(&["detect", &dog(), "--provider", "metal"]),
        &["metal", "cpu, cuda"],
    );
    if cfg!(not(feature = "cuda")) {
        expect_clean_failure(
            &mut gridwatch(&["detect", &dog(), "--provider", "cuda"]),
            &[
                "execution provider cuda:0 is not available",
                "--features cuda",
            ],
        );
    }
}

#[test]
fn models_check_reports_what_it_found() {
    let (o, stdout, stderr) = run(&mut gridwatch(&[
        "models",
        "check",
        "models/nanodet-coco-416.toml",
    ]));
    assert!(o.status.success(), "{stderr}");
    for needle in [
        "(checked)",
        "input     input_1:0 float32[1,3,416,416]",
        "Identity:0 float32[1,2704,80]",
        "Identity_3:0 float32[1,2704,44]",
        "fixed at 1",
        "nanodet with 80 classes",
        "ok: the model matches",
    ] {
        assert!(stdout.contains(needle), "lacks {needle}:\n{stdout}");
    }
}

#[test]
fn detect_on_an_image_writes_jsonl_with_exact_keys_and_a_jpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let (o, stdout, stderr) = run(&mut gridwatch(&[
        "detect",
        &dog(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("detections.jsonl"), "says where: {stdout}");
    let text = fs::read_to_string(out.join("detections.jsonl")).unwrap();
    let first: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut want = vec![
        "source", "frame", "pts_ms", "class", "class_id", "score", "box",
    ];
    want.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, want);
    assert!(first["pts_ms"].is_null());
    let classes: Vec<String> = read_lines(&out.join("detections.jsonl"))
        .into_iter()
        .map(|l| l.class)
        .collect();
    assert!(
        classes.contains(&"bicycle".to_string()) && classes.contains(&"dog".to_string()),
        "{classes:?}"
    );
    let jpg = fs::read(out.join("dog.jpg")).unwrap();
    assert_eq!(&jpg[..2], &[0xFF, 0xD8], "annotated JPEG");
}

#[test]
fn bench_json_has_the_figures() {
    let (o, stdout, stderr) = run(&mut gridwatch(&[
        "bench",
        "--every",
        "20s",
        "--raw-calls",
        "3",
        "--json",
    ]));
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for k in [
        "e2e_fps",
        "raw_inference_fps",
        "decode_ms",
        "preprocess_ms",
        "inference_ms",
        "postprocess_ms",
    ] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {v}");
    }
    assert_eq!(v["frames"], 4, "0, 20, 40 and 60 s of a 79.5 s clip");
    // with a keyframe every 2 s, the samples are keyframes: only they are decoded
    assert!(
        v["fed_packets"].as_u64().unwrap() <= 4 + 4,
        "frames between the samples are never decoded: {v}"
    );
    assert!(
        v["packets"].as_u64().unwrap() >= 790,
        "every packet is read: {v}"
    );
    assert!(v["decoded_frames"].as_u64().unwrap() < 100, "{v}");
    assert_eq!(
        v["spin"], false,
        "idle inference threads sleep by default: {v}"
    );
    assert_eq!(v["decode_threads"], 1, "one FFmpeg thread per clip: {v}");
}

#[test]
fn config_check_names_every_bad_field_and_run_refuses_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("gridwatch.toml");
    std::fs::write(
        &cfg,
        "[api]\nlisten = \"everywhere\"\n[model]\nprovider = \"tpu\"\n[[camera]]\nid = \"gate\"\nsource = \"missing.mp4\"\nevery = \"often\"\n",
    )
    .unwrap();
    let f = cfg.to_str().unwrap();
    let stderr = expect_clean_failure(
        &mut gridwatch(&["config", "check", f]),
        &[
            "5 errors",
            "gridwatch.toml: api.listen",
            "model.provider",
            "camera[0] (gate).source",
            "missing.mp4 does not exist",
            "camera[0] (gate).every",
        ],
    );
    assert!(!stderr.contains("panicked"));
    expect_clean_failure(&mut gridwatch(&["run", "--config", f]), &["api.listen"]);
    std::fs::write(&cfg, "[api]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n").unwrap();
    expect_clean_failure(
        &mut gridwatch(&["config", "check", f]),
        &["gridwatch.toml: line 3", "bogus"],
    );
    let (out, stdout, _) = run(&mut gridwatch(&["config", "default"]));
    assert!(out.status.success());
    let built_in = tmp.path().join("default.toml");
    std::fs::write(
        &built_in,
        stdout
            .replace("samples/", &format!("{}/samples/", root().display()))
            .replace(
                "calibration/",
                &format!("{}/calibration/", root().display()),
            )
            .replace("\"tests/", &format!("\"{}/tests/", root().display())),
    )
    .unwrap();
    let (out, stdout, stderr) = run(&mut gridwatch(&[
        "config",
        "check",
        built_in.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("ok (2 cameras"), "{stdout}");
}

#[test]
fn bench_runs_the_python_baseline_side_by_side() {
    let (o, stdout, stderr) = run(&mut gridwatch(&[
        "bench",
        "--every",
        "20s",
        "--raw-calls",
        "3",
        "--compare-baseline",
        "--json",
    ]));
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        v["baseline_frames"], v["frames"],
        "the baseline samples the same frames: {v}"
    );
    assert!(v["baseline_fps"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    let ratio = v["e2e_over_baseline"].as_f64().unwrap();
    let want = v["e2e_fps"].as_f64().unwrap() / v["baseline_fps"].as_f64().unwrap();
    assert!((ratio - want).abs() < 1e-9, "{v}");
    expect_clean_failure(
        &mut gridwatch(&["bench", "--every", "keyframes", "--compare-baseline"]),
        &["cannot pick keyframes"],
    );
}

#[test]
fn bench_runs_a_model_clip_sampling_matrix_with_a_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let svg = tmp.path().join("bench.svg");
    let (o, stdout, stderr) = run(&mut gridwatch(&[
        "bench",
        "--and-model",
        path("tests/fixtures/models/yolov8-test.toml")
            .to_str()
            .unwrap(),
        "--every",
        "20s",
        "--every",
        "40s",
        "--raw-calls",
        "2",
        "--json",
        "--svg",
        svg.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{stderr}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(stdout.trim()).unwrap();
    let combos: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().to_string(),
                r["sampling"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        combos,
        [
            ("nanodet-coco-416", "every 20s"),
            ("nanodet-coco-416", "every 40s"),
            ("yolov8-test", "every 20s"),
            ("yolov8-test", "every 40s")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for r in &rows {
        let held = r["cameras_held"].as_f64().unwrap();
        let every: f64 = if r["sampling"] == "every 20s" {
            20.0
        } else {
            40.0
        };
        assert!(
            (held - r["e2e_fps"].as_f64().unwrap() * every).abs() < 1e-6,
            "{r}"
        );
    }
    assert_eq!(rows[0]["frames"], 4);
    assert_eq!(rows[1]["frames"], 2);
    let chart = fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert_eq!(
        chart.matches("<rect x=\"330\"").count(),
        1 + 2 * 4,
        "a legend box + 2 bars per row"
    );
    assert!(chart.contains("yolov8-test") && chart.contains("every 40s"));
}

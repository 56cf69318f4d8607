//! `gridwatch eval detect` end to end: the bundled model on the bundled hand-labelled
//! samples, its figures checked against pycocotools (in `.venv`) scoring the same
//! detections; the same labels as YOLO folders give the same figures; bad label
//! files, missing images and unmapped classes are refused naming the file.

mod common;

use std::fs;
use std::path::Path;

use serde_json::Value;

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Runs `gridwatch eval detect ARGS` and returns the report.
fn eval(dir: &Path, args: &[&str]) -> Value {
    common::eval_json("detect", dir, args)
}

/// Runs it expecting failure; returns stderr.
fn refused(args: &[&str]) -> String {
    common::eval_refused("detect", args)
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-4, "{what}: gridwatch {a}, reference {b}");
}

fn class_figures(report: &Value) -> Vec<(String, f64, f64, f64)> {
    report["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["class"].as_str().unwrap().to_string(),
                c["ap50"].as_f64().unwrap(),
                c["ap"].as_f64().unwrap(),
                c["recall"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_bundled_set_scores_as_pycocotools_scores_it() {
    let dir = tempfile::tempdir().unwrap();
    let (dets, chart) = (dir.path().join("d.json"), dir.path().join("pr.svg"));
    let report = eval(
        dir.path(),
        &[
            "--detections",
            dets.to_str().unwrap(),
            "--chart",
            chart.to_str().unwrap(),
        ],
    );
    let labels = common::path("samples/labels/coco.json");
    let reference: Value = serde_json::from_slice(&common::venv_python([
        common::path("tests/fixtures/coco_eval.py").as_os_str(),
        labels.as_os_str(),
        dets.as_os_str(),
    ]))
    .unwrap();
    close(
        report["map"].as_f64().unwrap(),
        reference["map"].as_f64().unwrap(),
        "mAP",
    );
    close(
        report["map50"].as_f64().unwrap(),
        reference["map50"].as_f64().unwrap(),
        "mAP50",
    );
    let categories = json(&labels)["categories"].as_array().unwrap().clone();
    let id_of = |name: &str| {
        categories
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["id"].to_string())
            .unwrap()
    };
    let classes = class_figures(&report);
    assert_eq!(classes.len(), 8, "every labelled class is scored");
    assert_eq!(
        reference["per_class"].as_object().unwrap().len(),
        classes.len()
    );
    for (name, ap50, ap, recall) in &classes {
        let r = &reference["per_class"][id_of(name)];
        close(*ap50, r[0].as_f64().unwrap(), &format!("{name} AP50"));
        close(*ap, r[1].as_f64().unwrap(), &format!("{name} AP"));
        close(*recall, r[2].as_f64().unwrap(), &format!("{name} recall"));
    }
    // The model finds most of what is labelled; a broken decoder or box scaling
    // would not.
    assert!(report["map50"].as_f64().unwrap() > 0.5, "{report}");
    // Precision and recall at the manifest's threshold add up.
    for c in report["classes"].as_array().unwrap() {
        let t = &c["at_threshold"];
        assert_eq!(
            t["true_positives"].as_u64().unwrap() + t["misses"].as_u64().unwrap(),
            c["labels"].as_u64().unwrap(),
            "{c}"
        );
        assert_eq!(c["pr_curve"].as_array().unwrap().len(), 101);
    }
    let svg = fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert_eq!(svg.matches("<polyline").count(), 8, "one curve per class");
    assert!(svg.contains("person (AP50"), "{svg}");
}

/// Writes the COCO labels as YOLO folders: REL.txt beside each image's path,
/// classes.txt in category order.
fn to_yolo(coco: &Value, out: &Path) {
    let cats = coco["categories"].as_array().unwrap();
    let names: Vec<&str> = cats.iter().map(|c| c["name"].as_str().unwrap()).collect();
    fs::write(out.join("classes.txt"), names.join("\n") + "\n").unwrap();
    for im in coco["images"].as_array().unwrap() {
        let (w, h) = (
            im["width"].as_f64().unwrap(),
            im["height"].as_f64().unwrap(),
        );
        let mut text = String::new();
        for a in coco["annotations"].as_array().unwrap() {
            if a["image_id"] != im["id"] {
                continue;
            }
            let class = cats
                .iter()
                .position(|c| c["id"] == a["category_id"])
                .unwrap();
            let b: Vec<f64> = a["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            text += &format!(
                "{class} {} {} {} {}\n",
                (b[0] + b[2] / 2.0) / w,
                (b[1] + b[3] / 2.0) / h,
                b[2] / w,
                b[3] / h
            );
        }
        let txt = out
            .join(im["file_name"].as_str().unwrap())
            .with_extension("txt");
        fs::create_dir_all(txt.parent().unwrap()).unwrap();
        fs::write(txt, text).unwrap();
    }
}

#[test]
fn yolo_folders_give_the_figures_of_the_same_coco_labels() {
    let dir = tempfile::tempdir().unwrap();
    let coco = eval(dir.path(), &[]);
    let yolo_dir = dir.path().join("yolo");
    fs::create_dir_all(&yolo_dir).unwrap();
    to_yolo(&json(&common::path("samples/labels/coco.json")), &yolo_dir);
    let yolo = eval(
        dir.path(),
        &[
            "--images",
            common::path("samples").to_str().unwrap(),
            "--labels",
            yolo_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(yolo["images"], coco["images"]);
    close(
        yolo["map"].as_f64().unwrap(),
        coco["map"].as_f64().unwrap(),
        "mAP",
    );
    let (a, b) = (class_figures(&yolo), class_figures(&coco));
    assert_eq!(a.len(), b.len());
    for (y, c) in a.iter().zip(&b) {
        assert_eq!(y.0, c.0);
        close(y.1, c.1, &format!("{} AP50", y.0));
        close(y.2, c.2, &format!("{} AP", y.0));
    }
    // COCO results need COCO ids: refused for YOLO labels, before any detection runs.
    let err = refused(&[
        "--labels",
        yolo_dir.to_str().unwrap(),
        "--images",
        common::path("samples").to_str().unwrap(),
        "--detections",
        dir.path().join("d.json").to_str().unwrap(),
    ]);
    assert!(err.contains("COCO"), "{err}");

    // A bad line is named by file and line.
    let bad = yolo_dir.join("frames/street-030s.txt");
    let mut text = fs::read_to_string(&bad).unwrap();
    text += "2 0.5 0.5 wide 0.1\n";
    let line = text.lines().count();
    fs::write(&bad, text).unwrap();
    let err = refused(&[
        "--labels",
        yolo_dir.to_str().unwrap(),
        "--images",
        common::path("samples").to_str().unwrap(),
    ]);
    assert!(err.contains(&format!("street-030s.txt:{line}")), "{err}");
}

#[test]
fn unmapped_classes_and_missing_images_are_named_and_a_map_file_renames() {
    let dir = tempfile::tempdir().unwrap();
    let mut coco = json(&common::path("samples/labels/coco.json"));
    // "car" becomes "automobile", which the model does not know.
    for c in coco["categories"].as_array_mut().unwrap() {
        if c["name"] == "car" {
            c["name"] = "automobile".into();
        }
    }
    let renamed = dir.path().join("renamed.json");
    fs::write(&renamed, coco.to_string()).unwrap();
    let err = refused(&["--labels", renamed.to_str().unwrap()]);
    assert!(err.contains("automobile"), "{err}");
    assert!(err.contains("--map"), "the error says how to fix it: {err}");

    let map = dir.path().join("map.toml");
    fs::write(&map, "automobile = \"car\"\n").unwrap();
    let mapped = eval(
        dir.path(),
        &[
            "--labels",
            renamed.to_str().unwrap(),
            "--map",
            map.to_str().unwrap(),
        ],
    );
    let original = eval(dir.path(), &[]);
    assert_eq!(mapped["map"], original["map"]);

    // Leaving a class out drops it from the figures.
    fs::write(&map, "automobile = \"\"\n").unwrap();
    let without = eval(
        dir.path(),
        &[
            "--labels",
            renamed.to_str().unwrap(),
            "--map",
            map.to_str().unwrap(),
        ],
    );
    let names: Vec<String> = class_figures(&without).into_iter().map(|c| c.0).collect();
    assert_eq!(names.len(), 7);
    assert!(!names.iter().any(|n| n == "car" || n == "automobile"));

    // An image the labels name but the folder lacks.
    let images = dir.path().join("images");
    fs::create_dir_all(&images).unwrap();
    fs::copy(common::path("samples/dog.jpg"), images.join("dog.jpg")).unwrap();
    let err = refused(&["--images", images.to_str().unwrap()]);
    assert!(
        err.contains("person.jpg") || err.contains("kite.jpg") || err.contains("street-0"),
        "{err}"
    );
}

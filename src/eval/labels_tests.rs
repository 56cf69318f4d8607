use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    p
}

const COCO: &str = r#"{"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50}],
 "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}],
 "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 5, 20, 30]}]}"#;

#[test]
fn coco_boxes_become_corners_and_bad_references_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "l.json", COCO);
    let set = LabelSet::coco(&p).unwrap();
    assert_eq!(set.images[0].size, Some((100, 50)));
    assert_eq!(set.boxes[0].bbox, [10.0, 5.0, 30.0, 35.0]);
    assert_eq!(set.classes[set.boxes[0].class].1, "person");

    let bad = write(
        dir.path(),
        "b.json",
        &COCO.replace("\"image_id\": 7", "\"image_id\": 8"),
    );
    let e = LabelSet::coco(&bad).unwrap_err().to_string();
    assert!(
        e.contains("b.json") && e.contains("annotation 1") && e.contains("image id 8"),
        "{e}"
    );
    let crowd = write(
        dir.path(),
        "c.json",
        &COCO.replace("30]}", "30], \"iscrowd\": 1}"),
    );
    assert!(LabelSet::coco(&crowd)
        .unwrap_err()
        .to_string()
        .contains("crowd"));
    let flat = write(dir.path(), "f.json", &COCO.replace("20, 30", "0, 30"));
    assert!(LabelSet::coco(&flat)
        .unwrap_err()
        .to_string()
        .contains("positive width"));
}

#[test]
fn yolo_folders_mirror_the_images_and_name_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    write(&images, "a.jpg", "");
    write(&images, "sub/b.png", "");
    let labels = dir.path().join("labels");
    write(&labels, "classes.txt", "person\ncar\n");
    write(
        &labels,
        "sub/b.txt",
        "1 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.1 0.1\n",
    );
    let set = LabelSet::load(&labels, &images, None).unwrap();
    let names: Vec<&str> = set.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a.jpg", "sub/b.png"]);
    assert!(set.normalized);
    assert_eq!(set.boxes.len(), 2);
    assert_eq!((set.boxes[0].image, set.boxes[0].class), (1, 1));
    let b = set.boxes[0].bbox;
    assert!(
        (b[0] - 0.4).abs() < 1e-12 && (b[3] - 0.7).abs() < 1e-12,
        "{b:?}"
    );

    write(&labels, "sub/b.txt", "1 0.5 0.5 0.2\n");
    let e = LabelSet::load(&labels, &images, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("b.txt:1") && e.contains("class cx cy w h"),
        "{e}"
    );
    write(&labels, "sub/b.txt", "2 0.5 0.5 0.2 0.2\n");
    let e = LabelSet::load(&labels, &images, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("class 2") && e.contains("only 2"), "{e}");
    fs::remove_file(labels.join("classes.txt")).unwrap();
    let e = LabelSet::load(&labels, &images, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("classes.txt"), "{e}");
}

#[test]
fn classes_map_by_name_or_by_the_map_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "l.json", COCO);
    let set = LabelSet::coco(&p).unwrap();
    let model: Vec<String> = ["person", "bicycle", "car"].map(String::from).to_vec();
    let m = ClassMap::new(&set, &model, None).unwrap();
    assert_eq!(
        m.classes,
        [(2, "car".to_string()), (0, "person".to_string())]
    );
    assert_eq!(m.of_label, [Some(0), Some(1)]);
    assert_eq!((m.of_model(0), m.of_model(1)), (Some(1), None));

    let other: Vec<String> = ["pedestrian", "vehicle"].map(String::from).to_vec();
    let e = ClassMap::new(&set, &other, None).unwrap_err().to_string();
    assert!(e.contains("car, person") && e.contains("--map"), "{e}");
    let map = write(
        dir.path(),
        "m.toml",
        "person = \"pedestrian\"\ncar = \"\"\n",
    );
    let m = ClassMap::new(&set, &other, Some(&map)).unwrap();
    assert_eq!(m.of_label, [None, Some(0)]);
    assert_eq!(m.classes, [(0, "pedestrian".to_string())]);
    let wrong = write(dir.path(), "w.toml", "person = \"cyclist\"\n");
    let e = ClassMap::new(&set, &other, Some(&wrong))
        .unwrap_err()
        .to_string();
    assert!(e.contains("w.toml") && e.contains("cyclist"), "{e}");
}

//! What a careless operator found the command line accepting, now refused with the file,
//! the line or the field named: `config check` reads every file the config names as
//! `run` would; open writes on a public address and empty tokens are errors; `cases
//! record` stores nothing when any line is bad; model files that are not regular files
//! are refused instead of read forever; huge zone outlines are a clear error.

mod common;

use common::{expect_clean_failure, gridwatch, path, run};

/// A config in `dir` with one file camera and the given extra TOML (before the camera).
fn config(dir: &std::path::Path, extra: &str, camera_extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("gridwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{data}\"\n{extra}\n[[camera]]\nid = \"street\"\nsource = \"{clip}\"\n{camera_extra}\n",
            data = dir.join("data").display(),
            clip = path("samples/street.mp4").display(),
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn config_check_reads_every_file_the_config_names() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("zones.geojson"), "this is not JSON").unwrap();
    std::fs::write(
        d.join("grid.geojson"),
        r#"{"type": "FeatureCollection", "features": [1]}"#,
    )
    .unwrap();
    let calib = std::fs::read_to_string(path("calibration/street.toml")).unwrap();
    // a NaN among the control points
    let broken = calib.replacen("lat = ", "lat = nan # ", 1);
    std::fs::write(d.join("calib.toml"), broken).unwrap();
    let cfg = config(
        d,
        &format!(
            "[geo]\nzones = \"{}\"\ngrid = \"{}\"",
            d.join("zones.geojson").display(),
            d.join("grid.geojson").display()
        ),
        &format!("calibration = \"{}\"", d.join("calib.toml").display()),
    );
    let f = cfg.to_str().unwrap();
    for cmd in [vec!["config", "check", f], vec!["run", "--config", f]] {
        expect_clean_failure(
            &mut gridwatch(&cmd),
            &[
                "geo.zones",
                "zones.geojson",
                "geo.grid",
                "grid.geojson",
                "camera[0] (street).calibration",
                "calib.toml",
            ],
        );
    }
    // the good files pass
    let good = config(
        d,
        &format!(
            "[geo]\nzones = \"{}\"\ngrid = \"{}\"",
            path("samples/geo/zones.geojson").display(),
            path("samples/geo/grid.geojson").display()
        ),
        &format!(
            "calibration = \"{}\"",
            path("calibration/street.toml").display()
        ),
    );
    let (o, stdout, stderr) = run(&mut gridwatch(&["config", "check", good.to_str().unwrap()]));
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
}

#[test]
fn unsafe_or_unusable_settings_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (what, extra, camera, needle) in [
        (
            "open writes on every address",
            "[api]\nlisten = \"0.0.0.0:8080\"\nopen_writes = true",
            "location = [31.2, 121.4]",
            "api.open_writes",
        ),
        (
            "an empty token",
            "[api]\ntoken = \"\"",
            "location = [31.2, 121.4]",
            "api.token: empty",
        ),
        (
            "an rtsp URL without a host",
            "",
            "location = [31.2, 121.4]\n",
            "has no host",
        ),
        (
            "a blurred class the model lacks",
            "[cases.privacy]\nblur = [\"persn\"]",
            "location = [31.2, 121.4]",
            "cases.privacy.blur: the model has no class \"persn\"",
        ),
        (
            "a plate detector without the plate class",
            &format!(
                "[cases.privacy.plates]\nmodel = \"{}\"\nclass = \"license_plate\"",
                path("models/nanodet-coco-416.toml").display()
            ),
            "location = [31.2, 121.4]",
            "cases.privacy.plates.class: \"license_plate\" is not a class of",
        ),
        (
            "a clip of one frame",
            "[cases.clip]\nframes = 1",
            "location = [31.2, 121.4]",
            "cases.clip.frames: 1",
        ),
        (
            "a caption font that is not there",
            "[cases.captions]\nfont = \"/nonexistent/fonts/cjk.ttc\"",
            "location = [31.2, 121.4]",
            "cases.captions.font: /nonexistent/fonts/cjk.ttc",
        ),
        (
            "a camera id of dots",
            "",
            "location = [31.2, 121.4]",
            "must be 1 to 64",
        ),
    ] {
        let mut cfg = config(d, extra, camera);
        if what.contains("rtsp") {
            let text = std::fs::read_to_string(&cfg).unwrap();
            let text = text.replace(
                &path("samples/street.mp4").display().to_string(),
                "rtsp:///stream1",
            );
            std::fs::write(&cfg, text).unwrap();
        }
        if what.contains("dots") {
            let text = std::fs::read_to_string(&cfg)
                .unwrap()
                .replace("id = \"street\"", "id = \"..\"");
            cfg = d.join("dots.toml");
            std::fs::write(&cfg, text).unwrap();
        }
        expect_clean_failure(
            &mut gridwatch(&["config", "check", cfg.to_str().unwrap()]),
            &[needle],
        );
    }
    // the loopback demo may have open writes
    let cfg = config(
        d,
        "[api]\nlisten = \"127.0.0.1:0\"\nopen_writes = true",
        "location = [31.2, 121.4]",
    );
    let (o, _, stderr) = run(&mut gridwatch(&["config", "check", cfg.to_str().unwrap()]));
    assert!(o.status.success(), "{stderr}");
    // run --help shows no all-interfaces example any more
    let (_, help, _) = run(&mut gridwatch(&["run", "--help"]));
    assert!(!help.contains("0.0.0.0"), "{help}");
}

#[test]
fn cases_record_stores_nothing_when_a_line_is_bad() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let good = |i: i64| {
        format!(
            r#"{{"kind":"dumping","cell":"c{i}","admin_path":"D","lat":31.2,"lon":121.4,"camera":"cam","zone":"z","at_ms":{}}}"#,
            1_795_000_000_000 + i * 60_000
        )
    };
    for (what, third, needle) in [
        (
            "a bad line 3",
            "{not json".to_string(),
            "line 3: not a violation",
        ),
        (
            "at_ms i64::MIN",
            good(3).replace("1795000180000", &i64::MIN.to_string()),
            "line 3: at_ms",
        ),
        (
            "a NUL in the camera",
            good(3).replace("\"cam\"", "\"c\\u0000m\""),
            "line 3: camera",
        ),
        (
            "a kind gridwatch does not know",
            good(3).replace("\"dumping\"", "\"graffiti\""),
            "unknown kind \"graffiti\"",
        ),
    ] {
        let input = tmp.path().join("v.jsonl");
        std::fs::write(&input, format!("{}\n{}\n{third}\n", good(1), good(2))).unwrap();
        let stderr = expect_clean_failure(
            &mut gridwatch(&[
                "cases",
                "record",
                "--data",
                data.to_str().unwrap(),
                input.to_str().unwrap(),
            ]),
            &[needle],
        );
        let (o, list, _) = run(&mut gridwatch(&[
            "cases",
            "list",
            "--data",
            data.to_str().unwrap(),
        ]));
        assert!(o.status.success());
        assert!(
            !list.contains("dumping"),
            "{what}: nothing stored ({stderr}): {list}"
        );
    }
    // invalid UTF-8 is reported with its line
    let input = tmp.path().join("bad-utf8.jsonl");
    std::fs::write(
        &input,
        [good(1).as_bytes(), b"\n", b"{\"kind\":\"\xff\"}\n"].concat(),
    )
    .unwrap();
    expect_clean_failure(
        &mut gridwatch(&[
            "cases",
            "record",
            "--data",
            data.to_str().unwrap(),
            input.to_str().unwrap(),
        ]),
        &["line 2", "not UTF-8"],
    );
    // a reviewer's name with a NUL from the command line
    let input = tmp.path().join("ok.jsonl");
    std::fs::write(&input, good(1) + "\n").unwrap();
    let (o, _, e) = run(&mut gridwatch(&[
        "cases",
        "record",
        "--data",
        data.to_str().unwrap(),
        input.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{e}");
    expect_clean_failure(
        &mut gridwatch(&[
            "cases",
            "review",
            "--data",
            data.to_str().unwrap(),
            "1",
            "reject",
            "--by",
            "a\u{202e}b",
        ]),
        &["--by", "U+202E"],
    );
}

#[test]
fn a_model_file_that_is_not_a_regular_file_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(path("models/nanodet-coco-416.toml")).unwrap();
    let fifo = tmp.path().join("model.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let classes = path("models/coco80.txt");
    for target in ["/dev/zero", fifo.to_str().unwrap()] {
        let m = manifest
            .lines()
            .map(|l| {
                if l.starts_with("file = ") {
                    format!("file = \"{target}\"")
                } else if l.starts_with("classes_file = ") {
                    format!("classes_file = \"{}\"", classes.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mf = tmp.path().join("m.toml");
        std::fs::write(&mf, m).unwrap();
        let t = std::time::Instant::now();
        expect_clean_failure(
            &mut gridwatch(&["models", "check", mf.to_str().unwrap()]),
            &["not a regular file"],
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{target}: {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn a_zone_with_too_many_points_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // a 100 000-point circle: the validity check used to take about 40 s
    let n = 100_000;
    let ring: Vec<String> = (0..=n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            format!(
                "[{:.7}, {:.7}]",
                121.47 + 0.001 * a.cos(),
                31.23 + 0.001 * a.sin()
            )
        })
        .collect();
    let zones = tmp.path().join("zones.geojson");
    std::fs::write(
        &zones,
        format!(
            r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","properties":{{"id":"big","kind":"no_parking"}},"geometry":{{"type":"Polygon","coordinates":[[{}]]}}}}]}}"#,
            ring.join(",")
        ),
    )
    .unwrap();
    let cfg = config(
        tmp.path(),
        &format!("[geo]\nzones = \"{}\"", zones.display()),
        "location = [31.2, 121.4]",
    );
    let t = std::time::Instant::now();
    expect_clean_failure(
        &mut gridwatch(&["config", "check", cfg.to_str().unwrap()]),
        &["100001 points", "simplify"],
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
}

//! gridwatch outside the checkout it was built from: an installed layout
//! (`/opt/gridwatch/{bin,lib,models}`) and `GRIDWATCH_HOME` decide where the built-in
//! defaults (the bundled model, ONNX Runtime) come from.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{expect_clean_failure, path, run};

/// An installed layout under `dir`: bin/gridwatch (a copy of the built binary),
/// lib/libonnxruntime.so.* (a link to the project's), models/ with the bundled
/// manifest and class list but, for now, no ONNX file.
fn install(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::create_dir_all(dir.join("models")).unwrap();
    let exe = dir.join("bin/gridwatch");
    fs::copy(env!("CARGO_BIN_EXE_gridwatch"), &exe).unwrap();
    // the ONNX Runtime the checkout's own builds load (scripts/setup.sh puts it in .venv)
    let lib = gridwatch::detect::runtime::locate().expect("ONNX Runtime: run scripts/setup.sh");
    symlink(&lib, dir.join("lib").join(lib.file_name().unwrap())).unwrap();
    for f in ["nanodet-coco-416.toml", "coco80.txt"] {
        fs::copy(path("models").join(f), dir.join("models").join(f)).unwrap();
    }
    exe
}

/// The installed binary, run from a folder that is not the checkout, with no
/// project variables set.
fn installed(exe: &Path, cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("GRIDWATCH_HOME")
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("GRIDWATCH_LOG");
    cmd
}

#[test]
fn an_installed_binary_uses_its_own_models_and_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("opt/gridwatch");
    let exe = install(&home);
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let dog = path("samples/dog.jpg");
    let dog = dog.to_str().unwrap();
    let out = work.join("out");
    let out_s = out.to_str().unwrap();

    // the installed manifest is the one read: its ONNX file is not there yet
    let missing = home.join("models/nanodet-coco-416.onnx");
    expect_clean_failure(
        &mut installed(&exe, &work, &["detect", dog, "--out", out_s]),
        &[&missing.display().to_string()],
    );

    // with the model in place it detects, loading ONNX Runtime from lib/
    symlink(path("models/nanodet-coco-416.onnx"), &missing).unwrap();
    let (o, _stdout, stderr) = run(&mut installed(
        &exe,
        &work,
        &["-v", "detect", dog, "--out", out_s],
    ));
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(&home.join("lib/libonnxruntime.so").display().to_string()),
        "ONNX Runtime not loaded from the installed lib/: {stderr}"
    );
    let lines = common::read_lines(&out.join("detections.jsonl"));
    assert!(
        lines.iter().any(|l| l.class == "dog"),
        "no dog found: {lines:?}"
    );

    // the built-in demo needs the samples, which this home lacks: an error naming it
    expect_clean_failure(
        &mut installed(&exe, &work, &["run", "--listen", "127.0.0.1:0"]),
        &[
            "built-in demo",
            &home.display().to_string(),
            "samples/street.mp4",
        ],
    );

    // GRIDWATCH_HOME wins over the executable's folder
    let other = tmp.path().join("other-home");
    fs::create_dir_all(other.join("models")).unwrap();
    expect_clean_failure(
        installed(&exe, &work, &["detect", dog, "--out", out_s]).env("GRIDWATCH_HOME", &other),
        &[&other
            .join("models/nanodet-coco-416.toml")
            .display()
            .to_string()],
    );
}

#[test]
fn the_bundle_runs_with_nothing_but_its_own_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist/gridwatch");
    let status = Command::new("bash")
        .arg(path("scripts/make-bundle.sh"))
        .arg("--out")
        .arg(&out)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_gridwatch"))
        .status()
        .unwrap();
    assert!(status.success(), "make-bundle.sh failed");
    let exe = out.join("bin/gridwatch");

    // every library the loader resolves comes from the bundle, but the C library's
    // and the C++ runtime's
    let trace = Command::new(&exe)
        .env_clear()
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .unwrap();
    let trace = String::from_utf8_lossy(&trace.stdout);
    // $ORIGIN/../lib, as the loader spells it
    let lib = out.join("bin/../lib").display().to_string();
    let system = [
        "linux-vdso",
        "libc.so",
        "libm.so",
        "libdl.so",
        "libpthread.so",
        "librt.so",
        "libresolv.so",
        "libutil.so",
        "ld-linux",
        "libstdc++.so",
        "libgcc_s.so",
    ];
    let mut bundled = 0;
    for line in trace.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(!line.contains("not found"), "unresolved: {line}");
        if line.contains(&lib) {
            bundled += 1;
        } else {
            assert!(
                system
                    .iter()
                    .any(|s| line.starts_with(s) || line.contains(&format!("/{s}"))),
                "resolved outside the bundle: {line}"
            );
        }
    }
    for l in [
        "libavcodec.so",
        "libavformat.so",
        "libswscale.so",
        "libopencv_core.so",
    ] {
        assert!(
            trace.contains(&format!("{lib}/{l}")),
            "{l} not bundled:\n{trace}"
        );
    }
    assert!(bundled > 20, "only {bundled} bundled libraries:\n{trace}");
    // their licences travel with them
    for pkg in ["libavcodec59", "libopencv-core406", "fonts-wqy-microhei"] {
        assert!(
            out.join("licences").join(pkg).is_file(),
            "no licence file for {pkg}"
        );
    }

    // the font of evidence captions, for systems without it
    assert!(out.join("share/fonts/wqy-microhei.ttc").is_file());

    // it detects with an empty environment, from a folder that is not the checkout
    let work = tmp.path().join("elsewhere");
    fs::create_dir_all(&work).unwrap();
    let (o, _stdout, stderr) = run(Command::new(&exe)
        .env_clear()
        .current_dir(&work)
        .args(["detect", "samples-missing-on-purpose.jpg"]));
    assert!(!o.status.success());
    assert!(
        stderr.contains("samples-missing-on-purpose.jpg"),
        "{stderr}"
    );
    let (o, _stdout, stderr) = run(Command::new(&exe)
        .env_clear()
        .current_dir(&work)
        .arg("detect")
        .arg(out.join("samples/street.mp4"))
        .args(["--every", "4s", "--out", "det"]));
    assert!(o.status.success(), "{stderr}");
    let lines = common::read_lines(&work.join("det/detections.jsonl"));
    assert!(
        lines.iter().filter(|l| l.class == "car").count() > 10,
        "too few cars: {lines:?}"
    );

    // the built-in demo runs from it: both sample cameras decode and detect, the data
    // goes to ./data where it is run
    let mut child = Command::new(&exe)
        .env_clear()
        .current_dir(&work)
        .args(["run", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(work.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let (line, url) = common::first_url(&mut child);
    let url = url.unwrap_or_else(|| panic!("no address: {line:?}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let detecting = loop {
        let cams = common::node::get(&format!("{url}/api/cameras")).unwrap_or_default();
        let busy = cams
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["last_frame"].is_string())
            .count();
        if busy == 2 || std::time::Instant::now() > deadline {
            break busy;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let log = fs::read_to_string(work.join("run.log")).unwrap_or_default();
    assert_eq!(detecting, 2, "both cameras detecting\n{log}");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(work.join("data/cases.sqlite").is_file(), "{log}");
}

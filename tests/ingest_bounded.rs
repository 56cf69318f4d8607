//! Bounded, always: a camera whose reads never return (a FIFO that a writer holds open
//! and stops feeding, as a hung network share does) is a camera fault, left behind
//! with its decode permit given back, retried, and failed once too many of its calls
//! are stuck; the other cameras carry on; `gridwatch run` still ends within 5 s of
//! SIGTERM. `detect` and `bench` end on Ctrl-C, also when stuck in such a read.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::node::{get, get_text, Node};

/// A FIFO at `path` whose writer sends `head` and then holds it open, sending nothing
/// more, for `hold` (each new reader finds nothing and blocks).
fn stalled_fifo(path: &Path, head: Vec<u8>, hold: Duration) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // blocks until the first reader opens it
        let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let _ = w.write_all(&head);
        std::thread::sleep(hold);
    });
}

fn head_of(clip: &Path, n: usize) -> Vec<u8> {
    let mut data = std::fs::read(clip).unwrap();
    data.truncate(n);
    data
}

fn camera<'a>(cams: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    cams.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("camera {id} in {cams}"))
}

fn wait_for<T>(what: &str, limit: Duration, node: &Node, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < limit,
            "no {what} after {limit:?}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_wedged_camera_is_left_behind_the_others_carry_on_and_sigterm_ends_run() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("stuck.ts");
    stalled_fifo(
        &fifo,
        head_of(&common::corpus::clip("h264-bframes.ts"), 60_000),
        Duration::from_secs(120),
    );
    let good = common::corpus::clip("h264-cam-25fps.mp4");
    let cfg = tmp.path().join("gridwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{data}\"\n[api]\nlisten = \"127.0.0.1:0\"\nopen_writes = true\n\
             [[camera]]\nid = \"good\"\nsource = \"{good}\"\nevery = \"500ms\"\nlocation = [31.23, 121.47]\n\
             [[camera]]\nid = \"stuck\"\nsource = \"{fifo}\"\nevery = \"1s\"\nstall_timeout = \"2s\"\nlocation = [31.23, 121.47]\n",
            data = tmp.path().join("data").display(),
            good = good.display(),
            fifo = fifo.display(),
        ),
    )
    .unwrap();
    let mut node = Node::start("bounded", &cfg, "", tmp.path());
    let cams =
        |node: &Node| get(&format!("{}/api/cameras", node.url)).expect("/api/cameras answers");
    // the stuck camera is found wedged, with the reason, and retried
    let fault = wait_for("a decoder fault", Duration::from_secs(20), &node, || {
        let c = cams(&node);
        let s = camera(&c, "stuck").clone();
        (s["decoder_faults"].as_u64() >= Some(1)).then_some(s)
    });
    let err = fault["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("did not return") && err.contains("wedged"),
        "{fault}"
    );
    // the good camera keeps its frames coming meanwhile
    let before = camera(&cams(&node), "good")["handed_on"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let after = camera(&cams(&node), "good")["handed_on"].as_u64().unwrap();
    assert!(
        after >= before + 3,
        "the good camera goes on: {before} → {after}"
    );
    // each retry gets stuck again: after three stuck calls the camera is failed
    let failed = wait_for(
        "the stuck camera failed",
        Duration::from_secs(40),
        &node,
        || {
            let c = cams(&node);
            let s = camera(&c, "stuck").clone();
            (s["state"] == "failed").then_some(s)
        },
    );
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("not restarting"),
        "{failed}"
    );
    assert_eq!(camera(&cams(&node), "good")["state"], "streaming");
    let metrics = get_text(&format!("{}/metrics", node.url)).unwrap();
    assert!(
        metrics.contains("gridwatch_camera_decoder_faults_total{camera=\"stuck\"} 3"),
        "{metrics}"
    );
    // SIGTERM: out within 5 s although three threads sit in reads that never return
    // SAFETY: signalling our own child
    unsafe { libc::kill(node.child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = node.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}\n{}", node.log());
    assert!(node.log().contains("stopped"), "{}", node.log());
}

/// `detect` (or `bench`) on `input`, interrupted after `after`: how long it took to
/// exit, its status and stderr.
fn interrupt(args: &[&str], after: Duration) -> (Duration, Option<i32>, String) {
    let mut child = common::gridwatch(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    // SAFETY: signalling our own child
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still running 10 s after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        t.elapsed(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn detect_and_bench_end_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    // a long run: every frame of the street clip
    let (took, code, stderr) = interrupt(
        &[
            "detect",
            "samples/street.mp4",
            "--every",
            "all",
            "--no-images",
            "--out",
            out_s,
        ],
        Duration::from_secs(3),
    );
    assert_eq!(code, Some(130), "{stderr}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(stderr.contains("interrupted after"), "{stderr}");
    // what was written is whole: every line parses, fewer than the clip's 795 frames
    let frames = std::fs::read_to_string(out.join("frames.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = frames
        .lines()
        .map(|l| serde_json::from_str(l).expect("a whole JSON line"))
        .collect();
    let n = lines.len();
    assert!(n > 0 && n < 795, "{n} frames");
    common::read_lines(&out.join("detections.jsonl"));

    // stuck in a read that never returns: out after the grace time
    let fifo: PathBuf = tmp.path().join("stuck.ts");
    stalled_fifo(
        &fifo,
        head_of(&common::corpus::clip("h264-bframes.ts"), 60_000),
        Duration::from_secs(60),
    );
    let (took, code, stderr) = interrupt(
        &[
            "detect",
            fifo.to_str().unwrap(),
            "--every",
            "1s",
            "--out",
            out_s,
        ],
        Duration::from_secs(2),
    );
    assert_eq!(code, Some(130), "{stderr}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(stderr.contains("exiting now"), "{stderr}");

    let (took, code, stderr) = interrupt(
        &["bench", "--every", "all", "--raw-calls", "1000"],
        Duration::from_secs(4),
    );
    assert_eq!(code, Some(130), "{stderr}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

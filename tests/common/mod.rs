//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod api;
pub mod cases;
pub mod drone;
pub mod node;
pub mod pg;
pub mod proxy;
pub mod rtsp;
pub mod tls;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checkout's root (models/, samples/, tests/ live here).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under the checkout.
pub fn path(rel: &str) -> PathBuf {
    root().join(rel)
}

/// Runs the FFmpeg CLI quietly (`-y`, no stdin) with `args`; a failure shows its
/// error output.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `ffprobe` reads of the first video stream of a file's `bytes`, `key=value`
/// lines: codec_name, pix_fmt, width, height, nb_read_frames (every frame decoded).
#[allow(dead_code)]
pub fn ffprobe_video(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("probe");
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,pix_fmt,width,height,nb_read_frames",
        ])
        .args(["-of", "default=nw=1"])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the project's `.venv` Python with `args`; its standard output, or a failure
/// showing its error output.
pub fn venv_python<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Vec<u8> {
    let out = Command::new(venv("python")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A program in the project's `.venv/bin` (which scripts/setup.sh makes), or a
/// failure that says to run the setup.
pub fn venv(bin: &str) -> PathBuf {
    let p = path(".venv/bin").join(bin);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p
}

/// The gridwatch binary with the given arguments, run from the checkout.
pub fn gridwatch(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridwatch"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("GRIDWATCH_LOG");
    cmd
}

/// Runs `gridwatch eval SUB ARGS --json DIR/SUB.json`, asserting success; returns the
/// JSON it wrote.
pub fn eval_json(sub: &str, dir: &Path, args: &[&str]) -> serde_json::Value {
    let out_json = dir.join(format!("{sub}.json"));
    let mut all = vec!["eval", sub, "--json", out_json.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = gridwatch(&all).output().unwrap();
    assert!(
        out.status.success(),
        "gridwatch eval {sub} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap()
}

/// Runs `gridwatch eval SUB ARGS` expecting failure; returns its stderr.
pub fn eval_refused(sub: &str, args: &[&str]) -> String {
    let mut all = vec!["eval", sub];
    all.extend_from_slice(args);
    let out = gridwatch(&all).output().unwrap();
    assert!(!out.status.success(), "eval {sub} {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The first line a started child prints on its piped stdout, and the first
/// `http://` address in it without a trailing `/` (gridwatch run and gridwatch inbox
/// print theirs first).
pub fn first_url(child: &mut std::process::Child) -> (String, Option<String>) {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|u| u.trim_end_matches('/').to_string());
    (line, url)
}

/// Runs the command and returns its output, with stdout and stderr as text.
pub fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("the gridwatch binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// Runs a command that must fail cleanly: non-zero exit, no panic, and stderr
/// containing every one of `needles`. Returns stderr.
pub fn expect_clean_failure(cmd: &mut Command, needles: &[&str]) -> String {
    let (out, _stdout, stderr) = run(cmd);
    assert!(
        !out.status.success(),
        "expected a failure, got success; stderr:\n{stderr}"
    );
    // 1: an error gridwatch reports; 2: a command-line usage error (clap)
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "exit code {:?}; stderr:\n{stderr}",
        out.status.code()
    );
    assert!(!stderr.contains("panicked"), "panicked:\n{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "panicked:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks `{n}`:\n{stderr}");
    }
    stderr
}

/// One line of detections.jsonl.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Line {
    pub source: String,
    pub frame: u64,
    pub pts_ms: Option<i64>,
    pub class: String,
    pub class_id: u32,
    pub score: f64,
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
}

/// Reads a JSON Lines file of detections.
pub fn read_lines(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

pub mod corpus;

/// A token made with `gridwatch tokens create` (store arguments `store`, e.g.
/// `["--data", dir]`; `env`: variables the command needs), as it printed it.
pub fn make_token(store: &[&str], env: &[(&str, &str)], name: &str, role: &str) -> String {
    let mut cmd =
        gridwatch(&[&["tokens", "create", "--name", name, "--role", role], store].concat());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `f`'s first `Some` within `wait` (asked every 250 ms); else a panic naming `what`,
/// with what `context` says then (a node's log).
pub fn eventually_or<T>(
    what: &str,
    wait: std::time::Duration,
    context: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let t = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < wait,
            "timed out after {wait:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// [`eventually_or`] with nothing more to say.
pub fn eventually<T>(what: &str, wait: std::time::Duration, f: impl FnMut() -> Option<T>) -> T {
    eventually_or(what, wait, String::new, f)
}

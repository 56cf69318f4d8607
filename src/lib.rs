//! gridwatch watches city camera and drone feeds and turns what it sees into cases for
//! the city's case workflow.
//!
//! The pipeline, one module a stage:
//!
//! - [`decode`]: FFmpeg decoding of clips (and, later, RTSP streams), image files, the
//!   frame type, and sampling (which frames are worth decoding at all).
//! - [`detect`]: ONNX Runtime sessions described by model manifests; preprocess →
//!   inference → postprocess as separate, timed steps; the output layouts users export
//!   (NanoDet, YOLOv5, YOLOv8/YOLO11, already-decoded rows).
//! - [`ingest`]: the pool of live RTSP cameras: supervised sessions, sampled decoding
//!   in bounded workers, newest-frame-wins hand-off to detection.
//! - [`geo`]: camera calibration, drone footprints, zones with time windows, the
//!   management grid (or H3): where a finding lands and which cell owns it.
//! - [`track`]: per-camera identities across samples, and how long each stood still.
//! - [`rules`]: violations from tracks, zones and time (illegal parking so far).
//! - [`cases`]: dedup by (kind, grid cell) into cases (one policy, [`cases::policy`]),
//!   the durable stores (SQLite, PostgreSQL) and the outbox to the workflow.
//! - [`pg`]: PostgreSQL connections (TLS as libpq, timeouts, reconnecting).
//! - [`eval`]: accuracy against labels (boxes as COCO measures them).
//! - [`draw`]: annotated frames (boxes and labels) written as JPEG; evidence clips as MP4.
//! - [`cli`]: the `gridwatch` subcommands.
//!
//! The binary in `src/main.rs` only parses the command line and reports errors.

pub mod api;
pub mod cases;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod decode;
pub mod detect;
pub mod draw;
pub mod eval;
pub mod geo;
pub mod ingest;
pub mod metrics;
pub mod pg;
pub mod registry;
pub mod rules;
pub mod secret;
pub mod serve;
pub mod service;
pub mod track;

/// gridwatch's home: the folder holding the bundled model (`models/`), the sample clips
/// (`samples/`), the helper scripts (`scripts/`) and the project-local ONNX Runtime
/// (`.venv/`). The built-in defaults resolve against it. In order:
///
/// 1. `GRIDWATCH_HOME`, when set (an installed layout such as `/opt/gridwatch`, or a
///    binary carried to another machine);
/// 2. the folder above the executable's folder, or the one above that
///    (`/opt/gridwatch/bin/gridwatch`, `target/release/gridwatch`), when it holds
///    `models/nanodet-coco-416.toml`;
/// 3. the checkout the binary was built from.
///
/// Found once per process.
pub fn source_dir() -> &'static std::path::Path {
    static HOME: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        find_home(
            std::env::var_os("GRIDWATCH_HOME").map(std::path::PathBuf::from),
            std::env::current_exe().ok(),
        )
    })
}

/// The marker of a gridwatch home: the bundled model's manifest.
const HOME_MARKER: &str = "models/nanodet-coco-416.toml";

fn find_home(
    env: Option<std::path::PathBuf>,
    exe: Option<std::path::PathBuf>,
) -> std::path::PathBuf {
    if let Some(dir) = env.filter(|d| !d.as_os_str().is_empty()) {
        return dir;
    }
    if let Some(exe) = exe {
        let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
        if let Some(found) = exe
            .ancestors()
            .skip(2)
            .take(2)
            .find(|d| d.join(HOME_MARKER).is_file())
        {
            return found.to_path_buf();
        }
    }
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[cfg(test)]
mod home_tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_environment_wins_then_the_executable_then_the_build_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("opt/gridwatch");
        std::fs::create_dir_all(home.join("models")).unwrap();
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::write(home.join(HOME_MARKER), "").unwrap();
        let exe = home.join("bin/gridwatch");
        std::fs::write(&exe, "").unwrap();
        let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));

        let other = tmp.path().join("elsewhere");
        assert_eq!(find_home(Some(other.clone()), Some(exe.clone())), other);
        assert_eq!(find_home(Some(PathBuf::new()), Some(exe.clone())), home);
        assert_eq!(find_home(None, Some(exe.clone())), home);
        // two levels up: target/release/gridwatch
        let deep = home.join("target/release");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("gridwatch"), "").unwrap();
        assert_eq!(find_home(None, Some(deep.join("gridwatch"))), home);
        // no model next to it: the checkout it was built from
        let lone = tmp.path().join("usr/local/bin");
        std::fs::create_dir_all(&lone).unwrap();
        std::fs::write(lone.join("gridwatch"), "").unwrap();
        assert_eq!(find_home(None, Some(lone.join("gridwatch"))), built);
        assert_eq!(find_home(None, None), built);
    }
}

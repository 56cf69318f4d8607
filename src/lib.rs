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
//! - [`cases`]: dedup by (kind, grid cell) into cases, the durable store.
//! - [`draw`]: annotated frames (boxes and labels) written as JPEG.
//! - [`cli`]: the `gridwatch` subcommands.
//!
//! The binary in `src/main.rs` only parses the command line and reports errors.

pub mod api;
pub mod cases;
pub mod cli;
pub mod config;
pub mod decode;
pub mod detect;
pub mod draw;
pub mod geo;
pub mod ingest;
pub mod rules;
pub mod service;
pub mod track;

/// The directory this crate was built from: the default home of the bundled models,
/// samples and the project-local ONNX Runtime (`.venv`).
pub fn source_dir() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

//! Finding and loading the ONNX Runtime shared library.
//!
//! gridwatch loads ONNX Runtime at run time (`ort`'s `load-dynamic`). The library comes
//! from the PyPI wheel `onnxruntime==1.31.1`, which `scripts/setup.sh` installs into the
//! project-local virtual environment `.venv`. Search order:
//!
//! 1. `ORT_DYLIB_PATH`, when set: that file and nothing else.
//! 2. `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` under, in
//!    turn, gridwatch's home ([`crate::source_dir`]: `GRIDWATCH_HOME`, the folder above
//!    the executable's, or the checkout it was built from), the directory two levels
//!    above the executable (`target/release/..`), and the current directory.
//! 3. `lib/libonnxruntime.so*` beside the executable or in gridwatch's home (an
//!    installed layout: `/opt/gridwatch/{bin/gridwatch,lib/libonnxruntime.so.1.31.1}`).
//!
//! A missing library is an error that says what to run, never a bare dlopen panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use super::DetectError;

/// The ONNX Runtime version gridwatch is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";

const HOW_TO_INSTALL: &str = "run scripts/setup.sh (it installs onnxruntime==1.31.1 from PyPI into .venv), or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31";

/// Where the library would be looked for, in order, for messages and for [`locate`].
pub fn candidate_roots() -> Vec<PathBuf> {
    let mut roots = vec![crate::source_dir().to_path_buf()];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(up2) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            roots.push(up2.to_path_buf());
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    roots.dedup();
    roots
}

/// Entries of `dir` whose names start with `prefix`, sorted.
fn entries_starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

fn find_in_venv(root: &Path) -> Option<PathBuf> {
    entries_starting_with(&root.join(".venv/lib"), "python3")
        .into_iter()
        .rev()
        .find_map(|py| find_lib_in(&py.join("site-packages/onnxruntime/capi")))
}

/// The best `libonnxruntime.so*` file in `dir`: the exact version first.
fn find_lib_in(dir: &Path) -> Option<PathBuf> {
    let exact = dir.join(format!("libonnxruntime.so.{ORT_VERSION}"));
    if exact.is_file() {
        return Some(exact);
    }
    entries_starting_with(dir, "libonnxruntime.so").pop()
}

/// Finds the ONNX Runtime library, or says where it looked and what to do.
pub fn locate() -> Result<PathBuf, DetectError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(DetectError::Runtime(format!(
                "ORT_DYLIB_PATH is set to {}, which is not a file; {HOW_TO_INSTALL}",
                p.display()
            )))
        };
    }
    let roots = candidate_roots();
    for root in &roots {
        if let Some(p) = find_in_venv(root) {
            return Ok(p);
        }
    }
    if let Some(p) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(|d| find_lib_in(&d.join("lib"))))
        .or_else(|| find_lib_in(&crate::source_dir().join("lib")))
    {
        return Ok(p);
    }
    let looked: Vec<String> = roots
        .iter()
        .map(|r| r.join(".venv").display().to_string())
        .collect();
    Err(DetectError::Runtime(format!(
        "ONNX Runtime {ORT_VERSION} was not found (looked in {}); {HOW_TO_INSTALL}",
        looked.join(", ")
    )))
}

static ENV: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();

/// Loads ONNX Runtime once per process and returns its environment and library path.
pub fn environment() -> Result<(Environment, PathBuf), DetectError> {
    ENV.get_or_init(|| {
        let path = locate().map_err(|e| e.to_string())?;
        // ort panics on some loader failures; turn any panic into an error message
        // (and keep the default hook from printing a bare panic meanwhile).
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let loaded = std::panic::catch_unwind(|| -> Result<Environment, String> {
            ort::init_from(&path)
                .map_err(|e| e.to_string())?
                .with_name("gridwatch")
                .build()
                .map_err(|e| e.to_string())
        });
        std::panic::set_hook(hook);
        match loaded {
            Ok(Ok(env)) => {
                tracing::debug!(library = %path.display(), "ONNX Runtime loaded");
                Ok((env, path))
            }
            Ok(Err(msg)) => Err(format!(
                "cannot load ONNX Runtime from {}: {msg}; {HOW_TO_INSTALL}",
                path.display()
            )),
            Err(_) => Err(format!(
                "loading ONNX Runtime from {} crashed; {HOW_TO_INSTALL}",
                path.display()
            )),
        }
    })
    .clone()
    .map_err(DetectError::Runtime)
}

//! Model manifests: the TOML file beside each ONNX model that says how to feed it and
//! how to read what it returns. Manifests are how users bring their own detectors.
//!
//! ```toml
//! name = "nanodet-coco-416"
//! file = "nanodet-coco-416.onnx"          # relative to the manifest
//! sha256 = "e745…"                        # optional; checked when present
//! classes_file = "coco80.txt"             # or: classes = ["person", …]
//! licence = "Apache-2.0"
//! provenance = "…"
//!
//! [input]
//! name = "input_1:0"
//! width = 416
//! height = 416
//! layout = "nchw"                         # or "nhwc"
//! channels = "bgr"                        # or "rgb"
//! mean = [103.53, 116.28, 123.675]        # per tensor channel, on 0..255 values
//! std = [57.375, 57.12, 58.395]
//! resize = "stretch"                      # or "letterbox" (pad value `pad`, default 114)
//!
//! [output]
//! layout = "nanodet"                      # nanodet | yolov5 | yolov8 | decoded
//! strides = [8, 16, 32]
//! reg_max = 10
//! scores = ["Identity:0", "Identity_1:0", "Identity_2:0"]
//! boxes = ["Identity_3:0", "Identity_4:0", "Identity_5:0"]
//!
//! [postprocess]
//! score_threshold = 0.35
//! nms_iou = 0.5
//! nms = true                              # false for models that already ran NMS
//! max_detections = 100
//! ```

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::layout::OutputLayout;
use super::DetectError;

/// A model manifest as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Short name used in logs and benchmark tables.
    pub name: String,
    /// The ONNX file, relative to the manifest's directory.
    pub file: PathBuf,
    /// Hex SHA-256 of the ONNX file; when present, loading checks it.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Class names in class-id order.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// A text file with one class name per line, relative to the manifest.
    #[serde(default)]
    pub classes_file: Option<PathBuf>,
    /// Licence of the weights (SPDX where possible).
    #[serde(default)]
    pub licence: Option<String>,
    /// Where the weights came from and how the ONNX file was made.
    #[serde(default)]
    pub provenance: Option<String>,
    /// How frames become the input tensor.
    pub input: InputSpec,
    /// How the output tensors are read.
    pub output: OutputLayout,
    /// Thresholds applied after decoding.
    #[serde(default)]
    pub postprocess: PostprocessSpec,
}

/// The model's input tensor and how a frame is turned into it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Name of the input tensor in the ONNX graph.
    pub name: String,
    /// Tensor width in pixels.
    pub width: u32,
    /// Tensor height in pixels.
    pub height: u32,
    /// Memory layout of the tensor.
    #[serde(default)]
    pub layout: TensorLayout,
    /// Channel order the model expects.
    #[serde(default)]
    pub channels: ChannelOrder,
    /// Per-channel mean subtracted from 0..255 values, in tensor channel order.
    #[serde(default = "default_mean")]
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean, in tensor channel order.
    #[serde(default = "default_std")]
    pub std: [f32; 3],
    /// How the frame is fitted to the tensor size.
    #[serde(default)]
    pub resize: ResizeMode,
    /// Grey level of letterbox padding (0..255), before normalisation.
    #[serde(default = "default_pad")]
    pub pad: u8,
}

fn default_mean() -> [f32; 3] {
    [0.0; 3]
}
fn default_std() -> [f32; 3] {
    [255.0; 3]
}
fn default_pad() -> u8 {
    114
}

/// Memory layout of the input tensor.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TensorLayout {
    /// `[batch, channels, height, width]`.
    #[default]
    Nchw,
    /// `[batch, height, width, channels]`.
    Nhwc,
}

/// Channel order of the input tensor.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue (most PyTorch exports).
    #[default]
    Rgb,
    /// Blue, green, red (OpenCV order, Caffe-style models).
    Bgr,
}

/// How a frame is fitted to the model's input size.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Scale each axis independently to the input size (aspect ratio not kept).
    #[default]
    Stretch,
    /// Scale by one factor to fit, centre, pad the rest (Ultralytics style).
    Letterbox,
}

/// Thresholds applied after decoding the outputs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PostprocessSpec {
    /// Detections scoring below this are dropped.
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    /// IoU above which a lower-scored box of the same class is suppressed.
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
    /// Whether to run NMS at all; `false` for models that already ran it (the
    /// `decoded` layout of end-to-end exports).
    #[serde(default = "default_true")]
    pub nms: bool,
    /// At most this many detections per frame, best first.
    #[serde(default = "default_max_detections")]
    pub max_detections: usize,
}

impl Default for PostprocessSpec {
    fn default() -> Self {
        Self {
            score_threshold: default_score_threshold(),
            nms_iou: default_nms_iou(),
            nms: true,
            max_detections: default_max_detections(),
        }
    }
}

fn default_score_threshold() -> f32 {
    0.35
}
fn default_nms_iou() -> f32 {
    0.5
}
fn default_true() -> bool {
    true
}
fn default_max_detections() -> usize {
    100
}

/// A manifest read from disk and checked for internal consistency; paths resolved.
#[derive(Debug, Clone)]
pub struct ModelManifest {
    /// Where the manifest was read from.
    pub path: PathBuf,
    /// Short model name.
    pub name: String,
    /// Absolute or manifest-relative-resolved ONNX path.
    pub model_path: PathBuf,
    /// Expected SHA-256, lower-case hex.
    pub sha256: Option<String>,
    /// Class names in id order.
    pub classes: Vec<String>,
    /// Input description.
    pub input: InputSpec,
    /// Output layout.
    pub output: OutputLayout,
    /// Thresholds.
    pub postprocess: PostprocessSpec,
    /// Licence text from the manifest.
    pub licence: Option<String>,
}

impl ModelManifest {
    /// Reads and validates a manifest. Errors name the manifest file and the field.
    pub fn load(path: &Path) -> Result<Self, DetectError> {
        let text = fs::read_to_string(path).map_err(|source| DetectError::Io {
            path: path.to_path_buf(),
            what: "model manifest",
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses manifest text; `path` is used for messages and to resolve relative files.
    pub fn parse(path: &Path, text: &str) -> Result<Self, DetectError> {
        let raw: ManifestFile = toml::from_str(text).map_err(|e| DetectError::ManifestSyntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let bad = |field: &str, message: String| DetectError::Manifest {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let classes = match (&raw.classes, &raw.classes_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "classes",
                    "give either `classes` or `classes_file`, not both".into(),
                ))
            }
            (Some(c), None) => c.clone(),
            (None, Some(f)) => {
                let file = dir.join(f);
                let text = fs::read_to_string(&file).map_err(|e| {
                    bad(
                        "classes_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            }
            (None, None) => {
                return Err(bad(
                    "classes",
                    "missing: give `classes` or `classes_file`".into(),
                ))
            }
        };
        if classes.is_empty() {
            return Err(bad("classes", "the class list is empty".into()));
        }
        let input = raw.input;
        if input.width == 0 || input.height == 0 || input.width > 8192 || input.height > 8192 {
            return Err(bad(
                "input.width",
                format!(
                    "input size {}x{} is out of range (1..=8192)",
                    input.width, input.height
                ),
            ));
        }
        if let Some(i) = input.std.iter().position(|s| !s.is_finite() || *s == 0.0) {
            return Err(bad(
                "input.std",
                format!("std[{i}] must be a finite non-zero number"),
            ));
        }
        let post = raw.postprocess;
        if !(0.0..=1.0).contains(&post.score_threshold) {
            return Err(bad(
                "postprocess.score_threshold",
                "must be between 0 and 1".into(),
            ));
        }
        if !(0.0..=1.0).contains(&post.nms_iou) {
            return Err(bad("postprocess.nms_iou", "must be between 0 and 1".into()));
        }
        if post.max_detections == 0 {
            return Err(bad(
                "postprocess.max_detections",
                "must be at least 1".into(),
            ));
        }
        raw.output
            .validate()
            .map_err(|(field, message)| bad(&format!("output.{field}"), message))?;
        let sha256 = match raw.sha256 {
            Some(s) => {
                let s = s.trim().to_ascii_lowercase();
                if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("sha256", "must be 64 hex digits".into()));
                }
                Some(s)
            }
            None => None,
        };
        Ok(Self {
            path: path.to_path_buf(),
            name: raw.name,
            model_path: dir.join(&raw.file),
            sha256,
            classes,
            input,
            output: raw.output,
            postprocess: post,
            licence: raw.licence,
        })
    }

    /// Checks the ONNX file exists, is a regular file (a FIFO or a device such as
    /// `/dev/zero` would block or never end), and, where the manifest gives one, its
    /// SHA-256.
    pub fn verify_file(&self) -> Result<(), DetectError> {
        self.check_regular_file()?;
        let Some(expected) = &self.sha256 else {
            // opened, so that a file that cannot be read is named here
            fs::File::open(&self.model_path).map_err(|source| DetectError::Io {
                path: self.model_path.clone(),
                what: "ONNX model (manifest field `file`)",
                source,
            })?;
            return Ok(());
        };
        let actual = self.file_sha256()?;
        if &actual != expected {
            return Err(DetectError::Manifest {
                path: self.path.clone(),
                field: "sha256".into(),
                message: format!(
                    "{} has sha256 {actual}, the manifest says {expected}",
                    self.model_path.display()
                ),
            });
        }
        Ok(())
    }

    /// The ONNX file's SHA-256, in hex (what names the model in the reviewers'
    /// ledger when the manifest gives none).
    pub fn file_sha256(&self) -> Result<String, DetectError> {
        self.check_regular_file()?;
        let mut file = fs::File::open(&self.model_path).map_err(|source| DetectError::Io {
            path: self.model_path.clone(),
            what: "ONNX model (manifest field `file`)",
            source,
        })?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(|source| DetectError::Io {
                path: self.model_path.clone(),
                what: "ONNX model",
                source,
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(format!("{:x}", hasher.finalize()))
    }
}

impl ModelManifest {
    /// The model file must be a regular file: opening a FIFO blocks, reading a device
    /// never ends.
    pub fn check_regular_file(&self) -> Result<(), DetectError> {
        let meta = fs::metadata(&self.model_path).map_err(|source| DetectError::Io {
            path: self.model_path.clone(),
            what: "ONNX model (manifest field `file`)",
            source,
        })?;
        if !meta.is_file() {
            return Err(DetectError::Manifest {
                path: self.path.clone(),
                field: "file".into(),
                message: format!(
                    "{} is not a regular file (a directory, device or pipe)",
                    self.model_path.display()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
file = "t.onnx"
classes = ["a", "b"]
[input]
name = "images"
width = 32
height = 32
resize = "letterbox"
[output]
layout = "yolov8"
output = "output0"
"#;

    #[test]
    fn parses_a_good_manifest_with_defaults() {
        let m = ModelManifest::parse(Path::new("/m/t.toml"), GOOD).unwrap();
        assert_eq!(m.model_path, Path::new("/m/t.onnx"));
        assert_eq!(m.classes, ["a", "b"]);
        assert_eq!(m.input.resize, ResizeMode::Letterbox);
        assert_eq!(m.input.channels, ChannelOrder::Rgb);
        assert_eq!(m.input.std, [255.0; 3]);
        assert_eq!(m.postprocess, PostprocessSpec::default());
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let text = GOOD.replace("width = 32", "widht = 32");
        let err = ModelManifest::parse(Path::new("m.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("m.toml"), "{err}");
        assert!(err.contains("widht"), "{err}");
        assert!(err.contains("line 7"), "{err}");
    }

    #[test]
    fn missing_classes_and_bad_values_are_refused() {
        let text = GOOD.replace("classes = [\"a\", \"b\"]", "");
        let err = ModelManifest::parse(Path::new("m.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`classes`"), "{err}");
        let text = format!("{GOOD}\n[postprocess]\nscore_threshold = 1.5\n");
        let err = ModelManifest::parse(Path::new("m.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("postprocess.score_threshold"), "{err}");
        let text = GOOD.replace("name = \"t\"", "name = \"t\"\nsha256 = \"xyz\"");
        let err = ModelManifest::parse(Path::new("m.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sha256"), "{err}");
    }
}

//! Decoding: video files through FFmpeg, still images through OpenCV, the [`Frame`]
//! type, and sampling (which frames are decoded and looked at).

pub mod convert;
pub mod file;
pub mod frame;
pub mod image;
pub mod log;
pub mod nal;
pub mod plan;
pub mod sample;
pub mod stream;

use std::path::{Path, PathBuf};

pub use file::{ClipInfo, DecodeStats, FileDecoder};
pub use frame::Frame;
pub use image::read_image;
pub use sample::{Sampler, Sampling};
pub use stream::{StreamDecoder, VideoCodec};

/// What can go wrong reading frames. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be opened as video.
    #[error("cannot open video {}: {message}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Decoding failed part-way.
    #[error("cannot decode video {}: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// An image could not be read.
    #[error("cannot read image {}: {message}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The input path is not something gridwatch can read.
    #[error("{}: {message}", path.display())]
    Input {
        /// The path given.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// File extensions read as still images.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

/// What a path given on the command line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One still image.
    Image(PathBuf),
    /// The images of a directory, sorted by name.
    Images(PathBuf, Vec<PathBuf>),
    /// A video file.
    Clip(PathBuf),
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

impl Input {
    /// Classifies `path`: a directory of images, an image (by extension), or else a
    /// video file. A missing path or a directory without images is an error.
    pub fn classify(path: &Path) -> Result<Self, DecodeError> {
        let bad = |message: String| DecodeError::Input {
            path: path.to_path_buf(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        if meta.is_dir() {
            let mut images: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| bad(format!("cannot list the directory: {e}")))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if images.is_empty() {
                return Err(bad(format!(
                    "the directory holds no images ({})",
                    IMAGE_EXTENSIONS.join(", ")
                )));
            }
            images.sort();
            Ok(Self::Images(path.to_path_buf(), images))
        } else if is_image(path) {
            Ok(Self::Image(path.to_path_buf()))
        } else {
            Ok(Self::Clip(path.to_path_buf()))
        }
    }
}

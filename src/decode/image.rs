//! Still images through OpenCV's codecs (the same decoder a Python pipeline uses).

use std::path::Path;

use opencv::imgcodecs;
use opencv::prelude::*;

use super::{DecodeError, Frame};

/// Reads an image file into `out` as BGR (EXIF orientation applied, as `cv2.imread`
/// does). Errors name the file.
pub fn read_image(path: &Path, out: &mut Frame) -> Result<(), DecodeError> {
    let err = |message: String| DecodeError::Image {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(err("no such file".into()));
    }
    let name = path
        .to_str()
        .ok_or_else(|| err("the path is not valid UTF-8".into()))?;
    let mat = imgcodecs::imread(name, imgcodecs::IMREAD_COLOR).map_err(|e| err(e.to_string()))?;
    if mat.empty() {
        return Err(err(
            "not an image OpenCV can decode (corrupt or unsupported format)".into(),
        ));
    }
    into_frame(&mat, out).map_err(err)
}

/// Decodes an image held in memory (JPEG, PNG, …) into `out` as BGR; the error
/// says what is wrong with it.
pub fn decode_image(bytes: &[u8], out: &mut Frame) -> Result<(), String> {
    let buf = opencv::core::Vector::<u8>::from_slice(bytes);
    let mat = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR).map_err(|e| e.to_string())?;
    if mat.empty() {
        return Err("not an image OpenCV can decode (corrupt or unsupported format)".into());
    }
    into_frame(&mat, out)
}

fn into_frame(mat: &opencv::core::Mat, out: &mut Frame) -> Result<(), String> {
    let (w, h) = (mat.cols() as u32, mat.rows() as u32);
    out.reshape(w, h);
    let bytes = mat.data_bytes().map_err(|e| e.to_string())?;
    let n = out.data.len();
    out.data.copy_from_slice(&bytes[..n]);
    out.index = 0;
    out.pts_ms = None;
    out.keyframe = true;
    Ok(())
}

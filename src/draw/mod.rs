//! Annotated frames: boxes and labels drawn on a copy of the frame, written as JPEG;
//! and short MP4 clips of a few images ([`mp4`]).

pub mod mp4;

use std::path::Path;

use opencv::core::{Mat, Point, Rect, Scalar, Vector, CV_8UC3};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;

use crate::decode::Frame;
use crate::detect::Detection;

/// Box colours (BGR), picked by class id.
const PALETTE: [(f64, f64, f64); 8] = [
    (56.0, 56.0, 255.0),
    (151.0, 157.0, 255.0),
    (31.0, 112.0, 255.0),
    (29.0, 178.0, 255.0),
    (49.0, 210.0, 207.0),
    (10.0, 249.0, 72.0),
    (23.0, 204.0, 146.0),
    (134.0, 219.0, 61.0),
];

/// Draws `dets` on a copy of `frame` and writes it to `path` as a JPEG of the given
/// quality (1..=100). `canvas` is reused between calls.
pub fn write_annotated(
    path: &Path,
    frame: &Frame,
    dets: &[Detection],
    classes: &[String],
    quality: i32,
    canvas: &mut Mat,
) -> opencv::Result<()> {
    copy_to_canvas(frame, canvas)?;
    let thickness = ((frame.width.max(frame.height) as f64 / 640.0).round() as i32).max(1);
    let font_scale = 0.4 * thickness as f64 + 0.1;
    for d in dets {
        let (r, g, b) = PALETTE[d.class_id as usize % PALETTE.len()];
        let colour = Scalar::new(r, g, b, 0.0);
        let [x1, y1, x2, y2] = d.bbox.map(|v| v.round() as i32);
        imgproc::rectangle(
            canvas,
            Rect::new(x1, y1, (x2 - x1).max(1), (y2 - y1).max(1)),
            colour,
            thickness,
            imgproc::LINE_8,
            0,
        )?;
        let name = classes
            .get(d.class_id as usize)
            .map(String::as_str)
            .unwrap_or("?");
        let label = format!("{name} {:.2}", d.score);
        let mut baseline = 0;
        let size = imgproc::get_text_size(
            &label,
            imgproc::FONT_HERSHEY_SIMPLEX,
            font_scale,
            thickness,
            &mut baseline,
        )?;
        // keep the label inside the frame
        let x1 = x1.min(frame.width as i32 - size.width).max(0);
        let top = if y1 - size.height - baseline >= 0 {
            y1 - size.height - baseline
        } else {
            y1
        };
        imgproc::rectangle(
            canvas,
            Rect::new(x1, top, size.width, size.height + baseline),
            colour,
            imgproc::FILLED,
            imgproc::LINE_8,
            0,
        )?;
        imgproc::put_text(
            canvas,
            &label,
            Point::new(x1, top + size.height),
            imgproc::FONT_HERSHEY_SIMPLEX,
            font_scale,
            Scalar::new(255.0, 255.0, 255.0, 0.0),
            thickness,
            imgproc::LINE_AA,
            false,
        )?;
    }
    write_jpeg(path, canvas, quality)
}

/// Copies a frame into an OpenCV image, reusing `canvas` when it has the right size.
pub fn copy_to_canvas(frame: &Frame, canvas: &mut Mat) -> opencv::Result<()> {
    if canvas.rows() != frame.height as i32 || canvas.cols() != frame.width as i32 {
        *canvas = Mat::new_rows_cols_with_default(
            frame.height as i32,
            frame.width as i32,
            CV_8UC3,
            Scalar::all(0.0),
        )?;
    }
    canvas.data_bytes_mut()?.copy_from_slice(&frame.data);
    Ok(())
}

/// Writes an image as JPEG of the given quality (1..=100).
pub fn write_jpeg(path: &Path, image: &Mat, quality: i32) -> opencv::Result<()> {
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality.clamp(1, 100)]);
    let name = path.to_string_lossy();
    if !imgcodecs::imwrite(name.as_ref(), image, &params)? {
        return Err(opencv::Error::new(
            opencv::core::StsError,
            format!("could not write {name}"),
        ));
    }
    Ok(())
}

/// Writes a frame as it is, losslessly (PNG).
pub fn write_png(path: &Path, frame: &Frame) -> opencv::Result<()> {
    let mat = frame_mat(frame)?;
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_PNG_COMPRESSION, 1]);
    let name = path.to_string_lossy();
    if !imgcodecs::imwrite(name.as_ref(), &mat, &params)? {
        return Err(opencv::Error::new(
            opencv::core::StsError,
            format!("could not write {name}"),
        ));
    }
    Ok(())
}

/// A frame as JPEG bytes of the given quality.
pub fn encode_jpeg(frame: &Frame, quality: i32) -> opencv::Result<Vec<u8>> {
    encode_mat(&frame_mat(frame)?, quality)
}

/// An image as JPEG bytes of the given quality (1..=100).
pub fn encode_mat(image: &Mat, quality: i32) -> opencv::Result<Vec<u8>> {
    let mut buf: Vector<u8> = Vector::new();
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality.clamp(1, 100)]);
    imgcodecs::imencode(".jpg", image, &mut buf, &params)?;
    Ok(buf.to_vec())
}

/// A copy of a BGR image (8-bit, 3 channels) as a frame.
pub fn mat_frame(image: &Mat) -> opencv::Result<Frame> {
    let image = match image.is_continuous() {
        true => image.clone(),
        false => image.try_clone()?,
    };
    let mut f = Frame::filled(
        image.cols().max(0) as u32,
        image.rows().max(0) as u32,
        [0; 3],
    );
    f.data.copy_from_slice(image.data_bytes()?);
    Ok(f)
}

/// An OpenCV header over a frame's pixels (no copy). The Mat must not outlive the
/// frame, nor be used after the frame is resized.
pub fn frame_mat(frame: &Frame) -> opencv::Result<Mat> {
    // SAFETY: the buffer holds height rows of width * 3 bytes; callers only read it
    // while the frame is alive and unchanged.
    unsafe {
        Mat::new_rows_cols_with_data_unsafe(
            frame.height as i32,
            frame.width as i32,
            CV_8UC3,
            frame.data.as_ptr() as *mut std::ffi::c_void,
            frame.stride(),
        )
    }
}

//! Preprocessing: a BGR frame becomes one item of the model's float input tensor.
//!
//! Resizing uses OpenCV's `INTER_LINEAR`, the filter Python pipelines use, so scores
//! match a Python reference to the third decimal. Normalisation is a per-channel lookup
//! table (256 entries), and the resize target is kept between calls: no allocation per
//! frame once the sizes are settled.

use std::ffi::c_void;

use opencv::core::{Mat, Size, CV_8UC3};
use opencv::imgproc;
use opencv::prelude::*;

use super::manifest::{ChannelOrder, InputSpec, ResizeMode, TensorLayout};
use super::DetectError;
use crate::decode::Frame;

/// How model-input pixels map back to frame pixels:
/// `frame_x = (x - pad_x) / scale_x`, `frame_y = (y - pad_y) / scale_y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputTransform {
    /// Horizontal scale, model pixels per frame pixel.
    pub scale_x: f32,
    /// Vertical scale, model pixels per frame pixel.
    pub scale_y: f32,
    /// Left padding in model pixels.
    pub pad_x: f32,
    /// Top padding in model pixels.
    pub pad_y: f32,
    /// Frame width, for clipping.
    pub frame_w: f32,
    /// Frame height, for clipping.
    pub frame_h: f32,
}

impl InputTransform {
    /// Maps a model-space box to frame pixels, clipped to the frame.
    pub fn to_frame(&self, b: [f32; 4]) -> [f32; 4] {
        let x = |v: f32| ((v - self.pad_x) / self.scale_x).clamp(0.0, self.frame_w);
        let y = |v: f32| ((v - self.pad_y) / self.scale_y).clamp(0.0, self.frame_h);
        [x(b[0]), y(b[1]), x(b[2]), y(b[3])]
    }
}

/// Resized size and padding for a frame, per the manifest's resize mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Width of the resized image inside the input.
    pub w: u32,
    /// Height of the resized image inside the input.
    pub h: u32,
    /// Left padding.
    pub left: u32,
    /// Top padding.
    pub top: u32,
}

/// Where a `frame_w` × `frame_h` frame lands in the model input.
pub fn placement(spec: &InputSpec, frame_w: u32, frame_h: u32) -> Placement {
    match spec.resize {
        ResizeMode::Stretch => Placement {
            w: spec.width,
            h: spec.height,
            left: 0,
            top: 0,
        },
        ResizeMode::Letterbox => {
            let r = (spec.width as f64 / frame_w as f64).min(spec.height as f64 / frame_h as f64);
            let w = ((frame_w as f64 * r).round() as u32).clamp(1, spec.width);
            let h = ((frame_h as f64 * r).round() as u32).clamp(1, spec.height);
            // Ultralytics' split of odd padding: round(d - 0.1) before, the rest after.
            let left = ((spec.width - w) as f64 / 2.0 - 0.1).round().max(0.0) as u32;
            let top = ((spec.height - h) as f64 / 2.0 - 0.1).round().max(0.0) as u32;
            Placement { w, h, left, top }
        }
    }
}

/// Turns frames into input tensor items, reusing its buffers.
pub struct Preprocessor {
    spec: InputSpec,
    /// `lut[c][v]`: the normalised value of byte `v` in tensor channel `c`.
    lut: [[f32; 256]; 3],
    /// Normalised padding value per tensor channel.
    pad: [f32; 3],
    resized: Mat,
}

impl Preprocessor {
    /// A preprocessor for the given input description.
    pub fn new(spec: &InputSpec) -> Self {
        let mut lut = [[0.0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 - spec.mean[c]) / spec.std[c];
            }
        }
        let pad = std::array::from_fn(|c| (spec.pad as f32 - spec.mean[c]) / spec.std[c]);
        Self {
            spec: spec.clone(),
            lut,
            pad,
            resized: Mat::default(),
        }
    }

    /// Number of floats one frame occupies in the tensor.
    pub fn item_len(&self) -> usize {
        self.spec.width as usize * self.spec.height as usize * 3
    }

    /// Writes `frame` into `out` (exactly [`Self::item_len`] floats) and returns how to
    /// map boxes back.
    pub fn run(&mut self, frame: &Frame, out: &mut [f32]) -> Result<InputTransform, DetectError> {
        assert_eq!(
            out.len(),
            self.item_len(),
            "tensor slice has the wrong length"
        );
        if frame.width == 0
            || frame.height == 0
            || frame.data.len() != frame.stride() * frame.height as usize
        {
            return Err(DetectError::BadFrame(format!(
                "{}x{} frame with {} bytes",
                frame.width,
                frame.height,
                frame.data.len()
            )));
        }
        let place = placement(&self.spec, frame.width, frame.height);
        let pixels: &[u8] = if place.w == frame.width && place.h == frame.height {
            &frame.data
        } else {
            // SAFETY: the Mat borrows `frame.data` only for the duration of `resize`, the
            // buffer holds rows × stride bytes (checked above) and OpenCV only reads it.
            let src = unsafe {
                Mat::new_rows_cols_with_data_unsafe(
                    frame.height as i32,
                    frame.width as i32,
                    CV_8UC3,
                    frame.data.as_ptr() as *mut c_void,
                    frame.stride(),
                )
            }
            .map_err(cv_err)?;
            imgproc::resize(
                &src,
                &mut self.resized,
                Size::new(place.w as i32, place.h as i32),
                0.0,
                0.0,
                imgproc::INTER_LINEAR,
            )
            .map_err(cv_err)?;
            self.resized.data_bytes().map_err(cv_err)?
        };
        fill_tensor(&self.spec, &self.lut, self.pad, &place, pixels, out);
        Ok(InputTransform {
            scale_x: place.w as f32 / frame.width as f32,
            scale_y: place.h as f32 / frame.height as f32,
            pad_x: place.left as f32,
            pad_y: place.top as f32,
            frame_w: frame.width as f32,
            frame_h: frame.height as f32,
        })
    }
}

fn cv_err(e: opencv::Error) -> DetectError {
    DetectError::BadFrame(format!("OpenCV: {e}"))
}

/// Writes the resized BGR `pixels` (place.w × place.h) into the tensor item, padding
/// around them, converting channel order and layout through the lookup tables.
fn fill_tensor(
    spec: &InputSpec,
    lut: &[[f32; 256]; 3],
    pad: [f32; 3],
    place: &Placement,
    pixels: &[u8],
    out: &mut [f32],
) {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let (pw, ph) = (place.w as usize, place.h as usize);
    let (left, top) = (place.left as usize, place.top as usize);
    // source byte offset (within a BGR pixel) of tensor channel c
    let src_ch: [usize; 3] = match spec.channels {
        ChannelOrder::Bgr => [0, 1, 2],
        ChannelOrder::Rgb => [2, 1, 0],
    };
    let padded = pw != w || ph != h;
    match spec.layout {
        TensorLayout::Nchw => {
            let plane = w * h;
            for c in 0..3 {
                let dst = &mut out[c * plane..(c + 1) * plane];
                if padded {
                    dst.fill(pad[c]);
                }
                let table = &lut[c];
                let sc = src_ch[c];
                for y in 0..ph {
                    let row = &pixels[y * pw * 3..(y + 1) * pw * 3];
                    let drow = &mut dst[(y + top) * w + left..(y + top) * w + left + pw];
                    for (d, px) in drow.iter_mut().zip(row.chunks_exact(3)) {
                        *d = table[px[sc] as usize];
                    }
                }
            }
        }
        TensorLayout::Nhwc => {
            if padded {
                for px in out.chunks_exact_mut(3) {
                    px.copy_from_slice(&pad);
                }
            }
            for y in 0..ph {
                let row = &pixels[y * pw * 3..(y + 1) * pw * 3];
                let start = ((y + top) * w + left) * 3;
                let drow = &mut out[start..start + pw * 3];
                for (d, px) in drow.chunks_exact_mut(3).zip(row.chunks_exact(3)) {
                    for c in 0..3 {
                        d[c] = lut[c][px[src_ch[c]] as usize];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(w: u32, h: u32, resize: ResizeMode) -> InputSpec {
        InputSpec {
            name: "x".into(),
            width: w,
            height: h,
            layout: TensorLayout::Nchw,
            channels: ChannelOrder::Rgb,
            mean: [0.0; 3],
            std: [255.0; 3],
            resize,
            pad: 114,
        }
    }

    #[test]
    fn letterbox_centres_and_maps_back() {
        let s = spec(32, 32, ResizeMode::Letterbox);
        let p = placement(&s, 64, 32);
        assert_eq!(
            p,
            Placement {
                w: 32,
                h: 16,
                left: 0,
                top: 8
            }
        );
        let mut pre = Preprocessor::new(&s);
        let mut out = vec![0.0; pre.item_len()];
        let frame = Frame::filled(64, 32, [255, 0, 0]); // blue
        let t = pre.run(&frame, &mut out).unwrap();
        // top padding row is grey in all channels; the image's blue is in channel 2 (RGB)
        assert!((out[0] - 114.0 / 255.0).abs() < 1e-6);
        assert_eq!(out[2 * 1024 + 16 * 32 + 5], 1.0);
        assert_eq!(out[16 * 32 + 5], 0.0);
        // model box (0, 8)-(32, 24) is the whole frame
        assert_eq!(t.to_frame([0.0, 8.0, 32.0, 24.0]), [0.0, 0.0, 64.0, 32.0]);
        // boxes outside are clipped
        assert_eq!(t.to_frame([-5.0, 0.0, 40.0, 30.0]), [0.0, 0.0, 64.0, 32.0]);
    }

    #[test]
    fn stretch_normalises_in_bgr_nhwc() {
        let mut s = spec(4, 2, ResizeMode::Stretch);
        s.channels = ChannelOrder::Bgr;
        s.layout = TensorLayout::Nhwc;
        s.mean = [10.0, 20.0, 30.0];
        s.std = [2.0, 4.0, 5.0];
        let mut pre = Preprocessor::new(&s);
        let mut out = vec![0.0; pre.item_len()];
        let t = pre
            .run(&Frame::filled(8, 4, [30, 60, 80]), &mut out)
            .unwrap();
        assert_eq!(&out[..3], &[10.0, 10.0, 10.0]);
        assert_eq!((t.scale_x, t.scale_y, t.pad_x), (0.5, 0.5, 0.0));
    }

    #[test]
    fn refuses_a_frame_whose_buffer_does_not_match_its_size() {
        let mut pre = Preprocessor::new(&spec(4, 4, ResizeMode::Stretch));
        let mut out = vec![0.0; pre.item_len()];
        let mut f = Frame::filled(8, 8, [0, 0, 0]);
        f.data.truncate(10);
        assert!(pre.run(&f, &mut out).is_err());
    }
}

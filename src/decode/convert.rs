//! Decoded FFmpeg pictures → packed BGR [`Frame`]s through swscale.
//!
//! Same size, bicubic flags: what OpenCV's `VideoCapture` does, so frames are
//! bit-identical to what a Python pipeline reads.

use std::ptr;

use ffmpeg::ffi;
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use super::Frame;

/// A cached swscale context converting any decoded format to BGR24 at the same size.
pub struct BgrConverter {
    sws: *mut ffi::SwsContext,
}

// SAFETY: the context is owned here and only used through &mut self.
unsafe impl Send for BgrConverter {}

impl Default for BgrConverter {
    fn default() -> Self {
        Self {
            sws: ptr::null_mut(),
        }
    }
}

impl Drop for BgrConverter {
    fn drop(&mut self) {
        if !self.sws.is_null() {
            // SAFETY: created by sws_getCachedContext and freed only here.
            unsafe { ffi::sws_freeContext(self.sws) };
        }
    }
}

impl BgrConverter {
    /// Converts `src` into `out` (resized to the picture's size, buffer reused).
    /// Errors are messages for the caller to wrap with the source's name.
    pub fn convert(&mut self, src: &ffmpeg::frame::Video, out: &mut Frame) -> Result<(), String> {
        let (w, h) = (src.width(), src.height());
        if w == 0 || h == 0 || src.format() == Pixel::None {
            return Err("the decoder returned an empty picture".into());
        }
        let format: ffi::AVPixelFormat = src.format().into();
        out.reshape(w, h);
        // swscale's SIMD may write a little past the last row's end
        out.data.reserve(64);
        // SAFETY: the cached context matches (w, h, format) → BGR24 (w, h); the
        // destination holds h rows of w * 3 bytes plus slack; the source planes belong
        // to a picture the decoder just filled.
        unsafe {
            self.sws = ffi::sws_getCachedContext(
                self.sws,
                w as i32,
                h as i32,
                format,
                w as i32,
                h as i32,
                ffi::AVPixelFormat::AV_PIX_FMT_BGR24,
                ffi::SWS_BICUBIC,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            );
            if self.sws.is_null() {
                return Err(format!(
                    "cannot convert pixel format {:?} to BGR",
                    src.format()
                ));
            }
            let s = src.as_ptr();
            let dst = [
                out.data.as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            ];
            let dst_stride = [(w * 3) as i32, 0, 0, 0];
            ffi::sws_scale(
                self.sws,
                (*s).data.as_ptr() as *const *const u8,
                (*s).linesize.as_ptr(),
                0,
                h as i32,
                dst.as_ptr(),
                dst_stride.as_ptr(),
            );
        }
        Ok(())
    }
}

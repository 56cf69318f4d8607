//! A high-resolution close-up of a violation's subject from the camera's main stream.
//!
//! Cameras offer two streams of one view: a main stream (1080p, 4K) and a substream
//! (D1, 720p). Detection runs on the substream, which costs a fraction to decode; when
//! a violation opens a case, the service fetches one keyframe of the main stream (the
//! service's detail worker) and this module cuts the subject out of it.
//!
//! The two streams show the same view, but nothing guarantees it (a camera whose main
//! stream is another lens, or a URL that names the wrong channel), and the main-stream
//! frame comes a few seconds after the violation's. So the main frame is first
//! *registered* against the substream frame the violation was found in: both are
//! brought to one small grey size (each stretched on its own axes, as a D1 substream of
//! a 16:9 camera is anamorphic), phase correlation finds the shift between them, and
//! the normalised correlation of the two once aligned says whether they show the same
//! view. At [`MIN_SIMILARITY`] or above, the detection's box is mapped to main-stream
//! pixels (scaled per axis, moved by the shift) and cut out with a margin; below it the
//! photo is the substream's close-up again, with a strip that says why.
//!
//! Privacy holds as for every photo: the boxes pixelated in the substream's photos are
//! mapped the same way and pixelated in the main stream's close-up.

use opencv::core::{self, Mat, Point2d, Rect, Scalar, Size, Vector};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;

use super::caption::local_time;
use super::evidence::{close_up_rect, overlaps, Captions};
use super::privacy::pixelate;
use crate::cases::photo::{Photo, PhotoRole};

/// Width of the grey thumbnails registered (their height keeps the substream's shape).
pub const THUMB_WIDTH: i32 = 256;
/// Normalised correlation of the aligned thumbnails at which the main stream counts as
/// showing the detection's view.
pub const MIN_SIMILARITY: f64 = 0.6;
/// A close-up narrower than this is set on a wider band, so that its strip is legible.
const MIN_CAPTIONED_WIDTH: i32 = 640;
/// JPEG quality of the close-up.
const QUALITY: i32 = 90;

/// Where a camera's main stream is read.
#[derive(Clone, PartialEq, Eq)]
pub struct MainStream {
    /// `rtsp://…`, credentials allowed (never logged).
    pub url: url::Url,
    /// RTP over UDP (else interleaved in the TCP connection).
    pub udp: bool,
}

impl std::fmt::Debug for MainStream {
    /// Without the URL's user, password and query values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut u = self.url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.set_query(None);
        write!(f, "MainStream({u}, udp: {})", self.udp)
    }
}

/// What the detail worker needs to make a violation's main-stream close-up: the
/// violation's box and the boxes to pixelate in substream pixels, a grey thumbnail of
/// the substream frame to register against, and the substream close-up to fall back to.
#[derive(Debug, Clone)]
pub struct DetailRequest {
    /// The camera's main stream.
    pub main: std::sync::Arc<MainStream>,
    /// When the violation was seen, ms since the Unix epoch.
    pub at_ms: i64,
    /// The subject's box, substream pixels.
    pub bbox: [f32; 4],
    /// The boxes pixelated in the violation's photos, substream pixels.
    pub blur: Vec<[f32; 4]>,
    /// The substream frame's size.
    pub size: (u32, u32),
    /// Grey thumbnail of the substream frame, [`THUMB_WIDTH`] wide, row by row.
    pub thumb: Vec<u8>,
    /// Its height.
    pub thumb_height: i32,
    /// The substream's close-up (private), JPEG, and its original when one was kept.
    pub fallback: Photo,
    /// Keep an unblurred original of a close-up in which something was pixelated.
    pub originals: bool,
    /// The strip's drawer (none: no strip).
    pub captions: Option<Captions>,
    /// What and where, for the strip: the kind and zone (`parking  zone z1`), then the
    /// camera's line and the place's line of the violation's strips.
    pub words: [String; 3],
}

impl DetailRequest {
    /// A request for the violation in `frame` (BGR, unblurred), its `bbox` and the
    /// `blur` boxes, falling back to `fallback` (the substream close-up).
    pub fn new(
        main: std::sync::Arc<MainStream>,
        frame: &Mat,
        at_ms: i64,
        bbox: [f32; 4],
        blur: Vec<[f32; 4]>,
        fallback: Photo,
        words: [String; 3],
    ) -> opencv::Result<Self> {
        let size = (frame.cols() as u32, frame.rows() as u32);
        let thumb_height =
            ((THUMB_WIDTH as f64 * size.1 as f64 / size.0.max(1) as f64).round() as i32).max(8);
        let thumb = grey_at(frame, Size::new(THUMB_WIDTH, thumb_height))?;
        Ok(Self {
            main,
            at_ms,
            bbox,
            blur,
            size,
            thumb: thumb.data_bytes()?.to_vec(),
            thumb_height,
            fallback,
            originals: false,
            captions: None,
            words,
        })
    }
}

/// How a main-stream frame lies over the substream frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Registration {
    /// Normalised correlation of the aligned thumbnails, −1 to 1.
    pub similarity: f64,
    /// Main-stream pixels per substream pixel, per axis.
    pub scale: (f64, f64),
    /// The main stream's content moved by this much against the substream's, in main
    /// pixels (a point at substream `p` is at `p · scale + shift`).
    pub shift: (f64, f64),
}

impl Registration {
    /// Whether the main stream shows the detection's view.
    pub fn matched(&self) -> bool {
        self.similarity >= MIN_SIMILARITY
    }

    /// A substream box in main-stream pixels.
    pub fn map(&self, b: [f32; 4]) -> [f32; 4] {
        let (sx, sy) = self.scale;
        let (dx, dy) = self.shift;
        [
            (b[0] as f64 * sx + dx) as f32,
            (b[1] as f64 * sy + dy) as f32,
            (b[2] as f64 * sx + dx) as f32,
            (b[3] as f64 * sy + dy) as f32,
        ]
    }
}

/// The grey copy of `bgr` stretched to `size`.
fn grey_at(bgr: &Mat, size: Size) -> opencv::Result<Mat> {
    let mut small = Mat::default();
    imgproc::resize(bgr, &mut small, size, 0.0, 0.0, imgproc::INTER_AREA)?;
    let mut grey = Mat::default();
    imgproc::cvt_color_def(&small, &mut grey, imgproc::COLOR_BGR2GRAY)?;
    Ok(grey)
}

/// Registers `main` (BGR, the main stream's frame) against the request's substream
/// thumbnail.
pub fn register(req: &DetailRequest, main: &Mat) -> opencv::Result<Registration> {
    let size = Size::new(THUMB_WIDTH, req.thumb_height);
    let sub = Mat::new_rows_cols_with_data(req.thumb_height, THUMB_WIDTH, &req.thumb)?;
    let other = grey_at(main, size)?;
    let (mut a, mut b) = (Mat::default(), Mat::default());
    sub.convert_to_def(&mut a, core::CV_32F)?;
    other.convert_to_def(&mut b, core::CV_32F)?;
    let mut window = Mat::default();
    imgproc::create_hanning_window(&mut window, size, core::CV_32F)?;
    let mut response = 0.0;
    let d: Point2d = imgproc::phase_correlate(&a, &b, &window, Some(&mut response))?;
    // the main thumbnail moved back by the shift, compared inside the part both cover
    let m = Mat::from_slice_2d(&[[1.0f64, 0.0, -d.x], [0.0, 1.0, -d.y]])?;
    let mut back = Mat::default();
    imgproc::warp_affine(
        &b,
        &mut back,
        &m,
        size,
        imgproc::INTER_LINEAR,
        core::BORDER_REPLICATE,
        Scalar::default(),
    )?;
    let (mx, my) = (d.x.abs().ceil() as i32 + 2, d.y.abs().ceil() as i32 + 2);
    let similarity = if 2 * mx >= size.width - 8 || 2 * my >= size.height - 8 {
        0.0
    } else {
        let inner = Rect::new(mx, my, size.width - 2 * mx, size.height - 2 * my);
        ncc(&Mat::roi(&a, inner)?, &Mat::roi(&back, inner)?)?
    };
    let (mw, mh) = (main.cols() as f64, main.rows() as f64);
    Ok(Registration {
        similarity,
        scale: (mw / req.size.0.max(1) as f64, mh / req.size.1.max(1) as f64),
        shift: (
            d.x * mw / THUMB_WIDTH as f64,
            d.y * mh / req.thumb_height as f64,
        ),
    })
}

/// Zero-mean normalised correlation of two images of one size (0 when either is flat).
fn ncc(a: &impl core::ToInputArray, b: &impl core::ToInputArray) -> opencv::Result<f64> {
    if flat(a)? || flat(b)? {
        return Ok(0.0);
    }
    let mut out = Mat::default();
    imgproc::match_template_def(a, b, &mut out, imgproc::TM_CCOEFF_NORMED)?;
    let v = *out.at_2d::<f32>(0, 0)? as f64;
    Ok(if v.is_finite() { v } else { 0.0 })
}

/// Whether an image is (nearly) one grey: nothing to correlate.
fn flat(m: &impl core::ToInputArray) -> opencv::Result<bool> {
    let (mut mean, mut sd) = (Mat::default(), Mat::default());
    core::mean_std_dev_def(m, &mut mean, &mut sd)?;
    Ok(*sd.at::<f64>(0)? < 1.0)
}

/// The case's detail photo: the subject cut out of `main` (taken at `main_at_ms`) when
/// it registers against the request's view, else the substream close-up; each with a
/// strip saying which (when captions are on). With how it registered.
pub fn detail_photo(
    req: &DetailRequest,
    main: &Mat,
    main_at_ms: i64,
) -> opencv::Result<(Photo, Registration)> {
    let reg = register(req, main)?;
    if !reg.matched() {
        let why = format!(
            "main stream {}x{} did not match the detection view (similarity {:.2}): close-up from the detection stream",
            main.cols(),
            main.rows(),
            reg.similarity
        );
        return Ok((fallback(req, &why)?, reg));
    }
    let rect = close_up_rect(reg.map(req.bbox), main.cols(), main.rows());
    let clean = Mat::roi(main, rect)?.try_clone()?;
    // the pixelated boxes in main pixels, those in the close-up moved into it
    let (ox, oy) = (rect.x as f32, rect.y as f32);
    let blur: Vec<[f32; 4]> = req
        .blur
        .iter()
        .map(|b| reg.map(*b))
        .filter(|b| overlaps(b, rect))
        .map(|[a, b, c, d]| [a - ox, b - oy, c - ox, d - oy])
        .collect();
    let mut private = clean.try_clone()?;
    pixelate(&mut private, blur.iter().copied())?;
    let note = format!(
        "main stream {}x{}, matched the detection view (similarity {:.2})",
        main.cols(),
        main.rows(),
        reg.similarity
    );
    let lines = lines(req, main_at_ms, &note);
    let original = match req.originals && !blur.is_empty() {
        true => Some(finish(req, &clean, &lines)?),
        false => None,
    };
    let photo = Photo {
        role: PhotoRole::Detail,
        at_ms: main_at_ms,
        jpeg: finish(req, &private, &lines)?,
        original,
    };
    Ok((photo, reg))
}

/// The substream close-up as the detail photo, with `why` on its strip: when the main
/// stream did not match, or could not be had.
pub fn fallback(req: &DetailRequest, why: &str) -> opencv::Result<Photo> {
    let lines = lines(req, req.at_ms, why);
    let again = |jpeg: &[u8]| -> opencv::Result<Vec<u8>> {
        let img = imgcodecs::imdecode(&Vector::from_slice(jpeg), imgcodecs::IMREAD_COLOR)?;
        finish(req, &img, &lines)
    };
    Ok(Photo {
        role: PhotoRole::Detail,
        at_ms: req.at_ms,
        jpeg: again(&req.fallback.jpeg)?,
        original: req.fallback.original.as_deref().map(again).transpose()?,
    })
}

/// The strip's lines: when and what, the camera, the place, and where the picture came
/// from.
fn lines(req: &DetailRequest, at_ms: i64, note: &str) -> Vec<String> {
    let tz = req.captions.as_ref().and_then(|c| c.tz);
    let [what, camera, place] = &req.words;
    vec![
        format!(
            "{}  {}  {what}",
            local_time(at_ms, tz),
            PhotoRole::Detail.label()
        ),
        camera.clone(),
        place.clone(),
        note.to_string(),
    ]
}

/// The image as stored: on a band at least [`MIN_CAPTIONED_WIDTH`] wide with its strip
/// when captions are on; JPEG.
fn finish(req: &DetailRequest, image: &Mat, lines: &[String]) -> opencv::Result<Vec<u8>> {
    let Some(c) = &req.captions else {
        return crate::draw::encode_mat(image, QUALITY);
    };
    let mut wide = Mat::default();
    let pad = (MIN_CAPTIONED_WIDTH - image.cols()).max(0);
    core::copy_make_border(
        image,
        &mut wide,
        0,
        0,
        pad / 2,
        pad - pad / 2,
        core::BORDER_CONSTANT,
        Scalar::all(0.0),
    )?;
    crate::draw::encode_mat(&c.captioner.caption(&wide, lines)?, QUALITY)
}

#[cfg(test)]
#[path = "detail_tests.rs"]
mod tests;

//! The parts of the view check that look at pictures: a picture's keypoints, its
//! registration against a reference (a homography fitted with RANSAC, and how far it
//! moves the frame), sharpness, brightness, and the quick comparison of two small
//! thumbnails that decides whether a sample needs registering at all.

use opencv::core::{self, DMatch, KeyPoint, Mat, Point2f, Size, Vector};
use opencv::features2d::{BFMatcher, ORB};
use opencv::prelude::*;
use opencv::{calib3d, imgproc};

use super::ViewConfig;

/// A picture as the check sees it: keypoints and descriptors of its grey copy, and
/// its sharpness. A reference view is one of these, with the frame size it was taken
/// at.
pub(super) struct Picture {
    pub keypoints: Vector<KeyPoint>,
    pub descriptors: Mat,
    pub sharpness: f64,
    pub size: (u32, u32),
}

impl Picture {
    /// Keypoints and sharpness of `small` (the grey copy of a `size` frame).
    pub fn of(orb: &mut core::Ptr<ORB>, small: &Mat, size: (u32, u32)) -> opencv::Result<Self> {
        let mut keypoints = Vector::<KeyPoint>::new();
        let mut descriptors = Mat::default();
        orb.detect_and_compute(
            small,
            &core::no_array(),
            &mut keypoints,
            &mut descriptors,
            false,
        )?;
        Ok(Self {
            keypoints,
            descriptors,
            sharpness: sharpness(small)?,
            size,
        })
    }
}

/// What registering a sample against one reference gave.
pub(super) enum Fit {
    /// Too few matches or inliers to trust a homography (how many there were).
    None(usize),
    /// Sample → reference in full-frame pixels, how far it moves the frame's corners
    /// and centre (pixels), and its turn about the centre (degrees).
    Homography {
        h: Mat,
        shift_px: f64,
        rotation_deg: f64,
    },
}

/// Registers `sample` against `reference` (their grey copies scaled down by `scale`
/// from frames of `w`×`h`): ratio-tested matches, a RANSAC homography, carried to
/// full-frame pixels.
pub(super) fn register(
    matcher: &core::Ptr<BFMatcher>,
    cfg: &ViewConfig,
    sample: &Picture,
    reference: &Picture,
    scale: f64,
) -> opencv::Result<Fit> {
    if reference.size != sample.size || sample.descriptors.rows() < 2 {
        return Ok(Fit::None(0));
    }
    let mut knn = Vector::<Vector<DMatch>>::new();
    matcher.knn_train_match(
        &sample.descriptors,
        &reference.descriptors,
        &mut knn,
        2,
        &core::no_array(),
        false,
    )?;
    let mut from = Vector::<Point2f>::new();
    let mut to = Vector::<Point2f>::new();
    for m in knn.iter() {
        if m.len() < 2 {
            continue;
        }
        let (a, b) = (m.get(0)?, m.get(1)?);
        if a.distance < 0.75 * b.distance {
            from.push(sample.keypoints.get(a.query_idx as usize)?.pt());
            to.push(reference.keypoints.get(a.train_idx as usize)?.pt());
        }
    }
    if from.len() < cfg.min_inliers {
        return Ok(Fit::None(from.len()));
    }
    let mut mask = Mat::default();
    let hs = calib3d::find_homography(&from, &to, &mut mask, calib3d::RANSAC, 3.0)?;
    let inliers = if mask.empty() {
        0
    } else {
        core::count_non_zero(&mask)? as usize
    };
    if hs.empty() || inliers < cfg.min_inliers {
        return Ok(Fit::None(inliers));
    }
    // the homography of the small copies, in full-frame pixels: S⁻¹·Hs·S
    let h = full_frame(&hs, scale)?;
    let (w, ht) = (sample.size.0 as f64, sample.size.1 as f64);
    let (shift_px, rotation_deg) = displacement(&h, w, ht)?;
    Ok(Fit::Homography {
        h,
        shift_px,
        rotation_deg,
    })
}

/// Width of the thumbnail the quick comparison works on (pixels).
const THUMB_WIDTH: i32 = 120;
/// A thumbnail pixel that differs by more than this (0–255, after the two
/// thumbnails' mean brightness is evened out) has changed.
const THUMB_CHANGE: i32 = 24;

/// A thumbnail of `small` into `out`, for [`changed_share`].
pub(super) fn thumbnail(small: &Mat, out: &mut Mat) -> opencv::Result<()> {
    let h = (small.rows() as f64 * THUMB_WIDTH as f64 / small.cols().max(1) as f64)
        .round()
        .max(1.0) as i32;
    imgproc::resize(
        small,
        out,
        Size::new(THUMB_WIDTH, h),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
}

/// The share of pixels of two thumbnails that differ, their mean brightness evened
/// out first (light that changes over the day is not a move); 1 when they cannot be
/// compared.
pub(super) fn changed_share(a: &Mat, b: &Mat) -> opencv::Result<f64> {
    if a.size()? != b.size()? || a.empty() {
        return Ok(1.0);
    }
    let (a, b) = (a.data_bytes()?, b.data_bytes()?);
    let mean = |p: &[u8]| p.iter().map(|&v| v as i64).sum::<i64>() / p.len() as i64;
    let offset = (mean(a) - mean(b)) as i32;
    let changed = a
        .iter()
        .zip(b)
        .filter(|(&x, &y)| (x as i32 - y as i32 - offset).abs() > THUMB_CHANGE)
        .count();
    Ok(changed as f64 / a.len() as f64)
}

/// Mean and standard deviation of a grey picture.
pub(super) fn mean_std(m: &Mat) -> opencv::Result<(f64, f64)> {
    let mut mean = Mat::default();
    let mut std = Mat::default();
    core::mean_std_dev(m, &mut mean, &mut std, &core::no_array())?;
    Ok((*mean.at::<f64>(0)?, *std.at::<f64>(0)?))
}

/// The variance of the Laplacian: high for sharp edges, low for blur.
fn sharpness(m: &Mat) -> opencv::Result<f64> {
    let mut lap = Mat::default();
    imgproc::laplacian(m, &mut lap, core::CV_64F, 1, 1.0, 0.0, core::BORDER_DEFAULT)?;
    let (_, std) = mean_std(&lap)?;
    Ok(std * std)
}

/// `S⁻¹·H·S` with `S = diag(1/s, 1/s, 1)`: a homography between small copies scaled
/// down by `s`, as one between the full frames.
fn full_frame(hs: &Mat, s: f64) -> opencv::Result<Mat> {
    let mut out = Mat::new_rows_cols_with_default(3, 3, core::CV_64F, core::Scalar::all(0.0))?;
    for r in 0..3 {
        for c in 0..3 {
            let mut v = *hs.at_2d::<f64>(r, c)?;
            if r < 2 && c == 2 {
                v *= s;
            }
            if r == 2 && c < 2 {
                v /= s;
            }
            *out.at_2d_mut::<f64>(r, c)? = v;
        }
    }
    Ok(out)
}

/// A point through a homography.
pub(super) fn apply(h: &Mat, x: f64, y: f64) -> opencv::Result<(f64, f64)> {
    let g = |r, c| h.at_2d::<f64>(r, c).copied();
    let w = g(2, 0)? * x + g(2, 1)? * y + g(2, 2)?;
    if w.abs() < 1e-9 {
        return Err(opencv::Error::new(core::StsError, "a point at infinity"));
    }
    Ok((
        (g(0, 0)? * x + g(0, 1)? * y + g(0, 2)?) / w,
        (g(1, 0)? * x + g(1, 1)? * y + g(1, 2)?) / w,
    ))
}

/// How far `h` moves a `w`×`h` frame: the largest displacement of its corners and
/// centre (pixels), and its turn about the centre (degrees).
fn displacement(h: &Mat, w: f64, ht: f64) -> opencv::Result<(f64, f64)> {
    let pts = [
        (0.0, 0.0),
        (w, 0.0),
        (0.0, ht),
        (w, ht),
        (w / 2.0, ht / 2.0),
    ];
    let mut worst: f64 = 0.0;
    for &(x, y) in &pts {
        match apply(h, x, y) {
            Ok((u, v)) => worst = worst.max(((u - x).powi(2) + (v - y).powi(2)).sqrt()),
            Err(_) => return Ok((f64::INFINITY, 0.0)),
        }
    }
    let (cx, cy) = apply(h, w / 2.0, ht / 2.0)?;
    let (rx, ry) = apply(h, w / 2.0 + 100.0, ht / 2.0)?;
    let rotation = (ry - cy).atan2(rx - cx).to_degrees();
    Ok((worst, rotation))
}

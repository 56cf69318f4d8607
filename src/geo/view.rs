//! Whether a camera still sees the view its zones and calibration were made for.
//!
//! A camera keeps a **reference view**: the first good frame it sees (lit, textured,
//! sharp), as ORB keypoints of a small grey copy (they survive light changes). Every
//! sample is checked against it ([`ViewWatch::observe`]):
//!
//! - **covered**: almost black, or almost flat (a lens capped, sprayed or blacked out);
//! - **defocused**: sharpness (the variance of the Laplacian) under a fraction of the
//!   reference's (fogged, smeared, knocked out of focus);
//! - **frozen**: the same picture, bit for bit, for many samples while the stream still
//!   delivers (a camera or encoder hung on one image);
//! - then **registration**: the sample's keypoints matched to the reference's (Hamming
//!   distance, ratio test), a homography fitted with RANSAC. Too few matches or inliers:
//!   **changed** (the camera turned away, or the scene is another). Otherwise how far
//!   the view moved is the largest displacement of the frame's corners and centre:
//!   under `steady_px` **steady**; up to `correct_px` (and a turn about the optical
//!   axis up to `correct_deg`) **shifted**, and corrected — the
//!   frame is carried into the reference view through the homography, so zones,
//!   calibration and the rules' pixel references hold; beyond it **moved**.
//!
//! Every state but steady and shifted pauses the camera's rules: no case is ever filed
//! from a view that is not the one its zones were drawn on. Each state says why; a
//! camera recovers by itself when its view comes back.

use opencv::core::{self, DMatch, KeyPoint, Mat, Point2f, Size, Vector, CV_8UC3};
use opencv::features2d::{BFMatcher, ORB};
use opencv::prelude::*;
use opencv::{calib3d, imgproc};
use serde::Serialize;

use crate::decode::Frame;

/// Thresholds of the view checks (why each is what it is: docs/scene.md).
#[derive(Debug, Clone)]
pub struct ViewConfig {
    /// Width of the grey copy the checks work on (pixels).
    pub width: i32,
    /// Keypoints found per picture.
    pub features: i32,
    /// Inliers the homography needs to be trusted.
    pub min_inliers: usize,
    /// A displacement up to this (full-frame pixels) is no move at all.
    pub steady_px: f64,
    /// A displacement up to this (full-frame pixels) is corrected; beyond, paused.
    pub correct_px: f64,
    /// A turn about the optical axis up to this (degrees) is corrected; beyond, paused.
    pub correct_deg: f64,
    /// Mean brightness under this (0–255) is a covered lens.
    pub dark_mean: f64,
    /// Brightness spread (standard deviation) under this is a covered lens.
    pub flat_std: f64,
    /// Sharpness under this fraction of the reference's is a defocused lens.
    pub blur_ratio: f64,
    /// This many identical samples in a row is a frozen image.
    pub frozen_samples: u32,
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self {
            width: 480,
            features: 600,
            min_inliers: 20,
            steady_px: 4.0,
            correct_px: 150.0,
            correct_deg: 5.0,
            dark_mean: 12.0,
            flat_std: 5.0,
            blur_ratio: 0.2,
            frozen_samples: 30,
        }
    }
}

/// What a camera sees, as the last sample said.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ViewState {
    /// No good frame yet to take as the reference.
    Learning,
    /// The reference view.
    Steady,
    /// The reference view, moved a little: corrected.
    Shifted {
        /// The largest displacement of the frame's corners and centre, in pixels.
        shift_px: f64,
        /// The view's turn about the optical axis, in degrees.
        rotation_deg: f64,
    },
    /// The view moved too far to correct.
    ViewMoved {
        /// The largest displacement, in pixels.
        shift_px: f64,
    },
    /// The view matches its reference too little to be it.
    ViewChanged {
        /// Keypoints of the sample that matched the reference's.
        matches: usize,
    },
    /// Almost black or flat.
    Covered {
        /// Mean brightness (0–255).
        mean: f64,
        /// Brightness spread.
        std: f64,
    },
    /// Much less sharp than the reference.
    Defocused {
        /// Sharpness as a share of the reference's.
        sharpness: f64,
    },
    /// The same picture for this many samples.
    Frozen {
        /// Identical samples in a row.
        samples: u32,
    },
}

impl ViewState {
    /// Whether the camera's rules must wait.
    pub fn paused(&self) -> bool {
        !matches!(
            self,
            ViewState::Steady | ViewState::Shifted { .. } | ViewState::Learning
        )
    }

    /// Its name (the API's and the metrics' `state`).
    pub fn name(&self) -> &'static str {
        match self {
            ViewState::Learning => "learning",
            ViewState::Steady => "steady",
            ViewState::Shifted { .. } => "shifted",
            ViewState::ViewMoved { .. } => "view_moved",
            ViewState::ViewChanged { .. } => "view_changed",
            ViewState::Covered { .. } => "covered",
            ViewState::Defocused { .. } => "defocused",
            ViewState::Frozen { .. } => "frozen",
        }
    }
}

struct Reference {
    keypoints: Vector<KeyPoint>,
    descriptors: Mat,
    sharpness: f64,
    size: (u32, u32),
}

/// One camera's view check.
pub struct ViewWatch {
    cfg: ViewConfig,
    orb: core::Ptr<ORB>,
    matcher: core::Ptr<BFMatcher>,
    reference: Option<Reference>,
    state: ViewState,
    /// Sample → reference, in full-frame pixels (while shifted).
    homography: Option<Mat>,
    // buffers reused from sample to sample
    bgr: Mat,
    grey: Mat,
    small: Mat,
    last: Mat,
    same: u32,
}

impl ViewWatch {
    /// A check with these thresholds, learning its reference from the first good frame.
    pub fn new(cfg: ViewConfig) -> opencv::Result<Self> {
        let mut orb = ORB::create_def()?;
        orb.set_max_features(cfg.features)?;
        Ok(Self {
            cfg,
            orb,
            matcher: BFMatcher::create(core::NORM_HAMMING, false)?,
            reference: None,
            state: ViewState::Learning,
            homography: None,
            bgr: Mat::default(),
            grey: Mat::default(),
            small: Mat::default(),
            last: Mat::default(),
            same: 0,
        })
    }

    /// The state after the last sample.
    pub fn state(&self) -> &ViewState {
        &self.state
    }

    /// Forgets the reference: the next good frame is the new one (an operator who
    /// moved the camera on purpose).
    pub fn relearn(&mut self) {
        self.reference = None;
        self.state = ViewState::Learning;
        self.homography = None;
    }

    fn scale(&self, frame: &Frame) -> f64 {
        frame.width as f64 / self.cfg.width as f64
    }

    /// Checks one sample; returns its state.
    pub fn observe(&mut self, frame: &Frame) -> opencv::Result<&ViewState> {
        self.state = self.check(frame)?;
        if !matches!(self.state, ViewState::Shifted { .. }) {
            self.homography = None;
        }
        Ok(&self.state)
    }

    fn check(&mut self, frame: &Frame) -> opencv::Result<ViewState> {
        crate::draw::copy_to_canvas(frame, &mut self.bgr)?;
        imgproc::cvt_color_def(&self.bgr, &mut self.grey, imgproc::COLOR_BGR2GRAY)?;
        let h = (frame.height as f64 / self.scale(frame)).round().max(1.0) as i32;
        imgproc::resize(
            &self.grey,
            &mut self.small,
            Size::new(self.cfg.width, h),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        // a frozen image: bit for bit the last one
        let same = self.last.size()? == self.small.size()? && {
            let mut diff = Mat::default();
            core::absdiff(&self.small, &self.last, &mut diff)?;
            core::count_non_zero(&diff)? == 0
        };
        self.same = if same { self.same + 1 } else { 0 };
        self.small.copy_to(&mut self.last)?;
        let (mean, std) = mean_std(&self.small)?;
        if mean < self.cfg.dark_mean || std < self.cfg.flat_std {
            return Ok(ViewState::Covered { mean, std });
        }
        if self.same + 1 >= self.cfg.frozen_samples {
            return Ok(ViewState::Frozen {
                samples: self.same + 1,
            });
        }
        let sharp = sharpness(&self.small)?;
        let mut kps = Vector::<KeyPoint>::new();
        let mut desc = Mat::default();
        self.orb
            .detect_and_compute(&self.small, &core::no_array(), &mut kps, &mut desc, false)?;
        let Some(reference) = &self.reference else {
            if kps.len() >= 4 * self.cfg.min_inliers {
                self.reference = Some(Reference {
                    keypoints: kps,
                    descriptors: desc,
                    sharpness: sharp,
                    size: (frame.width, frame.height),
                });
                return Ok(ViewState::Steady);
            }
            return Ok(ViewState::Learning);
        };
        if sharp < self.cfg.blur_ratio * reference.sharpness {
            return Ok(ViewState::Defocused {
                sharpness: sharp / reference.sharpness,
            });
        }
        if reference.size != (frame.width, frame.height) || desc.rows() < 2 {
            return Ok(ViewState::ViewChanged { matches: 0 });
        }
        let mut knn = Vector::<Vector<DMatch>>::new();
        self.matcher.knn_train_match(
            &desc,
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
                from.push(kps.get(a.query_idx as usize)?.pt());
                to.push(reference.keypoints.get(a.train_idx as usize)?.pt());
            }
        }
        if from.len() < self.cfg.min_inliers {
            return Ok(ViewState::ViewChanged {
                matches: from.len(),
            });
        }
        let mut mask = Mat::default();
        let hs = calib3d::find_homography(&from, &to, &mut mask, calib3d::RANSAC, 3.0)?;
        let inliers = if mask.empty() {
            0
        } else {
            core::count_non_zero(&mask)? as usize
        };
        if hs.empty() || inliers < self.cfg.min_inliers {
            return Ok(ViewState::ViewChanged { matches: inliers });
        }
        // the homography of the small copies, in full-frame pixels: S⁻¹·Hs·S
        let s = self.scale(frame);
        let hf = full_frame(&hs, s)?;
        let (shift_px, rotation_deg) = displacement(&hf, frame.width as f64, frame.height as f64)?;
        if shift_px <= self.cfg.steady_px {
            Ok(ViewState::Steady)
        } else if shift_px <= self.cfg.correct_px && rotation_deg.abs() <= self.cfg.correct_deg {
            self.homography = Some(hf);
            Ok(ViewState::Shifted {
                shift_px,
                rotation_deg,
            })
        } else {
            Ok(ViewState::ViewMoved { shift_px })
        }
    }

    /// The sample carried into the reference view (while shifted), into `out`; `false`
    /// when there is nothing to correct (use the sample as it is).
    pub fn correct(&self, frame: &Frame, out: &mut Frame) -> opencv::Result<bool> {
        let Some(h) = &self.homography else {
            return Ok(false);
        };
        warp(frame, h, core::BORDER_CONSTANT, out)?;
        Ok(true)
    }

    /// A box of the sample in the reference view's pixels (itself unless shifted).
    pub fn to_reference(&self, bbox: [f32; 4]) -> [f32; 4] {
        let Some(h) = &self.homography else {
            return bbox;
        };
        let corners = [
            (bbox[0], bbox[1]),
            (bbox[2], bbox[1]),
            (bbox[0], bbox[3]),
            (bbox[2], bbox[3]),
        ];
        let pts: Vec<(f64, f64)> = corners
            .iter()
            .filter_map(|&(x, y)| apply(h, x as f64, y as f64).ok())
            .collect();
        if pts.len() < 4 {
            return bbox;
        }
        let fold = |f: fn(f64, f64) -> f64, i: usize, init: f64| {
            pts.iter()
                .map(|p| if i == 0 { p.0 } else { p.1 })
                .fold(init, f)
        };
        [
            fold(f64::min, 0, f64::MAX) as f32,
            fold(f64::min, 1, f64::MAX) as f32,
            fold(f64::max, 0, f64::MIN) as f32,
            fold(f64::max, 1, f64::MIN) as f32,
        ]
    }

    /// A point of the sample in the reference view (itself unless shifted).
    pub fn point_to_reference(&self, x: f64, y: f64) -> (f64, f64) {
        match &self.homography {
            Some(h) => apply(h, x, y).unwrap_or((x, y)),
            None => (x, y),
        }
    }
}

/// `frame` through the homography `h` (3×3, `CV_64F`) into `out`, of the same size:
/// what a camera moved by `h` sees (`border`: what fills the part it did not see,
/// e.g. `core::BORDER_CONSTANT` black, `core::BORDER_REPLICATE`).
pub fn warp(frame: &Frame, h: &Mat, border: i32, out: &mut Frame) -> opencv::Result<()> {
    let src = crate::draw::frame_mat(frame)?;
    let mut dst = Mat::default();
    imgproc::warp_perspective(
        &src,
        &mut dst,
        h,
        Size::new(frame.width as i32, frame.height as i32),
        imgproc::INTER_LINEAR,
        border,
        core::Scalar::all(0.0),
    )?;
    out.reshape(frame.width, frame.height);
    out.index = frame.index;
    out.pts_ms = frame.pts_ms;
    out.keyframe = frame.keyframe;
    debug_assert_eq!(dst.typ(), CV_8UC3);
    out.data.copy_from_slice(dst.data_bytes()?);
    Ok(())
}

fn mean_std(m: &Mat) -> opencv::Result<(f64, f64)> {
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

fn apply(h: &Mat, x: f64, y: f64) -> opencv::Result<(f64, f64)> {
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

#[cfg(test)]
mod tests;

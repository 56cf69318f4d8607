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

use std::sync::Arc;

use opencv::core::{self, Mat, Size, CV_8UC3};
use opencv::features2d::{BFMatcher, ORB};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Serialize;

use crate::decode::Frame;
use register::Picture;

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
    /// Register every this many samples; in between, a sample is compared with the
    /// last registered one (a thumbnail), and registered at once if it changed much.
    pub every: u32,
    /// The share of the thumbnail's pixels that must change for a sample between
    /// registrations to be registered at once.
    pub change_share: f64,
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
            every: 5,
            change_share: 0.10,
        }
    }
}

/// What a camera sees, as the last sample said.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ViewState {
    /// No good frame yet to take as the reference.
    Learning,
    /// A camera with presets none of which has a reference picture yet (one is
    /// captured from the live frame): nothing can be recognised.
    NoReference,
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
            ViewState::NoReference => "no_reference",
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

/// What a camera's view check said of its last sample, for the API and metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ViewReport {
    /// The state.
    #[serde(flatten)]
    pub state: ViewState,
    /// The preset it is at (cameras with presets; none between them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Arc<str>>,
}

/// One camera's view check.
pub struct ViewWatch {
    cfg: ViewConfig,
    orb: core::Ptr<ORB>,
    matcher: core::Ptr<BFMatcher>,
    /// The reference views: one learned from the first good frame, or one per preset.
    references: Vec<Picture>,
    /// Whether the one reference is learned from the frames (no preset pictures).
    learns: bool,
    /// The preset of the last sample that matched one (tried first).
    current: usize,
    /// The preset this sample is at, if any.
    preset: Option<usize>,
    state: ViewState,
    /// Sample → reference, in full-frame pixels (while shifted).
    homography: Option<Mat>,
    /// Samples since the last registration, and registrations so far.
    since_registered: u32,
    registrations: u64,
    // buffers reused from sample to sample
    grey: Mat,
    small: Mat,
    last: Mat,
    thumb: Mat,
    /// The thumbnail of the last registered sample.
    registered: Mat,
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
            references: Vec::new(),
            learns: true,
            current: 0,
            preset: None,
            state: ViewState::Learning,
            homography: None,
            since_registered: 0,
            registrations: 0,
            grey: Mat::default(),
            small: Mat::default(),
            last: Mat::default(),
            thumb: Mat::default(),
            registered: Mat::default(),
            same: 0,
        })
    }

    /// A check of a camera with presets: `references[i]` is a picture of preset `i`
    /// (a frame the camera gave there, at its stream's size). Each sample is matched to
    /// the preset it was at last, then to the others; one that matches none is
    /// `view_changed`. Fails on a picture with too few features to recognise.
    pub fn with_presets(cfg: ViewConfig, references: &[Frame]) -> opencv::Result<Self> {
        let mut w = Self::new(cfg)?;
        w.learns = false;
        for (i, f) in references.iter().enumerate() {
            w.add_preset(f).map_err(|e| {
                opencv::Error::new(core::StsError, format!("reference {}: {e}", i + 1))
            })?;
        }
        Ok(w)
    }

    /// Adds the picture of one more preset (the next index); fails, saying why, on
    /// one with too few features to be recognised.
    pub fn add_preset(&mut self, picture: &Frame) -> Result<(), String> {
        self.learns = false;
        let p = self
            .small_grey(picture)
            .and_then(|_| Picture::of(&mut self.orb, &self.small, (picture.width, picture.height)))
            .map_err(|e| e.message)?;
        let need = 4 * self.cfg.min_inliers;
        if p.keypoints.len() < need {
            return Err(format!(
                "{} features; a view needs {need} to be recognised (a lit, sharp, textured picture)",
                p.keypoints.len()
            ));
        }
        self.references.push(p);
        Ok(())
    }

    /// The state after the last sample.
    pub fn state(&self) -> &ViewState {
        &self.state
    }

    /// The preset the last sample was at (`Some(0)` for a camera of one view while it
    /// is steady, shifted or moved; `None` while learning, paused for another reason,
    /// or between presets).
    pub fn preset(&self) -> Option<usize> {
        self.preset
    }

    /// Samples registered so far (the others were taken as the last registered one).
    pub fn registrations(&self) -> u64 {
        self.registrations
    }

    /// Forgets a learned reference: the next good frame is the new one (an operator
    /// who moved the camera on purpose). A camera with preset pictures keeps them.
    pub fn relearn(&mut self) {
        if self.learns {
            self.references.clear();
            self.state = ViewState::Learning;
            self.homography = None;
            self.preset = None;
        }
    }

    fn scale(&self, frame: &Frame) -> f64 {
        frame.width as f64 / self.cfg.width as f64
    }

    /// The frame's grey copy, `cfg.width` wide, into `self.small`.
    fn small_grey(&mut self, frame: &Frame) -> opencv::Result<()> {
        let bgr = crate::draw::frame_mat(frame)?;
        imgproc::cvt_color_def(&bgr, &mut self.grey, imgproc::COLOR_BGR2GRAY)?;
        let h = (frame.height as f64 / self.scale(frame)).round().max(1.0) as i32;
        imgproc::resize(
            &self.grey,
            &mut self.small,
            Size::new(self.cfg.width, h),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )
    }

    /// Checks one sample; returns its state.
    pub fn observe(&mut self, frame: &Frame) -> opencv::Result<&ViewState> {
        let (state, preset) = self.check(frame)?;
        self.state = state;
        self.preset = preset;
        if !matches!(self.state, ViewState::Shifted { .. }) {
            self.homography = None;
        }
        Ok(&self.state)
    }

    fn check(&mut self, frame: &Frame) -> opencv::Result<(ViewState, Option<usize>)> {
        self.small_grey(frame)?;
        // a frozen image: bit for bit the last one
        let same = self.last.size()? == self.small.size()? && {
            let mut diff = Mat::default();
            core::absdiff(&self.small, &self.last, &mut diff)?;
            core::count_non_zero(&diff)? == 0
        };
        self.same = if same { self.same + 1 } else { 0 };
        self.small.copy_to(&mut self.last)?;
        let (mean, std) = register::mean_std(&self.small)?;
        if mean < self.cfg.dark_mean || std < self.cfg.flat_std {
            return Ok((ViewState::Covered { mean, std }, None));
        }
        if self.same + 1 >= self.cfg.frozen_samples {
            let samples = self.same + 1;
            return Ok((ViewState::Frozen { samples }, None));
        }
        // between registrations, a sample much like the last registered one keeps its
        // state (and correction); one that changed much is registered at once
        register::thumbnail(&self.small, &mut self.thumb)?;
        let running = matches!(self.state, ViewState::Steady | ViewState::Shifted { .. });
        if running && self.since_registered + 1 < self.cfg.every {
            let share = register::changed_share(&self.thumb, &self.registered)?;
            if share <= self.cfg.change_share {
                self.since_registered += 1;
                return Ok((self.state.clone(), self.preset));
            }
        }
        self.since_registered = 0;
        self.registrations += 1;
        self.thumb.copy_to(&mut self.registered)?;
        let sample = Picture::of(&mut self.orb, &self.small, (frame.width, frame.height))?;
        if self.references.is_empty() {
            if self.learns && sample.keypoints.len() >= 4 * self.cfg.min_inliers {
                self.references.push(sample);
                self.current = 0;
                return Ok((ViewState::Steady, Some(0)));
            }
            if self.learns {
                return Ok((ViewState::Learning, None));
            }
            return Ok((ViewState::NoReference, None));
        }
        // the preset it was at first, then the others: the first it is steady or
        // shifted at wins; else the one it moved least from; else none
        let n = self.references.len();
        let scale = self.scale(frame);
        let mut moved: Option<(usize, f64, f64)> = None;
        let mut matches = 0;
        for i in (0..n).map(|k| (self.current + k) % n) {
            let r = &self.references[i];
            let ref_sharpness = r.sharpness;
            match register::register(&self.matcher, &self.cfg, &sample, r, scale)? {
                register::Fit::None(m) => matches = matches.max(m),
                register::Fit::Homography {
                    h,
                    shift_px,
                    rotation_deg,
                } => {
                    let correctable = shift_px <= self.cfg.correct_px
                        && rotation_deg.abs() <= self.cfg.correct_deg;
                    if shift_px <= self.cfg.steady_px || correctable {
                        self.current = i;
                        if sample.sharpness < self.cfg.blur_ratio * ref_sharpness {
                            let sharpness = sample.sharpness / ref_sharpness;
                            return Ok((ViewState::Defocused { sharpness }, None));
                        }
                        if shift_px <= self.cfg.steady_px {
                            return Ok((ViewState::Steady, Some(i)));
                        }
                        self.homography = Some(h);
                        let st = ViewState::Shifted {
                            shift_px,
                            rotation_deg,
                        };
                        return Ok((st, Some(i)));
                    }
                    if moved.is_none_or(|m| shift_px < m.1) {
                        moved = Some((i, shift_px, sample.sharpness / ref_sharpness));
                    }
                }
            }
        }
        if let Some((i, shift_px, sharp)) = moved {
            if sharp < self.cfg.blur_ratio {
                return Ok((ViewState::Defocused { sharpness: sharp }, None));
            }
            return Ok((ViewState::ViewMoved { shift_px }, Some(i)));
        }
        // nothing to register against: a smeared lens, or another scene
        let reference = &self.references[self.current.min(n - 1)];
        if sample.sharpness < self.cfg.blur_ratio * reference.sharpness {
            let sharpness = sample.sharpness / reference.sharpness;
            return Ok((ViewState::Defocused { sharpness }, None));
        }
        Ok((ViewState::ViewChanged { matches }, None))
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
            .filter_map(|&(x, y)| register::apply(h, x as f64, y as f64).ok())
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
            Some(h) => register::apply(h, x, y).unwrap_or((x, y)),
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

mod register;
#[cfg(test)]
mod tests;

//! Dumping: a new object that appears and stays in a `no_dumping` zone.
//!
//! Class-agnostic, because no detector here knows garbage: two running averages of the
//! scene (grey, downscaled) — a long-term one (time constant 10 min) and a short-term
//! one (4 s). Where they differ and the current frame agrees with the short-term one,
//! something new has come to rest. People and vehicles are not garbage: their tracks'
//! boxes (with a margin) are cut out of that mask. Regions that remain (connected
//! components above a minimum area) are followed over time; one that stays for the dwell
//! with its foot in a `no_dumping` zone is a violation, reported once, with the person or
//! vehicle last seen next to it before it appeared, when there was one. What was there
//! when watching began is part of both averages and never triggers.
//!
//! A change of the whole scene's brightness (a cloud, the sun, the camera's exposure)
//! shifts every pixel alike: the mean difference of the two averages is taken out before
//! they are compared, so a light change neither hides an object that was left before it
//! nor makes the lawn itself look new. Limits: frames where more than a third of the
//! scene still changes (a change that is not uniform) are skipped (the short-term
//! average still adapts).
//! An object that stays for longer than the long-term time constant becomes background
//! (after its violation). Objects smaller than the minimum area (0.1 % of the frame) are
//! not seen.

use std::time::Duration;

use opencv::core::{self, Mat, Rect, Scalar, Size, CV_32F, CV_8U};
use opencv::imgproc;
use opencv::prelude::*;

use super::{RuleEvent, Stage, ViolationKind, ZoneHit};
use crate::decode::Frame;
use crate::geo::zones::ZoneKind;
use crate::track::Track;

/// Dumping settings.
#[derive(Debug, Clone)]
pub struct DumpingConfig {
    /// How long a new object must stay.
    pub dwell: Duration,
    /// Width of the working image (the frame is downscaled to it).
    pub work_width: u32,
    /// Long-term average time constant.
    pub long_tau: Duration,
    /// Short-term average time constant.
    pub short_tau: Duration,
    /// Grey-level difference that counts as change.
    pub threshold: f64,
    /// Smallest region, as a share of the frame.
    pub min_area: f64,
    /// Classes whose boxes are cut out (people and vehicles are not garbage).
    pub movers: Vec<String>,
    /// A model's own garbage classes: tracks of these count as dumped objects too.
    pub garbage_classes: Vec<String>,
}

impl Default for DumpingConfig {
    fn default() -> Self {
        Self {
            dwell: Duration::from_secs(60),
            work_width: 192,
            long_tau: Duration::from_secs(600),
            short_tau: Duration::from_secs(4),
            threshold: 30.0,
            min_area: 0.001,
            movers: ["person", "car", "motorcycle", "bus", "truck"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            garbage_classes: ["garbage", "trash_bag", "litter", "dumped_waste"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
struct Candidate {
    id: u64,
    bbox: [f32; 4],
    first_seen: i64,
    last_seen: i64,
    left_by: Option<(u64, String)>,
    reported: bool,
}

/// The dumping rule for one camera.
pub struct DumpingRule {
    config: DumpingConfig,
    long: Mat,
    short: Mat,
    small: Mat,
    grey: Mat,
    grey_f: Mat,
    diff: Mat,
    shifted: Mat,
    mask: Mat,
    scale: f32,
    last_t: Option<i64>,
    candidates: Vec<Candidate>,
    next_id: u64,
    /// Recent movers (track id, class, box, last seen) for "left by".
    recent: Vec<(u64, String, [f32; 4], i64)>,
    reported_garbage: Vec<u64>,
    appeared: Vec<(u64, [f32; 4])>,
    /// Candidates that went in the last step (their kept evidence can go too).
    gone: Vec<u64>,
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    crate::track::iou(a, b)
}

impl DumpingRule {
    /// A rule with the settings.
    pub fn new(config: DumpingConfig) -> Self {
        Self {
            config,
            long: Mat::default(),
            short: Mat::default(),
            small: Mat::default(),
            grey: Mat::default(),
            grey_f: Mat::default(),
            diff: Mat::default(),
            shifted: Mat::default(),
            mask: Mat::default(),
            scale: 1.0,
            last_t: None,
            candidates: Vec::new(),
            next_id: 0,
            recent: Vec::new(),
            reported_garbage: Vec::new(),
            appeared: Vec::new(),
            gone: Vec::new(),
        }
    }

    /// The candidates that went in the last step (their ids as in [`Self::appeared`]).
    pub fn gone(&self) -> &[u64] {
        &self.gone
    }

    /// New static regions in `frame` (frame pixels), movers cut out.
    fn regions(
        &mut self,
        t: i64,
        frame: &Frame,
        movers: &[[f32; 4]],
    ) -> opencv::Result<Vec<[f32; 4]>> {
        let src = crate::draw::frame_mat(frame)?;
        let w = self.config.work_width.min(frame.width).max(16) as i32;
        self.scale = frame.width as f32 / w as f32;
        let h = ((frame.height as f32 / self.scale).round() as i32).max(8);
        imgproc::resize(
            &src,
            &mut self.small,
            Size::new(w, h),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        imgproc::cvt_color_def(&self.small, &mut self.grey, imgproc::COLOR_BGR2GRAY)?;
        self.grey.convert_to_def(&mut self.grey_f, CV_32F)?;
        if self.long.rows() != h || self.long.cols() != w {
            // a new picture size (the camera was reconfigured): the scene model starts
            // again, and candidates in the old picture's pixels are dropped
            self.last_t = None;
            self.candidates.clear();
        }
        let Some(last) = self.last_t.replace(t) else {
            self.grey_f.copy_to(&mut self.long)?;
            self.grey_f.copy_to(&mut self.short)?;
            return Ok(Vec::new());
        };
        let dt = (t - last).max(1) as f64 / 1000.0;
        let a_short = 1.0 - (-dt / self.config.short_tau.as_secs_f64()).exp();
        let a_long = 1.0 - (-dt / self.config.long_tau.as_secs_f64()).exp();
        imgproc::accumulate_weighted(&self.grey_f, &mut self.short, a_short, &core::no_array())?;
        imgproc::accumulate_weighted(&self.grey_f, &mut self.long, a_long, &core::no_array())?;
        // changed against the long-term average, once the scene's overall brightness
        // change is taken out (a cloud, the sun, the camera's exposure shift every
        // pixel alike; an object shifts its own) …
        let offset = core::mean_def(&self.short)?[0] - core::mean_def(&self.long)?[0];
        core::subtract(
            &self.short,
            &Scalar::all(offset),
            &mut self.shifted,
            &core::no_array(),
            -1,
        )?;
        core::absdiff(&self.shifted, &self.long, &mut self.diff)?;
        let mut changed = Mat::default();
        imgproc::threshold(
            &self.diff,
            &mut changed,
            self.config.threshold,
            255.0,
            imgproc::THRESH_BINARY,
        )?;
        // … and at rest: the current frame agrees with the short-term average
        let mut moving = Mat::default();
        core::absdiff(&self.grey_f, &self.short, &mut self.diff)?;
        imgproc::threshold(
            &self.diff,
            &mut moving,
            self.config.threshold,
            255.0,
            imgproc::THRESH_BINARY_INV,
        )?;
        let mut both = Mat::default();
        core::bitwise_and_def(&changed, &moving, &mut both)?;
        both.convert_to_def(&mut self.mask, CV_8U)?;
        let total = (w * h) as f64;
        if core::count_non_zero(&self.mask)? as f64 > total / 3.0 {
            return Ok(Vec::new()); // a global light change, not an object
        }
        for b in movers {
            let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
            let r = |v: f32| (v / self.scale).round() as i32;
            let (x1, y1) = (
                r(b[0] - 0.2 * bw).clamp(0, w),
                r(b[1] - 0.2 * bh).clamp(0, h),
            );
            let (x2, y2) = (
                r(b[2] + 0.2 * bw).clamp(0, w),
                r(b[3] + 0.2 * bh).clamp(0, h),
            );
            if x2 > x1 && y2 > y1 {
                imgproc::rectangle(
                    &mut self.mask,
                    Rect::new(x1, y1, x2 - x1, y2 - y1),
                    Scalar::all(0.0),
                    imgproc::FILLED,
                    imgproc::LINE_8,
                    0,
                )?;
            }
        }
        // drop specks, then join the pieces of one object (parts of it may match the
        // background's grey)
        let small_k = imgproc::get_structuring_element_def(imgproc::MORPH_RECT, Size::new(3, 3))?;
        let join_k = imgproc::get_structuring_element_def(imgproc::MORPH_RECT, Size::new(9, 9))?;
        let mut cleaned = Mat::default();
        imgproc::morphology_ex_def(&self.mask, &mut cleaned, imgproc::MORPH_OPEN, &small_k)?;
        let mut opened = Mat::default();
        imgproc::morphology_ex_def(&cleaned, &mut opened, imgproc::MORPH_CLOSE, &join_k)?;
        let (mut labels, mut stats, mut centroids) =
            (Mat::default(), Mat::default(), Mat::default());
        let n = imgproc::connected_components_with_stats_def(
            &opened,
            &mut labels,
            &mut stats,
            &mut centroids,
        )?;
        let min_area = (self.config.min_area * total).max(4.0) as i32;
        let mut out = Vec::new();
        for i in 1..n {
            let area = *stats.at_2d::<i32>(i, imgproc::CC_STAT_AREA)?;
            if area < min_area {
                continue;
            }
            let x = *stats.at_2d::<i32>(i, imgproc::CC_STAT_LEFT)? as f32 * self.scale;
            let y = *stats.at_2d::<i32>(i, imgproc::CC_STAT_TOP)? as f32 * self.scale;
            let bw = *stats.at_2d::<i32>(i, imgproc::CC_STAT_WIDTH)? as f32 * self.scale;
            let bh = *stats.at_2d::<i32>(i, imgproc::CC_STAT_HEIGHT)? as f32 * self.scale;
            out.push([x, y, x + bw, y + bh]);
        }
        Ok(out)
    }

    /// Objects that appeared in the last step (id as in their events, box): their
    /// first frame is this one, for evidence.
    pub fn appeared(&self) -> &[(u64, [f32; 4])] {
        &self.appeared
    }

    /// Looks at the frame of time `t` with the tracks seen in it; `zones_of` says which
    /// zones a box's foot stands in. Appends violations to `out`.
    pub fn step<'z>(
        &mut self,
        t: i64,
        frame: &Frame,
        tracks: &[Track],
        zones_of: &mut dyn FnMut(&[f32; 4]) -> Vec<ZoneHit<'z>>,
        out: &mut Vec<RuleEvent>,
    ) -> opencv::Result<()> {
        let cfg = self.config.clone();
        let movers: Vec<[f32; 4]> = tracks
            .iter()
            .filter(|tr| t - tr.last_seen <= 5_000 && cfg.movers.contains(&tr.class))
            .map(|tr| tr.bbox)
            .collect();
        for tr in tracks
            .iter()
            .filter(|tr| tr.seen_at(t) && cfg.movers.contains(&tr.class))
        {
            self.recent.retain(|r| r.0 != tr.id);
            self.recent.push((tr.id, tr.class.clone(), tr.bbox, t));
        }
        self.recent.retain(|r| t - r.3 <= 60_000);
        let regions = self.regions(t, frame, &movers)?;
        self.appeared.clear();
        for r in regions {
            match self.candidates.iter_mut().find(|c| iou(&c.bbox, &r) >= 0.3) {
                Some(c) => {
                    c.bbox = r;
                    c.last_seen = t;
                }
                None => {
                    self.next_id += 1;
                    // who was next to it just before it appeared
                    let h = (r[3] - r[1]).max(r[2] - r[0]);
                    let left_by = self
                        .recent
                        .iter()
                        .filter(|m| {
                            let (mx, my) = ((m.2[0] + m.2[2]) / 2.0, m.2[3]);
                            let (cx, cy) = ((r[0] + r[2]) / 2.0, r[3]);
                            ((mx - cx).powi(2) + (my - cy).powi(2)).sqrt() <= 3.0 * h
                        })
                        .max_by_key(|m| m.3)
                        .map(|m| (m.0, m.1.clone()));
                    self.appeared.push((self.next_id, r));
                    self.candidates.push(Candidate {
                        id: self.next_id,
                        bbox: r,
                        first_seen: t,
                        last_seen: t,
                        left_by,
                        reported: false,
                    });
                }
            }
        }
        // a region unseen for a while has gone (picked up, or a passing shadow)
        self.gone.clear();
        let gone = &mut self.gone;
        self.candidates.retain(|c| {
            let keep = t - c.last_seen <= 10_000;
            if !keep {
                gone.push(c.id);
            }
            keep
        });
        let dwell = cfg.dwell.as_millis() as i64;
        for c in self
            .candidates
            .iter_mut()
            .filter(|c| !c.reported && c.last_seen == t)
        {
            for z in zones_of(&c.bbox)
                .into_iter()
                .filter(|z| *z.kind == ZoneKind::NoDumping)
            {
                let need = z.dwell.map_or(dwell, |d| d.as_millis() as i64);
                if t - c.first_seen >= need {
                    c.reported = true;
                    out.push(RuleEvent {
                        kind: ViolationKind::Dumping,
                        stage: Stage::Violation,
                        zone: z.id.to_string(),
                        track: c.id,
                        class: "object".into(),
                        since_ms: c.first_seen,
                        at_ms: t,
                        bbox: c.bbox,
                        related: c.left_by.clone(),
                        ground: None,
                    });
                    break;
                }
            }
        }
        // a model's own garbage classes: a track of one that stays (tracks the tracker
        // dropped are forgotten)
        self.reported_garbage
            .retain(|id| tracks.iter().any(|tr| tr.id == *id));
        for tr in tracks
            .iter()
            .filter(|tr| tr.seen_at(t) && cfg.garbage_classes.contains(&tr.class))
        {
            if self.reported_garbage.contains(&tr.id) || tr.dwell_ms() < dwell {
                continue;
            }
            if let Some(z) = zones_of(&tr.bbox)
                .into_iter()
                .find(|z| *z.kind == ZoneKind::NoDumping)
            {
                self.reported_garbage.push(tr.id);
                out.push(super::track_event(
                    ViolationKind::Dumping,
                    Stage::Violation,
                    z.id,
                    tr,
                    t,
                ));
            }
        }
        Ok(())
    }
}

impl super::Rule for DumpingRule {
    fn step(
        &mut self,
        s: &super::Sample<'_, '_>,
        out: &mut super::RuleOutput,
    ) -> opencv::Result<()> {
        let mut zones = |b: &[f32; 4]| (s.box_zones)(b);
        DumpingRule::step(self, s.t_ms, s.frame, s.tracks, &mut zones, &mut out.events)?;
        let appeared = self.appeared().iter();
        out.remember
            .extend(appeared.map(|&(id, b)| (ViolationKind::Dumping, id, b)));
        let gone = self.gone().iter();
        out.forget
            .extend(gone.map(|&id| (ViolationKind::Dumping, id)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::{Observation, Tracker, TrackerConfig};

    #[test]
    fn a_models_garbage_class_that_stays_is_dumping_once() {
        let mut rule = DumpingRule::new(DumpingConfig {
            dwell: Duration::from_secs(30),
            ..Default::default()
        });
        let mut tracker = Tracker::new(TrackerConfig::default());
        let frame = Frame::filled(320, 240, [90, 120, 90]);
        let kind = ZoneKind::NoDumping;
        let bag = Observation {
            class: "trash_bag".into(),
            score: 0.7,
            bbox: [100.0, 150.0, 130.0, 180.0],
            ground: None,
        };
        let walker = |x: f32| Observation {
            class: "person".into(),
            score: 0.9,
            bbox: [x, 100.0, x + 20.0, 170.0],
            ground: None,
        };
        let mut out = Vec::new();
        for k in 0..60 {
            let t = k * 1000;
            let obs = vec![bag.clone(), walker(k as f32 * 5.0)];
            let tracks = tracker.update(t, &obs).to_vec();
            rule.step(
                t,
                &frame,
                &tracks,
                &mut |b| {
                    if b[0] < 200.0 {
                        vec![ZoneHit {
                            id: "nd",
                            kind: &kind,
                            dwell: None,
                        }]
                    } else {
                        vec![]
                    }
                },
                &mut out,
            )
            .unwrap();
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].class, "trash_bag");
        assert_eq!(out[0].at_ms, 30_000);
        assert!(
            rule.appeared().is_empty(),
            "a flat scene has no new regions"
        );
    }

    #[test]
    fn a_region_that_goes_is_reported_gone_once() {
        let mut rule = DumpingRule::new(DumpingConfig::default());
        let mut out = Vec::new();
        let none = &mut |_: &[f32; 4]| Vec::<ZoneHit>::new();
        let plain = Frame::filled(320, 240, [90, 120, 90]);
        let mut with_bag = plain.clone();
        for y in 150..190 {
            for x in 100..140 {
                let i = (y * 320 + x) * 3;
                with_bag.data[i..i + 3].copy_from_slice(&[20, 20, 20]);
            }
        }
        let (mut appeared, mut gone) = (Vec::new(), Vec::new());
        for k in 0..200i64 {
            // a bag from 30 s to 90 s, then nothing
            let frame = if (30..90).contains(&k) {
                &with_bag
            } else {
                &plain
            };
            rule.step(k * 1000, frame, &[], none, &mut out).unwrap();
            appeared.extend(rule.appeared().iter().map(|a| a.0));
            gone.extend_from_slice(rule.gone());
        }
        assert!(!appeared.is_empty(), "the bag was seen");
        let mut a = appeared.clone();
        a.sort();
        let mut g = gone.clone();
        g.sort();
        assert_eq!(
            a, g,
            "every region that appeared is reported gone once it went"
        );
    }

    #[test]
    fn a_bag_left_before_the_light_changes_is_still_dumping_after_it() {
        // a bag on the lawn from 5 s; at 20 s the whole scene brightens by 40 levels
        // (the sun out of a cloud): the change is the scene's, not the bag's
        let mut rule = DumpingRule::new(DumpingConfig {
            dwell: Duration::from_secs(30),
            ..Default::default()
        });
        let kind = ZoneKind::NoDumping;
        let lawn = &mut |_: &[f32; 4]| {
            vec![ZoneHit {
                id: "nd",
                kind: &kind,
                dwell: None,
            }]
        };
        let scene = |light: u8, bag: bool| {
            let mut f = Frame::filled(320, 240, [70 + light, 100 + light, 70 + light]);
            if bag {
                for y in 150..180 {
                    for x in 100..140 {
                        let i = (y * 320 + x) * 3;
                        f.data[i..i + 3].copy_from_slice(&[10 + light; 3]);
                    }
                }
            }
            f
        };
        let mut out = Vec::new();
        for k in 0..60i64 {
            let frame = scene(if k >= 20 { 40 } else { 0 }, k >= 5);
            rule.step(k * 1000, &frame, &[], lawn, &mut out).unwrap();
        }
        assert_eq!(out.len(), 1, "{out:?}");
        let b = out[0].bbox;
        assert!(
            (b[0] - 100.0).abs() <= 4.0 && (b[1] - 150.0).abs() <= 4.0,
            "{b:?}"
        );
        assert!(
            (35_000..=45_000).contains(&out[0].at_ms),
            "{}",
            out[0].at_ms
        );
    }

    #[test]
    fn a_new_picture_size_starts_the_scene_model_again() {
        let mut rule = DumpingRule::new(DumpingConfig::default());
        let mut out = Vec::new();
        let none = &mut |_: &[f32; 4]| Vec::<ZoneHit>::new();
        // 4:3, then 16:9 (another working size), then back
        for (k, (w, h)) in [(384, 288), (384, 288), (640, 360), (640, 360), (384, 288)]
            .into_iter()
            .enumerate()
        {
            let frame = Frame::filled(w, h, [90, 120, 90]);
            rule.step(k as i64 * 1000, &frame, &[], none, &mut out)
                .unwrap_or_else(|e| panic!("frame {k} ({w}x{h}): {e}"));
        }
        assert!(out.is_empty());
    }
}

//! Illegal construction: a lasting change of structure inside a `construction_watch`
//! zone, against the zone's reference appearance, or a model's construction classes
//! staying in it.
//!
//! Design. Construction adds structure — scaffolding, fences, stacked material, new
//! walls — so the rule compares *edges*, not brightness: per zone, the reference is the
//! edge map (Canny on the contrast-normalised grey image) of the first frames seen, and
//! a sample's change is the share of its edge pixels inside the zone that are new (not
//! within 2 px of a reference edge). Only new edges count: darkness removes edges, it
//! does not add them, and light changes move brightness, not structure. Samples whose
//! zone is too dark to see (night without lighting) are skipped: they neither start nor
//! stop the clock. A change that holds for `min_duration` (default 6 h) is a violation,
//! once per zone; it ends when visible samples without it span more than `max_gap`
//! (1 h), so a change that goes away (materials delivered and taken away, a parked lorry)
//! does not trigger.
//!
//! Limits: the reference is fixed until `rebaseline` (after a reviewer decides); a
//! camera that moves changes every edge (recalibrate and rebaseline); vegetation growing
//! over months adds edges slowly; heavy rain or snow adds texture (they seldom last 6 h of
//! daylight samples at the default share of 25 %).

use std::collections::HashMap;
use std::time::Duration;

use opencv::core::{self, Mat, Point, Scalar, Size, Vector, CV_8U};
use opencv::imgproc;
use opencv::prelude::*;

use super::{RuleEvent, Stage, ViolationKind};
use crate::decode::Frame;
use crate::geo::zones::ZoneKind;
use crate::track::Track;

/// Construction rule settings.
#[derive(Debug, Clone)]
pub struct ConstructionConfig {
    /// How long a change must hold.
    pub min_duration: Duration,
    /// Share of the zone's current edge pixels that must be new.
    pub new_edge_share: f64,
    /// The longest stretch without a changed sample that still counts as holding.
    pub max_gap: Duration,
    /// Zones darker than this mean grey level are skipped.
    pub min_brightness: f64,
    /// Samples used to build a zone's reference.
    pub reference_samples: usize,
    /// A model's own construction classes: a track of these staying in the zone for
    /// `min_duration` is a violation too.
    pub classes: Vec<String>,
}

impl Default for ConstructionConfig {
    fn default() -> Self {
        Self {
            min_duration: Duration::from_secs(6 * 3600),
            new_edge_share: 0.25,
            max_gap: Duration::from_secs(3600),
            min_brightness: 25.0,
            reference_samples: 3,
            classes: ["excavator", "scaffold", "construction_fence", "crane"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// A watched zone in this camera's pixels.
#[derive(Debug, Clone)]
pub struct WatchedZone {
    /// Zone id.
    pub id: String,
    /// Outline, pixels.
    pub outline: Vec<(f64, f64)>,
}

#[derive(Default)]
struct ZoneState {
    mask: Mat,
    reference: Mat,
    samples: usize,
    changed_since: Option<i64>,
    last_changed: Option<i64>,
    reported: bool,
}

/// The construction rule for one camera.
#[derive(Default)]
pub struct ConstructionRule {
    config: ConstructionConfig,
    zones: HashMap<String, ZoneState>,
    grey: Mat,
    edges: Mat,
    reported_tracks: Vec<u64>,
    started: Vec<(u64, [f32; 4])>,
}

impl ConstructionRule {
    /// A rule with the settings.
    pub fn new(config: ConstructionConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Forgets a zone's reference: the next samples build a new one (after a reviewer
    /// confirmed or rejected a violation, or the camera was moved).
    pub fn rebaseline(&mut self, zone: &str) {
        self.zones.remove(zone);
    }

    /// Edges of the contrast-normalised frame into `self.edges`.
    fn edges_of(&mut self, frame: &Frame) -> opencv::Result<()> {
        let src = crate::draw::frame_mat(frame)?;
        let mut grey = Mat::default();
        imgproc::cvt_color_def(&src, &mut grey, imgproc::COLOR_BGR2GRAY)?;
        let mut clahe = imgproc::create_clahe(2.0, Size::new(8, 8))?;
        clahe.apply(&grey, &mut self.grey)?;
        let mut blurred = Mat::default();
        imgproc::gaussian_blur_def(&self.grey, &mut blurred, Size::new(5, 5), 1.2)?;
        imgproc::canny_def(&blurred, &mut self.edges, 60.0, 150.0)?;
        // brightness is judged on the original grey
        self.grey = grey;
        Ok(())
    }

    /// Zones whose change began in the last step (id = the zone's position in the
    /// list + 1, as in their events; the zone's bounding box): their first frame is
    /// this one, for evidence.
    pub fn started(&self) -> &[(u64, [f32; 4])] {
        &self.started
    }

    /// Looks at the frame of time `t`: every watched zone's structure against its
    /// reference, and tracks of construction classes. Appends violations to `out`.
    pub fn step(
        &mut self,
        t: i64,
        frame: &Frame,
        zones: &[WatchedZone],
        tracks: &[Track],
        in_zone: &mut dyn FnMut(&Track) -> Option<String>,
        out: &mut Vec<RuleEvent>,
    ) -> opencv::Result<()> {
        self.edges_of(frame)?;
        self.started.clear();
        let cfg = self.config.clone();
        let min_ms = cfg.min_duration.as_millis() as i64;
        for (zi, z) in zones.iter().enumerate() {
            let xs = z.outline.iter().map(|p| p.0 as f32);
            let ys = z.outline.iter().map(|p| p.1 as f32);
            let bbox = [
                xs.clone().fold(f32::MAX, f32::min),
                ys.clone().fold(f32::MAX, f32::min),
                xs.fold(f32::MIN, f32::max),
                ys.fold(f32::MIN, f32::max),
            ];
            let st = self.zones.entry(z.id.clone()).or_default();
            if st.mask.empty()
                || st.mask.rows() != frame.height as i32
                || st.mask.cols() != frame.width as i32
            {
                st.mask = Mat::new_rows_cols_with_default(
                    frame.height as i32,
                    frame.width as i32,
                    CV_8U,
                    Scalar::all(0.0),
                )?;
                let pts: Vector<Point> = z
                    .outline
                    .iter()
                    .map(|&(x, y)| Point::new(x.round() as i32, y.round() as i32))
                    .collect();
                imgproc::fill_poly_def(
                    &mut st.mask,
                    &Vector::<Vector<Point>>::from_iter([pts]),
                    Scalar::all(255.0),
                )?;
                st.reference = Mat::default();
                st.samples = 0;
            }
            let brightness = core::mean(&self.grey, &st.mask)?[0];
            if brightness < cfg.min_brightness {
                continue; // too dark to see structure
            }
            let mut zone_edges = Mat::default();
            core::bitwise_and(&self.edges, &self.edges, &mut zone_edges, &st.mask)?;
            if st.samples < cfg.reference_samples {
                // the reference: edges seen in any of the first samples, widened by 2 px
                let k =
                    imgproc::get_structuring_element_def(imgproc::MORPH_ELLIPSE, Size::new(5, 5))?;
                let mut wide = Mat::default();
                imgproc::dilate_def(&zone_edges, &mut wide, &k)?;
                if st.reference.empty() {
                    st.reference = wide;
                } else {
                    let mut both = Mat::default();
                    core::bitwise_or_def(&st.reference, &wide, &mut both)?;
                    st.reference = both;
                }
                st.samples += 1;
                continue;
            }
            let total = core::count_non_zero(&zone_edges)? as f64;
            let mut not_ref = Mat::default();
            core::bitwise_not_def(&st.reference, &mut not_ref)?;
            let mut new_edges = Mat::default();
            core::bitwise_and(&zone_edges, &not_ref, &mut new_edges, &st.mask)?;
            let fresh = core::count_non_zero(&new_edges)? as f64;
            let area = core::count_non_zero(&st.mask)?.max(1) as f64;
            // a share of the current edges, and enough of them to matter (0.5 % of the zone)
            let changed =
                total > 0.0 && fresh / total >= cfg.new_edge_share && fresh / area >= 0.005;
            // dark samples (skipped above) neither extend nor break a run: only visible
            // samples without the change, for longer than max_gap, end it
            if changed {
                if st.changed_since.is_none() {
                    st.changed_since = Some(t);
                    self.started.push((zi as u64 + 1, bbox));
                }
                st.last_changed = Some(t);
            } else if st
                .last_changed
                .is_none_or(|l| t - l > cfg.max_gap.as_millis() as i64)
            {
                st.changed_since = None;
            }
            if let Some(since) = st.changed_since {
                if !st.reported && st.last_changed == Some(t) && t - since >= min_ms {
                    st.reported = true;
                    out.push(RuleEvent {
                        kind: ViolationKind::IllegalConstruction,
                        stage: Stage::Violation,
                        zone: z.id.clone(),
                        track: zi as u64 + 1,
                        class: "structure change".into(),
                        since_ms: since,
                        at_ms: t,
                        bbox,
                        related: None,
                        ground: None,
                    });
                }
            }
        }
        // tracks the tracker dropped are forgotten
        self.reported_tracks
            .retain(|id| tracks.iter().any(|tr| tr.id == *id));
        for tr in tracks
            .iter()
            .filter(|tr| tr.seen_at(t) && cfg.classes.contains(&tr.class))
        {
            if self.reported_tracks.contains(&tr.id) || tr.dwell_ms() < min_ms {
                continue;
            }
            if let Some(zone) = in_zone(tr) {
                self.reported_tracks.push(tr.id);
                out.push(super::track_event(
                    ViolationKind::IllegalConstruction,
                    Stage::Violation,
                    &zone,
                    tr,
                    t,
                ));
            }
        }
        Ok(())
    }
}

/// The construction rule over the construction-watch zones one camera sees (their
/// outlines in its pixels), as a scene runs it.
pub struct WatchingRule {
    /// The rule.
    pub rule: ConstructionRule,
    /// The zones it watches.
    pub zones: Vec<WatchedZone>,
}

impl super::Rule for WatchingRule {
    fn step(
        &mut self,
        s: &super::Sample<'_, '_>,
        out: &mut super::RuleOutput,
    ) -> opencv::Result<()> {
        if self.zones.is_empty() {
            return Ok(());
        }
        let mut watched_of = |tr: &Track| {
            s.zones_of(tr)
                .iter()
                .find(|z| *z.kind == ZoneKind::ConstructionWatch)
                .map(|z| z.id.to_string())
        };
        let zones = &self.zones;
        self.rule.step(
            s.t_ms,
            s.frame,
            zones,
            s.tracks,
            &mut watched_of,
            &mut out.events,
        )?;
        let started = self.rule.started().iter();
        out.remember
            .extend(started.map(|&(id, b)| (ViolationKind::IllegalConstruction, id, b)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured scene (a brick-like pattern) at brightness `gain`, optionally with a
    /// scaffold (a lattice of bars) in the zone.
    fn scene(gain: f32, scaffold: bool, pallet: bool) -> Frame {
        let (w, h) = (320u32, 240u32);
        let mut f = Frame::filled(w, h, [0, 0, 0]);
        for y in 0..h {
            for x in 0..w {
                let brick = if (y / 12) % 2 == 0 {
                    (x / 30) % 2
                } else {
                    ((x + 15) / 30) % 2
                };
                let mut v = 90.0 + 50.0 * brick as f32 + ((x * 7 + y * 13) % 9) as f32;
                let in_zone = (100..220).contains(&x) && (60..200).contains(&y);
                if scaffold && in_zone && ((x % 16) < 3 || (y % 20) < 3) {
                    v = 245.0;
                }
                if pallet && (40..90).contains(&x) && (150..190).contains(&y) {
                    v = 20.0;
                }
                let v = (v * gain).clamp(0.0, 255.0) as u8;
                let i = ((y * w + x) * 3) as usize;
                f.data[i..i + 3].copy_from_slice(&[v, v, v]);
            }
        }
        f
    }

    fn run(samples: impl Iterator<Item = (i64, Frame)>) -> Vec<RuleEvent> {
        let mut rule = ConstructionRule::new(ConstructionConfig::default());
        let zone = WatchedZone {
            id: "cw".into(),
            outline: vec![(90.0, 50.0), (230.0, 50.0), (230.0, 210.0), (90.0, 210.0)],
        };
        let mut out = Vec::new();
        for (t, f) in samples {
            rule.step(
                t,
                &f,
                std::slice::from_ref(&zone),
                &[],
                &mut |_| None,
                &mut out,
            )
            .unwrap();
        }
        out
    }

    const HOUR: i64 = 3_600_000;

    /// Day at full light, evening dimmer, night almost black, every 10 minutes.
    fn gain_at(t: i64) -> f32 {
        match (t / HOUR) % 24 {
            7..=16 => 1.0,
            17..=19 | 5..=6 => 0.6,
            _ => 0.1,
        }
    }

    #[test]
    fn a_scaffold_that_stays_through_days_and_nights_is_one_violation() {
        // watching starts at 08:00; the scaffold goes up at 10:00 and stays
        let events = run((0..(48 * 6)).map(|k| {
            let t = 8 * HOUR + k * 600_000;
            (t, scene(gain_at(t), t >= 10 * HOUR, false))
        }));
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.kind, ViolationKind::IllegalConstruction);
        assert_eq!(e.since_ms, 10 * HOUR);
        assert!(
            e.at_ms >= 16 * HOUR && e.at_ms <= 17 * HOUR,
            "after 6 h: {e:?}"
        );
    }

    #[test]
    fn nights_do_not_restart_the_clock() {
        // the scaffold goes up at 17:00: 3 visible hours, a dark night, then morning;
        // 6 visible hours are reached at 08:00 the next day… counted in time since 17:00
        let events = run((0..(30 * 6)).map(|k| {
            let t = 8 * HOUR + k * 600_000;
            (t, scene(gain_at(t), t >= 17 * HOUR, false))
        }));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].since_ms, 17 * HOUR);
        assert!(
            events[0].at_ms <= 29 * HOUR + 600_000,
            "reported at the first light after 6 h: {:?}",
            events[0]
        );
    }

    #[test]
    fn light_alone_and_a_passing_delivery_never_trigger() {
        // two days of light changes and nights; a dark pallet stands outside the zone
        // and a scaffold-like load stands in it for 3 h only
        let events = run((0..(48 * 6)).map(|k| {
            let t = 8 * HOUR + k * 600_000;
            let delivery = (12 * HOUR..15 * HOUR).contains(&t);
            (t, scene(gain_at(t), delivery, true))
        }));
        assert!(events.is_empty(), "{events:?}");
    }
}

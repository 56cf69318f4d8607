//! Dumping and illegal construction seen from a moving camera (a drone), by revisit:
//! a new object or structure at the same ground spot on later passes.
//!
//! Design. A fixed camera compares pixels over time; a drone's pixels are nowhere in
//! particular, so each watched ground zone (`no_dumping`, `construction_watch`) has a
//! raster of ground cells instead, and every frame that sees the zone is warped onto
//! it through the frame's pose (one homography: the ground is flat). Cells under
//! people and vehicles (the movers' boxes) are not taken. A *pass* is a stretch of
//! frames that see the zone, ended when none has for `pass_gap` or when it has lasted
//! `max_pass` (so a hover is several passes); its picture is the mean of its frames.
//! The first pass is the zone's reference; later passes widen it where it had not
//! seen, and are compared with it where both have, after matching their brightness
//! and contrast. For dumping, regions that differ by more than `threshold` grey levels
//! and cover at least `min_area_m2` are changes, followed by their ground position;
//! for construction, the share of the pass's edges that are new (as the fixed
//! rule measures it). A change first seen on one pass and seen again on a later one,
//! `dwell` (dumping) or `min_duration` (construction) after it was first seen, is a
//! violation, once, placed at the change's ground centre.
//!
//! Coverage is recorded (passes, the share of each zone ever seen, the last pass):
//! a change whose spot a pass did not see is kept, not gone ("not seen" is never
//! "gone"); only a pass that saw the spot without the change ends it.
//!
//! Limits: the ground is taken as flat (a tall structure's top is misplaced, which
//! is itself a change in every pass); a region that changed and was taken away shows
//! as a change too (the comparison cannot tell "came" from "went"); the reference is
//! what the first pass saw (what was there then never triggers); the pose's error
//! blurs the comparison (at 0.1 m cells, a pose off by half a metre makes edges of
//! their own: keep telemetry and video in step with `video_latency`).

mod raster;
mod regions;

use std::time::Duration;

use chrono::{DateTime, Utc};
use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;

use super::construction::ConstructionConfig;
use super::dumping::DumpingConfig;
use super::{duration_param, RuleEvent, RuleOutput, Stage, ViolationKind};
use crate::decode::Frame;
use crate::geo::drone::{DroneCamera, ZoneCoverage};
use crate::geo::zones::{Zone, ZoneArea, ZoneKind, ZoneSet};
use crate::geo::LatLon;
use crate::ingest::telemetry::DronePose;
use crate::track::Track;
use raster::Raster;
use regions::{objects, structure, Found};

/// Revisit settings.
#[derive(Debug, Clone)]
pub struct RevisitConfig {
    /// Ground cell side, metres (coarser for zones wider than `max_side` cells).
    pub cell_m: f64,
    /// The most cells along a zone's longer side.
    pub max_side: i32,
    /// A pass ends when no frame has seen the zone for this long.
    pub pass_gap: Duration,
    /// A pass ends when it has lasted this long (a hover is several passes).
    pub max_pass: Duration,
    /// A frame takes part in a pass when it sees at least this share of the zone.
    pub min_cover: f64,
    /// Grey-level difference (after matching brightness) that counts as change.
    pub threshold: f64,
    /// Smallest changed region, square metres.
    pub min_area_m2: f64,
    /// Largest changed region, as a share of the zone (more is light, not an object).
    pub max_area_share: f64,
    /// Changes on two passes closer than this are the same, metres.
    pub match_m: f64,
    /// Frames are downscaled to at most this width before warping.
    pub work_width: i32,
}

impl Default for RevisitConfig {
    fn default() -> Self {
        Self {
            cell_m: 0.1,
            max_side: 256,
            pass_gap: Duration::from_secs(5),
            max_pass: Duration::from_secs(30),
            min_cover: 0.1,
            threshold: 30.0,
            min_area_m2: 0.25,
            max_area_share: 0.5,
            match_m: 1.5,
            work_width: 640,
        }
    }
}

/// A drone frame as the rule needs it: the picture, the camera, where it looked from.
pub struct GroundView<'a> {
    /// The picture.
    pub frame: &'a Frame,
    /// Its camera.
    pub camera: DroneCamera,
    /// Its pose (pitch filled in).
    pub pose: &'a DronePose,
}

/// A change followed on the ground.
struct Change {
    id: u64,
    /// Its ground centre, metres in the raster's frame.
    at: (f64, f64),
    /// Its cells, `[i0, j0, i1, j1]`.
    cells: [i32; 4],
    first_seen: i64,
    first_pass: u32,
    seen_now: bool,
    reported: bool,
}

/// One watched zone.
struct Watched {
    zone: Zone,
    outline: Vec<LatLon>,
    /// Made at the first frame that comes near it.
    raster: Option<Raster>,
    pass_start: Option<i64>,
    last_seen: i64,
    frames: u32,
    has_reference: bool,
    passes: u32,
    last_pass: Option<(i64, i64, f64)>,
    changes: Vec<Change>,
}

/// Changes followed per zone at most (the oldest unreported goes first).
const MAX_CHANGES: usize = 64;

/// The revisit rule of one drone camera.
pub struct RevisitRule {
    config: RevisitConfig,
    dumping: DumpingConfig,
    construction: ConstructionConfig,
    zones: Vec<Watched>,
    tz: chrono_tz::Tz,
    grey: Mat,
    small: Mat,
    common: Vec<bool>,
    hidden: Vec<[f32; 4]>,
    next_id: u64,
}

impl RevisitRule {
    /// A rule with these settings (dumping's dwell and movers, construction's
    /// duration and share of new edges).
    pub fn new(
        config: RevisitConfig,
        dumping: DumpingConfig,
        construction: ConstructionConfig,
    ) -> Self {
        Self {
            config,
            dumping,
            construction,
            zones: Vec::new(),
            tz: chrono_tz::UTC,
            grey: Mat::default(),
            small: Mat::default(),
            common: Vec::new(),
            hidden: Vec::new(),
            next_id: 1 << 40,
        }
    }

    /// The zones to watch: the ground zones of the two kinds. A zone whose outline is
    /// unchanged keeps its reference and changes.
    pub fn set_zones(&mut self, zones: &ZoneSet) {
        self.tz = zones.tz();
        let mut old = std::mem::take(&mut self.zones);
        for z in zones.zones() {
            if !matches!(z.kind, ZoneKind::NoDumping | ZoneKind::ConstructionWatch) {
                continue;
            }
            let ZoneArea::Ground(mp) = &z.area else {
                continue;
            };
            let outline: Vec<LatLon> =
                mp.0.first()
                    .map(|p| {
                        p.exterior()
                            .coords()
                            .map(|c| LatLon { lat: c.y, lon: c.x })
                            .collect()
                    })
                    .unwrap_or_default();
            if outline.len() < 3 {
                continue;
            }
            if let Some(i) = old
                .iter()
                .position(|w| w.zone.id == z.id && w.zone.kind == z.kind && w.outline == outline)
            {
                let mut w = old.swap_remove(i);
                w.zone = z.clone();
                self.zones.push(w);
                continue;
            }
            self.zones.push(Watched {
                zone: z.clone(),
                outline,
                raster: None,
                pass_start: None,
                last_seen: 0,
                frames: 0,
                has_reference: false,
                passes: 0,
                last_pass: None,
                changes: Vec::new(),
            });
        }
    }

    /// What the passes have covered of each zone.
    pub fn coverage(&self) -> Vec<ZoneCoverage> {
        self.zones
            .iter()
            .filter(|w| w.raster.is_some())
            .map(|w| {
                let r = w.raster.as_ref().expect("filtered");
                let ever = (r.ever.iter().zip(&r.inside))
                    .filter(|(e, i)| **e && **i)
                    .count();
                ZoneCoverage {
                    zone: w.zone.id.clone(),
                    passes: w.passes,
                    covered: ever as f64 / r.n_inside.max(1) as f64,
                    last_pass: w.last_pass,
                    changes: w.changes.len(),
                }
            })
            .collect()
    }

    /// Evaluates one sample at `t` ms: `view` is the frame and its pose (`None`: the
    /// sample has no usable pose), `tracks` the drone's tracks (those of movers seen
    /// now are cut out), `override_dwell` ignores zones' own dwell.
    pub fn step(
        &mut self,
        t: i64,
        view: Option<&GroundView<'_>>,
        tracks: &[Track],
        override_dwell: bool,
        out: &mut RuleOutput,
    ) -> opencv::Result<()> {
        if self.zones.is_empty() {
            return Ok(());
        }
        let mut scale = 1.0;
        let mut near: Option<[LatLon; 4]> = None;
        if let Some(v) = view {
            let src = crate::draw::frame_mat(v.frame)?;
            imgproc::cvt_color_def(&src, &mut self.grey, imgproc::COLOR_BGR2GRAY)?;
            let ww = self.config.work_width;
            if self.grey.cols() > ww {
                scale = ww as f64 / self.grey.cols() as f64;
                let hh = (self.grey.rows() as f64 * scale).round() as i32;
                imgproc::resize(
                    &self.grey,
                    &mut self.small,
                    Size::new(ww, hh),
                    0.0,
                    0.0,
                    imgproc::INTER_AREA,
                )?;
            } else {
                self.grey.copy_to(&mut self.small)?;
            }
            near = v.camera.footprint(v.pose);
            // people and vehicles seen now are not the ground (with a margin)
            self.hidden.clear();
            for tr in tracks
                .iter()
                .filter(|tr| tr.seen_at(t) && self.dumping.movers.contains(&tr.class))
            {
                let b = tr.bbox;
                let (mx, my) = ((b[2] - b[0]) * 0.15, (b[3] - b[1]) * 0.15);
                self.hidden
                    .push([b[0] - mx, b[1] - my, b[2] + mx, b[3] + my]);
            }
        }
        let now = DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_else(Utc::now);
        let cfg = self.config.clone();
        for zi in 0..self.zones.len() {
            let mut seen = 0;
            if let (Some(v), Some(fp)) = (view, near) {
                let w = &mut self.zones[zi];
                if w.raster.is_none() && footprint_meets(&fp, &w.outline) {
                    w.raster = Some(Raster::new(&w.outline, cfg.cell_m, cfg.max_side)?);
                }
                if let Some(r) = &mut w.raster {
                    if footprint_meets_extent(&fp, r) {
                        seen = r.project(&v.camera, v.pose, &self.small, scale, &self.hidden)?;
                    }
                }
            }
            let w = &mut self.zones[zi];
            let covers = w
                .raster
                .as_ref()
                .is_some_and(|r| seen as f64 >= cfg.min_cover * r.n_inside.max(1) as f64);
            if let Some(start) = w.pass_start {
                let gap = cfg.pass_gap.as_millis() as i64;
                if (!covers && t - w.last_seen > gap)
                    || t - start >= cfg.max_pass.as_millis() as i64
                {
                    end_pass(w, out);
                }
            }
            if !covers {
                continue;
            }
            let r = w.raster.as_mut().expect("covers");
            r.accumulate()?;
            w.pass_start.get_or_insert(t);
            w.last_seen = t;
            w.frames += 1;
            if w.has_reference && w.frames >= 2 {
                let v = view.expect("covers");
                let active = w.zone.active_at(now, self.tz);
                match w.zone.kind {
                    ZoneKind::NoDumping => {
                        let dwell = if override_dwell {
                            None
                        } else {
                            w.zone.params.get("dwell").and_then(duration_param)
                        }
                        .unwrap_or(self.dumping.dwell);
                        let r = w.raster.as_mut().expect("covers");
                        let found = objects(r, &cfg, &mut self.common)?;
                        follow(w, found, t, v, &cfg, &mut self.next_id, out);
                        if active {
                            report_objects(w, t, dwell, v, out);
                        }
                    }
                    _ => {
                        let c = &self.construction;
                        let r = w.raster.as_mut().expect("covers");
                        if let Some(found) = structure(r, c.new_edge_share, &mut self.common)? {
                            let min = c.min_duration;
                            follow(w, vec![found], t, v, &cfg, &mut self.next_id, out);
                            if active {
                                report_objects(w, t, min, v, out);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a frame's footprint comes near a zone's outline (bounding boxes meet).
fn footprint_meets(fp: &[LatLon; 4], outline: &[LatLon]) -> bool {
    let bb = |pts: &mut dyn Iterator<Item = LatLon>| {
        pts.fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, p| {
            [
                b[0].min(p.lat),
                b[1].min(p.lon),
                b[2].max(p.lat),
                b[3].max(p.lon),
            ]
        })
    };
    let (a, b) = (
        bb(&mut fp.iter().copied()),
        bb(&mut outline.iter().copied()),
    );
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// Whether a frame's footprint meets a raster's extent.
fn footprint_meets_extent(fp: &[LatLon; 4], r: &Raster) -> bool {
    let [w, s, e, n] = r.extent();
    let pts = [(w, s), (e, s), (e, n), (w, n)].map(|(x, y)| r.frame.to_latlon(x, y));
    footprint_meets(fp, &pts)
}

/// Matches the regions found now to the changes followed; a new one is remembered
/// (its first sight is evidence).
fn follow(
    w: &mut Watched,
    found: Vec<Found>,
    t: i64,
    v: &GroundView<'_>,
    cfg: &RevisitConfig,
    next_id: &mut u64,
    out: &mut RuleOutput,
) {
    let r = w.raster.as_ref().expect("compared");
    let kind = kind_of(&w.zone.kind);
    let h = v.camera.homography(v.pose, &r.frame);
    let size = (v.camera.width, v.camera.height);
    for f in found {
        let at = r.centre(f.centre.0 - 0.5, f.centre.1 - 0.5);
        // a zone's structure is one change wherever its new edges centre
        let whole = kind == ViolationKind::IllegalConstruction;
        let near = w
            .changes
            .iter_mut()
            .filter(|c| whole || (c.at.0 - at.0).hypot(c.at.1 - at.1) <= cfg.match_m)
            .min_by(|a, b| {
                let d = |c: &Change| (c.at.0 - at.0).hypot(c.at.1 - at.1);
                d(a).total_cmp(&d(b))
            });
        if let Some(c) = near {
            c.at = at;
            c.cells = f.cells;
            c.seen_now = true;
            continue;
        }
        if w.changes.len() >= MAX_CHANGES {
            if let Some(i) = w.changes.iter().position(|c| !c.reported) {
                let c = w.changes.remove(i);
                out.forget.push((kind, c.id));
            } else {
                continue;
            }
        }
        *next_id += 1;
        out.remember
            .push((kind, *next_id, r.box_in_frame(f.cells, &h, size)));
        w.changes.push(Change {
            id: *next_id,
            at,
            cells: f.cells,
            first_seen: t,
            first_pass: w.passes,
            seen_now: true,
            reported: false,
        });
    }
}

fn kind_of(k: &ZoneKind) -> ViolationKind {
    if *k == ZoneKind::NoDumping {
        ViolationKind::Dumping
    } else {
        ViolationKind::IllegalConstruction
    }
}

/// Violations: a change seen now, first seen on an earlier pass, `need` ago or more,
/// in the frame now.
fn report_objects(
    w: &mut Watched,
    t: i64,
    need: Duration,
    v: &GroundView<'_>,
    out: &mut RuleOutput,
) {
    let r = w.raster.as_ref().expect("compared");
    let kind = kind_of(&w.zone.kind);
    let h = v.camera.homography(v.pose, &r.frame);
    let size = (v.camera.width, v.camera.height);
    let passes = w.passes;
    for c in w.changes.iter_mut().filter(|c| {
        c.seen_now
            && !c.reported
            && c.first_pass < passes
            && t - c.first_seen >= need.as_millis() as i64
            && r.cell_of(c.at).is_some_and(|k| r.now[k])
    }) {
        c.reported = true;
        out.events.push(RuleEvent {
            kind,
            stage: Stage::Violation,
            zone: w.zone.id.clone(),
            track: c.id,
            class: if kind == ViolationKind::Dumping {
                "object".into()
            } else {
                "structure change".into()
            },
            since_ms: c.first_seen,
            at_ms: t,
            bbox: r.box_in_frame(c.cells, &h, size),
            related: None,
            ground: Some(r.frame.to_latlon(c.at.0, c.at.1)),
        });
    }
}

/// Ends a zone's pass: the first is the reference; a change the pass saw again
/// counts it, one whose spot it saw without it is gone, one whose spot it did not see
/// is kept.
fn end_pass(w: &mut Watched, out: &mut RuleOutput) {
    let Some(r) = w.raster.as_mut() else {
        return;
    };
    let kind = kind_of(&w.zone.kind);
    let start = w.pass_start.take().unwrap_or(w.last_seen);
    let frames = std::mem::take(&mut w.frames);
    let looked: Vec<bool> = w
        .changes
        .iter()
        .map(|c| r.cell_of(c.at).is_some_and(|k| r.count[k] > 0))
        .collect();
    let share = r.end_pass();
    if frames == 0 {
        return;
    }
    w.has_reference = true;
    w.passes += 1;
    w.last_pass = Some((start, w.last_seen, share));
    let mut i = 0;
    w.changes.retain_mut(|c| {
        let looked_here = looked[i];
        i += 1;
        let gone = !c.seen_now && looked_here;
        c.seen_now = false;
        if gone {
            out.forget.push((kind, c.id));
        }
        !gone
    });
}

#[cfg(test)]
mod tests;

//! One view of a camera (the camera's only view, or one PTZ preset): its calibration,
//! its zones, and the tracker, rules and evidence of what is seen there. A camera
//! touring its presets keeps one of these per preset, so tracks and dwell carry over
//! from one visit to the next.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::drone::{DroneView, Placer};
use super::{Found, SceneRules};
use crate::cases::NewViolation;
use crate::decode::Frame;
use crate::detect::postprocess::Detection;
use crate::geo::calib::Calibration;
use crate::geo::grid::CellLocator;
use crate::geo::zones::{Zone, ZoneArea, ZoneKind, ZoneSet};
use crate::geo::LatLon;
use crate::rules::construction::{ConstructionRule, WatchedZone, WatchingRule};
use crate::rules::dumping::DumpingRule;
use crate::rules::evidence::{EvidenceKeeper, Place};
use crate::rules::parking::ParkingRule;
use crate::rules::revisit::{GroundView, RevisitRule};
use crate::rules::vending::VendingRule;
use crate::rules::{duration_param, Rule, RuleOutput, Sample, Stage, ZoneHit};
use crate::track::{Observation, Tracker, TrackerConfig};

/// What every view of a camera shares.
pub(super) struct Common {
    pub camera: Arc<str>,
    pub location: Option<LatLon>,
    pub cells: Arc<CellLocator>,
    pub fallback_cells: CellLocator,
    pub override_dwell: bool,
}

impl Common {
    /// The grid cell of a place (the city's grid, or H3 where it has none).
    pub fn cell(&self, place: LatLon) -> Option<crate::geo::grid::CellRef> {
        self.cells
            .cell(place)
            .or_else(|| self.fallback_cells.cell(place))
    }
}

/// One view's state.
pub(super) struct Position {
    /// The preset's name (`None`: the camera's only view).
    pub name: Option<Arc<str>>,
    /// The `camera` its pixel zones name: the camera id, or `camera@preset`.
    key: String,
    pub calibration: Option<Calibration>,
    /// A drone's view: placed by each sample's pose instead of a calibration.
    pub drone: Option<DroneView>,
    zones: Arc<ZoneSet>,
    tracker: Tracker,
    /// Parking, vending, dumping, in this order.
    rules: Vec<Box<dyn Rule>>,
    /// Construction, apart: the zones it watches change with the zones.
    construction: WatchingRule,
    /// A drone's dumping and construction: by revisit, on the ground.
    revisit: Option<RevisitRule>,
    keeper: EvidenceKeeper,
    out: RuleOutput,
    obs: Vec<Observation>,
    /// Time the camera has looked elsewhere since this view's last sample (ms).
    pub away_ms: i64,
}

impl Position {
    /// The view `name` of `camera`.
    pub fn new(
        camera: &str,
        name: Option<Arc<str>>,
        calibration: Option<Calibration>,
        zones: Arc<ZoneSet>,
        rules: &SceneRules,
    ) -> Self {
        let key = crate::config::view_key(camera, name.as_deref());
        let mut p = Self {
            name,
            key,
            calibration,
            drone: None,
            zones,
            tracker: Tracker::new(TrackerConfig::default()),
            rules: vec![
                Box::new(ParkingRule::new(rules.parking.clone())),
                Box::new(VendingRule::new(rules.vending.clone())),
                Box::new(DumpingRule::new(rules.dumping.clone())),
            ],
            construction: WatchingRule {
                rule: ConstructionRule::new(rules.construction.clone()),
                zones: Vec::new(),
            },
            revisit: None,
            keeper: EvidenceKeeper::new(rules.privacy.clone())
                .with_captions(rules.captions.clone())
                .with_originals(rules.originals)
                .with_clip(rules.clip.clone())
                .with_plates(rules.plates.clone()),
            out: RuleOutput::default(),
            obs: Vec::new(),
            away_ms: 0,
        };
        p.construction.zones = p.watched();
        p
    }

    /// The view of a drone (`camera`): its tracks on the ground (by ground points
    /// alone), its zones the ground zones, its rules those of tracks (parking,
    /// vending) and dumping and construction by revisit (a ground change map per zone:
    /// the fixed view's rules compare pixels).
    pub fn drone(camera: &str, drone: DroneView, zones: Arc<ZoneSet>, rules: &SceneRules) -> Self {
        let mut revisit = RevisitRule::new(
            rules.revisit.clone(),
            rules.dumping.clone(),
            rules.construction.clone(),
        );
        revisit.set_zones(&zones);
        let mut p = Self::new(camera, None, None, zones, rules);
        p.revisit = Some(revisit);
        p.tracker = Tracker::new(TrackerConfig {
            ground_only: true,
            ..TrackerConfig::default()
        });
        p.rules.truncate(2);
        p.construction.zones.clear();
        p.drone = Some(drone);
        p.keeper = std::mem::take(&mut p.keeper).on_a_moving_camera();
        p
    }

    /// The camera's main stream, for the close-ups of this view's violations.
    pub fn set_main_stream(&mut self, main: Option<Arc<crate::rules::detail::MainStream>>) {
        self.keeper = std::mem::take(&mut self.keeper).with_detail(main);
    }

    /// How this view places its pixels on the ground.
    fn placer(&self) -> Placer<'_> {
        Placer::of(self.drone.as_ref(), self.calibration.as_ref())
    }

    /// The construction-watch zones this view sees, in its pixels.
    fn watched(&self) -> Vec<WatchedZone> {
        if self.drone.is_some() {
            return Vec::new();
        }
        self.zones
            .zones()
            .iter()
            .filter(|z| z.kind == ZoneKind::ConstructionWatch)
            .filter(|z| match &z.area {
                ZoneArea::Pixels { camera, .. } => *camera == self.key,
                ZoneArea::Ground(_) => true,
            })
            .map(|z| WatchedZone {
                outline: self.outline(&z.id),
                id: z.id.clone(),
            })
            .filter(|z| z.outline.len() >= 3)
            .collect()
    }

    /// New zones (an operator saved a zone): the tracks, dwell and rules' state go on.
    pub fn set_zones(&mut self, zones: Arc<ZoneSet>) {
        if let Some(r) = &mut self.revisit {
            r.set_zones(&zones);
        }
        self.zones = zones;
        self.construction.zones = self.watched();
    }

    /// Zones (ground zones and this view's pixel zones) a box's foot stands in at `now`.
    fn zones_at<'z>(
        zones: &'z ZoneSet,
        placer: Placer<'_>,
        key: &str,
        bbox: &[f32; 4],
        now: DateTime<Utc>,
        override_dwell: bool,
    ) -> Vec<ZoneHit<'z>> {
        let mut found: Vec<&Zone> = Vec::new();
        if let Some(g) = placer.ground(*bbox) {
            zones.at(g, now, &mut found);
        }
        if placer.pixel_zones() {
            let foot = (((bbox[0] + bbox[2]) / 2.0) as f64, bbox[3] as f64);
            zones.at_pixel(key, foot.0, foot.1, now, &mut found);
        }
        found
            .into_iter()
            .map(|z| ZoneHit {
                id: &z.id,
                kind: &z.kind,
                dwell: if override_dwell {
                    None
                } else {
                    z.params.get("dwell").and_then(duration_param)
                },
            })
            .collect()
    }

    /// The version of zone `id` as this view has it (a case records it).
    fn zone_version(&self, id: &str) -> Option<i64> {
        self.zones.zones().iter().find(|z| z.id == id)?.version
    }

    /// A zone's outline in this view's pixels, for drawing.
    fn outline(&self, zone_id: &str) -> Vec<(f64, f64)> {
        let Some(z) = self.zones.zones().iter().find(|z| z.id == zone_id) else {
            return Vec::new();
        };
        let placer = self.placer();
        match &z.area {
            ZoneArea::Ground(mp) => {
                mp.0.first()
                    .map(|p| {
                        p.exterior()
                            .coords()
                            .filter_map(|c| placer.pixel(LatLon { lat: c.y, lon: c.x }))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            ZoneArea::Pixels { .. } if !placer.pixel_zones() => Vec::new(),
            ZoneArea::Pixels { area, .. } => area
                .0
                .first()
                .map(|p| p.exterior().coords().map(|c| (c.x, c.y)).collect())
                .unwrap_or_default(),
        }
    }

    /// Steps the tracker and the rules on a sample of this view (in its reference
    /// pixels); returns the violations found, placed and with their evidence.
    pub fn step(
        &mut self,
        common: &Common,
        t_ms: i64,
        frame: &Frame,
        dets: &[Detection],
        classes: &[String],
    ) -> opencv::Result<Vec<Found>> {
        // the time the camera looked elsewhere is not time the tracks went unseen
        if self.away_ms > 0 {
            self.tracker.away(self.away_ms);
            self.away_ms = 0;
        }
        let now = DateTime::<Utc>::from_timestamp_millis(t_ms).unwrap_or_else(Utc::now);
        self.obs.clear();
        let mut unplaced = 0;
        let placer = Placer::of(self.drone.as_ref(), self.calibration.as_ref());
        for d in dets {
            let ground = placer.local(d.bbox);
            if ground.is_none() && !placer.pixel_zones() {
                // a drone's detection it cannot place is of no use
                unplaced += 1;
                continue;
            }
            self.obs.push(Observation {
                class: classes
                    .get(d.class_id as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("class{}", d.class_id)),
                score: d.score,
                bbox: d.bbox,
                ground,
            });
        }
        if let Some(d) = &mut self.drone {
            d.above_horizon(unplaced);
            // a drone flying elsewhere has not missed what it did not look at
            let dt = d.elapsed(t_ms);
            let d = &*d;
            self.tracker
                .out_of_view(dt, |tr| tr.ground.is_some_and(|g| !d.sees(g)));
        }
        let placer = Placer::of(self.drone.as_ref(), self.calibration.as_ref());
        let tracks = self.tracker.update(t_ms, &self.obs);
        let zones = self.zones.clone();
        let key = self.key.as_str();
        let ov = common.override_dwell;
        // where each track seen in this sample stands, found once for every rule and the
        // evidence keeper (they look only at tracks seen now; the others stay empty)
        let track_zones: Vec<Vec<ZoneHit>> = tracks
            .iter()
            .map(|tr| {
                if tr.seen_at(t_ms) {
                    Self::zones_at(&zones, placer, key, &tr.bbox, now, ov)
                } else {
                    Vec::new()
                }
            })
            .collect();
        let box_zones = |b: &[f32; 4]| Self::zones_at(&zones, placer, key, b, now, ov);
        let sample = Sample {
            t_ms,
            frame,
            tracks,
            track_zones: &track_zones,
            box_zones: &box_zones,
        };
        self.keeper
            .observe(t_ms, frame, tracks, |tr| !sample.zones_of(tr).is_empty())?;
        self.out.clear();
        for rule in &mut self.rules {
            rule.step(&sample, &mut self.out)?;
        }
        self.construction.step(&sample, &mut self.out)?;
        if let (Some(rv), Some(d)) = (&mut self.revisit, &mut self.drone) {
            let posed = d.posed();
            let view = posed.as_ref().map(|(camera, pose)| GroundView {
                frame,
                camera: *camera,
                pose,
            });
            rv.step(t_ms, view.as_ref(), tracks, ov, &mut self.out)?;
            d.set_coverage(rv.coverage());
        }
        for &(kind, id, bbox) in &self.out.remember {
            self.keeper.remember(kind, id, t_ms, bbox, frame, tracks)?;
        }
        for &(kind, id) in &self.out.forget {
            self.keeper.forget(kind, id);
        }
        let mut out = Vec::new();
        let events = std::mem::take(&mut self.out.events);
        for e in &events {
            if e.stage != Stage::Violation {
                tracing::debug!(
                    camera = &*common.camera,
                    "warning: {:?} in {}",
                    e.kind,
                    e.zone
                );
                continue;
            }
            let place = (e.ground)
                .or_else(|| self.placer().ground(e.bbox))
                .or(common.location);
            let Some(place) = place else {
                tracing::warn!(
                    camera = &*common.camera,
                    "a {:?} violation in zone {} cannot be placed (no calibration, no location)",
                    e.kind,
                    e.zone
                );
                continue;
            };
            let Some(cell) = common.cell(place) else {
                continue;
            };
            let outline = self.outline(&e.zone);
            let admin = cell.admin.to_string();
            let at = Place {
                camera: &common.camera,
                name: &admin,
                cell: &cell.id,
                lat: place.lat,
                lon: place.lon,
            };
            let ev = self
                .keeper
                .evidence(t_ms, frame, self.tracker.tracks(), e, &outline, &at)?;
            out.push(Found {
                violation: NewViolation {
                    kind: e.kind,
                    cell: cell.id.clone(),
                    admin_path: admin,
                    lat: place.lat,
                    lon: place.lon,
                    camera: common.camera.to_string(),
                    zone: e.zone.clone(),
                    zone_version: self.zone_version(&e.zone),
                    at_ms: e.at_ms,
                    since_ms: e.since_ms,
                    footprint: self.drone.as_ref().and_then(|d| d.report().footprint),
                    // the detection loop names its model
                    model: String::new(),
                    model_sha256: String::new(),
                },
                evidence: ev.photos,
                detail: ev.detail,
                clip: ev.clip,
                subject: Some(super::Subject {
                    class: e.class.clone(),
                    bbox: e.bbox,
                }),
            });
        }
        self.out.events = events;
        Ok(out)
    }
}

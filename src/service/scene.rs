//! One camera's scene: tracker, rules, evidence and geo, fed the detections of each
//! sampled frame; what comes out are violations placed on the ground and in a grid
//! cell, each with its evidence images, ready for the case store.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::cases::NewViolation;
use crate::decode::Frame;
use crate::detect::postprocess::Detection;
use crate::geo::calib::Calibration;
use crate::geo::grid::CellLocator;
use crate::geo::view::{ViewConfig, ViewState, ViewWatch};
use crate::geo::zones::ZoneKind;
use crate::geo::zones::{Zone, ZoneArea, ZoneSet};
use crate::geo::LatLon;
use crate::rules::construction::{ConstructionConfig, ConstructionRule, WatchedZone, WatchingRule};
use crate::rules::dumping::{DumpingConfig, DumpingRule};
use crate::rules::evidence::EvidenceKeeper;
use crate::rules::parking::{ParkingConfig, ParkingRule};
use crate::rules::vending::{VendingConfig, VendingRule};
use crate::rules::{duration_param, Rule, RuleOutput, Sample, Stage, ZoneHit};
use crate::track::{Observation, Tracker, TrackerConfig};

/// A violation found in a frame, with its evidence (first frame, latest frame, crop).
#[derive(Debug, Clone)]
pub struct Found {
    /// For the store.
    pub violation: NewViolation,
    /// JPEGs: the first frame of the stay, the latest frame (both annotated), a crop.
    pub evidence: Vec<Vec<u8>>,
}

/// Rule settings for a scene.
#[derive(Debug, Clone, Default)]
pub struct SceneRules {
    /// Parking.
    pub parking: ParkingConfig,
    /// Vending.
    pub vending: VendingConfig,
    /// Dumping.
    pub dumping: DumpingConfig,
    /// Construction.
    pub construction: ConstructionConfig,
    /// Ignore the zones' own dwell times.
    pub override_zone_dwell: bool,
    /// Check each sample's view against the camera's reference ([`ViewWatch`]):
    /// correct small shifts, pause the rules while the view is not the reference's.
    pub view: Option<ViewConfig>,
}

/// One camera's scene.
pub struct Scene {
    camera: Arc<str>,
    calibration: Option<Calibration>,
    location: Option<LatLon>,
    zones: Arc<ZoneSet>,
    cells: Arc<CellLocator>,
    fallback_cells: CellLocator,
    tracker: Tracker,
    /// One per violation kind, in this order: parking, vending, dumping, construction.
    rules: Vec<Box<dyn Rule>>,
    keeper: EvidenceKeeper,
    override_dwell: bool,
    out: RuleOutput,
    obs: Vec<Observation>,
    /// The view check (off: every sample is taken as the reference view).
    view: Option<ViewWatch>,
    /// A shifted sample carried into the reference view, and its detections there
    /// (buffers reused from sample to sample).
    corrected: Frame,
    mapped: Vec<Detection>,
}

impl Scene {
    /// A scene for `camera`.
    pub fn new(
        camera: Arc<str>,
        calibration: Option<Calibration>,
        location: Option<LatLon>,
        zones: Arc<ZoneSet>,
        cells: Arc<CellLocator>,
        rules: &SceneRules,
    ) -> Self {
        let mut scene = Self {
            camera,
            calibration,
            location,
            zones,
            cells,
            fallback_cells: CellLocator::H3(h3o::Resolution::Ten),
            tracker: Tracker::new(TrackerConfig::default()),
            rules: Vec::new(),
            keeper: EvidenceKeeper::default(),
            override_dwell: rules.override_zone_dwell,
            out: RuleOutput::default(),
            obs: Vec::new(),
            view: rules
                .view
                .clone()
                .and_then(|cfg| match ViewWatch::new(cfg) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::error!("view check: {e}; the camera runs without it");
                        None
                    }
                }),
            corrected: Frame::default(),
            mapped: Vec::new(),
        };
        // construction-watch zones this camera sees, in its pixels
        let ids: Vec<String> = scene
            .zones
            .zones()
            .iter()
            .filter(|z| z.kind == ZoneKind::ConstructionWatch)
            .filter(|z| match &z.area {
                ZoneArea::Pixels { camera, .. } => camera.as_str() == &*scene.camera,
                ZoneArea::Ground(_) => true,
            })
            .map(|z| z.id.clone())
            .collect();
        let watched = ids
            .into_iter()
            .map(|id| WatchedZone {
                outline: scene.outline(&id),
                id,
            })
            .filter(|z| z.outline.len() >= 3)
            .collect();
        scene.rules = vec![
            Box::new(ParkingRule::new(rules.parking.clone())),
            Box::new(VendingRule::new(rules.vending.clone())),
            Box::new(DumpingRule::new(rules.dumping.clone())),
            Box::new(WatchingRule {
                rule: ConstructionRule::new(rules.construction.clone()),
                zones: watched,
            }),
        ];
        scene
    }

    /// The camera.
    pub fn camera(&self) -> &Arc<str> {
        &self.camera
    }

    /// Zones (ground and this camera's pixel zones) a box's foot stands in at `now`.
    fn zones_at<'z>(
        zones: &'z ZoneSet,
        cal: Option<&Calibration>,
        camera: &str,
        bbox: &[f32; 4],
        now: DateTime<Utc>,
        override_dwell: bool,
    ) -> Vec<ZoneHit<'z>> {
        let mut found: Vec<&Zone> = Vec::new();
        if let Some(g) = cal.and_then(|c| c.box_to_ground(*bbox).ok()) {
            zones.at(g, now, &mut found);
        }
        let foot = (((bbox[0] + bbox[2]) / 2.0) as f64, bbox[3] as f64);
        zones.at_pixel(camera, foot.0, foot.1, now, &mut found);
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

    /// A zone's outline in this camera's pixels, for drawing.
    fn outline(&self, zone_id: &str) -> Vec<(f64, f64)> {
        let Some(z) = self.zones.zones().iter().find(|z| z.id == zone_id) else {
            return Vec::new();
        };
        match &z.area {
            ZoneArea::Ground(mp) => match &self.calibration {
                Some(cal) => {
                    mp.0.first()
                        .map(|p| {
                            p.exterior()
                                .coords()
                                .filter_map(|c| cal.ground_to_image(LatLon { lat: c.y, lon: c.x }))
                                .collect()
                        })
                        .unwrap_or_default()
                }
                None => Vec::new(),
            },
            ZoneArea::Pixels { area, .. } => area
                .0
                .first()
                .map(|p| p.exterior().coords().map(|c| (c.x, c.y)).collect())
                .unwrap_or_default(),
        }
    }

    /// What the view check said of the last sample (`None`: no view check).
    pub fn view(&self) -> Option<&ViewState> {
        self.view.as_ref().map(ViewWatch::state)
    }

    /// Feeds one frame (taken at `t_ms`, ms since the epoch) and its detections. The
    /// view check comes first: a sample whose view is not the reference's steps no
    /// rule (nothing is filed from it); a slightly shifted one is carried into the
    /// reference view, its detections with it, so zones, calibration and the rules'
    /// pixel references hold.
    pub fn step(
        &mut self,
        t_ms: i64,
        frame: &Frame,
        dets: &[Detection],
        classes: &[String],
    ) -> opencv::Result<Vec<Found>> {
        let Some(view) = &mut self.view else {
            return self.step_in_view(t_ms, frame, dets, classes);
        };
        if view.observe(frame)?.paused() {
            return Ok(Vec::new());
        }
        let mut corrected = std::mem::take(&mut self.corrected);
        if !view.correct(frame, &mut corrected)? {
            self.corrected = corrected;
            return self.step_in_view(t_ms, frame, dets, classes);
        }
        let mut mapped = std::mem::take(&mut self.mapped);
        mapped.clear();
        mapped.extend(dets.iter().map(|d| {
            let mut d = *d;
            d.bbox = view.to_reference(d.bbox);
            d
        }));
        let out = self.step_in_view(t_ms, &corrected, &mapped, classes);
        self.corrected = corrected;
        self.mapped = mapped;
        out
    }

    /// [`Scene::step`] on a sample in the reference view.
    fn step_in_view(
        &mut self,
        t_ms: i64,
        frame: &Frame,
        dets: &[Detection],
        classes: &[String],
    ) -> opencv::Result<Vec<Found>> {
        let now = DateTime::<Utc>::from_timestamp_millis(t_ms).unwrap_or_else(Utc::now);
        self.obs.clear();
        for d in dets {
            let ground = self
                .calibration
                .as_ref()
                .and_then(|c| c.box_to_ground(d.bbox).ok().map(|g| c.frame().to_local(g)));
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
        let tracks = self.tracker.update(t_ms, &self.obs);
        let zones = self.zones.clone();
        let cal = self.calibration.as_ref();
        let camera = self.camera.clone();
        let ov = self.override_dwell;
        // where each track seen in this sample stands, found once for every rule and the
        // evidence keeper (they look only at tracks seen now; the others stay empty)
        let track_zones: Vec<Vec<ZoneHit>> = tracks
            .iter()
            .map(|tr| {
                if tr.seen_at(t_ms) {
                    Self::zones_at(&zones, cal, &camera, &tr.bbox, now, ov)
                } else {
                    Vec::new()
                }
            })
            .collect();
        let box_zones = |b: &[f32; 4]| Self::zones_at(&zones, cal, &camera, b, now, ov);
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
        for &(kind, id, bbox) in &self.out.remember {
            self.keeper.remember(kind, id, t_ms, bbox, frame)?;
        }
        for &(kind, id) in &self.out.forget {
            self.keeper.forget(kind, id);
        }
        let mut out = Vec::new();
        let events = std::mem::take(&mut self.out.events);
        for e in &events {
            if e.stage != Stage::Violation {
                tracing::debug!(
                    camera = &*self.camera,
                    "warning: {:?} in {}",
                    e.kind,
                    e.zone
                );
                continue;
            }
            let place = self
                .calibration
                .as_ref()
                .and_then(|c| c.box_to_ground(e.bbox).ok())
                .or(self.location);
            let Some(place) = place else {
                tracing::warn!(
                    camera = &*self.camera,
                    "a {:?} violation in zone {} cannot be placed (no calibration, no location)",
                    e.kind,
                    e.zone
                );
                continue;
            };
            let cell = self
                .cells
                .cell(place)
                .or_else(|| self.fallback_cells.cell(place));
            let Some(cell) = cell else { continue };
            let outline = self.outline(&e.zone);
            let ev = self.keeper.evidence(frame, e, &outline)?;
            out.push(Found {
                violation: NewViolation {
                    kind: e.kind,
                    cell: cell.id.clone(),
                    admin_path: cell.admin.to_string(),
                    lat: place.lat,
                    lon: place.lon,
                    camera: self.camera.to_string(),
                    zone: e.zone.clone(),
                    at_ms: e.at_ms,
                    since_ms: e.since_ms,
                },
                evidence: vec![ev.first, ev.latest, ev.crop],
            });
        }
        self.out.events = events;
        Ok(out)
    }
}

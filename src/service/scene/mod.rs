//! One camera's scene: tracker, rules, evidence and geo, fed the detections of each
//! sampled frame; what comes out are violations placed on the ground and in a grid
//! cell, each with its evidence images, ready for the case store.

use std::sync::Arc;
use std::time::Duration;

use crate::cases::{NewViolation, ViolationKind};
use crate::decode::Frame;
use crate::detect::postprocess::Detection;
use crate::geo::calib::Calibration;
use crate::geo::grid::CellLocator;
use crate::geo::view::{ViewConfig, ViewReport, ViewState, ViewWatch};
use crate::geo::zones::ZoneSet;
use crate::geo::LatLon;
use crate::rules::construction::ConstructionConfig;
use crate::rules::dumping::DumpingConfig;
use crate::rules::parking::ParkingConfig;
use crate::rules::vending::VendingConfig;

mod drone;
mod fault;
mod position;

pub use crate::geo::drone::DroneReport;
pub use drone::DroneView;
use fault::FaultWatch;
use position::{Common, Position};

/// A violation found in a frame, with its evidence (first frame, latest frame, crop).
#[derive(Debug, Clone)]
pub struct Found {
    /// For the store.
    pub violation: NewViolation,
    /// The photos: the violation's sequence ([`crate::rules::evidence`]) or a camera
    /// fault's frames.
    pub evidence: Vec<crate::cases::photo::Photo>,
    /// For a camera with a main stream: what its close-up needs, fetched once the
    /// violation has opened a case.
    pub detail: Option<Box<crate::rules::detail::DetailRequest>>,
    /// What the clip of the frames up to the violation needs, made once the violation
    /// has opened a case.
    pub clip: Option<Box<crate::rules::clip::ClipRequest>>,
    /// The object the rule fired on, in the violation's frame (`None`: a camera fault).
    pub subject: Option<Subject>,
}

/// The object a violation is of, as the rule saw it in the violation's frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// Its class (the model's name; dumping's regions are `object`).
    pub class: String,
    /// Its box, frame pixels: left, top, right, bottom.
    pub bbox: [f32; 4],
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
    /// Dumping and construction seen from a drone, by revisit.
    pub revisit: crate::rules::revisit::RevisitConfig,
    /// Who is blurred in evidence.
    pub privacy: crate::rules::privacy::PrivacyConfig,
    /// The strips under evidence photos (none when `None`).
    pub captions: Option<crate::rules::evidence::Captions>,
    /// Make unblurred originals of evidence photos, for reviewers.
    pub originals: bool,
    /// The clips of the frames up to each violation.
    pub clip: crate::rules::clip::ClipConfig,
    /// The plate detector (`cases.privacy.plates`).
    pub plates: Option<Arc<crate::rules::plates::Plates>>,
    /// Ignore the zones' own dwell times.
    pub override_zone_dwell: bool,
    /// Check each sample's view against the camera's reference ([`ViewWatch`]):
    /// correct small shifts, pause the rules while the view is not the reference's.
    pub view: Option<ViewConfig>,
    /// A camera whose view check says covered, defocused, frozen or (a fixed camera)
    /// moved for this long files a camera-fault case (`None`: never).
    pub fault_after: Option<Duration>,
}

/// One view of a camera as a scene is built with: the camera's only view, or one
/// preset of a PTZ camera.
pub struct ViewSpec {
    /// The preset's name (`None`: the camera's only view, its reference learned from
    /// the first good frame).
    pub name: Option<Arc<str>>,
    /// A picture of the view (a frame of the camera there): how a preset is
    /// recognised (one without waits for one to be captured).
    pub reference: Option<Frame>,
    /// The view's ground calibration.
    pub calibration: Option<Calibration>,
    /// The zones its findings may fall in (its pixel zones name `camera@preset`).
    pub zones: Arc<ZoneSet>,
}

/// One camera's scene.
pub struct Scene {
    common: Common,
    /// One per view (one, or one per preset).
    positions: Vec<Position>,
    /// The view check (off: every sample is taken as the one view).
    view: Option<ViewWatch>,
    /// The position of each of the view check's pictures (a preset without one has
    /// none; the one learned view is position 0).
    pictured: Vec<usize>,
    fault: FaultWatch,
    fault_after_ms: Option<i64>,
    last_t: Option<i64>,
    /// A shifted sample carried into the reference view, and its detections there
    /// (buffers reused from sample to sample).
    corrected: Frame,
    mapped: Vec<Detection>,
}

impl Scene {
    /// A scene for `camera` of one view.
    pub fn new(
        camera: Arc<str>,
        calibration: Option<Calibration>,
        location: Option<LatLon>,
        zones: Arc<ZoneSet>,
        cells: Arc<CellLocator>,
        rules: &SceneRules,
    ) -> Self {
        let view = ViewSpec {
            name: None,
            reference: None,
            calibration,
            zones,
        };
        Self::with_views(camera, vec![view], location, cells, rules)
            .expect("a scene of one learned view needs no reference")
    }

    /// A scene for `camera` with these views: its one view (`name` `None`: learned
    /// from the frames), or its presets, each recognised from the image by its
    /// reference picture (the view check is on for them whatever `rules` say). A
    /// preset without a picture yet is never recognised: its rules wait until one is
    /// captured. Fails on a reference nothing can be recognised in.
    pub fn with_views(
        camera: Arc<str>,
        views: Vec<ViewSpec>,
        location: Option<LatLon>,
        cells: Arc<CellLocator>,
        rules: &SceneRules,
    ) -> Result<Self, String> {
        let presets = views.iter().any(|v| v.name.is_some());
        let mut references = Vec::new();
        let mut pictured = Vec::new();
        let mut positions = Vec::new();
        for (i, v) in views.into_iter().enumerate() {
            if let Some(r) = v.reference.filter(|_| presets) {
                references.push(r);
                pictured.push(i);
            }
            positions.push(Position::new(
                &camera,
                v.name,
                v.calibration,
                v.zones,
                rules,
            ));
        }
        if !presets {
            // the one view, learned
            pictured.push(0);
        }
        let view = if presets {
            let cfg = rules.view.clone().unwrap_or_default();
            let mut watch = ViewWatch::with_presets(cfg, &[]).map_err(|e| e.message)?;
            for (r, &i) in references.iter().zip(&pictured) {
                let name = positions[i].name.as_deref().unwrap_or("?");
                watch
                    .add_preset(r)
                    .map_err(|e| format!("preset {name}: its reference picture has {e}"))?;
            }
            Some(watch)
        } else {
            rules
                .view
                .clone()
                .and_then(|cfg| match ViewWatch::new(cfg) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::error!("view check: {e}; the camera runs without it");
                        None
                    }
                })
        };
        Ok(Self {
            common: Common {
                camera,
                location,
                cells,
                fallback_cells: CellLocator::H3(h3o::Resolution::Ten),
                override_dwell: rules.override_zone_dwell,
            },
            positions,
            view,
            pictured,
            fault: FaultWatch::new(rules.privacy.classes(ViolationKind::CameraFault).to_vec()),
            fault_after_ms: rules.fault_after.map(|d| d.as_millis() as i64),
            last_t: None,
            corrected: Frame::default(),
            mapped: Vec::new(),
        })
    }

    /// A scene for drone `camera`: its findings placed through each sample's pose
    /// ([`Scene::step_posed`]), in its ground zones; no view check (a drone's view
    /// moves all the time) and no fault watch.
    pub fn drone(
        camera: Arc<str>,
        drone: DroneView,
        zones: Arc<ZoneSet>,
        cells: Arc<CellLocator>,
        rules: &SceneRules,
    ) -> Self {
        let rules = SceneRules {
            view: None,
            fault_after: None,
            ..rules.clone()
        };
        let mut s = Self::new(camera.clone(), None, None, zones.clone(), cells, &rules);
        s.positions[0] = Position::drone(&camera, drone, zones, &rules);
        s
    }

    /// What a drone camera's frames have been (`None`: not a drone).
    pub fn drone_report(&self) -> Option<&DroneReport> {
        self.positions[0].drone.as_ref().map(DroneView::report)
    }

    /// [`Scene::step`] for a frame with the drone pose matched to it (`None`: none
    /// within the gap): a drone's sample without a pose that sees the ground is
    /// counted and not used. A fixed camera ignores the pose.
    pub fn step_posed(
        &mut self,
        t_ms: i64,
        frame: &Frame,
        pose: Option<&crate::ingest::telemetry::DronePose>,
        dets: &[Detection],
        classes: &[String],
    ) -> opencv::Result<Vec<Found>> {
        if let Some(d) = &mut self.positions[0].drone {
            if !d.set_pose(pose, (frame.width, frame.height)) {
                return Ok(Vec::new());
            }
        }
        self.step(t_ms, frame, dets, classes)
    }

    /// New zones, one set per view in the order the scene was built with (an
    /// operator saved a zone); tracks, dwell and the rules' state go on.
    pub fn set_zones(&mut self, zones: Vec<Arc<ZoneSet>>) {
        for (p, z) in self.positions.iter_mut().zip(zones) {
            p.set_zones(z);
        }
    }

    /// The camera's main stream, read for the close-up of each violation (none: the
    /// detection stream's photos only).
    pub fn set_main_stream(&mut self, main: Option<Arc<crate::rules::detail::MainStream>>) {
        for p in &mut self.positions {
            p.set_main_stream(main.clone());
        }
    }

    /// The camera.
    pub fn camera(&self) -> &Arc<str> {
        &self.common.camera
    }

    /// What the view check said of the last sample (`None`: no view check).
    pub fn view(&self) -> Option<&ViewState> {
        self.view.as_ref().map(ViewWatch::state)
    }

    /// The view check's last word with the preset it named (`None`: no view check).
    pub fn view_report(&self) -> Option<ViewReport> {
        let v = self.view.as_ref()?;
        Some(ViewReport {
            state: v.state().clone(),
            preset: v
                .preset()
                .and_then(|i| self.positions[self.pictured[i]].name.clone()),
        })
    }

    /// Feeds one frame (taken at `t_ms`, ms since the epoch) and its detections. The
    /// view check comes first: a sample whose view is not a reference's steps no
    /// rule (nothing is filed from it); a slightly shifted one is carried into its
    /// reference view, its detections with it, so zones, calibration and the rules'
    /// pixel references hold. A camera with presets steps the rules of the preset it
    /// is at; the others wait, their tracks kept.
    pub fn step(
        &mut self,
        t_ms: i64,
        frame: &Frame,
        dets: &[Detection],
        classes: &[String],
    ) -> opencv::Result<Vec<Found>> {
        let dt = self.last_t.map_or(0, |l| (t_ms - l).max(0));
        self.last_t = Some(t_ms);
        let Some(view) = &mut self.view else {
            return self.positions[0].step(&self.common, t_ms, frame, dets, classes);
        };
        let state = view.observe(frame)?.clone();
        let preset = view.preset().map(|i| self.pictured[i]);
        let has_presets = self.positions.len() > 1;
        // the view whose rules this sample steps: the preset it is at, or the one view
        // while its reference is still being learned; none while paused
        let stepped = match (state.paused(), preset) {
            (true, _) => None,
            (false, Some(i)) => Some(i),
            (false, None) => (!has_presets).then_some(0),
        };
        // time spent looking elsewhere (another preset, or away from every one) does
        // not count as time unseen for the views not looked at; a covered, defocused
        // or frozen camera's does (nothing was seen anywhere)
        let looking = matches!(
            state,
            ViewState::Steady
                | ViewState::Shifted { .. }
                | ViewState::ViewMoved { .. }
                | ViewState::ViewChanged { .. }
        );
        for (i, p) in self.positions.iter_mut().enumerate() {
            if looking && stepped != Some(i) {
                p.away_ms += dt;
            }
        }
        let mut out = Vec::new();
        if let Some(after) = self.fault_after_ms {
            // where the camera looks: asked only when a fault case is filed
            let cal = self.positions[0].calibration.as_ref();
            let place = || {
                let (w, h) = (frame.width as f64, frame.height as f64);
                cal.and_then(|c| c.image_to_ground(w / 2.0, h * 0.75).ok())
            };
            let fault = self.fault.observe(
                &self.common,
                after,
                t_ms,
                &state,
                has_presets,
                (frame, dets, classes),
                place,
            )?;
            out.extend(fault);
        }
        let Some(i) = stepped else {
            return Ok(out);
        };
        let mut corrected = std::mem::take(&mut self.corrected);
        if !view.correct(frame, &mut corrected)? {
            self.corrected = corrected;
            out.extend(self.positions[i].step(&self.common, t_ms, frame, dets, classes)?);
            return Ok(out);
        }
        let mut mapped = std::mem::take(&mut self.mapped);
        mapped.clear();
        mapped.extend(dets.iter().map(|d| {
            let mut d = *d;
            d.bbox = view.to_reference(d.bbox);
            d
        }));
        let found = self.positions[i].step(&self.common, t_ms, &corrected, &mapped, classes);
        self.corrected = corrected;
        self.mapped = mapped;
        out.extend(found?);
        Ok(out)
    }
}

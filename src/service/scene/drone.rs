//! Where a view's pixels lie on the ground: through a fixed view's calibration, or
//! through the pose of a drone's frame (its telemetry matched to the frame's time)
//! and its camera's field of view. A drone's tracks are kept in one local metre
//! frame about where it was first seen flying, so a parked car stays at one ground
//! point while the drone moves.

use crate::geo::calib::Calibration;
use crate::geo::drone::{DroneCamera, DroneReport};
use crate::geo::{LatLon, LocalFrame};
use crate::ingest::telemetry::DronePose;

/// A drone view's optics and the pose of the sample being stepped.
#[derive(Debug, Clone)]
pub struct DroneView {
    /// Its camera's horizontal field of view, degrees.
    pub hfov_deg: f64,
    /// The mount's pitch, for telemetry without one.
    pub gimbal_pitch: Option<f64>,
    /// The current sample's pose (pitch filled in) and frame size.
    pose: Option<DronePose>,
    size: (u32, u32),
    /// The local frame of the tracks' ground points (set by the first pose).
    origin: Option<LocalFrame>,
    /// When the last sample placed by a pose was taken (ms).
    last_t: Option<i64>,
    report: DroneReport,
}

impl DroneView {
    /// A drone view with these optics.
    pub fn new(hfov_deg: f64, gimbal_pitch: Option<f64>) -> Self {
        Self {
            hfov_deg,
            gimbal_pitch,
            pose: None,
            size: (0, 0),
            origin: None,
            last_t: None,
            report: DroneReport::default(),
        }
    }

    fn camera(&self) -> DroneCamera {
        DroneCamera {
            width: self.size.0,
            height: self.size.1,
            hfov_deg: self.hfov_deg,
        }
    }

    /// Takes the pose of a sample of `size` (`None`: no pose matched it); whether the
    /// sample can be used (its pose sees the ground).
    pub fn set_pose(&mut self, pose: Option<&DronePose>, size: (u32, u32)) -> bool {
        self.size = size;
        self.pose = pose.map(|p| {
            let mut p = *p;
            if p.pitch.is_nan() {
                p.pitch = self.gimbal_pitch.unwrap_or(f64::NAN);
            }
            p
        });
        let footprint = self.pose.and_then(|p| self.camera().footprint(&p));
        self.report.pose = self.pose;
        self.report.footprint = footprint.map(|f| f.map(|g| [g.lat, g.lon]));
        match (self.pose, footprint) {
            (Some(p), Some(_)) => {
                self.origin.get_or_insert_with(|| {
                    LocalFrame::new(LatLon {
                        lat: p.lat,
                        lon: p.lon,
                    })
                });
                self.report.posed += 1;
                true
            }
            _ => {
                self.report.unposed += 1;
                false
            }
        }
    }

    /// The time since the last sample this one follows (0 for the first), ms.
    pub fn elapsed(&mut self, t_ms: i64) -> i64 {
        let dt = self.last_t.map_or(0, |l| (t_ms - l).max(0));
        self.last_t = Some(t_ms);
        dt
    }

    /// Whether the current sample's frame sees a ground point of the tracks' local
    /// frame.
    pub fn sees(&self, (east, north): (f64, f64)) -> bool {
        let (Some(o), Some(pose)) = (&self.origin, &self.pose) else {
            return false;
        };
        let (w, h) = (self.size.0 as f64, self.size.1 as f64);
        self.camera()
            .ground_to_pixel(pose, o.to_latlon(east, north))
            .is_some_and(|(x, y)| (0.0..=w).contains(&x) && (0.0..=h).contains(&y))
    }

    /// The current sample's camera and pose, when it has one that sees the ground.
    pub fn posed(&self) -> Option<(DroneCamera, DronePose)> {
        self.report.footprint?;
        Some((self.camera(), self.pose?))
    }

    /// What its revisit rules have covered of the zones they watch.
    pub fn set_coverage(&mut self, zones: Vec<crate::geo::drone::ZoneCoverage>) {
        self.report.zones = zones;
    }

    /// What its frames have been.
    pub fn report(&self) -> &DroneReport {
        &self.report
    }

    /// Counts `n` detections that could not be placed.
    pub fn above_horizon(&mut self, n: u64) {
        self.report.above_horizon += n;
    }
}

/// How one view places its pixels on the ground.
#[derive(Clone, Copy)]
pub(super) enum Placer<'a> {
    /// A fixed view, calibrated or not.
    Fixed(Option<&'a Calibration>),
    /// A drone, at the current sample's pose.
    Drone(&'a DroneView),
}

impl<'a> Placer<'a> {
    /// A drone's placement when the view is a drone's, else the calibration's
    /// (taken from the view's fields, so the tracker stays free to borrow).
    pub fn of(drone: Option<&'a DroneView>, cal: Option<&'a Calibration>) -> Self {
        match drone {
            Some(d) => Placer::Drone(d),
            None => Placer::Fixed(cal),
        }
    }

    /// Where a box's foot stands.
    pub fn ground(&self, bbox: [f32; 4]) -> Option<LatLon> {
        match self {
            Placer::Fixed(cal) => cal.and_then(|c| c.box_to_ground(bbox).ok()),
            Placer::Drone(d) => {
                let pose = d.pose.as_ref()?;
                let foot = ((bbox[0] + bbox[2]) / 2.0, bbox[3]);
                d.camera()
                    .pixel_to_ground(pose, foot.0 as f64, foot.1 as f64)
                    .ok()
            }
        }
    }

    /// A box's foot in the view's local metre frame (what the tracker compares).
    pub fn local(&self, bbox: [f32; 4]) -> Option<(f64, f64)> {
        let g = self.ground(bbox)?;
        match self {
            Placer::Fixed(cal) => cal.map(|c| c.frame().to_local(g)),
            Placer::Drone(d) => d.origin.as_ref().map(|o| o.to_local(g)),
        }
    }

    /// Where a ground point appears in the frame.
    pub fn pixel(&self, p: LatLon) -> Option<(f64, f64)> {
        match self {
            Placer::Fixed(cal) => cal.and_then(|c| c.ground_to_image(p)),
            Placer::Drone(d) => d.camera().ground_to_pixel(d.pose.as_ref()?, p),
        }
    }

    /// Whether the view's pixel zones apply (a drone's pixels are nowhere in
    /// particular).
    pub fn pixel_zones(&self) -> bool {
        matches!(self, Placer::Fixed(_))
    }
}

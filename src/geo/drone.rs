//! Drone footprints: a pixel of a drone's frame projected onto flat ground from the
//! drone's pose (position, altitude above ground, heading, pitch, roll) and its
//! camera's horizontal field of view.
//!
//! Camera model: a pinhole at the drone's position, principal point at the image
//! centre, square pixels, focal length `(width / 2) / tan(hfov / 2)`. Heading turns
//! clockwise from north, pitch tilts the optical axis up (negative looks down), roll
//! turns the image clockwise as seen from behind the camera. A pixel's ray that does not
//! point below the horizon has no ground point: that is an error, not an extrapolation.

use super::{LatLon, LocalFrame};
use crate::ingest::telemetry::DronePose;

/// A drone camera's optics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DroneCamera {
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Horizontal field of view, degrees.
    pub hfov_deg: f64,
}

type V3 = [f64; 3];

fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn scale(a: V3, k: f64) -> V3 {
    [a[0] * k, a[1] * k, a[2] * k]
}

impl DroneCamera {
    /// Projects pixel (`x`, `y`) onto the ground. Errors for rays at or above the
    /// horizon, and for poses that cannot see the ground.
    pub fn pixel_to_ground(&self, pose: &DronePose, x: f64, y: f64) -> Result<LatLon, String> {
        if pose.alt_agl.is_nan() || pose.alt_agl <= 0.0 {
            return Err(format!(
                "altitude above ground {} m: the drone must be above the ground",
                pose.alt_agl
            ));
        }
        if !(0.0 < self.hfov_deg && self.hfov_deg < 180.0) {
            return Err(format!(
                "horizontal field of view {}° must be between 0 and 180",
                self.hfov_deg
            ));
        }
        let f = (self.width as f64 / 2.0) / (self.hfov_deg.to_radians() / 2.0).tan();
        let (u, v) = (
            (x - self.width as f64 / 2.0) / f,
            (y - self.height as f64 / 2.0) / f,
        );
        let (h, p, r) = (
            pose.heading.to_radians(),
            pose.pitch.to_radians(),
            pose.roll.to_radians(),
        );
        // camera axes in east, north, up
        let forward: V3 = [h.sin() * p.cos(), h.cos() * p.cos(), p.sin()];
        let right0: V3 = [h.cos(), -h.sin(), 0.0];
        let up0: V3 = [-h.sin() * p.sin(), -h.cos() * p.sin(), p.cos()];
        // roll turns right and up about the optical axis
        let right = add(scale(right0, r.cos()), scale(up0, -r.sin()));
        let up = add(scale(up0, r.cos()), scale(right0, r.sin()));
        // image y grows downwards
        let ray = add(add(forward, scale(right, u)), scale(up, -v));
        if ray[2] >= -1e-9 {
            return Err(format!(
                "pixel ({x:.0}, {y:.0}) looks at or above the horizon"
            ));
        }
        let t = pose.alt_agl / -ray[2];
        let (east, north) = (ray[0] * t, ray[1] * t);
        Ok(LocalFrame::new(LatLon {
            lat: pose.lat,
            lon: pose.lon,
        })
        .to_latlon(east, north))
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn pose(heading: f64, pitch: f64, roll: f64) -> DronePose {
        DronePose {
            time: UNIX_EPOCH,
            lat: 31.0,
            lon: 121.0,
            alt_agl: 100.0,
            heading,
            pitch,
            roll,
        }
    }

    const CAM: DroneCamera = DroneCamera {
        width: 1000,
        height: 800,
        hfov_deg: 90.0,
    };

    fn local(p: LatLon) -> (f64, f64) {
        LocalFrame::new(LatLon {
            lat: 31.0,
            lon: 121.0,
        })
        .to_local(p)
    }

    #[test]
    fn hand_computed_cases() {
        // looking straight down: the centre is below the drone
        let (e, n) = local(
            CAM.pixel_to_ground(&pose(0.0, -90.0, 0.0), 500.0, 400.0)
                .unwrap(),
        );
        assert!(e.abs() < 1e-6 && n.abs() < 1e-6);
        // straight down, hfov 90°: the right edge's centre is alt × tan 45° = 100 m to the
        // camera's right; heading north, right is east
        let (e, n) = local(
            CAM.pixel_to_ground(&pose(0.0, -90.0, 0.0), 1000.0, 400.0)
                .unwrap(),
        );
        assert!((e - 100.0).abs() < 1e-6 && n.abs() < 1e-6, "{e} {n}");
        // 45° down heading north: the centre hits 100 m north
        let (e, n) = local(
            CAM.pixel_to_ground(&pose(0.0, -45.0, 0.0), 500.0, 400.0)
                .unwrap(),
        );
        assert!(e.abs() < 1e-6 && (n - 100.0).abs() < 1e-6, "{e} {n}");
        // heading east: 100 m east
        let (e, n) = local(
            CAM.pixel_to_ground(&pose(90.0, -45.0, 0.0), 500.0, 400.0)
                .unwrap(),
        );
        assert!((e - 100.0).abs() < 1e-6 && n.abs() < 1e-6, "{e} {n}");
        // 45° down, the pixel 500 px below centre (f = 500) looks 90° down: under the drone
        let (e, n) = local(
            CAM.pixel_to_ground(&pose(0.0, -45.0, 0.0), 500.0, 900.0)
                .unwrap(),
        );
        assert!(e.abs() < 1e-6 && n.abs() < 1e-6, "{e} {n}");
        // straight down heading north, the top-centre ray (v = -0.8) points 80 m north;
        // rolled 90° the image turns about the optical axis and it points 80 m east
        let (e, n) = local(
            CAM.pixel_to_ground(&pose(0.0, -90.0, 90.0), 500.0, 0.0)
                .unwrap(),
        );
        assert!(n.abs() < 1e-6, "{e} {n}");
        assert!((e - 80.0).abs() < 1e-6, "{e}");
    }

    #[test]
    fn the_horizon_and_above_are_refused() {
        // level camera: the centre row is the horizon, rows above it are sky
        assert!(CAM
            .pixel_to_ground(&pose(0.0, 0.0, 0.0), 500.0, 400.0)
            .unwrap_err()
            .contains("horizon"));
        assert!(CAM
            .pixel_to_ground(&pose(0.0, 0.0, 0.0), 500.0, 100.0)
            .is_err());
        assert!(CAM
            .pixel_to_ground(&pose(0.0, 0.0, 0.0), 500.0, 700.0)
            .is_ok());
        let mut under = pose(0.0, -90.0, 0.0);
        under.alt_agl = 0.0;
        assert!(CAM.pixel_to_ground(&under, 500.0, 400.0).is_err());
    }
}

//! Drone footprints: a pixel of a drone's frame projected onto flat ground from the
//! drone's pose (position, altitude above ground, heading, pitch, roll) and its
//! camera's horizontal field of view.
//!
//! Camera model: a pinhole at the drone's position, principal point at the image
//! centre, square pixels, focal length `(width / 2) / tan(hfov / 2)`. Heading turns
//! clockwise from north, pitch tilts the optical axis up (negative looks down), roll
//! turns the image clockwise as seen from behind the camera. A pixel's ray that does not
//! point below the horizon has no ground point: that is an error, not an extrapolation.

use serde::Serialize;

use super::{LatLon, LocalFrame};
use crate::ingest::telemetry::DronePose;

/// What a drone camera's frames have been, for the cameras view.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DroneReport {
    /// Samples placed by a pose.
    pub posed: u64,
    /// Samples with no pose within `max_gap` (or one that does not see the ground):
    /// not used for findings.
    pub unposed: u64,
    /// Detections whose foot looks at or above the horizon: not used.
    pub above_horizon: u64,
    /// The last sample's pose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pose: Option<DronePose>,
    /// The last sample's frame on the ground (`[lat, lon]`, top left, top right,
    /// bottom right, bottom left).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footprint: Option<[[f64; 2]; 4]>,
    /// What its passes have covered of each ground zone watched by revisit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneCoverage>,
}

/// What a drone's passes have covered of one ground zone it watches by revisit
/// (dumping, construction): a spot it has not seen again is not gone.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ZoneCoverage {
    /// The zone.
    pub zone: String,
    /// Passes over it so far.
    pub passes: u32,
    /// The share of its ground seen in at least one pass.
    pub covered: f64,
    /// Its last pass: began and ended (ms since the epoch), the share of the zone seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pass: Option<(i64, i64, f64)>,
    /// Changes followed now (seen, and not seen gone on a later pass).
    pub changes: usize,
}

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
    /// The focal length in pixels.
    fn focal(&self) -> f64 {
        (self.width as f64 / 2.0) / (self.hfov_deg.to_radians() / 2.0).tan()
    }

    /// The camera's axes in east, north, up: forward (the optical axis), right, up.
    fn axes(pose: &DronePose) -> [V3; 3] {
        let (h, p, r) = (
            pose.heading.to_radians(),
            pose.pitch.to_radians(),
            pose.roll.to_radians(),
        );
        let forward: V3 = [h.sin() * p.cos(), h.cos() * p.cos(), p.sin()];
        let right0: V3 = [h.cos(), -h.sin(), 0.0];
        let up0: V3 = [-h.sin() * p.sin(), -h.cos() * p.sin(), p.cos()];
        // roll turns right and up about the optical axis
        let right = add(scale(right0, r.cos()), scale(up0, -r.sin()));
        let up = add(scale(up0, r.cos()), scale(right0, r.sin()));
        [forward, right, up]
    }

    /// Where a ground point appears in the frame (pixels; possibly outside it), or
    /// `None` when it is behind the camera.
    pub fn ground_to_pixel(&self, pose: &DronePose, p: LatLon) -> Option<(f64, f64)> {
        let (east, north) = LocalFrame::new(LatLon {
            lat: pose.lat,
            lon: pose.lon,
        })
        .to_local(p);
        let d: V3 = [east, north, -pose.alt_agl];
        let dot = |a: V3, b: V3| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let [forward, right, up] = Self::axes(pose);
        let z = dot(d, forward);
        if z.is_nan() || z <= 1e-9 {
            return None;
        }
        let f = self.focal();
        Some((
            self.width as f64 / 2.0 + f * dot(d, right) / z,
            self.height as f64 / 2.0 - f * dot(d, up) / z,
        ))
    }

    /// The homography from metres east and north of `origin` on the ground to the
    /// frame's pixels, homogeneous: `[x·w, y·w, w]` with `w` the point's depth along
    /// the optical axis (`w <= 0`: behind the camera, not seen). One matrix for a whole
    /// ground raster, where [`Self::ground_to_pixel`] would be called per point.
    pub fn homography(&self, pose: &DronePose, origin: &LocalFrame) -> [[f64; 3]; 3] {
        let (ex, ny) = origin.to_local(LatLon {
            lat: pose.lat,
            lon: pose.lon,
        });
        let [forward, right, up] = Self::axes(pose);
        let (f, cx, cy) = (
            self.focal(),
            self.width as f64 / 2.0,
            self.height as f64 / 2.0,
        );
        // each row is a · d with d = (east − ex, north − ny, −alt)
        let row = |a: V3| [a[0], a[1], -a[0] * ex - a[1] * ny - a[2] * pose.alt_agl];
        [
            row(add(scale(forward, cx), scale(right, f))),
            row(add(scale(forward, cy), scale(up, -f))),
            row(forward),
        ]
    }

    /// The frame's corners on the ground (top left, top right, bottom right, bottom
    /// left), a top corner that looks at the sky (or farther than 20 times the
    /// altitude) brought down its side to the farthest ground it sees; `None` when the
    /// frame's bottom corners do not see the ground.
    pub fn footprint(&self, pose: &DronePose) -> Option<[LatLon; 4]> {
        const FAR: f64 = 20.0;
        let (w, h) = (self.width as f64, self.height as f64);
        let under = LocalFrame::new(LatLon {
            lat: pose.lat,
            lon: pose.lon,
        });
        let ground = |x: f64, y: f64| {
            self.pixel_to_ground(pose, x, y).ok().filter(|g| {
                let (e, n) = under.to_local(*g);
                e.hypot(n) <= FAR * pose.alt_agl
            })
        };
        let (bl, br) = (ground(0.0, h)?, ground(w, h)?);
        let top = |x: f64| {
            if let Some(g) = ground(x, 0.0) {
                return Some(g);
            }
            // row lo does not see near ground, row hi does
            let (mut lo, mut hi) = (0.0, h);
            for _ in 0..30 {
                let mid = (lo + hi) / 2.0;
                if ground(x, mid).is_some() {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            ground(x, hi)
        };
        Some([top(0.0)?, top(w)?, br, bl])
    }

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
        if pose.pitch.is_nan() {
            return Err("the pose has no pitch (and the camera no gimbal_pitch)".into());
        }
        let f = self.focal();
        let (u, v) = (
            (x - self.width as f64 / 2.0) / f,
            (y - self.height as f64 / 2.0) / f,
        );
        let [forward, right, up] = Self::axes(pose);
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
    fn a_ground_point_goes_back_to_its_pixel_and_the_footprint_frames_the_view() {
        for p in [
            pose(30.0, -50.0, 3.0),
            pose(200.0, -90.0, 0.0),
            pose(0.0, -10.0, -5.0),
        ] {
            for (x, y) in [(500.0, 400.0), (10.0, 790.0), (990.0, 600.0)] {
                let g = CAM.pixel_to_ground(&p, x, y).unwrap();
                let (bx, by) = CAM.ground_to_pixel(&p, g).unwrap();
                assert!(
                    (bx - x).abs() < 1e-6 && (by - y).abs() < 1e-6,
                    "{p:?} {x} {y}: {bx} {by}"
                );
            }
        }
        // behind the camera
        let down = pose(0.0, -45.0, 0.0);
        let south = LocalFrame::new(LatLon {
            lat: 31.0,
            lon: 121.0,
        })
        .to_latlon(0.0, -500.0);
        assert!(CAM.ground_to_pixel(&down, south).is_none());
        // straight down, hfov 90°, 1000 × 800: a 200 m × 160 m rectangle about the drone
        let f = CAM.footprint(&pose(0.0, -90.0, 0.0)).unwrap().map(local);
        let want = [
            (-100.0, 80.0),
            (100.0, 80.0),
            (100.0, -80.0),
            (-100.0, -80.0),
        ];
        for (g, w) in f.iter().zip(want) {
            assert!(
                (g.0 - w.0).abs() < 1e-6 && (g.1 - w.1).abs() < 1e-6,
                "{f:?}"
            );
        }
        // looking 10° down, the top corners see the sky: brought down to 20 × 100 m away
        let far = CAM.footprint(&pose(0.0, -10.0, 0.0)).unwrap().map(local);
        for c in &far[..2] {
            let d = c.0.hypot(c.1);
            assert!(d <= 2000.0 && d > 1990.0, "{far:?}");
        }
        assert!(CAM.footprint(&pose(0.0, 40.0, 0.0)).is_none(), "looking up");
        let mut blind = pose(0.0, -45.0, 0.0);
        blind.pitch = f64::NAN;
        assert!(CAM
            .pixel_to_ground(&blind, 500.0, 400.0)
            .unwrap_err()
            .contains("no pitch"));
    }

    #[test]
    fn the_homography_agrees_with_ground_to_pixel() {
        let p = pose(30.0, -35.0, 3.0);
        let origin = LocalFrame::new(LatLon {
            lat: 31.0003,
            lon: 121.0002,
        });
        let h = CAM.homography(&p, &origin);
        for (e, n) in [(0.0, 0.0), (40.0, -20.0), (-15.0, 60.0), (200.0, 5.0)] {
            let want = CAM.ground_to_pixel(&p, origin.to_latlon(e, n));
            let v = |r: [f64; 3]| r[0] * e + r[1] * n + r[2];
            let w = v(h[2]);
            match want {
                Some((x, y)) => {
                    assert!(w > 0.0);
                    let (hx, hy) = (v(h[0]) / w, v(h[1]) / w);
                    assert!(
                        (hx - x).abs() < 0.05 && (hy - y).abs() < 0.05,
                        "({e}, {n}): {hx} {hy} vs {x} {y}"
                    );
                }
                None => assert!(w <= 0.0, "({e}, {n}) is behind the camera"),
            }
        }
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

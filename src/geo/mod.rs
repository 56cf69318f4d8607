//! Geo: where a finding lands on the ground. Camera calibration (image ground plane →
//! WGS84 by homography), drone footprints (pose → flat ground), geofenced zones with
//! time windows, and the city's management grid (or H3 cells where there is none).

pub mod calib;
pub mod drone;
pub mod grid;
pub mod overlay;
pub mod view;
pub mod zones;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A WGS84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    /// Latitude, −90..90.
    pub lat: f64,
    /// Longitude, −180..180.
    pub lon: f64,
}

impl LatLon {
    /// Checks the ranges; the message hints at swapped coordinates.
    pub fn check(&self) -> Result<(), String> {
        if !self.lat.is_finite() || !self.lon.is_finite() {
            return Err("coordinates must be finite numbers".into());
        }
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(format!(
                "latitude {} is outside -90..90 (latitude and longitude swapped?)",
                self.lat
            ));
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            return Err(format!("longitude {} is outside -180..180", self.lon));
        }
        Ok(())
    }
}

impl fmt::Display for LatLon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.7}, {:.7}", self.lat, self.lon)
    }
}

/// A local east/north metre frame around an origin (WGS84 ellipsoid series for metres
/// per degree; accurate to centimetres over a few kilometres, which is what one camera
/// or one drone footprint spans).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalFrame {
    origin: LatLon,
    m_per_deg_lat: f64,
    m_per_deg_lon: f64,
}

impl LocalFrame {
    /// The frame around `origin`.
    pub fn new(origin: LatLon) -> Self {
        let phi = origin.lat.to_radians();
        Self {
            origin,
            m_per_deg_lat: 111_132.92 - 559.82 * (2.0 * phi).cos() + 1.175 * (4.0 * phi).cos()
                - 0.0023 * (6.0 * phi).cos(),
            m_per_deg_lon: 111_412.84 * phi.cos() - 93.5 * (3.0 * phi).cos()
                + 0.118 * (5.0 * phi).cos(),
        }
    }

    /// The origin.
    pub fn origin(&self) -> LatLon {
        self.origin
    }

    /// Metres east and north of the origin.
    pub fn to_local(&self, p: LatLon) -> (f64, f64) {
        (
            (p.lon - self.origin.lon) * self.m_per_deg_lon,
            (p.lat - self.origin.lat) * self.m_per_deg_lat,
        )
    }

    /// The position `east`, `north` metres from the origin.
    pub fn to_latlon(&self, east: f64, north: f64) -> LatLon {
        LatLon {
            lat: self.origin.lat + north / self.m_per_deg_lat,
            lon: self.origin.lon + east / self.m_per_deg_lon,
        }
    }
}

/// A problem with a geo input: names the file, and the feature or point concerned.
#[derive(Debug, thiserror::Error)]
pub struct GeoError {
    /// The file.
    pub path: PathBuf,
    /// The feature, control point or field, when one is at fault.
    pub item: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for GeoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.item {
            Some(item) => write!(f, "{}: {item}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl GeoError {
    pub(crate) fn new(path: &Path, item: Option<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            item,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_frame_round_trips_and_has_sane_scale() {
        let f = LocalFrame::new(LatLon {
            lat: 31.23,
            lon: 121.47,
        });
        let p = f.to_latlon(120.0, -45.0);
        let (e, n) = f.to_local(p);
        assert!((e - 120.0).abs() < 1e-6 && (n + 45.0).abs() < 1e-6);
        // one degree of latitude is about 110.9 km at 31°
        assert!(
            (f.m_per_deg_lat - 110_880.0).abs() < 100.0,
            "{}",
            f.m_per_deg_lat
        );
        assert!(
            (f.m_per_deg_lon - 95_340.0).abs() < 200.0,
            "{}",
            f.m_per_deg_lon
        );
    }

    #[test]
    fn swapped_coordinates_are_named() {
        let e = LatLon {
            lat: 121.47,
            lon: 31.23,
        }
        .check()
        .unwrap_err();
        assert!(e.contains("swapped"), "{e}");
        assert!(LatLon {
            lat: 31.0,
            lon: 200.0
        }
        .check()
        .is_err());
    }
}

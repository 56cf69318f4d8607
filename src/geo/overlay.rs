//! What a calibration puts on its camera's picture: the grid cells and ground zones
//! it sees, as image outlines. `gridwatch calibrate` draws them on a JPEG; the
//! zone and calibration editor draws them over the live frame.

use geo::{Centroid, LineString};
use serde::Serialize;

use super::calib::Calibration;
use super::grid::Grid;
use super::LatLon;

/// Cells farther than this from the calibration's control points are not projected
/// (a city grid has thousands; a camera sees a few).
const NEAR_M: f64 = 1500.0;

/// Vertices far outside any frame (behind the horizon's edge) are dropped.
const FAR_PX: f64 = 1e5;

/// A ground ring as image points, its edges densified (lens distortion bends them);
/// vertices with no image position are skipped.
pub fn project_ring(cal: &Calibration, ring: &LineString<f64>) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for seg in ring.lines() {
        for k in 0..16 {
            let t = k as f64 / 16.0;
            let p = LatLon {
                lon: seg.start.x + (seg.end.x - seg.start.x) * t,
                lat: seg.start.y + (seg.end.y - seg.start.y) * t,
            };
            if let Some((x, y)) = cal.ground_to_image(p) {
                if x.abs() < FAR_PX && y.abs() < FAR_PX {
                    out.push((x, y));
                }
            }
        }
    }
    out
}

/// A grid cell as the camera sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CellOutline {
    /// The cell's grid code.
    pub cell: String,
    /// Its outline (each polygon's exterior), in image pixels.
    pub rings: Vec<Vec<(f64, f64)>>,
    /// Where its label goes (its centre, when that is in the frame).
    pub label: Option<(f64, f64)>,
}

/// The cells of `grid` that show in the calibrated frame.
pub fn grid_outlines(cal: &Calibration, grid: &Grid) -> Vec<CellOutline> {
    let (w, h) = (cal.image_size.0 as f64, cal.image_size.1 as f64);
    let inside = |&(x, y): &(f64, f64)| (0.0..=w).contains(&x) && (0.0..=h).contains(&y);
    let mut out = Vec::new();
    for (admin, area) in grid.cells() {
        let Some(c) = area.centroid() else { continue };
        let (e, n) = cal.frame().to_local(LatLon {
            lat: c.y(),
            lon: c.x(),
        });
        if e.hypot(n) > NEAR_M {
            continue;
        }
        let rings: Vec<Vec<(f64, f64)>> = area
            .iter()
            .map(|p| project_ring(cal, p.exterior()))
            .filter(|r| r.len() >= 2)
            .collect();
        if !rings.iter().flatten().any(inside) {
            continue;
        }
        let label = cal
            .ground_to_image(LatLon {
                lat: c.y(),
                lon: c.x(),
            })
            .filter(inside);
        out.push(CellOutline {
            cell: admin.grid.clone(),
            rings,
            label,
        });
    }
    out
}

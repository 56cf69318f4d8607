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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::calib::ControlPoint;
    use crate::geo::grid::AdminPath;
    use geo::{polygon, MultiPolygon};

    /// A camera looking straight down at 5 cm a pixel on 800×600, north up.
    fn nadir() -> Calibration {
        let (lat, lon) = (31.23, 121.47);
        let pts: Vec<ControlPoint> = [(0.0, 0.0), (800.0, 0.0), (800.0, 600.0), (0.0, 600.0)]
            .iter()
            .map(|&(x, y): &(f64, f64)| ControlPoint {
                x,
                y,
                lat: lat - y * 0.05 / 110_900.0,
                lon: lon + x * 0.05 / 95_300.0,
            })
            .collect();
        Calibration::fit(
            std::path::Path::new("test"),
            "cam".into(),
            (800, 600),
            &pts,
            None,
        )
        .unwrap()
    }

    fn cell(code: &str, lon0: f64, lat0: f64, size: f64) -> (AdminPath, MultiPolygon<f64>) {
        let p = polygon![(x: lon0, y: lat0), (x: lon0 + size, y: lat0), (x: lon0 + size, y: lat0 + size), (x: lon0, y: lat0 + size), (x: lon0, y: lat0)];
        (
            AdminPath {
                grid: code.into(),
                ..Default::default()
            },
            MultiPolygon(vec![p]),
        )
    }

    #[test]
    fn the_cells_in_view_are_outlined_where_the_calibration_puts_them() {
        let cal = nadir();
        // one cell under the camera's picture (its south-west corner 10 m east and
        // 25 m south of the top left pixel: pixel (200, 500)), one 5 km away
        let (x0, y0) = (121.47 + 10.0 / 95_300.0, 31.23 - 25.0 / 110_900.0);
        let grid = Grid::from_parts(vec![
            cell("near", x0, y0, 0.0001),
            cell("far", 121.52, 31.23, 0.001),
        ]);
        let out = grid_outlines(&cal, &grid);
        assert_eq!(
            out.iter().map(|c| c.cell.as_str()).collect::<Vec<_>>(),
            vec!["near"]
        );
        let ring = &out[0].rings[0];
        let (x, y) = ring[0];
        assert!(
            (x - 200.0).abs() < 0.5 && (y - 500.0).abs() < 0.5,
            "{ring:?}"
        );
        assert_eq!(ring.len(), 4 * 16, "each edge densified");
        assert!(out[0].label.is_some());
    }
}

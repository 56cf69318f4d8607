//! Fixed-camera calibration: image ↔ WGS84 control points → a ground-plane homography.
//!
//! ```toml
//! camera = "street"
//! image_width = 768
//! image_height = 576
//! # at least 4 points on the ground: pixel x, y ↔ latitude, longitude
//! points = [
//!   { x = 102.0, y = 540.0, lat = 31.2301, lon = 121.4702 },
//!   …
//! ]
//! # optional lens model (pixels); distortion k1, k2, p1, p2[, k3] (OpenCV order)
//! [lens]
//! fx = 820.0
//! fy = 820.0
//! cx = 384.0
//! cy = 288.0
//! dist = [-0.21, 0.05, 0.0, 0.0]
//! ```
//!
//! Ground coordinates are taken in a local east/north metre frame around the points'
//! centroid, so the fit and its errors are in metres. OpenCV's `findHomography` fits
//! the plane (RANSAC with a 1 m threshold when there are more than 4 points, so one bad
//! point is flagged rather than bending the fit). With a lens model, pixels are
//! undistorted first. A pixel above the ground plane's horizon, or mapping farther than
//! 5 km, has no ground point: that is an error, never a far-away guess.

use std::path::Path;

use opencv::calib3d;
use opencv::core::{Mat, Point2d, Vector, CV_64F};
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use super::{GeoError, LatLon, LocalFrame};

/// Ground points farther than this from the control points' centre are refused.
pub const MAX_RANGE_M: f64 = 5000.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationFile {
    camera: String,
    image_width: u32,
    image_height: u32,
    points: Vec<ControlPoint>,
    #[serde(default)]
    lens: Option<Lens>,
}

/// One image ↔ ground correspondence.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlPoint {
    /// Pixel column.
    pub x: f64,
    /// Pixel row.
    pub y: f64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

/// A pinhole lens with Brown–Conrady distortion, in pixels.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lens {
    /// Focal length, x.
    pub fx: f64,
    /// Focal length, y.
    pub fy: f64,
    /// Principal point, x.
    pub cx: f64,
    /// Principal point, y.
    pub cy: f64,
    /// k1, k2, p1, p2[, k3].
    #[serde(default)]
    pub dist: Vec<f64>,
}

impl Lens {
    fn coeff(&self, i: usize) -> f64 {
        self.dist.get(i).copied().unwrap_or(0.0)
    }

    /// Undistorted pixel → distorted pixel (the forward model).
    pub fn distort(&self, x: f64, y: f64) -> (f64, f64) {
        let (u, v) = ((x - self.cx) / self.fx, (y - self.cy) / self.fy);
        let (k1, k2, p1, p2, k3) = (
            self.coeff(0),
            self.coeff(1),
            self.coeff(2),
            self.coeff(3),
            self.coeff(4),
        );
        let r2 = u * u + v * v;
        let radial = 1.0 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2;
        let ud = u * radial + 2.0 * p1 * u * v + p2 * (r2 + 2.0 * u * u);
        let vd = v * radial + p1 * (r2 + 2.0 * v * v) + 2.0 * p2 * u * v;
        (ud * self.fx + self.cx, vd * self.fy + self.cy)
    }

    /// Distorted pixels → undistorted pixels (OpenCV's iterative inverse).
    pub fn undistort(&self, pts: &[(f64, f64)]) -> opencv::Result<Vec<(f64, f64)>> {
        let k = Mat::from_slice_2d(&[
            [self.fx, 0.0, self.cx],
            [0.0, self.fy, self.cy],
            [0.0, 0.0, 1.0],
        ])?;
        let d = Mat::from_slice(&self.dist)?;
        let src: Vector<Point2d> = pts.iter().map(|&(x, y)| Point2d::new(x, y)).collect();
        let mut dst: Vector<Point2d> = Vector::new();
        // more iterations than OpenCV's default five: strong wide-angle distortion
        // needs them near the image corners
        let criteria = opencv::core::TermCriteria::new(
            opencv::core::TermCriteria_COUNT + opencv::core::TermCriteria_EPS,
            100,
            1e-10,
        )?;
        calib3d::undistort_points_iter(&src, &mut dst, &k, &d, &Mat::default(), &k, criteria)?;
        Ok(dst.iter().map(|p| (p.x, p.y)).collect())
    }
}

/// A calibration as the registry and the API keep it: a calibration file's fields
/// less `camera` (the view it belongs to names it), as JSON.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CalibrationDoc {
    /// Width of the frame the points were clicked on.
    pub image_width: u32,
    /// Its height.
    pub image_height: u32,
    /// The control points (at least 4, on the ground).
    pub points: Vec<ControlPoint>,
    /// The lens model, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens: Option<Lens>,
}

/// How well one control point fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointError {
    /// The point as given.
    pub point: ControlPoint,
    /// Distance on the ground between where the fit puts the pixel and the point's
    /// coordinates, metres.
    pub error_m: f64,
    /// RANSAC kept it (false: flagged as an outlier).
    pub inlier: bool,
}

/// A fitted camera calibration.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// Camera id.
    pub camera: String,
    /// Image size the points refer to.
    pub image_size: (u32, u32),
    frame: LocalFrame,
    /// Undistorted pixel → local metres.
    h: [f64; 9],
    /// Local metres → undistorted pixel.
    h_inv: [f64; 9],
    /// The sign of the homography's w on the ground side of the horizon.
    w_sign: f64,
    lens: Option<Lens>,
    /// Per-point fit.
    pub errors: Vec<PointError>,
    /// Root mean square of the inliers' errors, metres.
    pub rms_m: f64,
}

fn apply(h: &[f64; 9], x: f64, y: f64) -> (f64, f64, f64) {
    let w = h[6] * x + h[7] * y + h[8];
    (
        (h[0] * x + h[1] * y + h[2]) / w,
        (h[3] * x + h[4] * y + h[5]) / w,
        w,
    )
}

fn invert(h: &[f64; 9]) -> Option<[f64; 9]> {
    let [a, b, c, d, e, f, g, hh, i] = *h;
    let det = a * (e * i - f * hh) - b * (d * i - f * g) + c * (d * hh - e * g);
    if det.abs() < 1e-12 {
        return None;
    }
    Some([
        (e * i - f * hh) / det,
        (c * hh - b * i) / det,
        (b * f - c * e) / det,
        (f * g - d * i) / det,
        (a * i - c * g) / det,
        (c * d - a * f) / det,
        (d * hh - e * g) / det,
        (b * g - a * hh) / det,
        (a * e - b * d) / det,
    ])
}

/// Twice the area of the convex hull over the squared extent: near 0 when points are
/// collinear.
fn spread(pts: &[(f64, f64)]) -> f64 {
    let mut p: Vec<(f64, f64)> = pts.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    p.dedup();
    if p.len() < 3 {
        return 0.0;
    }
    let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(f64, f64)> = Vec::new();
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(f64, f64)>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0
            {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    let area2: f64 = (0..hull.len())
        .map(|i| {
            let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
            a.0 * b.1 - a.1 * b.0
        })
        .sum::<f64>()
        .abs();
    let (minx, maxx) = p
        .iter()
        .fold((f64::MAX, f64::MIN), |m, q| (m.0.min(q.0), m.1.max(q.0)));
    let (miny, maxy) = p
        .iter()
        .fold((f64::MAX, f64::MIN), |m, q| (m.0.min(q.1), m.1.max(q.1)));
    let extent = ((maxx - minx).powi(2) + (maxy - miny).powi(2)).max(1e-12);
    area2 / extent
}

/// A calibration file, read: its camera and the rest as a document.
fn read_file(path: &Path) -> Result<(String, CalibrationDoc), GeoError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| GeoError::new(path, None, format!("cannot read the calibration: {e}")))?;
    let f: CalibrationFile = toml::from_str(&text)
        .map_err(|e| GeoError::new(path, None, e.to_string().trim_end().to_string()))?;
    let doc = CalibrationDoc {
        image_width: f.image_width,
        image_height: f.image_height,
        points: f.points,
        lens: f.lens,
    };
    Ok((f.camera, doc))
}

impl Calibration {
    /// Reads and fits a calibration file. Errors name the file and the point or field.
    pub fn load(path: &Path) -> Result<Self, GeoError> {
        let (camera, doc) = read_file(path)?;
        Self::of_doc(path, camera, doc)
    }

    /// A calibration file as a document (what the API shows of a view calibrated by
    /// a file).
    pub fn file_doc(path: &Path) -> Result<CalibrationDoc, GeoError> {
        Ok(read_file(path)?.1)
    }

    /// Fits a JSON document for view `camera` (`name` names it in errors).
    pub fn from_doc(name: &str, camera: &str, doc: &serde_json::Value) -> Result<Self, GeoError> {
        let path = Path::new(name);
        let d: CalibrationDoc = serde_json::from_value(doc.clone())
            .map_err(|e| GeoError::new(path, None, format!("not a calibration: {e}")))?;
        Self::of_doc(path, camera.to_string(), d)
    }

    /// Fits a document for view `camera` (`path` names its source in errors).
    pub fn of_doc(path: &Path, camera: String, d: CalibrationDoc) -> Result<Self, GeoError> {
        Self::fit(
            path,
            camera,
            (d.image_width, d.image_height),
            &d.points,
            d.lens,
        )
    }

    /// Fits control points (`path` names the source in errors).
    pub fn fit(
        path: &Path,
        camera: String,
        image_size: (u32, u32),
        points: &[ControlPoint],
        lens: Option<Lens>,
    ) -> Result<Self, GeoError> {
        let err = |item: Option<String>, m: String| GeoError::new(path, item, m);
        if points.len() < 4 {
            return Err(err(
                Some("points".into()),
                format!(
                    "a ground-plane homography needs at least 4 control points, found {}",
                    points.len()
                ),
            ));
        }
        for (i, p) in points.iter().enumerate() {
            LatLon {
                lat: p.lat,
                lon: p.lon,
            }
            .check()
            .map_err(|m| err(Some(format!("point {}", i + 1)), m))?;
            if !(p.x.is_finite() && p.y.is_finite())
                || p.x < 0.0
                || p.y < 0.0
                || p.x > image_size.0 as f64
                || p.y > image_size.1 as f64
            {
                return Err(err(
                    Some(format!("point {}", i + 1)),
                    format!(
                        "pixel ({}, {}) is outside the {}x{} image",
                        p.x, p.y, image_size.0, image_size.1
                    ),
                ));
            }
        }
        let n = points.len() as f64;
        let centre = LatLon {
            lat: points.iter().map(|p| p.lat).sum::<f64>() / n,
            lon: points.iter().map(|p| p.lon).sum::<f64>() / n,
        };
        let frame = LocalFrame::new(centre);
        let raw: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.y)).collect();
        let pixels = match &lens {
            Some(l) => l
                .undistort(&raw)
                .map_err(|e| err(Some("lens".into()), format!("cannot undistort: {e}")))?,
            None => raw,
        };
        let ground: Vec<(f64, f64)> = points
            .iter()
            .map(|p| {
                frame.to_local(LatLon {
                    lat: p.lat,
                    lon: p.lon,
                })
            })
            .collect();
        if spread(&pixels) < 1e-3 {
            return Err(err(Some("points".into()), "the control points are (nearly) collinear in the image: spread them over the ground area".into()));
        }
        if spread(&ground) < 1e-3 {
            return Err(err(Some("points".into()), "the control points are (nearly) collinear on the ground: spread them over the ground area".into()));
        }
        let src: Vector<Point2d> = pixels.iter().map(|&(x, y)| Point2d::new(x, y)).collect();
        let dst: Vector<Point2d> = ground.iter().map(|&(x, y)| Point2d::new(x, y)).collect();
        let mut mask = Mat::default();
        let method = if points.len() > 4 { calib3d::RANSAC } else { 0 };
        let hm = calib3d::find_homography(&src, &dst, &mut mask, method, 1.0).map_err(|e| {
            err(
                Some("points".into()),
                format!("OpenCV could not fit a homography: {e}"),
            )
        })?;
        if hm.empty() || hm.typ() != CV_64F {
            return Err(err(
                Some("points".into()),
                "no homography fits these control points (degenerate layout?)".into(),
            ));
        }
        let mut h = [0.0; 9];
        for (i, v) in h.iter_mut().enumerate() {
            *v = *hm
                .at_2d::<f64>((i / 3) as i32, (i % 3) as i32)
                .map_err(|e| err(None, e.to_string()))?;
        }
        let h_inv = invert(&h).ok_or_else(|| {
            err(
                Some("points".into()),
                "the fitted homography is singular".into(),
            )
        })?;
        let inliers: Vec<bool> = if mask.empty() {
            vec![true; points.len()]
        } else {
            (0..points.len())
                .map(|i| mask.at::<u8>(i as i32).map(|v| *v != 0).unwrap_or(true))
                .collect()
        };
        let ws: Vec<f64> = pixels.iter().map(|&(x, y)| apply(&h, x, y).2).collect();
        let w_sign = ws.iter().sum::<f64>().signum();
        let errors: Vec<PointError> = points
            .iter()
            .zip(&pixels)
            .zip(&ground)
            .zip(&inliers)
            .map(|(((p, &(x, y)), &(gx, gy)), &inlier)| {
                let (ex, ey, _) = apply(&h, x, y);
                PointError {
                    point: *p,
                    error_m: ((ex - gx).powi(2) + (ey - gy).powi(2)).sqrt(),
                    inlier,
                }
            })
            .collect();
        let used: Vec<f64> = errors
            .iter()
            .filter(|e| e.inlier)
            .map(|e| e.error_m)
            .collect();
        let rms_m = (used.iter().map(|e| e * e).sum::<f64>() / used.len().max(1) as f64).sqrt();
        Ok(Self {
            camera,
            image_size,
            frame,
            h,
            h_inv,
            w_sign,
            lens,
            errors,
            rms_m,
        })
    }

    /// The ground point of a pixel, or why it has none.
    pub fn image_to_ground(&self, x: f64, y: f64) -> Result<LatLon, String> {
        let (ux, uy) = match &self.lens {
            Some(l) => l.undistort(&[(x, y)]).map_err(|e| e.to_string())?[0],
            None => (x, y),
        };
        let (e, n, w) = apply(&self.h, ux, uy);
        if w * self.w_sign <= 1e-12 {
            return Err(format!(
                "pixel ({x:.1}, {y:.1}) is above the horizon of the ground plane"
            ));
        }
        if e.hypot(n) > MAX_RANGE_M {
            return Err(format!(
                "pixel ({x:.1}, {y:.1}) maps {:.0} m away, beyond the calibrated ground (horizon?)",
                e.hypot(n)
            ));
        }
        Ok(self.frame.to_latlon(e, n))
    }

    /// The ground point of a detection: the bottom centre of its box.
    pub fn box_to_ground(&self, bbox: [f32; 4]) -> Result<LatLon, String> {
        self.image_to_ground(((bbox[0] + bbox[2]) / 2.0) as f64, bbox[3] as f64)
    }

    /// Where a ground position appears in the image (`None` when behind the camera).
    pub fn ground_to_image(&self, p: LatLon) -> Option<(f64, f64)> {
        let (e, n) = self.frame.to_local(p);
        let (x, y, w) = apply(&self.h_inv, e, n);
        // the forward map's w for this pixel must be on the ground side
        let back_w = apply(&self.h, x, y).2;
        if !(x.is_finite() && y.is_finite()) || w == 0.0 || back_w * self.w_sign <= 0.0 {
            return None;
        }
        Some(match &self.lens {
            Some(l) => l.distort(x, y),
            None => (x, y),
        })
    }

    /// The local metre frame of the fit (centred on the control points).
    pub fn frame(&self) -> &LocalFrame {
        &self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homography_inverse_is_an_inverse() {
        let h = [1.2, 0.1, 3.0, -0.2, 0.9, 4.0, 0.001, 0.002, 1.0];
        let hi = invert(&h).unwrap();
        let (x, y, _) = apply(&h, 10.0, 20.0);
        let (bx, by, _) = apply(&hi, x, y);
        assert!((bx - 10.0).abs() < 1e-9 && (by - 20.0).abs() < 1e-9);
    }

    #[test]
    fn spread_tells_collinear_from_spread_points() {
        assert!(spread(&[(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]) < 1e-9);
        assert!(spread(&[(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]) > 0.4);
    }

    #[test]
    fn lens_distortion_round_trips() {
        let l = Lens {
            fx: 800.0,
            fy: 800.0,
            cx: 400.0,
            cy: 300.0,
            dist: vec![-0.2, 0.05, 0.001, -0.001],
        };
        let (dx, dy) = l.distort(700.0, 500.0);
        let back = l.undistort(&[(dx, dy)]).unwrap()[0];
        assert!(
            (back.0 - 700.0).abs() < 0.05 && (back.1 - 500.0).abs() < 0.05,
            "{back:?}"
        );
    }
}

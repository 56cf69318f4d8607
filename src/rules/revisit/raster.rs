//! One watched zone's ground raster: cells of a few centimetres to decimetres in a
//! local metre frame about the zone, what one frame shows of each (the frame warped
//! onto the ground through its pose), what a pass has seen (the mean of its frames),
//! and the reference (the first pass, widened by later passes where it had not seen).

use opencv::core::{Mat, Scalar, CV_32FC1, CV_8UC1};
use opencv::imgproc;
use opencv::prelude::*;

use crate::geo::drone::DroneCamera;
use crate::geo::{LatLon, LocalFrame};
use crate::ingest::telemetry::DronePose;

/// A zone's cells and what has been seen of them.
pub(super) struct Raster {
    /// The metre frame of the cells (about the zone's centre).
    pub frame: LocalFrame,
    /// West edge and north edge of the raster, metres in `frame`.
    x0: f64,
    y1: f64,
    /// Cell side, metres.
    pub cell: f64,
    pub w: i32,
    pub h: i32,
    /// Cells inside the zone, and how many.
    pub inside: Vec<bool>,
    pub n_inside: usize,
    /// This frame: which cells it saw.
    pub now: Vec<bool>,
    /// This pass: grey sums and how many frames saw each cell.
    sum: Vec<f32>,
    pub count: Vec<u16>,
    /// The reference and the cells it has seen.
    pub reference: Vec<f32>,
    pub ref_seen: Vec<bool>,
    /// Cells seen in any pass.
    pub ever: Vec<bool>,
    /// Scratch: the pass's mean, brought to the reference's brightness.
    pub mean: Vec<f32>,
    map_x: Mat,
    map_y: Mat,
    sample: Mat,
}

type H3 = [[f64; 3]; 3];

fn apply(h: &H3, e: f64, n: f64) -> Option<(f64, f64)> {
    let w = h[2][0] * e + h[2][1] * n + h[2][2];
    (w > 1e-6).then(|| {
        (
            (h[0][0] * e + h[0][1] * n + h[0][2]) / w,
            (h[1][0] * e + h[1][1] * n + h[1][2]) / w,
        )
    })
}

impl Raster {
    /// The raster of a ground polygon (its exterior, `[lat, lon]` points): cells of
    /// `cell` metres, coarser where the zone is wider than `max_side` of them.
    pub fn new(outline: &[LatLon], cell: f64, max_side: i32) -> opencv::Result<Self> {
        let n = outline.len().max(1) as f64;
        let centre = LatLon {
            lat: outline.iter().map(|p| p.lat).sum::<f64>() / n,
            lon: outline.iter().map(|p| p.lon).sum::<f64>() / n,
        };
        let frame = LocalFrame::new(centre);
        let pts: Vec<(f64, f64)> = outline.iter().map(|p| frame.to_local(*p)).collect();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in &pts {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        let side = (x1 - x0).max(y1 - y0).max(cell);
        let cell = cell.max(side / max_side as f64);
        let w = ((x1 - x0) / cell).ceil().max(1.0) as i32;
        let h = ((y1 - y0) / cell).ceil().max(1.0) as i32;
        let mut mask = Mat::new_rows_cols_with_default(h, w, CV_8UC1, Scalar::all(0.0))?;
        let poly: opencv::core::Vector<opencv::core::Point> = pts
            .iter()
            .map(|&(x, y)| {
                opencv::core::Point::new(
                    ((x - x0) / cell).round() as i32,
                    ((y1 - y) / cell).round() as i32,
                )
            })
            .collect();
        imgproc::fill_poly_def(
            &mut mask,
            &opencv::core::Vector::<opencv::core::Vector<opencv::core::Point>>::from_iter([poly]),
            Scalar::all(255.0),
        )?;
        let inside: Vec<bool> = mask.data_bytes()?.iter().map(|&v| v > 0).collect();
        let cells = inside.len();
        Ok(Self {
            frame,
            x0,
            y1,
            cell,
            w,
            h,
            n_inside: inside.iter().filter(|&&v| v).count(),
            inside,
            now: vec![false; cells],
            sum: vec![0.0; cells],
            count: vec![0; cells],
            reference: vec![0.0; cells],
            ref_seen: vec![false; cells],
            ever: vec![false; cells],
            mean: vec![0.0; cells],
            map_x: Mat::new_rows_cols_with_default(h, w, CV_32FC1, Scalar::all(-1.0))?,
            map_y: Mat::new_rows_cols_with_default(h, w, CV_32FC1, Scalar::all(-1.0))?,
            sample: Mat::default(),
        })
    }

    /// A cell's centre, metres in `frame`.
    pub fn centre(&self, i: f64, j: f64) -> (f64, f64) {
        (
            self.x0 + (i + 0.5) * self.cell,
            self.y1 - (j + 0.5) * self.cell,
        )
    }

    /// The cell of a point (metres in `frame`), if inside the raster.
    pub fn cell_of(&self, (e, n): (f64, f64)) -> Option<usize> {
        let i = ((e - self.x0) / self.cell).floor();
        let j = ((self.y1 - n) / self.cell).floor();
        (i >= 0.0 && j >= 0.0 && i < self.w as f64 && j < self.h as f64)
            .then(|| j as usize * self.w as usize + i as usize)
    }

    /// The raster's extent, metres in `frame`: west, south, east, north.
    pub fn extent(&self) -> [f64; 4] {
        [
            self.x0,
            self.y1 - self.h as f64 * self.cell,
            self.x0 + self.w as f64 * self.cell,
            self.y1,
        ]
    }

    /// Warps the frame (`grey`, the frame scaled by `scale`) onto the cells through
    /// the pose; cells under a box of `hidden` (frame pixels: people, vehicles) are not
    /// seen. Returns how many of the zone's cells the frame saw (in `now`).
    pub fn project(
        &mut self,
        camera: &DroneCamera,
        pose: &DronePose,
        grey: &Mat,
        scale: f64,
        hidden: &[[f32; 4]],
    ) -> opencv::Result<usize> {
        let h = camera.homography(pose, &self.frame);
        let (fw, fh) = (camera.width as f64, camera.height as f64);
        let w = self.w as usize;
        let mut seen = 0;
        {
            let mx = self.map_x.data_typed_mut::<f32>()?;
            let my = self.map_y.data_typed_mut::<f32>()?;
            for k in 0..self.inside.len() {
                let (e, n) = (
                    self.x0 + ((k % w) as f64 + 0.5) * self.cell,
                    self.y1 - ((k / w) as f64 + 0.5) * self.cell,
                );
                let at = self.inside[k]
                    .then(|| apply(&h, e, n))
                    .flatten()
                    .filter(|&(x, y)| x >= 0.0 && y >= 0.0 && x <= fw - 1.0 && y <= fh - 1.0)
                    .filter(|&(x, y)| {
                        !hidden.iter().any(|b| {
                            x >= b[0] as f64
                                && x <= b[2] as f64
                                && y >= b[1] as f64
                                && y <= b[3] as f64
                        })
                    });
                self.now[k] = at.is_some();
                let (x, y) = at.map_or((-1.0, -1.0), |(x, y)| (x * scale, y * scale));
                mx[k] = x as f32;
                my[k] = y as f32;
                seen += at.is_some() as usize;
            }
        }
        if seen > 0 {
            imgproc::remap(
                grey,
                &mut self.sample,
                &self.map_x,
                &self.map_y,
                imgproc::INTER_LINEAR,
                opencv::core::BORDER_CONSTANT,
                Scalar::all(0.0),
            )?;
        }
        Ok(seen)
    }

    /// Adds the frame just projected to the pass.
    pub fn accumulate(&mut self) -> opencv::Result<()> {
        let px = self.sample.data_bytes()?;
        for (k, &seen) in self.now.iter().enumerate() {
            if seen {
                self.sum[k] += px[k] as f32;
                self.count[k] = self.count[k].saturating_add(1);
            }
        }
        Ok(())
    }

    /// The pass's mean into `mean`, brought to the reference's brightness and
    /// contrast over the cells both have seen (a drone's exposure changes from pass to
    /// pass); whether each cell of the zone is in both (`common`), and how many are.
    pub fn compare(&mut self, common: &mut Vec<bool>) -> usize {
        common.clear();
        common.extend(
            (0..self.count.len()).map(|k| self.count[k] > 0 && self.ref_seen[k] && self.inside[k]),
        );
        let n = common.iter().filter(|&&c| c).count();
        for k in 0..self.count.len() {
            self.mean[k] = if self.count[k] > 0 {
                self.sum[k] / self.count[k] as f32
            } else {
                0.0
            };
        }
        if n < 2 {
            return n;
        }
        let stats = |v: &[f32]| {
            let (mut s, mut s2) = (0.0f64, 0.0f64);
            for (k, &c) in common.iter().enumerate() {
                if c {
                    s += v[k] as f64;
                    s2 += (v[k] as f64).powi(2);
                }
            }
            let m = s / n as f64;
            (m, (s2 / n as f64 - m * m).max(0.0).sqrt())
        };
        let (mm, ms) = stats(&self.mean);
        let (rm, rs) = stats(&self.reference);
        let gain = if ms > 1.0 { rs / ms } else { 1.0 };
        for k in 0..self.mean.len() {
            if self.count[k] > 0 {
                self.mean[k] = ((self.mean[k] as f64 - mm) * gain + rm) as f32;
            }
        }
        n
    }

    /// Ends the pass: the reference takes the cells it had not seen; returns the share
    /// of the zone the pass saw, and empties the pass.
    pub fn end_pass(&mut self) -> f64 {
        let mut seen = 0;
        for k in 0..self.count.len() {
            if self.count[k] == 0 {
                continue;
            }
            seen += self.inside[k] as usize;
            self.ever[k] = true;
            if !self.ref_seen[k] {
                self.reference[k] = self.sum[k] / self.count[k] as f32;
                self.ref_seen[k] = true;
            }
        }
        self.sum.iter_mut().for_each(|v| *v = 0.0);
        self.count.iter_mut().for_each(|v| *v = 0);
        seen as f64 / self.n_inside.max(1) as f64
    }

    /// A grey image (u8) of `values` where `common`, `fill` elsewhere.
    pub fn image(&self, values: &[f32], common: &[bool], fill: f64) -> opencv::Result<Mat> {
        let mut m = Mat::new_rows_cols_with_default(self.h, self.w, CV_8UC1, Scalar::all(fill))?;
        let px = m.data_bytes_mut()?;
        for (k, &c) in common.iter().enumerate() {
            if c {
                px[k] = values[k].round().clamp(0.0, 255.0) as u8;
            }
        }
        Ok(m)
    }

    /// A box of cells (`[i0, j0, i1, j1]`, inclusive) as the frame's pixels see it
    /// (the bounding box of its corners, within the frame).
    pub fn box_in_frame(&self, cells: [i32; 4], h: &H3, size: (u32, u32)) -> [f32; 4] {
        let corners = [
            (cells[0] as f64 - 0.5, cells[1] as f64 - 0.5),
            (cells[2] as f64 + 0.5, cells[1] as f64 - 0.5),
            (cells[2] as f64 + 0.5, cells[3] as f64 + 0.5),
            (cells[0] as f64 - 0.5, cells[3] as f64 + 0.5),
        ];
        let (mut b, mut any) = ([f32::MAX, f32::MAX, f32::MIN, f32::MIN], false);
        for (i, j) in corners {
            let (e, n) = self.centre(i, j);
            if let Some((x, y)) = apply(h, e, n) {
                any = true;
                b = [
                    b[0].min(x as f32),
                    b[1].min(y as f32),
                    b[2].max(x as f32),
                    b[3].max(y as f32),
                ];
            }
        }
        if !any {
            return [0.0, 0.0, size.0 as f32, size.1 as f32];
        }
        let (w, hh) = (size.0 as f32, size.1 as f32);
        [
            b[0].clamp(0.0, w),
            b[1].clamp(0.0, hh),
            b[2].clamp(0.0, w),
            b[3].clamp(0.0, hh),
        ]
    }
}

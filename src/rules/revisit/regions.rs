//! What differs in a pass from a zone's reference: regions of changed grey
//! (dumping: objects) and the share of new edges (construction: structure).

use opencv::core::{self, Mat, Scalar, Size, CV_32S, CV_8UC1};
use opencv::imgproc;
use opencv::prelude::*;

use super::raster::Raster;
use super::RevisitConfig;

/// A region found in a pass: its cells' box, centre (cells) and area (cells).
pub(super) struct Found {
    pub cells: [i32; 4],
    pub centre: (f64, f64),
}

/// The regions of the pass so far that differ from the reference (dumping).
pub(super) fn objects(
    r: &mut Raster,
    cfg: &RevisitConfig,
    common: &mut Vec<bool>,
) -> opencv::Result<Vec<Found>> {
    let n = r.compare(common);
    if (n as f64) < 0.05 * r.n_inside as f64 {
        return Ok(Vec::new());
    }
    let mut mask = Mat::new_rows_cols_with_default(r.h, r.w, CV_8UC1, Scalar::all(0.0))?;
    for (k, px) in mask.data_bytes_mut()?.iter_mut().enumerate() {
        if common[k] && (r.mean[k] - r.reference[k]).abs() as f64 > cfg.threshold {
            *px = 255;
        }
    }
    let k = imgproc::get_structuring_element_def(imgproc::MORPH_ELLIPSE, Size::new(3, 3))?;
    let mut open = Mat::default();
    imgproc::morphology_ex_def(&mask, &mut open, imgproc::MORPH_OPEN, &k)?;
    let (mut labels, mut stats, mut centroids) = (Mat::default(), Mat::default(), Mat::default());
    let count = imgproc::connected_components_with_stats(
        &open,
        &mut labels,
        &mut stats,
        &mut centroids,
        8,
        CV_32S,
    )?;
    let cell2 = r.cell * r.cell;
    let max = cfg.max_area_share * r.n_inside as f64;
    let mut found = Vec::new();
    for l in 1..count {
        let s = |c: i32| stats.at_2d::<i32>(l, c).copied();
        let area = s(imgproc::CC_STAT_AREA)? as f64;
        if area * cell2 < cfg.min_area_m2 || area > max {
            continue;
        }
        let (x, y) = (s(imgproc::CC_STAT_LEFT)?, s(imgproc::CC_STAT_TOP)?);
        let (bw, bh) = (s(imgproc::CC_STAT_WIDTH)?, s(imgproc::CC_STAT_HEIGHT)?);
        found.push(Found {
            cells: [x, y, x + bw - 1, y + bh - 1],
            centre: (
                *centroids.at_2d::<f64>(l, 0)?,
                *centroids.at_2d::<f64>(l, 1)?,
            ),
        });
    }
    Ok(found)
}

/// The zone's new structure in the pass so far, if it holds enough of its edges
/// (construction): the new edges' box and centre.
pub(super) fn structure(
    r: &mut Raster,
    share: f64,
    common: &mut Vec<bool>,
) -> opencv::Result<Option<Found>> {
    let n = r.compare(common);
    if (n as f64) < 0.5 * r.n_inside as f64 {
        return Ok(None); // too little of the zone in this pass to judge it
    }
    let fill = 128.0;
    let (now, before) = (
        r.image(&r.mean, common, fill)?,
        r.image(&r.reference, common, fill)?,
    );
    let edges = |m: &Mat| -> opencv::Result<Mat> {
        let mut e = Mat::default();
        imgproc::canny_def(m, &mut e, 50.0, 150.0)?;
        Ok(e)
    };
    let (e_now, e_before) = (edges(&now)?, edges(&before)?);
    let k = imgproc::get_structuring_element_def(imgproc::MORPH_ELLIPSE, Size::new(5, 5))?;
    let mut wide = Mat::default();
    imgproc::dilate_def(&e_before, &mut wide, &k)?;
    // the edge of what both saw is in both pictures; keep away from it
    let seen: Vec<f32> = common
        .iter()
        .map(|&c| if c { 255.0 } else { 0.0 })
        .collect();
    let mut inner = Mat::default();
    imgproc::erode_def(&r.image(&seen, common, 0.0)?, &mut inner, &k)?;
    let (mut not_wide, mut total_m, mut fresh_m) = (Mat::default(), Mat::default(), Mat::default());
    core::bitwise_not_def(&wide, &mut not_wide)?;
    core::bitwise_and(&e_now, &inner, &mut total_m, &core::no_array())?;
    core::bitwise_and(&total_m, &not_wide, &mut fresh_m, &core::no_array())?;
    let total = core::count_non_zero(&total_m)? as f64;
    let fresh = core::count_non_zero(&fresh_m)? as f64;
    if total == 0.0 || fresh / total < share || fresh / (n as f64) < 0.005 {
        return Ok(None);
    }
    let rect = imgproc::bounding_rect(&fresh_m)?;
    let m = imgproc::moments(&fresh_m, true)?;
    Ok(Some(Found {
        cells: [
            rect.x,
            rect.y,
            rect.x + rect.width - 1,
            rect.y + rect.height - 1,
        ],
        centre: (m.m10 / m.m00, m.m01 / m.m00),
    }))
}

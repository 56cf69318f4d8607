//! `gridwatch calibrate`: check a camera calibration, print its errors, and draw the
//! zones and grid cells onto a frame of the camera so a person can see whether it fits.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use opencv::core::{Mat, Point, Scalar, Vector};
use opencv::imgproc;

use crate::decode::{read_image, FileDecoder, Frame, Sampler, Sampling};
use crate::draw::{copy_to_canvas, write_jpeg};
use crate::geo::calib::Calibration;
use crate::geo::grid::Grid;
use crate::geo::zones::{ZoneArea, ZoneKind, ZoneSet};
use crate::geo::LatLon;

/// Arguments of `gridwatch calibrate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  gridwatch calibrate calibration/street.toml --frame samples/street.mp4 \
--zones samples/geo/zones.geojson --grid samples/geo/grid.geojson --out out/street-overlay.jpg"
)]
pub struct CalibrateArgs {
    /// The camera's calibration file (TOML).
    pub file: PathBuf,
    /// A frame of the camera to draw on: an image, or a clip (its first frame).
    #[arg(long, value_name = "IMAGE|CLIP")]
    pub frame: Option<PathBuf>,
    /// Zones (GeoJSON) to project onto the frame.
    #[arg(long, value_name = "GEOJSON")]
    pub zones: Option<PathBuf>,
    /// Management grid (GeoJSON) to project onto the frame.
    #[arg(long, value_name = "GEOJSON")]
    pub grid: Option<PathBuf>,
    /// Where the overlay goes.
    #[arg(
        long,
        default_value = "out/calibration-overlay.jpg",
        value_name = "JPEG"
    )]
    pub out: PathBuf,
    /// Fail when the RMS error exceeds this many metres.
    #[arg(long, default_value_t = 1.0, value_name = "METRES")]
    pub max_rms: f64,
}

/// Runs `gridwatch calibrate`.
pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    let cal = Calibration::load(&args.file)?;
    println!(
        "camera {} ({}x{}), {} control points",
        cal.camera,
        cal.image_size.0,
        cal.image_size.1,
        cal.errors.len()
    );
    println!(
        "{:>3} {:>8} {:>8} {:>13} {:>13} {:>9}",
        "#", "x", "y", "lat", "lon", "error m"
    );
    for (i, e) in cal.errors.iter().enumerate() {
        println!(
            "{:>3} {:>8.1} {:>8.1} {:>13.8} {:>13.8} {:>9.3}{}",
            i + 1,
            e.point.x,
            e.point.y,
            e.point.lat,
            e.point.lon,
            e.error_m,
            if e.inlier {
                ""
            } else {
                "  OUTLIER (left out of the fit)"
            }
        );
    }
    println!("RMS error {:.3} m", cal.rms_m);
    let zones = args
        .zones
        .as_deref()
        .map(|p| ZoneSet::load(p, None))
        .transpose()?;
    let grid = args.grid.as_deref().map(Grid::load).transpose()?;
    if let Some(frame_path) = &args.frame {
        let frame = first_frame(frame_path)?;
        if (frame.width, frame.height) != cal.image_size {
            anyhow::bail!(
                "{}: the frame is {}x{}, the calibration is for {}x{}",
                frame_path.display(),
                frame.width,
                frame.height,
                cal.image_size.0,
                cal.image_size.1
            );
        }
        draw(&args.out, &frame, &cal, zones.as_ref(), grid.as_ref())?;
        println!("overlay: {}", args.out.display());
    }
    if cal.rms_m > args.max_rms {
        anyhow::bail!(
            "{}: RMS error {:.3} m is over {:.3} m: check the control points",
            args.file.display(),
            cal.rms_m,
            args.max_rms
        );
    }
    Ok(())
}

fn first_frame(path: &Path) -> anyhow::Result<Frame> {
    let mut frame = Frame::default();
    if crate::decode::Input::classify(path)? == crate::decode::Input::Image(path.to_path_buf()) {
        read_image(path, &mut frame)?;
    } else {
        let mut dec = FileDecoder::open(path)?;
        if !dec.next_sampled(&mut Sampler::new(Sampling::All), &mut frame)? {
            anyhow::bail!("{}: no frame could be decoded", path.display());
        }
    }
    Ok(frame)
}

fn colour(kind: &ZoneKind) -> Scalar {
    match kind {
        ZoneKind::NoParking => Scalar::new(40.0, 40.0, 230.0, 0.0),
        ZoneKind::NoVending => Scalar::new(0.0, 160.0, 255.0, 0.0),
        ZoneKind::NoDumping => Scalar::new(200.0, 60.0, 200.0, 0.0),
        ZoneKind::ConstructionWatch => Scalar::new(0.0, 220.0, 220.0, 0.0),
        ZoneKind::Other(_) => Scalar::new(200.0, 200.0, 200.0, 0.0),
    }
}

/// A ground ring as OpenCV image points.
fn project_ring(cal: &Calibration, ring: &geo::LineString<f64>) -> Vector<Point> {
    crate::geo::overlay::project_ring(cal, ring)
        .into_iter()
        .map(|(x, y)| Point::new(x.round() as i32, y.round() as i32))
        .collect()
}

fn draw(
    out: &Path,
    frame: &Frame,
    cal: &Calibration,
    zones: Option<&ZoneSet>,
    grid: Option<&Grid>,
) -> anyhow::Result<()> {
    let mut canvas = Mat::default();
    copy_to_canvas(frame, &mut canvas)?;
    let font = imgproc::FONT_HERSHEY_SIMPLEX;
    if let Some(g) = grid {
        for (admin, area) in g.cells() {
            for poly in area {
                let pts = project_ring(cal, poly.exterior());
                if pts.len() >= 2 {
                    let v: Vector<Vector<Point>> = Vector::from_iter([pts.clone()]);
                    imgproc::polylines(
                        &mut canvas,
                        &v,
                        true,
                        Scalar::new(255.0, 255.0, 255.0, 0.0),
                        1,
                        imgproc::LINE_AA,
                        0,
                    )?;
                }
                if let Some(c) = geo::Centroid::centroid(poly) {
                    if let Some((x, y)) = cal.ground_to_image(LatLon {
                        lat: c.y(),
                        lon: c.x(),
                    }) {
                        if (0.0..frame.width as f64).contains(&x)
                            && (0.0..frame.height as f64).contains(&y)
                        {
                            let code = admin
                                .grid
                                .rsplit('-')
                                .next()
                                .unwrap_or(&admin.grid)
                                .to_string();
                            imgproc::put_text(
                                &mut canvas,
                                &code,
                                Point::new(x as i32 - 12, y as i32),
                                font,
                                0.35,
                                Scalar::new(255.0, 255.0, 255.0, 0.0),
                                1,
                                imgproc::LINE_AA,
                                false,
                            )?;
                        }
                    }
                }
            }
        }
    }
    if let Some(zs) = zones {
        for z in zs.zones() {
            let c = colour(&z.kind);
            let rings: Vec<Vector<Point>> = match &z.area {
                ZoneArea::Ground(m) => m
                    .iter()
                    .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
                    .map(|r| project_ring(cal, r))
                    .collect(),
                ZoneArea::Pixels { camera, area } if *camera == cal.camera => area
                    .iter()
                    .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
                    .map(|r| {
                        r.coords()
                            .map(|c| Point::new(c.x as i32, c.y as i32))
                            .collect()
                    })
                    .collect(),
                ZoneArea::Pixels { .. } => Vec::new(),
            };
            for (i, r) in rings.iter().enumerate() {
                if r.len() < 2 {
                    continue;
                }
                let v: Vector<Vector<Point>> = Vector::from_iter([r.clone()]);
                imgproc::polylines(&mut canvas, &v, true, c, 2, imgproc::LINE_AA, 0)?;
                if i == 0 {
                    let p = r.get(0)?;
                    imgproc::put_text(
                        &mut canvas,
                        &z.id,
                        Point::new(
                            p.x.clamp(0, frame.width as i32 - 80),
                            (p.y + 14).clamp(12, frame.height as i32 - 4),
                        ),
                        font,
                        0.45,
                        c,
                        1,
                        imgproc::LINE_AA,
                        false,
                    )?;
                }
            }
        }
    }
    for e in &cal.errors {
        let given = Point::new(e.point.x.round() as i32, e.point.y.round() as i32);
        imgproc::circle(
            &mut canvas,
            given,
            5,
            Scalar::new(0.0, 255.0, 0.0, 0.0),
            2,
            imgproc::LINE_AA,
            0,
        )?;
        if let Some((x, y)) = cal.ground_to_image(LatLon {
            lat: e.point.lat,
            lon: e.point.lon,
        }) {
            let p = Point::new(x.round() as i32, y.round() as i32);
            imgproc::draw_marker(
                &mut canvas,
                p,
                Scalar::new(0.0, 0.0, 255.0, 0.0),
                imgproc::MARKER_CROSS,
                10,
                1,
                imgproc::LINE_AA,
            )?;
        }
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_jpeg(out, &canvas, 90).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

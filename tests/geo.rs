//! Geo against ground truth: homography accuracy over a 100 m scene (with noise, a bad
//! point and lens distortion), zones with holes and time windows, a 10 000-cell grid,
//! and bad input named by file and feature.

mod common;

use std::fs;
use std::path::Path;
use std::time::UNIX_EPOCH;

use chrono::{TimeZone, Utc};
use common::{expect_clean_failure, gridwatch, path, run};
use gridwatch::geo::calib::{Calibration, ControlPoint, Lens};
use gridwatch::geo::drone::DroneCamera;
use gridwatch::geo::grid::{CellLocator, Grid};
use gridwatch::geo::zones::{ZoneKind, ZoneSet};
use gridwatch::geo::{LatLon, LocalFrame};
use gridwatch::ingest::telemetry::DronePose;

const ORIGIN: LatLon = LatLon {
    lat: 31.2304,
    lon: 121.4737,
};

/// A fixed camera 25 m up looking 30° down: ground truth for any pixel.
fn truth(x: f64, y: f64) -> LatLon {
    let cam = DroneCamera {
        width: 1280,
        height: 720,
        hfov_deg: 70.0,
    };
    let pose = DronePose {
        time: UNIX_EPOCH,
        lat: ORIGIN.lat,
        lon: ORIGIN.lon,
        alt_agl: 25.0,
        heading: 20.0,
        pitch: -30.0,
        roll: 0.0,
    };
    cam.pixel_to_ground(&pose, x, y).unwrap()
}

/// Deterministic noise in −1..1.
fn noise(i: usize) -> f64 {
    ((i as f64 * 12.9898).sin() * 43758.5453).rem_euclid(1.0) * 2.0 - 1.0
}

fn dist_m(a: LatLon, b: LatLon) -> f64 {
    let (x, y) = LocalFrame::new(a).to_local(b);
    x.hypot(y)
}

fn control_points(lens: Option<&Lens>, sigma_m: f64) -> Vec<ControlPoint> {
    let frame = LocalFrame::new(ORIGIN);
    let mut pts = Vec::new();
    for (i, &(x, y)) in [
        (100.0, 200.0),
        (640.0, 190.0),
        (1180.0, 210.0),
        (300.0, 400.0),
        (980.0, 420.0),
        (60.0, 700.0),
        (640.0, 560.0),
        (1220.0, 690.0),
        (400.0, 300.0),
        (850.0, 620.0),
        (150.0, 480.0),
        (1100.0, 330.0),
        (200.0, 105.0),
        (1000.0, 110.0),
    ]
    .iter()
    .enumerate()
    {
        let g = truth(x, y);
        let (e, n) = frame.to_local(g);
        let g = frame.to_latlon(e + sigma_m * noise(2 * i), n + sigma_m * noise(2 * i + 1));
        let (px, py) = match lens {
            Some(l) => l.distort(x, y),
            None => (x, y),
        };
        pts.push(ControlPoint {
            x: px,
            y: py,
            lat: g.lat,
            lon: g.lon,
        });
    }
    pts
}

/// Largest error over a grid of test pixels covering 20–100 m from the camera.
fn worst_error(cal: &Calibration, lens: Option<&Lens>) -> (f64, f64) {
    let (mut worst, mut far) = (0.0f64, 0.0f64);
    for i in 0..=20 {
        for j in 0..=10 {
            let (x, y) = (i as f64 * 64.0, 100.0 + j as f64 * 62.0);
            let t = truth(x, y);
            far = far.max(dist_m(ORIGIN, t));
            let (px, py) = match lens {
                Some(l) => l.distort(x, y),
                None => (x, y),
            };
            let got = cal.image_to_ground(px, py).unwrap();
            worst = worst.max(dist_m(t, got));
            // and back into the image
            let (bx, by) = cal.ground_to_image(got).unwrap();
            assert!(
                (bx - px).abs() < 0.05 && (by - py).abs() < 0.05,
                "({px}, {py}) → ({bx}, {by})"
            );
        }
    }
    (worst, far)
}

#[test]
fn homography_is_within_half_a_metre_across_a_100_m_scene() {
    let pts = control_points(None, 0.15);
    let cal = Calibration::fit(
        Path::new("synthetic.toml"),
        "c".into(),
        (1280, 720),
        &pts,
        None,
    )
    .unwrap();
    assert!(cal.rms_m < 0.3, "rms {}", cal.rms_m);
    let (worst, far) = worst_error(&cal, None);
    assert!(far > 95.0, "the test covers the scene out to {far:.0} m");
    assert!(worst < 0.5, "worst error {worst:.3} m");
}

#[test]
fn ransac_flags_a_bad_control_point() {
    let mut pts = control_points(None, 0.05);
    pts[4].lat += 10.0 / 110_880.0; // 10 m off
    let cal = Calibration::fit(
        Path::new("synthetic.toml"),
        "c".into(),
        (1280, 720),
        &pts,
        None,
    )
    .unwrap();
    let flagged: Vec<usize> = cal
        .errors
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.inlier)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(flagged, [4]);
    assert!(cal.errors[4].error_m > 9.0);
    assert!(cal.rms_m < 0.2);
    assert!(worst_error(&cal, None).0 < 0.5);
}

#[test]
fn lens_distortion_is_undone_before_the_fit() {
    let lens = Lens {
        fx: 900.0,
        fy: 900.0,
        cx: 640.0,
        cy: 360.0,
        dist: vec![-0.28, 0.09, 0.0005, -0.0004],
    };
    let pts = control_points(Some(&lens), 0.05);
    let with = Calibration::fit(
        Path::new("l.toml"),
        "c".into(),
        (1280, 720),
        &pts,
        Some(lens.clone()),
    )
    .unwrap();
    assert!(worst_error(&with, Some(&lens)).0 < 0.5);
    // the same points without the lens model fit badly: distortion matters
    let without =
        Calibration::fit(Path::new("l.toml"), "c".into(), (1280, 720), &pts, None).unwrap();
    assert!(
        without.rms_m > 0.5 || without.errors.iter().any(|e| !e.inlier),
        "rms {}",
        without.rms_m
    );
}

#[test]
fn pixels_off_the_ground_plane_have_no_ground_point() {
    let cal = Calibration::load(&path("calibration/street.toml")).unwrap();
    // the example camera looks 35° down with a 46.8° vertical field of view: its
    // horizon is above the image; points far above the frame are off the ground
    let e = cal.image_to_ground(384.0, -900.0).unwrap_err();
    assert!(e.contains("horizon") || e.contains("beyond"), "{e}");
    assert!(cal.image_to_ground(384.0, 500.0).is_ok());
    // a box's ground point is its bottom centre
    let g = cal.box_to_ground([370.0, 400.0, 398.0, 500.0]).unwrap();
    assert!(dist_m(g, cal.image_to_ground(384.0, 500.0).unwrap()) < 1e-9);
}

#[test]
fn zones_with_holes_time_windows_and_pixels() {
    let cal = Calibration::load(&path("calibration/street.toml")).unwrap();
    let zones = ZoneSet::load(&path("samples/geo/zones.geojson"), None).unwrap();
    assert_eq!(zones.tz(), chrono_tz::Asia::Shanghai);
    let tz = chrono_tz::Asia::Shanghai;
    let at = |d, h| {
        tz.with_ymd_and_hms(2026, 11, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    let ids = |p: LatLon, t| {
        let mut v = Vec::new();
        zones.at(p, t, &mut v);
        v.iter().map(|z| z.id.clone()).collect::<Vec<_>>()
    };
    let plaza = cal.image_to_ground(300.0, 230.0).unwrap();
    let hole = cal.image_to_ground(429.0, 236.0).unwrap();
    let van = cal.image_to_ground(690.0, 97.0).unwrap();
    // Friday 27 November 2026
    assert_eq!(ids(plaza, at(27, 12)), ["nv-plaza"]);
    assert!(
        ids(hole, at(27, 12)).is_empty(),
        "the sign post's base is a hole"
    );
    assert!(
        ids(plaza, at(27, 21)).is_empty(),
        "weekdays 07:00-20:00 only"
    );
    assert_eq!(ids(plaza, at(28, 21)), ["nv-plaza"], "weekends until 22:00");
    assert_eq!(
        ids(van, at(27, 3)),
        ["np-service-road"],
        "no time window: always"
    );
    let np = zones
        .zones()
        .iter()
        .find(|z| z.id == "np-service-road")
        .unwrap();
    assert_eq!(np.kind, ZoneKind::NoParking);
    assert_eq!(np.params["dwell"], "5m");
    let mut v = Vec::new();
    zones.at_pixel("street", 100.0, 450.0, at(27, 12), &mut v);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].kind, ZoneKind::NoDumping);
    v.clear();
    zones.at_pixel("other-camera", 100.0, 450.0, at(27, 12), &mut v);
    assert!(v.is_empty());
}

fn write_grid(path: &Path, n: usize, step: f64) {
    let mut features = Vec::new();
    for r in 0..n {
        for c in 0..n {
            let (x, y) = (ORIGIN.lon + c as f64 * step, ORIGIN.lat + r as f64 * step);
            features.push(serde_json::json!({
                "type": "Feature",
                "properties": {"grid_code": format!("g{r:03}{c:03}"), "community": format!("c{}", c / 10), "street": format!("s{}", r / 25), "district": "D"},
                "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + step, y], [x + step, y + step], [x, y + step], [x, y]]]}
            }));
        }
    }
    fs::write(
        path,
        serde_json::json!({"type": "FeatureCollection", "features": features}).to_string(),
    )
    .unwrap();
}

#[test]
fn grid_lookup_over_ten_thousand_cells_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("grid.geojson");
    let step = 0.0005;
    write_grid(&file, 100, step);
    let grid = Grid::load(&file).unwrap();
    assert_eq!(grid.len(), 10_000);
    let loc = CellLocator::Grid(grid);
    for i in 0..5000 {
        let (fx, fy) = (
            (noise(3 * i) + 1.0) / 2.0 * 0.9999,
            (noise(3 * i + 1) + 1.0) / 2.0 * 0.9999,
        );
        let p = LatLon {
            lat: ORIGIN.lat + fy * 100.0 * step,
            lon: ORIGIN.lon + fx * 100.0 * step,
        };
        let (r, c) = (
            ((p.lat - ORIGIN.lat) / step) as usize,
            ((p.lon - ORIGIN.lon) / step) as usize,
        );
        // skip points within a nanodegree of an edge, where float rounding decides
        let near_edge = |v: f64| (v - v.round()).abs() < 1e-6;
        if near_edge((p.lat - ORIGIN.lat) / step) || near_edge((p.lon - ORIGIN.lon) / step) {
            continue;
        }
        let cell = loc
            .cell(p)
            .unwrap_or_else(|| panic!("no cell for {p:?} (row {r}, col {c})"));
        assert_eq!(cell.id, format!("g{r:03}{c:03}"));
        assert_eq!(
            cell.admin.community.as_deref(),
            Some(format!("c{}", c / 10).as_str())
        );
    }
    assert!(
        loc.cell(LatLon {
            lat: ORIGIN.lat - 0.01,
            lon: ORIGIN.lon
        })
        .is_none(),
        "outside the grid: no cell"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn bad_calibrations_are_named_by_file_and_point() {
    let tmp = tempfile::tempdir().unwrap();
    let head = "camera = \"c\"\nimage_width = 800\nimage_height = 600\n";
    let three = write(tmp.path(), "three.toml", &format!("{head}points = [{{x=1,y=1,lat=31,lon=121}},{{x=500,y=1,lat=31.001,lon=121}},{{x=1,y=500,lat=31,lon=121.001}}]\n"));
    expect_clean_failure(
        &mut gridwatch(&["calibrate", &three]),
        &["three.toml", "at least 4 control points, found 3"],
    );
    let line = write(tmp.path(), "line.toml", &format!("{head}points = [{{x=10,y=10,lat=31,lon=121}},{{x=20,y=20,lat=31.001,lon=121.001}},{{x=30,y=30,lat=31.002,lon=121.002}},{{x=40,y=40,lat=31.003,lon=121.003}}]\n"));
    expect_clean_failure(
        &mut gridwatch(&["calibrate", &line]),
        &["line.toml", "collinear"],
    );
    let swapped = write(tmp.path(), "swapped.toml", &format!("{head}points = [{{x=10,y=10,lat=121,lon=31}},{{x=700,y=20,lat=31.001,lon=121.001}},{{x=30,y=500,lat=31.002,lon=121.0}},{{x=600,y=550,lat=31.003,lon=121.003}}]\n"));
    expect_clean_failure(
        &mut gridwatch(&["calibrate", &swapped]),
        &["swapped.toml", "point 1", "swapped"],
    );
    let outside = write(tmp.path(), "outside.toml", &format!("{head}points = [{{x=10,y=10,lat=31,lon=121}},{{x=900,y=20,lat=31.001,lon=121.001}},{{x=30,y=500,lat=31.002,lon=121.0}},{{x=600,y=550,lat=31.003,lon=121.003}}]\n"));
    expect_clean_failure(
        &mut gridwatch(&["calibrate", &outside]),
        &["outside.toml", "point 2", "outside the 800x600 image"],
    );
    let typo = write(tmp.path(), "typo.toml", &format!("{head}pointz = []\n"));
    expect_clean_failure(
        &mut gridwatch(&["calibrate", &typo]),
        &["typo.toml", "pointz"],
    );
}

#[test]
fn bad_zone_and_grid_files_are_named_by_file_and_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let cal = path("calibration/street.toml");
    let cal = cal.to_str().unwrap();
    let feature = |id: &str, props: &str, coords: &str| {
        format!(
            r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","id":"{id}","properties":{props},"geometry":{{"type":"Polygon","coordinates":{coords}}}}}]}}"#
        )
    };
    let square =
        "[[[121.47,31.23],[121.471,31.23],[121.471,31.231],[121.47,31.231],[121.47,31.23]]]";
    let cases = [
        ("garbage.geojson", "{not json".to_string(), vec!["garbage.geojson", "not valid GeoJSON"]),
        ("bowtie.geojson", feature("z9", r#"{"kind":"no_parking"}"#, "[[[121.47,31.23],[121.471,31.231],[121.471,31.23],[121.47,31.231],[121.47,31.23]]]"), vec!["bowtie.geojson", "feature z9", "invalid polygon"]),
        ("swapped.geojson", feature("z2", r#"{"kind":"no_parking"}"#, "[[[31.23,121.47],[31.231,121.47],[31.231,121.471],[31.23,121.47]]]"), vec!["swapped.geojson", "feature z2", "swapped"]),
        ("nokind.geojson", feature("z3", "{}", square), vec!["nokind.geojson", "feature z3", "`kind`"]),
        ("window.geojson", feature("z4", r#"{"kind":"no_vending","windows":["Mon-Fri 7-9"]}"#, square), vec!["window.geojson", "feature z4", "windows"]),
    ];
    for (name, text, needles) in cases {
        let f = write(tmp.path(), name, &text);
        expect_clean_failure(&mut gridwatch(&["calibrate", cal, "--zones", &f]), &needles);
    }
    let dup = format!(
        r#"{{"type":"FeatureCollection","features":[{0},{0}]}}"#,
        format!(
            r#"{{"type":"Feature","properties":{{"grid_code":"A1"}},"geometry":{{"type":"Polygon","coordinates":{square}}}}}"#
        )
    );
    let f = write(tmp.path(), "dup.geojson", &dup);
    expect_clean_failure(
        &mut gridwatch(&["calibrate", cal, "--grid", &f]),
        &["dup.geojson", "feature #2", "A1", "twice"],
    );
}

#[test]
fn calibrate_prints_errors_and_writes_an_overlay() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("overlay.jpg");
    let (o, stdout, stderr) = run(&mut gridwatch(&[
        "calibrate",
        "calibration/street.toml",
        "--frame",
        "samples/street.mp4",
        "--zones",
        "samples/geo/zones.geojson",
        "--grid",
        "samples/geo/grid.geojson",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("8 control points") && stdout.contains("RMS error"),
        "{stdout}"
    );
    let jpg = fs::read(&out).unwrap();
    assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
    // a frame of the wrong size is refused
    expect_clean_failure(
        &mut gridwatch(&[
            "calibrate",
            "calibration/street.toml",
            "--frame",
            "samples/person.jpg",
            "--out",
            out.to_str().unwrap(),
        ]),
        &["samples/person.jpg", "768x576"],
    );
}

#[test]
fn multipolygon_zones_cover_each_part() {
    let tmp = tempfile::tempdir().unwrap();
    let part = |x: f64| {
        format!(
            "[[[{x},31.23],[{},31.23],[{},31.231],[{x},31.231],[{x},31.23]]]",
            x + 0.001,
            x + 0.001
        )
    };
    let text = format!(
        r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","id":"two-lots","properties":{{"kind":"no_parking"}},"geometry":{{"type":"MultiPolygon","coordinates":[{},{}]}}}}]}}"#,
        part(121.470),
        part(121.480)
    );
    let f = tmp.path().join("multi.geojson");
    fs::write(&f, text).unwrap();
    let zones = ZoneSet::load(&f, None).unwrap();
    let now = Utc::now();
    for (lon, hit) in [(121.4705, true), (121.4805, true), (121.4755, false)] {
        let mut v = Vec::new();
        zones.at(LatLon { lat: 31.2305, lon }, now, &mut v);
        assert_eq!(!v.is_empty(), hit, "lon {lon}");
    }
}

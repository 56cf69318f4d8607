//! A drone over the street, consistent by construction. The calibration maps the
//! street clip's pixels to the ground, so what a drone at a given pose sees of the
//! street is a homography of each frame: a drone pixel goes to the ground through the
//! pose (`geo::drone`), and the ground to a street pixel through the calibration. The
//! virtual drone starts where the street camera is (its pose fitted to the
//! calibration with OpenCV's `solvePnP`), hovers, then flies a pass sideways and back
//! (or orbits the van, 25° either way about it);
//! the bundled detector runs on the drone's frames as rendered, and the scene places
//! each finding through the frame's pose. The van that stays is one parking finding,
//! its stay kept through the pass, within 2 m of where the street camera itself
//! (placed by the calibration) puts it, in the same cell; frames without a pose are
//! counted and not used. A drone that turns away from the van for longer than the
//! tracker keeps an unseen track and comes back still has the van's track and stay:
//! time spent looking elsewhere is not time the van went unseen. An object left on
//! the lawn between passes (the dumping clip) is one dumping finding on the pass after
//! it was first seen, placed on the ground within 2 m of where it lies, in the cell of
//! the street camera's own finding; the lawn as it is has none.

mod common;

use std::time::Duration;

use common::drone::{beside, render, street_camera, H, W};
use common::path;
use gridwatch::decode::{FileDecoder, Frame, Sampler, Sampling};
use gridwatch::detect::{Detector, EngineOptions, ModelManifest};
use gridwatch::geo::calib::Calibration;
use gridwatch::geo::drone::DroneCamera;
use gridwatch::geo::grid::{CellLocator, Grid};
use gridwatch::geo::zones::ZoneSet;
use gridwatch::geo::{LatLon, LocalFrame};
use gridwatch::ingest::telemetry::{parse_line, DronePose, Track};
use gridwatch::service::scene::{DroneView, Found, Scene, SceneRules};

fn metres(a: LatLon, b: LatLon) -> f64 {
    let f = gridwatch::geo::LocalFrame::new(a);
    let (e, n) = f.to_local(b);
    e.hypot(n)
}

/// What a flight found: the drone's findings of one kind and the street camera's (each
/// with the second of the clip it came at), the drone's report, the clip's start.
struct Flight {
    drone: Vec<(f64, Found)>,
    street: Vec<(f64, Found)>,
    report: gridwatch::geo::drone::DroneReport,
    samples: u64,
    t0: i64,
}

/// The street clip at one sample a second through the street camera's own scene and
/// through a drone's, the drone at `path(s)` (metres to the right of the street
/// camera's pose, degrees turned right) with no telemetry from 59 s to 63 s, the
/// parking dwell `dwell` seconds.
fn fly(path_of: impl Fn(f64) -> (f64, f64), dwell: u64) -> Flight {
    fly_posed(move |s, start| sideways(start, path_of(s)), dwell)
}

/// [`fly`] with the drone's pose at second `s` given outright (from the street
/// camera's pose).
fn fly_posed(pose_of: impl Fn(f64, &DronePose) -> DronePose, dwell: u64) -> Flight {
    fly_over(
        "samples/street.mp4",
        "illegal_parking",
        pose_of,
        |rules, _| {
            rules.parking.dwell = Duration::from_secs(dwell);
        },
    )
}

/// The pose `side` metres to the right of `start`, turned `turn` degrees right.
fn sideways(start: &DronePose, (side, turn): (f64, f64)) -> DronePose {
    let mut pose = beside(start, side);
    pose.heading = (pose.heading + turn).rem_euclid(360.0);
    pose
}

/// The flight's telemetry as a drone logs it — a JSON Lines file, ten poses a second
/// 0.05 s off the frames' times, none from 59 s to 63 s (the frames at 60 s to 62 s
/// have none within a second) — read back as the service reads a telemetry file, into
/// the track frames are matched against (interpolated between the two poses about
/// each).
fn flight_log(
    t0: i64,
    start: &DronePose,
    pose_of: &impl Fn(f64, &DronePose) -> DronePose,
) -> Track {
    let mut text = String::new();
    for k in 0..900 {
        let s = k as f64 / 10.0 + 0.05;
        if (59.0..63.0).contains(&s) {
            continue;
        }
        let p = pose_of(s, start);
        let line = serde_json::json!({
            "time": (t0 as f64 / 1000.0) + s, "lat": p.lat, "lon": p.lon,
            "alt_agl": p.alt_agl, "heading": p.heading, "pitch": p.pitch, "roll": p.roll,
        });
        text.push_str(&format!("{line}\n"));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let track = Track::default();
    for line in std::fs::read_to_string(file.path()).unwrap().lines() {
        track.push(parse_line(line).unwrap());
    }
    track
}

/// `clip` (the street, as the street camera films it) through both scenes, the
/// findings of `kind` kept, the rules and zones as `setup` makes them.
fn fly_over(
    clip: &str,
    kind: &str,
    pose_of: impl Fn(f64, &DronePose) -> DronePose,
    setup: impl FnOnce(&mut SceneRules, &mut Vec<gridwatch::geo::zones::Zone>),
) -> Flight {
    let cal = Calibration::load(&path("calibration/street.toml")).unwrap();
    let (start, hfov, fit_px) = street_camera(&cal);
    eprintln!("the street camera, fitted: {start:?}, hfov {hfov}°, {fit_px:.2} px RMS");
    assert!(
        fit_px < 15.0,
        "the calibration is not a pinhole's view: {fit_px} px"
    );
    let cam = DroneCamera {
        width: W,
        height: H,
        hfov_deg: hfov,
    };
    let manifest = ModelManifest::load(&path("models/nanodet-coco-416.toml")).unwrap();
    let classes = manifest.classes.clone();
    let mut det = Detector::load(manifest, &EngineOptions::default()).unwrap();
    let mut rules = SceneRules {
        override_zone_dwell: true,
        ..SceneRules::default()
    };
    let zones = ZoneSet::load(&path("samples/geo/zones.geojson"), None).unwrap();
    let mut list = zones.zones().to_vec();
    setup(&mut rules, &mut list);
    let zones = std::sync::Arc::new(ZoneSet::from_zones(list, zones.tz()));
    let cells = std::sync::Arc::new(CellLocator::Grid(
        Grid::load(&path("samples/geo/grid.geojson")).unwrap(),
    ));
    let view = DroneView::new(hfov, None);
    let mut drone = Scene::drone("drone-1".into(), view, zones.clone(), cells.clone(), &rules);
    // the reference: the street camera itself, placed by its calibration
    let mut street_cam = Scene::new(
        "street".into(),
        Some(cal.clone()),
        None,
        zones,
        cells,
        &rules,
    );
    let mut dec = FileDecoder::open(&path(clip)).unwrap();
    let mut sampler = Sampler::new(Sampling::Every(Duration::from_secs(1)));
    let mut street = Frame::default();
    let mut dets = Vec::new();
    let t0 = gridwatch::cases::now_ms();
    let poses = flight_log(t0, &start, &pose_of);
    let parking = |f: &Found| f.violation.kind == kind;
    let (mut by_drone, mut by_street, mut samples) = (Vec::new(), Vec::new(), 0);
    while dec.next_sampled(&mut sampler, &mut street).unwrap() {
        let s = street.pts_ms.unwrap() as f64 / 1000.0;
        let pose = pose_of(s, &start);
        let view = render(&cal, &cam, &pose, &street);
        let t = t0 + (s * 1000.0) as i64;
        det.detect(std::slice::from_ref(&view), &mut dets).unwrap();
        // the pose as the service matches it: the log's, at the frame's time
        let at = std::time::UNIX_EPOCH + Duration::from_millis(t as u64);
        let posed = poses.at(at, Duration::from_secs(1));
        let found = drone
            .step_posed(t, &view, posed.as_ref(), &dets[0], &classes)
            .unwrap();
        by_drone.extend(found.into_iter().filter(parking).map(|f| (s, f)));
        det.detect(std::slice::from_ref(&street), &mut dets)
            .unwrap();
        let found = street_cam.step(t, &street, &dets[0], &classes).unwrap();
        by_street.extend(found.into_iter().filter(parking).map(|f| (s, f)));
        samples += 1;
    }
    let report = drone.drone_report().unwrap().clone();
    eprintln!("{samples} samples: {report:?}");
    for (who, l) in [("drone", &by_drone), ("street", &by_street)] {
        for (s, f) in l {
            let v = &f.violation;
            let since = (v.since_ms - t0) as f64 / 1000.0;
            eprintln!(
                "{who} {s} s: in {} since {since} s at ({}, {}), cell {}",
                v.zone, v.lat, v.lon, v.cell
            );
        }
    }
    Flight {
        drone: by_drone,
        street: by_street,
        report,
        samples,
        t0,
    }
}

/// The flight's one parking finding by each camera agree: the same cell, a stay
/// from the same time, places within 2 m; returns how far apart.
fn agree(f: &Flight) -> f64 {
    assert_eq!(
        (f.drone.len(), f.street.len()),
        (1, 1),
        "one van, one finding each"
    );
    let (d, s) = (&f.drone[0].1.violation, &f.street[0].1.violation);
    assert_eq!(d.zone, "np-service-road");
    assert_eq!(d.cell, s.cell, "one cell: the store makes them one case");
    assert!(
        (d.since_ms - s.since_ms).abs() <= 2_000,
        "the drone kept the stay: since {} s, the street camera's {} s",
        (d.since_ms - f.t0) / 1000,
        (s.since_ms - f.t0) / 1000
    );
    let apart = metres(
        LatLon {
            lat: d.lat,
            lon: d.lon,
        },
        LatLon {
            lat: s.lat,
            lon: s.lon,
        },
    );
    eprintln!("the drone places the van {apart:.2} m from where the street camera does");
    assert!(apart < 2.0, "{apart} m apart");
    apart
}

#[test]
fn a_drone_hovering_and_passing_over_the_van_files_it_once_where_the_street_camera_does() {
    // hover until 8 s, a pass 8 m to the drone's right by 23 s, hover there until
    // 50 s (the 45 s dwell is reached there), back by 65 s
    let f = fly(
        |s| {
            let side =
                8.0 * ((s - 8.0) / 15.0).clamp(0.0, 1.0) * ((65.0 - s) / 15.0).clamp(0.0, 1.0);
            (side, 0.0)
        },
        45,
    );
    assert_eq!(f.report.unposed, 3, "the 3 s without telemetry");
    assert_eq!(f.report.posed, f.samples - 3);
    assert_eq!(f.report.above_horizon, 0);
    agree(&f);
}

#[test]
fn a_drone_that_looks_away_for_longer_than_a_track_is_kept_still_has_the_vans_stay() {
    // turned 120° right (the van out of its view) from 8 s to 48 s — 40 s, longer
    // than an unseen track is kept — then back; the 50 s dwell is reached after
    let f = fly(
        |s| (0.0, if (8.0..48.0).contains(&s) { 120.0 } else { 0.0 }),
        50,
    );
    agree(&f);
}

/// A ground `no_dumping` zone on the lawn (inside the street camera's view, so the
/// virtual drone sees real pixels of it from every pose of the flight).
fn lawn(cal: &Calibration) -> gridwatch::geo::zones::Zone {
    let ring: Vec<[f64; 2]> = [
        (20.0, 320.0),
        (400.0, 345.0),
        (400.0, 560.0),
        (20.0, 560.0),
        (20.0, 320.0),
    ]
    .iter()
    .map(|&(x, y)| {
        let g = cal.image_to_ground(x, y).unwrap();
        [g.lon, g.lat]
    })
    .collect();
    let feature = serde_json::json!({
        "type": "Feature",
        "properties": {"kind": "no_dumping", "name": "lawn (ground)"},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    });
    gridwatch::geo::zones::Zone::from_feature(&feature, "lawn-ground").unwrap()
}

/// Three passes over the lawn: hover (the reference), turned away, a pass 3 m to
/// the right, turned away, a pass 2 m to the left.
fn three_passes(s: f64) -> (f64, f64) {
    match s {
        s if s < 10.0 => (0.0, 0.0),
        s if s < 22.0 => (0.0, 120.0),
        s if s < 34.0 => (3.0, 0.0),
        s if s < 46.0 => (0.0, 120.0),
        _ => (-2.0, 0.0),
    }
}

fn dumping_flight(clip: &str) -> Flight {
    let cal = Calibration::load(&path("calibration/street.toml")).unwrap();
    let passes = |s, start: &DronePose| sideways(start, three_passes(s));
    fly_over(clip, "dumping", passes, |rules, zones| {
        rules.dumping.dwell = Duration::from_secs(20);
        zones.push(lawn(&cal));
    })
}

#[test]
fn an_object_left_on_the_lawn_between_passes_is_one_dumping_finding_where_it_lies() {
    // tests/fixtures/clips/street-dumping.mp4: from 20 s an object lies at street
    // pixels (120..230, 420..496); where the calibration puts that patch is the truth
    let f = dumping_flight("tests/fixtures/clips/street-dumping.mp4");
    let cal = Calibration::load(&path("calibration/street.toml")).unwrap();
    let corners = [
        (120.0, 420.0),
        (230.0, 420.0),
        (230.0, 496.0),
        (120.0, 496.0),
    ]
    .map(|(x, y)| cal.image_to_ground(x, y).unwrap());
    let truth = LatLon {
        lat: corners.iter().map(|g| g.lat).sum::<f64>() / 4.0,
        lon: corners.iter().map(|g| g.lon).sum::<f64>() / 4.0,
    };
    assert_eq!(f.drone.len(), 1, "one object, one finding by the drone");
    let (s, found) = &f.drone[0];
    let v = &found.violation;
    assert_eq!(v.zone, "lawn-ground");
    assert!(*s >= 46.0, "on the third pass, not at {s} s");
    let since = (v.since_ms - f.t0) as f64 / 1000.0;
    assert!(
        (20.0..34.0).contains(&since),
        "first seen on the second pass, not at {since} s"
    );
    let apart = metres(
        truth,
        LatLon {
            lat: v.lat,
            lon: v.lon,
        },
    );
    eprintln!("the drone places the object {apart:.2} m from where it lies");
    assert!(apart < 2.0, "{apart} m from the object");
    // the drone moves: an object's frames between passes would show its box where it
    // is not, so its sequence is the first sight, the violation and the close-up
    let roles: Vec<&str> = found.evidence.iter().map(|p| p.role.as_str()).collect();
    assert_eq!(roles, ["first_sight", "violation", "crop"]);
    let cov = &f.report.zones;
    let lawn = cov.iter().find(|c| c.zone == "lawn-ground").unwrap();
    eprintln!("coverage: {cov:?}");
    assert!(lawn.passes >= 2, "{lawn:?}");
    if let Some((_, by_street)) = f.street.first() {
        let s = &by_street.violation;
        let d = metres(
            truth,
            LatLon {
                lat: s.lat,
                lon: s.lon,
            },
        );
        eprintln!(
            "the street camera places it {d:.2} m away, cell {} (drone: {})",
            s.cell, v.cell
        );
    }
}

#[test]
fn the_lawn_as_it_is_has_no_dumping_from_the_drone() {
    let f = dumping_flight("samples/street.mp4");
    assert!(
        f.drone.is_empty(),
        "{:?}",
        f.drone
            .iter()
            .map(|(s, f)| (s, &f.violation))
            .collect::<Vec<_>>()
    );
    let lawn = f
        .report
        .zones
        .iter()
        .find(|c| c.zone == "lawn-ground")
        .unwrap();
    assert!(lawn.passes >= 2, "{lawn:?}");
}

/// The pose of the street camera turned `degrees` clockwise about the vertical
/// through `centre`: the drone orbiting a ground point, looking at it as the street
/// camera does.
fn orbit(start: &DronePose, centre: LatLon, degrees: f64) -> DronePose {
    let f = LocalFrame::new(centre);
    let (x, y) = f.to_local(LatLon {
        lat: start.lat,
        lon: start.lon,
    });
    let (s, c) = degrees.to_radians().sin_cos();
    let at = f.to_latlon(x * c + y * s, -x * s + y * c);
    DronePose {
        lat: at.lat,
        lon: at.lon,
        heading: (start.heading + degrees).rem_euclid(360.0),
        ..*start
    }
}

#[test]
fn a_drone_orbiting_the_van_files_it_once_where_the_street_camera_does() {
    // the service road's parking zone's centre, the van in it: the drone swings 25°
    // either way about it, there and back every 40 s, looking at it all along
    let zones = ZoneSet::load(&path("samples/geo/zones.geojson"), None).unwrap();
    let road = zones
        .zones()
        .iter()
        .find(|z| z.id == "np-service-road")
        .unwrap();
    let gridwatch::geo::zones::ZoneArea::Ground(mp) = &road.area else {
        panic!("a ground zone")
    };
    let ring: Vec<_> = mp.0[0].exterior().coords().skip(1).collect();
    let centre = LatLon {
        lat: ring.iter().map(|c| c.y).sum::<f64>() / ring.len() as f64,
        lon: ring.iter().map(|c| c.x).sum::<f64>() / ring.len() as f64,
    };
    let f = fly_posed(
        |s, start| {
            orbit(
                start,
                centre,
                25.0 * (s * std::f64::consts::TAU / 40.0).sin(),
            )
        },
        45,
    );
    assert_eq!(f.report.above_horizon, 0);
    agree(&f);
}

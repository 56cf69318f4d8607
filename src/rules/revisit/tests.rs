//! The revisit rule over a synthetic ground, rendered as a drone at a pose sees it
//! (every pixel through `DroneCamera::pixel_to_ground`): the projection is the one
//! the rule inverts, so what it finds must be where the ground has it.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::geo::LocalFrame;

const ORIGIN: LatLon = LatLon {
    lat: 31.2,
    lon: 121.4,
};
const CAM: DroneCamera = DroneCamera {
    width: 320,
    height: 240,
    hfov_deg: 70.0,
};

/// What lies on the ground: a textured lawn, and what a test puts on it.
#[derive(Clone, Copy, PartialEq)]
enum Ground {
    Lawn,
    /// A bright 1.2 m × 0.9 m object centred 2 m east, 1 m north of the origin.
    Object,
    /// Striped structure over 3 m × 3 m about (−1, 0).
    Scaffold,
}

fn shade(g: Ground, e: f64, n: f64) -> u8 {
    let lawn = 110.0 + 35.0 * (e * 1.7).sin() * (n * 1.3).cos() + 15.0 * (e * 0.6 + n * 0.9).sin();
    let v = match g {
        Ground::Object if (e - 2.0).abs() < 0.6 && (n - 1.0).abs() < 0.45 => 235.0,
        Ground::Scaffold if (e + 1.0).abs() < 1.5 && n.abs() < 1.5 => {
            if ((e * 3.0).floor() as i64).rem_euclid(2) == 0 {
                240.0
            } else {
                20.0
            }
        }
        _ => lawn,
    };
    v as u8
}

fn pose(east: f64, north: f64, heading: f64) -> DronePose {
    let at = LocalFrame::new(ORIGIN).to_latlon(east, north);
    DronePose {
        time: UNIX_EPOCH,
        lat: at.lat,
        lon: at.lon,
        alt_agl: 15.0,
        heading,
        pitch: -55.0,
        roll: 0.0,
    }
}

/// The frame the drone at `p` sees of ground `g` (the sky black).
fn render(p: &DronePose, g: Ground) -> Frame {
    let f = LocalFrame::new(ORIGIN);
    let mut frame = Frame::filled(CAM.width, CAM.height, [0, 0, 0]);
    for y in 0..CAM.height {
        for x in 0..CAM.width {
            if let Ok(at) = CAM.pixel_to_ground(p, x as f64 + 0.5, y as f64 + 0.5) {
                let (e, n) = f.to_local(at);
                let v = shade(g, e, n);
                let i = ((y * CAM.width + x) * 3) as usize;
                frame.data[i..i + 3].copy_from_slice(&[v, v, v]);
            }
        }
    }
    frame
}

fn zones(kind: &str) -> ZoneSet {
    let f = LocalFrame::new(ORIGIN);
    let ring: Vec<[f64; 2]> = [
        (-6.0, -5.0),
        (6.0, -5.0),
        (6.0, 5.0),
        (-6.0, 5.0),
        (-6.0, -5.0),
    ]
    .iter()
    .map(|&(e, n)| {
        let p = f.to_latlon(e, n);
        [p.lon, p.lat]
    })
    .collect();
    let feature = serde_json::json!({
        "type": "Feature",
        "properties": {"kind": kind},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    });
    let z = Zone::from_feature(&feature, "lot").unwrap();
    ZoneSet::from_zones(vec![z], chrono_tz::UTC)
}

/// A flight: at each second, where the drone is (`None`: looking away) and what
/// lies on the ground; returns the events (with the second) and the rule.
fn fly(
    kind: &str,
    plan: impl Fn(i64) -> (Option<DronePose>, Ground),
    seconds: i64,
) -> (Vec<(i64, RuleEvent)>, RevisitRule, RuleOutput) {
    let dumping = DumpingConfig {
        dwell: Duration::from_secs(10),
        ..DumpingConfig::default()
    };
    let construction = ConstructionConfig {
        min_duration: Duration::from_secs(10),
        ..ConstructionConfig::default()
    };
    let mut rule = RevisitRule::new(RevisitConfig::default(), dumping, construction);
    rule.set_zones(&zones(kind));
    let (mut events, mut all) = (Vec::new(), RuleOutput::default());
    let t0 = 1_700_000_000_000;
    for s in 0..seconds {
        let (p, g) = plan(s);
        let mut out = RuleOutput::default();
        match p {
            Some(p) => {
                let frame = render(&p, g);
                let view = GroundView {
                    frame: &frame,
                    camera: CAM,
                    pose: &p,
                };
                rule.step(t0 + s * 1000, Some(&view), &[], false, &mut out)
                    .unwrap();
            }
            None => rule
                .step(t0 + s * 1000, None, &[], false, &mut out)
                .unwrap(),
        }
        events.extend(out.events.drain(..).map(|e| (s, e)));
        all.remember.append(&mut out.remember);
        all.forget.append(&mut out.forget);
    }
    (events, rule, all)
}

/// Three passes 15 s apart, the second and third from other places.
fn passes(s: i64) -> Option<DronePose> {
    match s {
        0..=4 => Some(pose(0.0, -12.0, 0.0)),
        15..=19 => Some(pose(3.0, -11.0, -10.0)),
        30..=34 => Some(pose(-2.5, -12.5, 8.0)),
        _ => None,
    }
}

fn metres(a: LatLon, e: f64, n: f64) -> f64 {
    let (x, y) = LocalFrame::new(ORIGIN).to_local(a);
    (x - e).hypot(y - n)
}

#[test]
fn an_object_on_two_later_passes_is_one_dumping_violation_where_it_lies() {
    let (events, rule, out) = fly(
        "no_dumping",
        |s| {
            (
                passes(s),
                if s >= 10 {
                    Ground::Object
                } else {
                    Ground::Lawn
                },
            )
        },
        45,
    );
    assert_eq!(events.len(), 1, "one object, one violation");
    let (s, e) = &events[0];
    assert_eq!(
        (e.kind, e.stage),
        (ViolationKind::Dumping, Stage::Violation)
    );
    assert!((31..=34).contains(s), "on the third pass, not {s}");
    let apart = metres(e.ground.unwrap(), 2.0, 1.0);
    assert!(apart < 0.3, "placed {apart} m from the object");
    assert_eq!(
        e.since_ms,
        1_700_000_000_000 + 16_000,
        "since its first sight"
    );
    assert!(
        out.remember.iter().any(|r| r.1 == e.track),
        "its first sight is kept"
    );
    let cov = rule.coverage();
    assert_eq!(cov[0].passes, 3);
    assert!(cov[0].covered > 0.5, "{cov:?}");
}

#[test]
fn the_lawn_as_it_is_has_no_change() {
    let (events, rule, out) = fly("no_dumping", |s| (passes(s), Ground::Lawn), 45);
    assert!(events.is_empty(), "{events:?}");
    assert!(out.remember.is_empty(), "no change followed");
    assert_eq!(rule.coverage()[0].changes, 0);
}

#[test]
fn an_object_taken_away_before_the_next_pass_is_gone_and_a_spot_not_seen_is_kept() {
    // seen on pass 2, gone by pass 3: no violation
    let (events, _, out) = fly(
        "no_dumping",
        |s| {
            (
                passes(s),
                if (10..25).contains(&s) {
                    Ground::Object
                } else {
                    Ground::Lawn
                },
            )
        },
        45,
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(out.forget.len(), 1, "pass 3 saw its spot without it");
    // a third pass that looks only at the zone's west end does not see the spot: the
    // change is kept, and a fourth pass that does see it makes the violation
    let (events, _, out) = fly(
        "no_dumping",
        |s| {
            let p = match s {
                30..=34 => Some(pose(-9.0, -12.0, -25.0)),
                45..=49 => Some(pose(0.0, -12.0, 0.0)),
                _ => passes(s),
            };
            (
                p,
                if s >= 10 {
                    Ground::Object
                } else {
                    Ground::Lawn
                },
            )
        },
        60,
    );
    assert!(out.forget.is_empty(), "not seen is not gone");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!((46..=49).contains(&events[0].0), "on the fourth pass");
}

#[test]
fn a_hover_is_several_passes() {
    // one long hover: the object comes at 20 s, the 30 s passes compare it
    let (events, rule, _) = fly(
        "no_dumping",
        |s| {
            (
                Some(pose(0.0, -12.0, 0.0)),
                if s >= 20 {
                    Ground::Object
                } else {
                    Ground::Lawn
                },
            )
        },
        75,
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].0 >= 60, "seen on a later pass: {}", events[0].0);
    assert!(rule.coverage()[0].passes >= 2);
}

#[test]
fn a_new_structure_on_two_later_passes_is_one_construction_violation() {
    let (events, _, _) = fly(
        "construction_watch",
        |s| {
            (
                passes(s),
                if s >= 10 {
                    Ground::Scaffold
                } else {
                    Ground::Lawn
                },
            )
        },
        45,
    );
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0].1;
    assert_eq!(e.kind, ViolationKind::IllegalConstruction);
    let apart = metres(e.ground.unwrap(), -1.0, 0.0);
    assert!(apart < 1.0, "placed {apart} m from the structure");
    let (events, _, _) = fly("construction_watch", |s| (passes(s), Ground::Lawn), 45);
    assert!(events.is_empty(), "{events:?}");
}

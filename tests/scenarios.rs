//! Declarative scenarios (tests/scenarios/*.toml): objects with boxes over time, sampled
//! at given rates, go through the tracker and a rule; the violations that come out must
//! be the ones the file expects. Format:
//!
//! ```toml
//! description = "…"
//! duration = "8m"
//! every = "5s"                       # sampling interval
//! rates = [["2m", "1s"]]             # from 2 min on, sample every 1 s
//! [rule]
//! name = "parking"                 # or "vending"
//! dwell = "5m"
//! warn_after = "2m"                  # optional
//! [[zones]]
//! id = "np"
//! kind = "no_parking"
//! polygon = [[0, 0], [400, 0], [400, 300], [0, 300]]   # pixels
//! dwell = "3m"                       # optional zone parameter
//! [[objects]]
//! class = "car"
//! box = [100, 100, 160, 140]
//! from = "0s"
//! to = "8m"
//! velocity = [0, 0]                  # pixels per second
//! hidden = [["2m", "2m20s"]]         # not detected (occluded)
//! stops = [["1m", "4m"]]             # velocity is zero in these spans
//! [[expect]]
//! stage = "violation"                # or "warning"
//! zone = "np"
//! count = 1
//! at = ["5m", "5m10s"]               # when each is emitted
//! ```

use std::path::Path;
use std::time::Duration;

use geo::{Contains, Point, Polygon};
use gridwatch::geo::zones::ZoneKind;
use gridwatch::rules::parking::{ParkingConfig, ParkingRule};
use gridwatch::rules::vending::{VendingConfig, VendingRule};
use gridwatch::rules::{RuleEvent, Stage, TrackRule, ZoneHit};
use gridwatch::track::{Observation, Tracker, TrackerConfig};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    description: String,
    duration: String,
    every: String,
    #[serde(default)]
    rates: Vec<(String, String)>,
    rule: RuleSpec,
    zones: Vec<ZoneSpec>,
    objects: Vec<ObjectSpec>,
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    dwell: String,
    #[serde(default)]
    warn_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneSpec {
    id: String,
    kind: String,
    polygon: Vec<(f64, f64)>,
    #[serde(default)]
    dwell: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectSpec {
    class: String,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    from: String,
    to: String,
    #[serde(default)]
    velocity: [f32; 2],
    #[serde(default)]
    hidden: Vec<(String, String)>,
    #[serde(default)]
    stops: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    stage: String,
    zone: String,
    count: usize,
    #[serde(default)]
    at: Option<(String, String)>,
}

fn ms(s: &str) -> i64 {
    humantime::parse_duration(s)
        .unwrap_or_else(|e| panic!("bad duration {s}: {e}"))
        .as_millis() as i64
}

fn within(t: i64, spans: &[(String, String)]) -> bool {
    spans.iter().any(|(a, b)| ms(a) <= t && t < ms(b))
}

/// Where an object's box is at `t`: it moves with its velocity except while stopped.
fn box_at(o: &ObjectSpec, t: i64) -> [f32; 4] {
    let start = ms(&o.from);
    // seconds of movement between start and t
    let mut moving_ms = 0i64;
    let mut cur = start;
    while cur < t {
        let step = (t - cur).min(100);
        if !within(cur, &o.stops) {
            moving_ms += step;
        }
        cur += step;
    }
    let s = moving_ms as f32 / 1000.0;
    let (dx, dy) = (o.velocity[0] * s, o.velocity[1] * s);
    [
        o.bbox[0] + dx,
        o.bbox[1] + dy,
        o.bbox[2] + dx,
        o.bbox[3] + dy,
    ]
}

fn run(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let sc: Scenario = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let kinds: Vec<ZoneKind> = sc.zones.iter().map(|z| ZoneKind::parse(&z.kind)).collect();
    let polys: Vec<Polygon<f64>> = sc
        .zones
        .iter()
        .map(|z| Polygon::new(z.polygon.clone().into(), vec![]))
        .collect();
    let dwells: Vec<Option<Duration>> = sc
        .zones
        .iter()
        .map(|z| {
            z.dwell
                .as_deref()
                .map(|d| humantime::parse_duration(d).unwrap())
        })
        .collect();
    let mut tracker = Tracker::new(TrackerConfig::default());
    let dwell = humantime::parse_duration(&sc.rule.dwell).unwrap();
    let warn_after = sc
        .rule
        .warn_after
        .as_deref()
        .map(|w| humantime::parse_duration(w).unwrap());
    let mut rule: Box<dyn TrackRule> = match sc.rule.name.as_str() {
        "parking" => Box::new(ParkingRule::new(ParkingConfig {
            dwell,
            warn_after,
            ..Default::default()
        })),
        "vending" => Box::new(VendingRule::new(VendingConfig {
            dwell,
            warn_after,
            ..Default::default()
        })),
        other => return Err(format!("{}: unknown rule {other}", path.display())),
    };
    let mut events: Vec<RuleEvent> = Vec::new();
    let end = ms(&sc.duration);
    let mut t = 0;
    while t <= end {
        let obs: Vec<Observation> = sc
            .objects
            .iter()
            .filter(|o| ms(&o.from) <= t && t <= ms(&o.to) && !within(t, &o.hidden))
            .map(|o| Observation {
                class: o.class.clone(),
                score: 0.8,
                bbox: box_at(o, t),
                ground: None,
            })
            .collect();
        let tracks = tracker.update(t, &obs).to_vec();
        rule.step(
            t,
            &tracks,
            &mut |tr| {
                let foot = Point::new(((tr.bbox[0] + tr.bbox[2]) / 2.0) as f64, tr.bbox[3] as f64);
                (0..polys.len())
                    .filter(|&i| polys[i].contains(&foot))
                    .map(|i| ZoneHit {
                        id: &sc.zones[i].id,
                        kind: &kinds[i],
                        dwell: dwells[i],
                    })
                    .collect()
            },
            &mut events,
        );
        let every = sc
            .rates
            .iter()
            .rfind(|(from, _)| ms(from) <= t)
            .map(|(_, e)| ms(e))
            .unwrap_or_else(|| ms(&sc.every));
        t += every;
    }
    if std::env::var("SCENARIO_DEBUG").is_ok() {
        eprintln!("{}: {events:?}\n{:?}", path.display(), tracker.tracks());
    }
    for e in &sc.expect {
        let stage = match e.stage.as_str() {
            "violation" => Stage::Violation,
            "warning" => Stage::Warning,
            s => return Err(format!("{}: unknown stage {s}", path.display())),
        };
        let got: Vec<&RuleEvent> = events
            .iter()
            .filter(|v| v.stage == stage && v.zone == e.zone)
            .collect();
        if got.len() != e.count {
            return Err(format!(
                "{} ({}): expected {} {} in zone {}, got {}: {got:?}",
                path.display(),
                sc.description,
                e.count,
                e.stage,
                e.zone,
                got.len()
            ));
        }
        if let Some((a, b)) = &e.at {
            for v in &got {
                if v.at_ms < ms(a) || v.at_ms > ms(b) {
                    return Err(format!(
                        "{} ({}): {} at {} ms, expected between {a} and {b}",
                        path.display(),
                        sc.description,
                        e.stage,
                        v.at_ms
                    ));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn every_scenario_gives_the_expected_violations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "scenarios found: {files:?}");
    let failures: Vec<String> = files.iter().filter_map(|f| run(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

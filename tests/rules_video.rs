//! Rules on real video: the bundled detector over the street clip, tracked, with the
//! example calibration and zones. The `no_parking` zone covers the parked van (and not
//! the car beside it); with a 30 s dwell there is exactly one parking violation, for the
//! van, and none for the people walking through.

mod common;

use chrono::Utc;
use common::path;
use gridwatch::decode::{FileDecoder, Frame, Sampler, Sampling};
use gridwatch::detect::{Detector, EngineOptions, ModelManifest};
use gridwatch::geo::calib::Calibration;
use gridwatch::geo::zones::ZoneSet;
use gridwatch::rules::parking::{ParkingConfig, ParkingRule};
use gridwatch::rules::{Rule, RuleEvent, Stage, ZoneHit};
use gridwatch::track::{Observation, Tracker, TrackerConfig};

#[test]
fn the_parked_van_is_one_violation_and_walkers_are_none() {
    let manifest = ModelManifest::load(&path("models/nanodet-coco-416.toml")).unwrap();
    let classes = manifest.classes.clone();
    let mut det = Detector::load(manifest, &EngineOptions::default()).unwrap();
    let cal = Calibration::load(&path("calibration/street.toml")).unwrap();
    let zones = ZoneSet::load(&path("samples/geo/zones.geojson"), None).unwrap();
    let mut dec = FileDecoder::open(&path("samples/street.mp4")).unwrap();
    let mut sampler = Sampler::new(Sampling::Every(std::time::Duration::from_secs(1)));
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut rule = ParkingRule::new(ParkingConfig {
        dwell: std::time::Duration::from_secs(30),
        ..Default::default()
    });
    let now = Utc::now();
    let mut frame = Frame::default();
    let mut dets = Vec::new();
    let mut events: Vec<RuleEvent> = Vec::new();
    let mut people_seen = 0;
    while dec.next_sampled(&mut sampler, &mut frame).unwrap() {
        det.detect(std::slice::from_ref(&frame), &mut dets).unwrap();
        let obs: Vec<Observation> = dets[0]
            .iter()
            .map(|d| Observation {
                class: classes[d.class_id as usize].clone(),
                score: d.score,
                bbox: d.bbox,
                ground: cal
                    .box_to_ground(d.bbox)
                    .ok()
                    .map(|g| cal.frame().to_local(g)),
            })
            .collect();
        people_seen += obs.iter().filter(|o| o.class == "person").count();
        let t = frame.pts_ms.unwrap();
        let tracks = tracker.update(t, &obs).to_vec();
        rule.step(
            t,
            &tracks,
            &mut |tr| {
                let mut hits = Vec::new();
                if let Ok(g) = cal.box_to_ground(tr.bbox) {
                    let mut zs = Vec::new();
                    zones.at(g, now, &mut zs);
                    for z in zs {
                        // the example zone's own dwell is 5 min, longer than the clip:
                        // this test asks for 30 s, the rule's setting above
                        hits.push(ZoneHit {
                            id: &z.id,
                            kind: &z.kind,
                            dwell: None,
                        });
                    }
                }
                hits
            },
            &mut events,
        );
    }
    assert!(
        people_seen > 100,
        "people walk through the scene ({people_seen} detections)"
    );
    let violations: Vec<&RuleEvent> = events
        .iter()
        .filter(|e| e.stage == Stage::Violation)
        .collect();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    let v = violations[0];
    assert_eq!(v.zone, "np-service-road");
    assert!(v.class == "truck" || v.class == "car", "{v:?}");
    // the van: bottom centre near (690, 97)
    let cx = (v.bbox[0] + v.bbox[2]) / 2.0;
    assert!(
        (640.0..730.0).contains(&cx) && (80.0..115.0).contains(&v.bbox[3]),
        "{v:?}"
    );
    assert!(
        (30_000..=35_000).contains(&(v.at_ms - v.since_ms)),
        "after the 30 s dwell: {v:?}"
    );
}

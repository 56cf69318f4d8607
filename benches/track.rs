//! Tracker + parking and vending rules per frame with 200 objects (cars and people,
//! half parked, half moving) in zones covering all of them, sampled every second.

use criterion::{criterion_group, criterion_main, Criterion};
use gridwatch::geo::zones::ZoneKind;
use gridwatch::rules::parking::{ParkingConfig, ParkingRule};
use gridwatch::rules::vending::{VendingConfig, VendingRule};
use gridwatch::rules::{TrackRule, ZoneHit};
use gridwatch::track::{Observation, Tracker, TrackerConfig};

fn frame(t: i64) -> Vec<Observation> {
    (0..200)
        .map(|i| {
            let (col, row) = ((i % 20) as f32, (i / 20) as f32);
            // odd objects drive right at 5 px/s, even ones stay
            let dx = if i % 2 == 1 {
                (t as f32 / 1000.0) * 5.0
            } else {
                0.0
            };
            let x = col * 95.0 + dx;
            let y = row * 100.0;
            Observation {
                class: match i % 6 {
                    0 | 3 => "person".into(),
                    5 => "umbrella".into(),
                    _ => "car".into(),
                },
                score: 0.8,
                bbox: [x, y, x + 60.0, y + 40.0],
                ground: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let frames: Vec<Vec<Observation>> = (0..600).map(|k| frame(k * 1000)).collect();
    let kind = ZoneKind::NoParking;
    let nv = ZoneKind::NoVending;
    let mut vending = VendingRule::new(VendingConfig::default());
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut rule = ParkingRule::new(ParkingConfig::default());
    let mut events = Vec::new();
    let mut k = 0usize;
    c.bench_function("track+parking+vending/200-objects", |b| {
        b.iter(|| {
            let t = k as i64 * 1000;
            let obs = &frames[k % frames.len()];
            k += 1;
            if k.is_multiple_of(frames.len()) {
                tracker = Tracker::new(TrackerConfig::default());
                rule = ParkingRule::new(ParkingConfig::default());
                vending = VendingRule::new(VendingConfig::default());
            }
            let tracks = tracker.update(t, obs);
            events.clear();
            rule.step(
                t,
                tracks,
                &mut |_| {
                    vec![ZoneHit {
                        id: "np",
                        kind: &kind,
                        dwell: None,
                    }]
                },
                &mut events,
            );
            vending.step(
                t,
                tracks,
                &mut |_| {
                    vec![ZoneHit {
                        id: "nv",
                        kind: &nv,
                        dwell: None,
                    }]
                },
                &mut events,
            );
            events.len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

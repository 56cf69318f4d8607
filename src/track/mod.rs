//! Tracking: per-camera identities of detected objects across samples, at video rate or
//! at one frame every few seconds, with how long each has stood still.
//!
//! Association is greedy on the best pairs first: a detection continues a track of a
//! compatible class (car and truck are interchangeable: detectors flip between them for
//! vans and pickups) when their boxes overlap (IoU) or, with ground points, when it lies within a
//! gate of the track's last position. Overlap alone would lose slow movers at low
//! sample rates; distance alone would swap neighbours. A track that is not seen is kept
//! for `max_missed` (a parked car hidden by a passing bus keeps its identity and its
//! dwell), then dropped.
//!
//! Stationarity: a track has an anchor position; while it stays within the tolerance of
//! the anchor (metres on the ground, or a fraction of the box height in pixels when the
//! camera is not calibrated), `stationary_since` does not change. Moving beyond it moves
//! the anchor and restarts the clock.

/// What the tracker is told about one detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Class name (from the model's class list).
    pub class: String,
    /// Confidence.
    pub score: f32,
    /// Box in frame pixels.
    pub bbox: [f32; 4],
    /// Ground position in a local metre frame (east, north), when calibrated.
    pub ground: Option<(f64, f64)>,
}

/// Tracker settings.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Least IoU for a detection to continue a track by overlap.
    pub iou_min: f32,
    /// Farthest a ground point may be from the track's last one to continue it, metres.
    pub ground_gate_m: f64,
    /// How long an unseen track is kept, ms.
    pub max_missed_ms: i64,
    /// Stationary while within this of the anchor, metres (with ground points).
    pub stationary_m: f64,
    /// Stationary while within this fraction of the box height of the anchor (pixels).
    pub stationary_frac: f32,
    /// Groups of classes that may continue each other's tracks.
    pub class_groups: Vec<Vec<String>>,
    /// Two detections of one sample whose boxes overlap at least this much (IoU) are
    /// one object seen as two classes (a van as a truck and a car, a truck and a
    /// bus): the less confident one is left out.
    pub merge_iou: f32,
    /// Associate by ground points alone (a moving camera: boxes of one object in two
    /// samples need not overlap, and overlapping boxes need not be one object).
    pub ground_only: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            iou_min: 0.3,
            ground_gate_m: 3.0,
            max_missed_ms: 30_000,
            stationary_m: 1.5,
            stationary_frac: 0.25,
            // detectors flip between car and truck for vans and pickups; a bus passing in
            // front of a parked car must not take its track over
            class_groups: vec![vec!["car".to_string(), "truck".to_string()]],
            ground_only: false,
            merge_iou: 0.85,
        }
    }
}

/// One tracked object.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Identity, unique per tracker.
    pub id: u64,
    /// Class of the latest detection.
    pub class: String,
    /// Latest box.
    pub bbox: [f32; 4],
    /// Latest ground position.
    pub ground: Option<(f64, f64)>,
    /// Latest score.
    pub score: f32,
    /// First seen, ms.
    pub first_seen: i64,
    /// Last seen, ms.
    pub last_seen: i64,
    /// Samples it was seen in.
    pub hits: u32,
    /// Since when it has stood within the tolerance of its anchor, ms.
    pub stationary_since: i64,
    /// Time since its last sighting that the camera did not look where it is (a
    /// drone flying elsewhere), ms: not counted toward `max_missed`.
    pub out_of_view_ms: i64,
    anchor_box: [f32; 4],
    anchor_ground: Option<(f64, f64)>,
}

impl Track {
    /// How long it has stood still as of its last sighting, ms.
    pub fn dwell_ms(&self) -> i64 {
        self.last_seen - self.stationary_since
    }

    /// Whether it was seen in the latest update.
    pub fn seen_at(&self, t: i64) -> bool {
        self.last_seen == t
    }
}

/// Intersection over union of two boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

fn centre(b: &[f32; 4]) -> (f32, f32) {
    ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)
}

/// A camera's tracker.
#[derive(Debug, Default)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    pairs: Vec<(f32, usize, usize)>,
    taken_obs: Vec<bool>,
    taken_track: Vec<bool>,
}

/// Marks in `twin` each observation that a more confident one of the same sample
/// overlaps by at least `merge_iou`.
fn twins(obs: &[Observation], merge_iou: f32, twin: &mut Vec<bool>) {
    twin.clear();
    twin.resize(obs.len(), false);
    for i in 0..obs.len() {
        for j in 0..obs.len() {
            let better = obs[j].score > obs[i].score || (obs[j].score == obs[i].score && j < i);
            if i != j && better && iou(&obs[i].bbox, &obs[j].bbox) >= merge_iou {
                twin[i] = true;
                break;
            }
        }
    }
}

impl Tracker {
    /// A tracker with the settings.
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Live tracks (seen within `max_missed`).
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The camera looked elsewhere for `ms` (a PTZ camera at another preset): that
    /// time does not count toward `max_missed`, so a parked car seen before and after
    /// keeps its track and its stay.
    pub fn away(&mut self, ms: i64) {
        for tr in &mut self.tracks {
            tr.last_seen += ms;
        }
    }

    /// The camera did not look where the tracks `unseen` picks are for `ms` (a drone
    /// flying elsewhere): that time does not count toward their `max_missed`, so a
    /// parked car passed over twice keeps its track and its stay.
    pub fn out_of_view(&mut self, ms: i64, mut unseen: impl FnMut(&Track) -> bool) {
        for tr in &mut self.tracks {
            if unseen(tr) {
                tr.out_of_view_ms += ms;
            }
        }
    }

    /// Takes the detections of the sample at `t` ms.
    pub fn update(&mut self, t: i64, obs: &[Observation]) -> &[Track] {
        // a track unseen for longer than max_missed is gone before it can be matched
        // again (a camera paused for minutes does not pick up its old tracks)
        let max_missed = self.config.max_missed_ms;
        self.tracks
            .retain(|tr| t - tr.last_seen - tr.out_of_view_ms <= max_missed);
        let cfg = &self.config;
        let compatible = |a: &str, b: &str| {
            a == b
                || cfg
                    .class_groups
                    .iter()
                    .any(|g| g.iter().any(|c| c == a) && g.iter().any(|c| c == b))
        };
        // a twin is taken before it is looked at: it continues nothing and starts
        // nothing
        twins(obs, cfg.merge_iou, &mut self.taken_obs);
        self.pairs.clear();
        for (ti, tr) in self.tracks.iter().enumerate() {
            for (oi, o) in obs.iter().enumerate() {
                if self.taken_obs[oi] || !compatible(&tr.class, &o.class) {
                    continue;
                }
                let overlap = if cfg.ground_only {
                    0.0
                } else {
                    iou(&tr.bbox, &o.bbox)
                };
                let near = match (tr.ground, o.ground) {
                    (Some(a), Some(b)) => {
                        let d = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
                        (d <= cfg.ground_gate_m).then(|| 1.0 - (d / cfg.ground_gate_m) as f32)
                    }
                    _ => None,
                };
                let score = match near {
                    Some(n) => n.max(overlap),
                    None if overlap >= cfg.iou_min => overlap,
                    None => continue,
                };
                if overlap >= cfg.iou_min || near.is_some() {
                    self.pairs.push((score, ti, oi));
                }
            }
        }
        self.pairs
            .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        self.taken_track.clear();
        self.taken_track.resize(self.tracks.len(), false);
        for &(_, ti, oi) in &self.pairs {
            if self.taken_track[ti] || self.taken_obs[oi] {
                continue;
            }
            self.taken_track[ti] = true;
            self.taken_obs[oi] = true;
            let o = &obs[oi];
            let tr = &mut self.tracks[ti];
            let moved = match (tr.anchor_ground, o.ground) {
                (Some(a), Some(b)) => {
                    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt() > cfg.stationary_m
                }
                _ => {
                    let (ac, oc) = (centre(&tr.anchor_box), centre(&o.bbox));
                    let h = (o.bbox[3] - o.bbox[1]).max(1.0);
                    ((ac.0 - oc.0).powi(2) + (ac.1 - oc.1).powi(2)).sqrt() > cfg.stationary_frac * h
                }
            };
            if moved {
                tr.stationary_since = t;
                tr.anchor_box = o.bbox;
                tr.anchor_ground = o.ground;
            }
            tr.class.clone_from(&o.class);
            tr.bbox = o.bbox;
            tr.ground = o.ground;
            tr.score = o.score;
            tr.last_seen = t;
            tr.out_of_view_ms = 0;
            tr.hits += 1;
        }
        for (oi, o) in obs.iter().enumerate() {
            if !self.taken_obs[oi] {
                self.next_id += 1;
                self.tracks.push(Track {
                    id: self.next_id,
                    class: o.class.clone(),
                    bbox: o.bbox,
                    ground: o.ground,
                    score: o.score,
                    first_seen: t,
                    last_seen: t,
                    hits: 1,
                    stationary_since: t,
                    out_of_view_ms: 0,
                    anchor_box: o.bbox,
                    anchor_ground: o.ground,
                });
            }
        }
        self.tracks
            .retain(|tr| t - tr.last_seen - tr.out_of_view_ms <= max_missed);
        &self.tracks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn car(x: f32) -> Observation {
        Observation {
            class: "car".into(),
            score: 0.8,
            bbox: [x, 100.0, x + 60.0, 140.0],
            ground: None,
        }
    }

    #[test]
    fn a_parked_car_keeps_its_identity_and_dwell_through_occlusion() {
        let mut t = Tracker::new(TrackerConfig::default());
        let id = t.update(0, &[car(100.0)])[0].id;
        t.update(5_000, &[car(101.0)]);
        // hidden by a bus for 15 s
        for s in [10_000, 15_000, 20_000] {
            t.update(
                s,
                &[Observation {
                    class: "bus".into(),
                    score: 0.9,
                    bbox: [0.0, 50.0, 300.0, 200.0],
                    ground: None,
                }],
            );
        }
        let tr = t
            .update(25_000, &[car(100.5)])
            .iter()
            .find(|tr| tr.class == "car")
            .cloned()
            .unwrap();
        assert_eq!(tr.id, id);
        assert_eq!(tr.dwell_ms(), 25_000);
    }

    #[test]
    fn one_object_seen_as_two_classes_at_once_is_one_track_on_the_ground_or_not() {
        for ground_only in [false, true] {
            let mut t = Tracker::new(TrackerConfig {
                ground_only,
                ..TrackerConfig::default()
            });
            let van = |class: &str, score: f32, dx: f32| Observation {
                class: class.into(),
                score,
                bbox: [100.0 + dx, 100.0, 160.0 + dx, 140.0],
                ground: Some((1.8, 3.5)),
            };
            let id = t.update(0, &[van("truck", 0.6, 0.0)])[0].id;
            // the detector calls it a truck and a bus in one frame, a car and a truck
            // in the next: the less sure class is the same van
            let seen = t.update(1_000, &[van("bus", 0.42, 0.5), van("truck", 0.52, 0.0)]);
            assert_eq!(seen.len(), 1, "ground_only {ground_only}: {seen:?}");
            let seen = t.update(2_000, &[van("car", 0.36, 1.0), van("truck", 0.5, 0.0)]);
            assert_eq!((seen.len(), seen[0].id, seen[0].dwell_ms()), (1, id, 2_000));
            // two cars side by side are two tracks
            let two = t.update(3_000, &[van("truck", 0.5, 0.0), van("car", 0.4, 70.0)]);
            assert_eq!(two.len(), 2, "{two:?}");
        }
    }

    #[test]
    fn time_out_of_the_cameras_view_does_not_age_a_track() {
        let mut t = Tracker::new(TrackerConfig::default());
        let id = t.update(0, &[car(100.0)])[0].id;
        // 40 s looking elsewhere, in steps, then seen again where it was
        for s in (10_000..=40_000).step_by(10_000) {
            t.out_of_view(10_000, |_| true);
            assert_eq!(t.update(s, &[]).len(), 1, "kept at {s} ms");
        }
        let tr = &t.update(45_000, &[car(100.0)])[0];
        assert_eq!((tr.id, tr.dwell_ms(), tr.out_of_view_ms), (id, 45_000, 0));
        // in view and not seen: gone after max_missed
        assert!(t.update(80_000, &[]).is_empty());
    }

    #[test]
    fn moving_objects_restart_their_stationary_clock_and_old_tracks_expire() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(0, &[car(100.0)]);
        let tr = &t.update(1_000, &[car(130.0)])[0]; // moved half a car length: IoU 0.33
        assert_eq!(tr.hits, 2);
        assert_eq!(tr.dwell_ms(), 0);
        assert!(
            t.update(40_000, &[]).is_empty(),
            "unseen for longer than max_missed"
        );
    }

    #[test]
    fn a_track_unseen_too_long_is_not_picked_up_again_unless_the_camera_looked_elsewhere() {
        let mut t = Tracker::new(TrackerConfig::default());
        let id = t.update(0, &[car(100.0)])[0].id;
        // 40 s later at the same place: a new track, its stay from now
        let tr = t.update(40_000, &[car(100.0)])[0].clone();
        assert_ne!(tr.id, id);
        assert_eq!(tr.dwell_ms(), 0);
        // the camera at another preset for 38 of the next 40 s: the same track, its
        // stay counted from the first sight
        t.away(38_000);
        let back = &t.update(80_000, &[car(100.0)])[0];
        assert_eq!((back.id, back.dwell_ms()), (tr.id, 40_000));
    }

    #[test]
    fn ground_points_associate_at_low_sample_rates() {
        let mut t = Tracker::new(TrackerConfig::default());
        let walker = |x: f32, g: f64| Observation {
            class: "person".into(),
            score: 0.7,
            bbox: [x, 100.0, x + 20.0, 160.0],
            ground: Some((g, 0.0)),
        };
        let id = t.update(0, &[walker(100.0, 0.0)])[0].id;
        // 5 s later the box no longer overlaps, but the ground point is 2 m away
        let tr = &t.update(5_000, &[walker(140.0, 2.0)])[0];
        assert_eq!(tr.id, id);
        assert_eq!(
            tr.dwell_ms(),
            0,
            "2 m is beyond the 1.5 m stationary tolerance"
        );
        // a person does not continue a car's track
        let n = t.update(6_000, &[car(100.0)]).len();
        assert_eq!(n, 2);
    }

    #[test]
    fn vehicle_classes_continue_each_other() {
        let mut t = Tracker::new(TrackerConfig::default());
        let id = t.update(0, &[car(100.0)])[0].id;
        let mut truck = car(100.0);
        truck.class = "truck".into();
        assert_eq!(t.update(1_000, &[truck])[0].id, id);
    }
}

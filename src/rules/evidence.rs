//! Evidence for a violation: the first frame (when the object started standing where it
//! broke the rule) and the latest frame, each with the object's box, its label and the
//! zone outline drawn, and a crop of the object from the latest frame; JPEG.
//!
//! Frames are not kept raw: when a watched track starts standing still (its stationary
//! clock restarts), the frame is JPEG-encoded once and kept with the box, so memory is a
//! few tens of kilobytes per watched track whatever the frame size.
//!
//! Every image is made private before it is encoded for the store ([`super::privacy`]):
//! the people in the frame who are not the case's subject are pixelated. A first frame
//! is kept unblurred in memory only, with the people seen in it, because whose case it
//! becomes evidence of (and so who its subject is) is not known until then.

use std::collections::HashMap;

use opencv::core::{Mat, Point, Rect, Scalar, Vector};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;

use super::privacy::{pixelate, Bystander, PrivacyConfig};
use super::{RuleEvent, ViolationKind};
use crate::decode::Frame;
use crate::draw::copy_to_canvas;
use crate::track::Track;

/// JPEG images proving a violation.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The first frame, annotated.
    pub first: Vec<u8>,
    /// The latest frame, annotated.
    pub latest: Vec<u8>,
    /// The object cut from the latest frame (with a margin).
    pub crop: Vec<u8>,
}

struct Snapshot {
    since: i64,
    bbox: [f32; 4],
    jpeg: Vec<u8>,
    /// Who was in the frame, blurred (or not) once the case is known.
    people: Vec<Bystander>,
}

/// Keeps the first frame of each watched track's current stay.
#[derive(Default)]
pub struct EvidenceKeeper {
    snaps: HashMap<u64, Snapshot>,
    /// Subjects that are not tracks: a dumping rule's new objects, a construction zone.
    objects: HashMap<(ViolationKind, u64), Snapshot>,
    canvas: Mat,
    privacy: PrivacyConfig,
    people: Vec<Bystander>,
}

/// The subject of a case as a track: parking and vending cases are about a track;
/// dumping and construction about an object or a change that is not one.
fn subject_track(event: &RuleEvent) -> Option<u64> {
    matches!(
        event.kind,
        ViolationKind::IllegalParking | ViolationKind::StreetVending
    )
    .then_some(event.track)
}

const QUALITY: i32 = 85;

/// Subjects that are not tracks kept at once, at most: past it the one kept longest
/// goes (a rule that never says a subject is gone cannot grow memory without end).
const MAX_OBJECTS: usize = 256;

fn encode(image: &Mat) -> opencv::Result<Vec<u8>> {
    let mut buf: Vector<u8> = Vector::new();
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, QUALITY]);
    imgcodecs::imencode(".jpg", image, &mut buf, &params)?;
    Ok(buf.to_vec())
}

fn annotate(
    image: &mut Mat,
    bbox: [f32; 4],
    label: &str,
    zone: &[(f64, f64)],
) -> opencv::Result<()> {
    let red = Scalar::new(40.0, 40.0, 230.0, 0.0);
    let yellow = Scalar::new(0.0, 220.0, 255.0, 0.0);
    if zone.len() >= 2 {
        let pts: Vector<Point> = zone
            .iter()
            .map(|&(x, y)| Point::new(x.round() as i32, y.round() as i32))
            .collect();
        imgproc::polylines(
            image,
            &Vector::<Vector<Point>>::from_iter([pts]),
            true,
            yellow,
            2,
            imgproc::LINE_AA,
            0,
        )?;
    }
    let [x1, y1, x2, y2] = bbox.map(|v| v.round() as i32);
    imgproc::rectangle(
        image,
        Rect::new(x1, y1, (x2 - x1).max(1), (y2 - y1).max(1)),
        red,
        2,
        imgproc::LINE_8,
        0,
    )?;
    let y = if y1 > 16 { y1 - 5 } else { y2 + 15 };
    imgproc::put_text(
        image,
        label,
        Point::new(x1.max(0), y),
        imgproc::FONT_HERSHEY_SIMPLEX,
        0.5,
        red,
        1,
        imgproc::LINE_AA,
        false,
    )?;
    Ok(())
}

impl EvidenceKeeper {
    /// A keeper that makes its images private as `privacy` says.
    pub fn new(privacy: PrivacyConfig) -> Self {
        Self {
            privacy,
            ..Self::default()
        }
    }

    /// Looks at a frame: every watched track whose stay began at this frame (or that
    /// has no snapshot yet) gets this frame as its first frame. Tracks that are gone
    /// are forgotten. `watched` says which tracks could become violations (e.g. they
    /// stand in a zone).
    pub fn observe(
        &mut self,
        t: i64,
        frame: &Frame,
        tracks: &[Track],
        watched: impl Fn(&Track) -> bool,
    ) -> opencv::Result<()> {
        self.snaps
            .retain(|id, _| tracks.iter().any(|tr| tr.id == *id));
        let mut encoded: Option<Vec<u8>> = None;
        self.people.clear();
        for tr in tracks.iter().filter(|tr| tr.seen_at(t) && watched(tr)) {
            let fresh = self
                .snaps
                .get(&tr.id)
                .is_none_or(|s| s.since != tr.stationary_since);
            if fresh {
                if encoded.is_none() {
                    copy_to_canvas(frame, &mut self.canvas)?;
                    encoded = Some(encode(&self.canvas)?);
                    self.privacy.people(t, tracks, &mut self.people);
                }
                self.snaps.insert(
                    tr.id,
                    Snapshot {
                        since: tr.stationary_since,
                        bbox: tr.bbox,
                        jpeg: encoded.clone().expect("just encoded"),
                        people: self.people.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Keeps `frame` as the first frame of a subject that is not a track (a dumping
    /// rule's new object, a construction zone's change): `kind` and `id` as in the
    /// events the rule will emit for it; `tracks` those of the frame.
    pub fn remember(
        &mut self,
        kind: ViolationKind,
        id: u64,
        since: i64,
        bbox: [f32; 4],
        frame: &Frame,
        tracks: &[Track],
    ) -> opencv::Result<()> {
        copy_to_canvas(frame, &mut self.canvas)?;
        let jpeg = encode(&self.canvas)?;
        let mut people = Vec::new();
        self.privacy.people(since, tracks, &mut people);
        self.objects.insert(
            (kind, id),
            Snapshot {
                since,
                bbox,
                jpeg,
                people,
            },
        );
        if self.objects.len() > MAX_OBJECTS {
            if let Some(oldest) = self
                .objects
                .iter()
                .min_by_key(|(_, s)| s.since)
                .map(|(k, _)| *k)
            {
                self.objects.remove(&oldest);
            }
        }
        Ok(())
    }

    /// Subjects kept with [`Self::remember`] now.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// Forgets a subject kept with [`Self::remember`].
    pub fn forget(&mut self, kind: ViolationKind, id: u64) {
        self.objects.remove(&(kind, id));
    }

    /// The evidence for `event`, with `frame` (of time `t`) as the latest frame
    /// (`tracks` its tracks) and `zone` the zone's outline in this camera's pixels.
    pub fn evidence(
        &mut self,
        t: i64,
        frame: &Frame,
        tracks: &[Track],
        event: &RuleEvent,
        zone: &[(f64, f64)],
    ) -> opencv::Result<Evidence> {
        let label = format!("{} {:?} #{}", event.class, event.kind, event.track);
        let (subject, related) = (subject_track(event), event.related.as_ref().map(|r| r.0));
        copy_to_canvas(frame, &mut self.canvas)?;
        self.people.clear();
        self.privacy.people(t, tracks, &mut self.people);
        pixelate(
            &mut self.canvas,
            self.privacy
                .to_blur(event.kind, subject, related, &self.people),
        )?;
        // crop first, from the clean frame
        let [x1, y1, x2, y2] = event.bbox;
        let (w, h) = ((x2 - x1).max(1.0), (y2 - y1).max(1.0));
        let clamp = |v: f32, hi: u32| v.round().clamp(0.0, hi as f32) as i32;
        let (cx1, cy1) = (
            clamp(x1 - 0.25 * w, frame.width),
            clamp(y1 - 0.25 * h, frame.height),
        );
        let (cx2, cy2) = (
            clamp(x2 + 0.25 * w, frame.width),
            clamp(y2 + 0.25 * h, frame.height),
        );
        let roi = Mat::roi(
            &self.canvas,
            Rect::new(cx1, cy1, (cx2 - cx1).max(1), (cy2 - cy1).max(1)),
        )?;
        let crop = encode(&roi.try_clone()?)?;
        annotate(&mut self.canvas, event.bbox, &label, zone)?;
        let latest = encode(&self.canvas)?;
        let kept = self
            .objects
            .get(&(event.kind, event.track))
            .or_else(|| self.snaps.get(&event.track));
        let first = match kept {
            Some(s) => {
                let mut img =
                    imgcodecs::imdecode(&Vector::from_slice(&s.jpeg), imgcodecs::IMREAD_COLOR)?;
                pixelate(
                    &mut img,
                    self.privacy
                        .to_blur(event.kind, subject, related, &s.people),
                )?;
                annotate(&mut img, s.bbox, &label, zone)?;
                encode(&img)?
            }
            // no earlier frame kept (the stay began before watching): the latest stands in
            None => latest.clone(),
        };
        Ok(Evidence {
            first,
            latest,
            crop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Stage;
    use crate::track::{Observation, Tracker, TrackerConfig};

    #[test]
    fn first_frame_is_from_the_start_of_the_stay() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut keeper = EvidenceKeeper::default();
        let car = Observation {
            class: "car".into(),
            score: 0.9,
            bbox: [40.0, 40.0, 100.0, 80.0],
            ground: None,
        };
        // the first frame is dark, later frames bright: the evidence must show both
        let dark = Frame::filled(160, 120, [20, 20, 20]);
        let bright = Frame::filled(160, 120, [230, 230, 230]);
        for (t, f) in [(0, &dark), (1000, &bright), (2000, &bright)] {
            let tracks = tracker.update(t, std::slice::from_ref(&car)).to_vec();
            keeper.observe(t, f, &tracks, |_| true).unwrap();
        }
        let tracks = tracker.tracks().to_vec();
        let ev = RuleEvent {
            kind: ViolationKind::IllegalParking,
            stage: Stage::Violation,
            zone: "z".into(),
            track: tracker.tracks()[0].id,
            class: "car".into(),
            since_ms: 0,
            at_ms: 2000,
            bbox: car.bbox,
            related: None,
            ground: None,
        };
        let e = keeper
            .evidence(
                2000,
                &bright,
                &tracks,
                &ev,
                &[(10.0, 10.0), (150.0, 10.0), (150.0, 110.0)],
            )
            .unwrap();
        let mean = |jpeg: &[u8]| {
            let m = imgcodecs::imdecode(&Vector::from_slice(jpeg), imgcodecs::IMREAD_GRAYSCALE)
                .unwrap();
            (
                opencv::core::mean(&m, &opencv::core::no_array()).unwrap()[0],
                m.cols(),
                m.rows(),
            )
        };
        let (first, _, _) = mean(&e.first);
        let (latest, w, h) = mean(&e.latest);
        assert!(
            first < 80.0 && latest > 150.0,
            "first {first}, latest {latest}"
        );
        assert_eq!((w, h), (160, 120));
        let (_, cw, ch) = mean(&e.crop);
        assert_eq!((cw, ch), (90, 60), "box 60x40 plus a quarter on each side");
    }

    /// A checkerboard of 4-pixel squares: JPEG keeps it, pixelation does not.
    fn textured(w: u32, h: u32) -> Frame {
        let mut f = Frame::filled(w, h, [0, 0, 0]);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let v = if (x / 4 + y / 4) % 2 == 0 { 240 } else { 20 };
                f.data[(y * w as usize + x) * 3..][..3].copy_from_slice(&[v, v, v]);
            }
        }
        f
    }

    fn grey(jpeg: &[u8]) -> Mat {
        imgcodecs::imdecode(&Vector::from_slice(jpeg), imgcodecs::IMREAD_GRAYSCALE).unwrap()
    }

    /// Mean absolute difference of two images over a rectangle.
    fn diff(a: &Mat, b: &Mat, [x1, y1, x2, y2]: [i32; 4]) -> f64 {
        let mut sum = 0.0;
        for y in y1..y2 {
            for x in x1..x2 {
                let (p, q) = (*a.at_2d::<u8>(y, x).unwrap(), *b.at_2d::<u8>(y, x).unwrap());
                sum += (p as f64 - q as f64).abs();
            }
        }
        sum / ((x2 - x1) * (y2 - y1)) as f64
    }

    #[test]
    fn a_bystander_is_pixelated_in_every_image_and_the_vendor_is_not() {
        let frame = textured(320, 240);
        let vendor = Observation {
            class: "person".into(),
            score: 0.9,
            bbox: [20.0, 40.0, 80.0, 200.0],
            ground: None,
        };
        let passer = Observation {
            bbox: [200.0, 40.0, 260.0, 200.0],
            ..vendor.clone()
        };
        let run = |privacy: PrivacyConfig| {
            let mut tracker = Tracker::new(TrackerConfig::default());
            let mut keeper = EvidenceKeeper::new(privacy);
            for t in [0, 1000, 2000] {
                let tracks = tracker
                    .update(t, &[vendor.clone(), passer.clone()])
                    .to_vec();
                keeper.observe(t, &frame, &tracks, |_| true).unwrap();
            }
            let tracks = tracker.tracks().to_vec();
            let subject = tracks.iter().find(|t| t.bbox[0] < 100.0).unwrap().id;
            let ev = RuleEvent {
                kind: ViolationKind::StreetVending,
                stage: Stage::Violation,
                zone: "z".into(),
                track: subject,
                class: "person".into(),
                since_ms: 0,
                at_ms: 2000,
                bbox: vendor.bbox,
                related: None,
                ground: None,
            };
            keeper.evidence(2000, &frame, &tracks, &ev, &[]).unwrap()
        };
        let private = run(PrivacyConfig::default());
        let open = run(PrivacyConfig {
            blur: vec![],
            ..PrivacyConfig::default()
        });
        let bystander = [204, 44, 256, 196];
        let vendor_box = [24, 44, 76, 196];
        let elsewhere = [100, 0, 180, 40];
        for (name, p, o) in [
            ("first", &private.first, &open.first),
            ("latest", &private.latest, &open.latest),
        ] {
            let (p, o) = (grey(p), grey(o));
            let d = diff(&p, &o, bystander);
            assert!(
                d > 40.0,
                "{name}: the bystander's box changed by {d:.1} only"
            );
            // the outline and label are drawn the same on both; the texture away from
            // the boxes and the vendor are untouched
            assert!(diff(&p, &o, elsewhere) < 1.0, "{name}: outside the box");
            assert!(diff(&p, &o, vendor_box) < 1.0, "{name}: the vendor");
        }
        // the crop (the vendor with a margin) holds no bystander here: alike
        assert!(diff(&grey(&private.crop), &grey(&open.crop), [0, 0, 30, 30]) < 1.0);
    }

    #[test]
    fn subjects_kept_are_bounded_and_forgotten() {
        let mut k = EvidenceKeeper::default();
        let frame = Frame::filled(64, 48, [10, 20, 30]);
        for id in 0..(MAX_OBJECTS as u64 + 40) {
            k.remember(
                ViolationKind::Dumping,
                id,
                id as i64,
                [1.0, 1.0, 9.0, 9.0],
                &frame,
                &[],
            )
            .unwrap();
        }
        assert_eq!(k.objects(), MAX_OBJECTS, "the oldest go past the bound");
        k.forget(ViolationKind::Dumping, MAX_OBJECTS as u64 + 39);
        assert_eq!(k.objects(), MAX_OBJECTS - 1);
    }
}

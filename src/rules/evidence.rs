//! Evidence for a violation: a sequence of photos across the subject's stay — the first
//! sight (when it started standing where it broke the rule), up to [`MAX_MIDDLE`] frames
//! spread over the stay, the moment of violation — each with the object's box, its label
//! and the zone outline drawn and a caption strip under it ([`super::caption`]: time,
//! camera, place, cell), and a close-up of the object cut from the violation's frame;
//! JPEG.
//!
//! Frames are not kept raw: when a watched track starts standing still (its stationary
//! clock restarts) the frame is JPEG-encoded once and kept with the box; while it stays,
//! the samples whose number (counted by the keeper, one per frame looked at) is a
//! multiple of the stay's `stride` are kept, and when more than [`MAX_MIDDLE`] are kept
//! the stride doubles and those off it go, so they stay spread over the stay and a stay
//! of n samples costs about 2·log₂ n encodes. Strides are powers of two on one count,
//! so the stays of a camera keep the same few frames (one encode, one copy in memory,
//! shared). All middle frames of a keeper share one byte budget ([`MIDDLE_BUDGET`],
//! each frame counted once): past it no new one is taken. So memory has a fixed bound
//! whatever the number of subjects or the length of their stays.
//!
//! Every image is made private before it is encoded for the store ([`super::privacy`]):
//! the people in the frame who are not the case's subject are pixelated. Kept frames
//! are unblurred in memory only, with the people seen in them, because whose case they
//! become evidence of (and so who its subject is) is not known until then.

use std::collections::HashMap;
use std::sync::Arc;

use opencv::core::{Mat, Point, Rect, Scalar, Vector};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;

use super::caption::Captioner;
pub use super::caption::{caption_lines, Place};
use super::caption::{place_lines, subject_words};
use super::clip::{ClipConfig, ClipRequest, ClipSubject, RecentFrames};
use super::detail::{DetailRequest, MainStream};
use super::plates::Plates;
use super::privacy::{pixelate, Bystander, PrivacyConfig};
use super::{RuleEvent, ViolationKind};
use crate::cases::photo::{Photo, PhotoRole};
use crate::decode::Frame;
use crate::draw::copy_to_canvas;
use crate::track::Track;

/// The photos proving a violation, in order: first sight, middle frames, violation,
/// close-up.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The sequence.
    pub photos: Vec<Photo>,
    /// What a close-up from the camera's main stream needs (cameras with one).
    pub detail: Option<Box<DetailRequest>>,
    /// What the clip of the frames up to the violation needs (when clips are on).
    pub clip: Option<Box<ClipRequest>>,
}

impl Evidence {
    /// The JPEG of the first photo of `role`.
    pub fn jpeg(&self, role: PhotoRole) -> Option<&[u8]> {
        self.photos
            .iter()
            .find(|p| p.role == role)
            .map(|p| &p.jpeg[..])
    }

    /// The photos of `role`.
    pub fn of(&self, role: PhotoRole) -> impl Iterator<Item = &Photo> {
        self.photos.iter().filter(move |p| p.role == role)
    }
}

/// The strip drawer and the time zone its times are in.
#[derive(Debug, Clone)]
pub struct Captions {
    /// The font.
    pub captioner: Arc<Captioner>,
    /// The city's time zone (`geo.timezone`); UTC when `None`.
    pub tz: Option<chrono_tz::Tz>,
}

/// A kept frame.
struct Shot {
    at: i64,
    /// The keeper's sample number.
    n: u64,
    bbox: [f32; 4],
    jpeg: Arc<[u8]>,
    /// Who was in the frame, blurred (or not) once the case is known.
    people: Arc<[Bystander]>,
}

/// A subject's stay: its first frame and the middle ones.
struct Stay {
    since: i64,
    first: Shot,
    middle: Vec<Shot>,
    stride: u64,
}

impl Stay {
    fn new(since: i64, first: Shot) -> Self {
        Self {
            since,
            first,
            middle: Vec::new(),
            stride: 1,
        }
    }
}

/// Frames between the first and the violation kept per stay, at most.
pub const MAX_MIDDLE: usize = 3;

/// Bytes of middle frames one keeper (one camera) holds, at most, over all its stays.
pub const MIDDLE_BUDGET: usize = 768 << 10;

/// Keeps the frames of each watched subject's current stay.
#[derive(Default)]
pub struct EvidenceKeeper {
    snaps: HashMap<u64, Stay>,
    /// Subjects that are not tracks: a dumping rule's new objects, a construction zone.
    objects: HashMap<(ViolationKind, u64), Stay>,
    canvas: Mat,
    privacy: PrivacyConfig,
    people: Vec<Bystander>,
    captions: Option<Captions>,
    /// Samples looked at.
    n: u64,
    /// Keep unblurred originals ([`crate::cases::originals`]).
    originals: bool,
    /// The camera moves (a drone): a subject that is not a track keeps no middle
    /// frames, its box being of the first frame's pixels only.
    moving: bool,
    /// The camera's main stream: a violation also asks for a close-up from it.
    detail: Option<Arc<MainStream>>,
    /// Recent samples, for clips.
    recent: RecentFrames,
    /// The plate detector, when one is configured.
    plates: Option<Arc<Plates>>,
}

/// The close-up of a subject's `bbox` in a `width` × `height` picture: the box with a
/// quarter of its size around it, inside the picture, at least a pixel wide and high.
pub(super) fn close_up_rect(bbox: [f32; 4], width: i32, height: i32) -> Rect {
    let [x1, y1, x2, y2] = bbox;
    let (w, h) = ((x2 - x1).max(1.0), (y2 - y1).max(1.0));
    let clamp = |v: f32, hi: i32| (v.round() as i32).clamp(0, hi);
    let (cx1, cy1) = (clamp(x1 - 0.25 * w, width), clamp(y1 - 0.25 * h, height));
    let (cx2, cy2) = (clamp(x2 + 0.25 * w, width), clamp(y2 + 0.25 * h, height));
    Rect::new(cx1, cy1, (cx2 - cx1).max(1), (cy2 - cy1).max(1))
}

/// Whether box `b` overlaps `r`.
pub(super) fn overlaps(b: &[f32; 4], r: Rect) -> bool {
    b[0] < (r.x + r.width) as f32
        && b[2] > r.x as f32
        && b[1] < (r.y + r.height) as f32
        && b[3] > r.y as f32
}

/// What every photo of one case draws.
struct Drawing<'a> {
    event: &'a RuleEvent,
    zone: &'a [(f64, f64)],
    place: &'a Place<'a>,
    label: String,
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
    crate::draw::encode_mat(image, QUALITY)
}

/// Draws the zone's outline and, when given, the subject's box and label.
pub(super) fn annotate(
    image: &mut Mat,
    bbox: Option<[f32; 4]>,
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
    let Some(bbox) = bbox else {
        return Ok(());
    };
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

/// A frame's JPEG and who was in it, shared by the stays that keep it.
type Encoded = (Arc<[u8]>, Arc<[Bystander]>);

/// One sample as the stays see it: its frame, encoded at most once however many keep
/// it, and the middle frames' budget.
struct Now<'a> {
    t: i64,
    /// The keeper's sample number.
    n: u64,
    frame: &'a Frame,
    tracks: &'a [Track],
    canvas: &'a mut Mat,
    privacy: &'a PrivacyConfig,
    people: &'a mut Vec<Bystander>,
    shot: Option<Encoded>,
    /// Bytes of middle frames held, as counted at the start of the sample.
    held: usize,
    /// Whether this sample's frame is counted in `held` yet.
    counted: bool,
}

impl Now<'_> {
    /// The frame's JPEG and who is in it.
    fn shot(&mut self) -> opencv::Result<Encoded> {
        if self.shot.is_none() {
            copy_to_canvas(self.frame, self.canvas)?;
            self.people.clear();
            self.privacy.people(self.t, self.tracks, self.people);
            self.shot = Some((encode(self.canvas)?.into(), self.people.as_slice().into()));
        }
        Ok(self.shot.clone().expect("just made"))
    }

    /// Keeps the sample as a middle frame of `s` (the subject's box `bbox` in it) when
    /// its number is on the stay's stride and the budget allows, doubling the stride
    /// past [`MAX_MIDDLE`].
    fn keep_middle(&mut self, s: &mut Stay, bbox: [f32; 4]) -> opencv::Result<()> {
        if self.t <= s.first.at || !self.n.is_multiple_of(s.stride) {
            return Ok(());
        }
        if !self.counted && self.held >= MIDDLE_BUDGET {
            return Ok(());
        }
        let (jpeg, seen) = self.shot()?;
        if !self.counted {
            self.held += jpeg.len();
            self.counted = true;
        }
        s.middle.push(Shot {
            at: self.t,
            n: self.n,
            bbox,
            jpeg,
            people: seen,
        });
        if s.middle.len() > MAX_MIDDLE {
            s.stride *= 2;
            let stride = s.stride;
            s.middle.retain(|m| m.n.is_multiple_of(stride));
        }
        Ok(())
    }
}

impl EvidenceKeeper {
    /// A keeper that makes its images private as `privacy` says.
    pub fn new(privacy: PrivacyConfig) -> Self {
        Self {
            privacy,
            ..Self::default()
        }
    }

    /// Also makes the unblurred original of every photo in which something is
    /// pixelated ([`Photo::original`]), for reviewers.
    pub fn with_originals(mut self, keep: bool) -> Self {
        self.originals = keep;
        self
    }

    /// For a camera that moves (a drone): subjects that are not tracks keep their
    /// first frame only, their box drawn where it was then.
    pub fn on_a_moving_camera(mut self) -> Self {
        self.moving = true;
        self
    }

    /// For a camera with a main stream: each violation's evidence carries a
    /// [`DetailRequest`] for a close-up from it.
    pub fn with_detail(mut self, main: Option<Arc<MainStream>>) -> Self {
        self.detail = main;
        self
    }

    /// Keeps recent samples while it watches a subject, for a clip of the frames up to
    /// each violation ([`super::clip`]).
    pub fn with_clip(mut self, clip: ClipConfig) -> Self {
        self.recent = RecentFrames::new(clip);
        self
    }

    /// Pixelates the number plates `plates` finds in every image, but the subject's.
    pub fn with_plates(mut self, plates: Option<Arc<Plates>>) -> Self {
        self.plates = plates;
        self
    }

    /// Draws a caption strip under every photo but the close-up.
    pub fn with_captions(mut self, captions: Option<Captions>) -> Self {
        self.captions = captions;
        self
    }

    /// Looks at a frame: every watched track whose stay began at this frame (or that
    /// has no frame kept yet) gets this frame as its first; the others, and the
    /// subjects kept with [`Self::remember`], may keep it as a middle frame. Tracks that
    /// are gone are forgotten. `watched` says which tracks could become violations (e.g.
    /// they stand in a zone).
    pub fn observe(
        &mut self,
        t: i64,
        frame: &Frame,
        tracks: &[Track],
        watched: impl Fn(&Track) -> bool,
    ) -> opencv::Result<()> {
        self.snaps
            .retain(|id, _| tracks.iter().any(|tr| tr.id == *id));
        self.n += 1;
        let mut now = Now {
            t,
            n: self.n,
            frame,
            tracks,
            held: self.middle_bytes(),
            canvas: &mut self.canvas,
            privacy: &self.privacy,
            people: &mut self.people,
            shot: None,
            counted: false,
        };
        let mut watching = !self.objects.is_empty();
        for tr in tracks.iter().filter(|tr| tr.seen_at(t) && watched(tr)) {
            watching = true;
            match self.snaps.get_mut(&tr.id) {
                Some(s) if s.since == tr.stationary_since => now.keep_middle(s, tr.bbox)?,
                _ => {
                    let (jpeg, seen) = now.shot()?;
                    let first = Shot {
                        at: t,
                        n: now.n,
                        bbox: tr.bbox,
                        jpeg,
                        people: seen,
                    };
                    self.snaps
                        .insert(tr.id, Stay::new(tr.stationary_since, first));
                }
            }
        }
        if !self.moving {
            for s in self.objects.values_mut() {
                let bbox = s.first.bbox;
                now.keep_middle(s, bbox)?;
            }
        }
        // recent samples are kept while a subject is in sight
        self.recent.look(t, frame, tracks, watching, &self.privacy)
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
        let first = Shot {
            at: since,
            n: self.n,
            bbox,
            jpeg: jpeg.into(),
            people: people.into(),
        };
        self.objects.insert((kind, id), Stay::new(since, first));
        if self.objects.len() > MAX_OBJECTS {
            if let Some(oldest) = self
                .objects
                .iter()
                .min_by_key(|(_, s)| s.since)
                .map(|(k, _)| *k)
            {
                self.forget(oldest.0, oldest.1);
            }
        }
        Ok(())
    }

    /// Subjects kept with [`Self::remember`] now.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// Bytes of middle frames held now, each frame counted once (at most
    /// [`MIDDLE_BUDGET`] and one frame).
    pub fn middle_bytes(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.snaps
            .values()
            .chain(self.objects.values())
            .flat_map(|s| &s.middle)
            .filter(|m| seen.insert(Arc::as_ptr(&m.jpeg) as *const u8))
            .map(|m| m.jpeg.len())
            .sum()
    }

    /// Bytes of recent samples held for clips now (at most
    /// [`super::clip::CLIP_BUDGET`]).
    pub fn clip_bytes(&self) -> usize {
        self.recent.bytes()
    }

    /// Forgets a subject kept with [`Self::remember`].
    pub fn forget(&mut self, kind: ViolationKind, id: u64) {
        self.objects.remove(&(kind, id));
    }

    /// The evidence for `event`, with `frame` (of time `t`) as the violation's frame
    /// (`tracks` its tracks), `zone` the zone's outline in this camera's pixels and
    /// `place` what the strips say of where.
    pub fn evidence(
        &mut self,
        t: i64,
        frame: &Frame,
        tracks: &[Track],
        event: &RuleEvent,
        zone: &[(f64, f64)],
        place: &Place,
    ) -> opencv::Result<Evidence> {
        let d = Drawing {
            event,
            zone,
            place,
            label: format!("{} {:?} #{}", event.class, event.kind, event.track),
        };
        let mut photos = Vec::new();
        let kept = self
            .objects
            .get(&(event.kind, event.track))
            .or_else(|| self.snaps.get(&event.track));
        if let Some(stay) = kept {
            let shots = std::iter::once((PhotoRole::FirstSight, &stay.first))
                .chain(stay.middle.iter().map(|m| (PhotoRole::Middle, m)));
            for (role, shot) in shots.filter(|(_, s)| s.at < t) {
                let mut img =
                    imgcodecs::imdecode(&Vector::from_slice(&shot.jpeg), imgcodecs::IMREAD_COLOR)?;
                let mut blur = self.to_blur(event, &shot.people);
                if let Some(p) = &self.plates {
                    blur.extend(p.find_in(&img, Some(shot.bbox)));
                }
                let clean = self.blur(&mut img, &blur)?;
                photos.push(self.photo(&d, &mut img, clean, shot.bbox, role, shot.at)?);
            }
        }
        copy_to_canvas(frame, &mut self.canvas)?;
        self.people.clear();
        self.privacy.people(t, tracks, &mut self.people);
        let clip = self.clip_request(t, frame, event, &d)?;
        let mut blur = self.to_blur(event, &self.people);
        if let Some(p) = &self.plates {
            blur.extend(p.find(frame, Some(event.bbox)));
        }
        // the close-up, from the frame without drawings
        let rect = close_up_rect(event.bbox, frame.width as i32, frame.height as i32);
        let in_crop = |b: &[f32; 4]| overlaps(b, rect);
        let mut canvas = std::mem::take(&mut self.canvas);
        let clean = self.blur(&mut canvas, &blur)?;
        let crop = encode(&Mat::roi(&canvas, rect)?.try_clone()?)?;
        let crop_original = match &clean {
            Some(c) if blur.iter().any(in_crop) => Some(encode(&Mat::roi(c, rect)?.try_clone()?)?),
            _ => None,
        };
        let violation = self.photo(&d, &mut canvas, clean, event.bbox, PhotoRole::Violation, t);
        self.canvas = canvas;
        photos.push(violation?);
        let crop = Photo {
            role: PhotoRole::Crop,
            at_ms: t,
            jpeg: crop,
            original: crop_original,
        };
        let detail = match &self.detail {
            Some(main) => Some(Box::new(self.detail_request(
                main.clone(),
                frame,
                t,
                event,
                place,
                blur,
                &crop,
            )?)),
            None => None,
        };
        photos.push(crop);
        Ok(Evidence {
            photos,
            detail,
            clip,
        })
    }

    /// The boxes to pixelate among `people` in evidence of `event`.
    fn to_blur(&self, event: &RuleEvent, people: &[Bystander]) -> Vec<[f32; 4]> {
        let related = event.related.as_ref().map(|r| r.0);
        self.privacy
            .to_blur(event.kind, subject_track(event), related, people)
            .collect()
    }

    /// The clip of `event`, whose frame is `frame` (of time `t`, its people found);
    /// `None` when clips are off.
    fn clip_request(
        &mut self,
        t: i64,
        frame: &Frame,
        event: &RuleEvent,
        d: &Drawing,
    ) -> opencv::Result<Option<Box<ClipRequest>>> {
        if !self.recent.on() {
            return Ok(None);
        }
        let current = self.recent.current(t, frame)?;
        let object = self
            .objects
            .get(&(event.kind, event.track))
            .filter(|_| !self.moving)
            .map(|s| (s.since, s.first.bbox));
        let tz = self.captions.as_ref().and_then(|c| c.tz);
        let lines = |at: i64| match &self.captions {
            Some(_) => caption_lines(PhotoRole::Clip, at, tz, event, d.place),
            None => Vec::new(),
        };
        let subject = ClipSubject {
            track: subject_track(event),
            object,
            blur: &|people| self.to_blur(event, people),
            lines: &lines,
            bbox: event.bbox,
            label: &d.label,
            zone: d.zone,
            captioner: self.captions.as_ref().map(|c| &c.captioner),
            plates: self.plates.as_ref(),
        };
        Ok(self
            .recent
            .request(t, current, &self.people, &subject)
            .map(Box::new))
    }

    /// What the close-up from the main stream needs of this violation.
    #[allow(clippy::too_many_arguments)]
    fn detail_request(
        &self,
        main: Arc<MainStream>,
        frame: &Frame,
        t: i64,
        event: &RuleEvent,
        place: &Place,
        blur: Vec<[f32; 4]>,
        crop: &Photo,
    ) -> opencv::Result<DetailRequest> {
        let [camera, name] = place_lines(place);
        let words = [subject_words(event), camera, name];
        let mut req = DetailRequest::new(
            main,
            &crate::draw::frame_mat(frame)?,
            t,
            event.bbox,
            blur,
            crop.clone(),
            words,
        )?;
        req.originals = self.originals;
        req.captions = self.captions.clone();
        Ok(req)
    }

    /// Pixelates the `blur` boxes of `image` (as the camera saw it); returns the image
    /// as it was when originals are kept and something was pixelated.
    fn blur(&self, image: &mut Mat, blur: &[[f32; 4]]) -> opencv::Result<Option<Mat>> {
        let clean = match self.originals && !blur.is_empty() {
            true => Some(image.try_clone()?),
            false => None,
        };
        pixelate(image, blur.iter().copied())?;
        Ok(clean)
    }

    /// One photo of a case from `image` (made private by [`Self::blur`], `clean` what
    /// it returned): the subject's `bbox` and the zone drawn, its strip; with the
    /// unblurred original from `clean`. `image` is left as the photo.
    fn photo(
        &self,
        d: &Drawing,
        image: &mut Mat,
        clean: Option<Mat>,
        bbox: [f32; 4],
        role: PhotoRole,
        at: i64,
    ) -> opencv::Result<Photo> {
        annotate(image, Some(bbox), &d.label, d.zone)?;
        let jpeg = self.finish(image, role, at, d.event, d.place)?;
        let original = match clean {
            Some(mut c) => {
                annotate(&mut c, Some(bbox), &d.label, d.zone)?;
                Some(self.finish(&c, role, at, d.event, d.place)?)
            }
            None => None,
        };
        Ok(Photo {
            role,
            at_ms: at,
            jpeg,
            original,
        })
    }

    /// A photo as stored: with its strip (when captions are on), JPEG.
    fn finish(
        &self,
        image: &Mat,
        role: PhotoRole,
        at: i64,
        event: &RuleEvent,
        place: &Place,
    ) -> opencv::Result<Vec<u8>> {
        match &self.captions {
            Some(c) => encode(
                &c.captioner
                    .caption(image, &caption_lines(role, at, c.tz, event, place))?,
            ),
            None => encode(image),
        }
    }
}

#[cfg(test)]
#[path = "evidence_tests.rs"]
pub(super) mod tests;

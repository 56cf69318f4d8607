//! A short MP4 of the sampled frames up to a violation: what the camera saw in the
//! seconds before the rule fired, frame by frame, ending on the violation's frame.
//!
//! While a camera's evidence keeper has a subject in sight, it keeps a JPEG of its
//! recent samples at the clip's size (halved until at most [`MAX_WIDTH`] wide: 1080p
//! is kept at 960×540, which costs a fraction of a full-size encode), at least
//! [`ClipConfig::every`] apart, at most [`ClipConfig::frames`] of them and
//! [`CLIP_BUDGET`] bytes (the oldest go first). A camera with nothing in sight keeps
//! none. When a violation opens a case, those of the last [`WINDOW_MS`] and the
//! violation's frame make a [`ClipRequest`]; the service's clip worker renders it, off the detection thread: each frame made
//! private as the photos are (the people who are not the subject pixelated), the
//! subject's box where it was in that frame and the zone drawn, the strip with that
//! frame's own time under it, then H.264 in an MP4 ([`crate::draw::mp4`]), each frame
//! shown for [`ClipConfig::shown_for`]. So the clip is a time-lapse of the samples,
//! not the camera's full frame rate: frames nobody looked at were never decoded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use opencv::core::{Mat, Size, Vector};
use opencv::imgcodecs;
use opencv::imgproc;
use serde::Deserialize;

use super::caption::Captioner;
use super::evidence::annotate;
use super::plates::Plates;
use super::privacy::{pixelate, Bystander, PrivacyConfig};
use crate::decode::Frame;
use crate::draw::mp4::{clip_size, encode_mp4, Mp4Error, Mp4Options};
use crate::track::Track;

/// Bytes of recent frames one keeper (one camera) holds for clips, at most.
pub const CLIP_BUDGET: usize = 2 << 20;

/// The widest a clip is; frames are halved until they fit.
pub const MAX_WIDTH: i32 = 1280;

/// JPEG quality of the frames kept for clips (they are encoded again, as H.264).
const QUALITY: i32 = 85;

/// Frames older than this before the violation are not in its clip (a camera that was
/// looking elsewhere, or not sampled, in between).
pub const WINDOW_MS: i64 = 120_000;

/// `[cases.clip]`: the MP4 of the frames before each new case's violation.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    /// Sampled frames in a clip, at most, the violation's included; 0: no clips.
    #[serde(default = "default_frames")]
    pub frames: usize,
    /// A clip's frames are at least this far apart (of a camera sampled more often,
    /// every so many samples).
    #[serde(
        default = "default_every",
        deserialize_with = "crate::cases::originals::duration"
    )]
    pub every: Duration,
    /// How long each frame is shown in the clip.
    #[serde(
        default = "default_shown_for",
        deserialize_with = "crate::cases::originals::duration"
    )]
    pub shown_for: Duration,
}

fn default_frames() -> usize {
    8
}

fn default_every() -> Duration {
    Duration::from_millis(500)
}

fn default_shown_for() -> Duration {
    Duration::from_millis(500)
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            frames: default_frames(),
            every: default_every(),
            shown_for: default_shown_for(),
        }
    }
}

impl ClipConfig {
    /// Frames in a clip at most.
    pub const MAX_FRAMES: usize = 32;

    /// What is wrong with it, each naming the field.
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.frames == 1 || self.frames > Self::MAX_FRAMES {
            out.push(format!(
                "cases.clip.frames: {} (0 for no clips, else 2 to {})",
                self.frames,
                Self::MAX_FRAMES
            ));
        }
        if self.every < Duration::from_millis(40) {
            out.push("cases.clip.every: at least 40ms".into());
        }
        let shown = self.shown_for.as_millis();
        if !(40..=10_000).contains(&shown) {
            out.push(format!("cases.clip.shown_for: {shown} ms (40ms to 10s)"));
        }
        out
    }

    /// Whether clips are made.
    pub fn on(&self) -> bool {
        self.frames > 0
    }
}

/// One frame of a clip, as the keeper kept it.
#[derive(Clone)]
pub struct ClipFrame {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// The frame as the camera saw it (JPEG, nothing drawn, nothing pixelated).
    pub jpeg: Arc<[u8]>,
    /// The subject's box in it, when it was seen then (the camera's pixels).
    pub bbox: Option<[f32; 4]>,
    /// The boxes to pixelate in it (the camera's pixels).
    pub blur: Vec<[f32; 4]>,
    /// The JPEG's size over the camera's: boxes and the zone are scaled by it.
    pub scale: f32,
    /// Its strip's lines (none without captions).
    pub lines: Vec<String>,
}

/// What a violation's clip needs: made by the evidence keeper, rendered by the
/// service's clip worker once the violation opened a case.
#[derive(Clone)]
pub struct ClipRequest {
    /// The frames, oldest first, the violation's last.
    pub frames: Vec<ClipFrame>,
    /// The subject's label, drawn by its box.
    pub label: String,
    /// The zone's outline in the camera's pixels.
    pub zone: Vec<(f64, f64)>,
    /// The strip's font.
    pub captioner: Option<Arc<Captioner>>,
    /// The plate detector, when one is configured: run on each frame.
    pub plates: Option<Arc<Plates>>,
    /// How it is encoded.
    pub mp4: Mp4Options,
}

impl std::fmt::Debug for ClipRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipRequest")
            .field("frames", &self.frames.len())
            .field("at_ms", &self.at_ms())
            .field("label", &self.label)
            .finish()
    }
}

impl ClipRequest {
    /// The violation's time: the last frame's.
    pub fn at_ms(&self) -> i64 {
        self.frames.last().map_or(0, |f| f.at_ms)
    }
}

/// Why a clip could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// Drawing a frame.
    #[error("drawing a frame of the clip: {0}")]
    Image(#[from] opencv::Error),
    /// Encoding.
    #[error("encoding the clip: {0}")]
    Mp4(#[from] Mp4Error),
}

/// The clip's MP4: each frame pixelated, annotated and captioned, then encoded.
pub fn render(req: &ClipRequest) -> Result<Vec<u8>, ClipError> {
    let mut images = Vec::with_capacity(req.frames.len());
    for f in &req.frames {
        let mut img = imgcodecs::imdecode(&Vector::from_slice(&f.jpeg), imgcodecs::IMREAD_COLOR)?;
        let s = f.scale;
        let scaled = |b: [f32; 4]| b.map(|v| v * s);
        let plates = match &req.plates {
            Some(p) => p.find_in(&img, f.bbox.map(scaled)),
            None => Vec::new(),
        };
        pixelate(&mut img, f.blur.iter().map(|b| scaled(*b)).chain(plates))?;
        let zone: Vec<(f64, f64)> = (req.zone.iter())
            .map(|&(x, y)| (x * s as f64, y * s as f64))
            .collect();
        annotate(&mut img, f.bbox.map(scaled), &req.label, &zone)?;
        images.push(match &req.captioner {
            Some(c) if !f.lines.is_empty() => c.caption(&img, &f.lines)?,
            _ => img,
        });
    }
    Ok(encode_mp4(&images, req.mp4)?)
}

/// A kept sample: its JPEG (at `scale` of the camera's size), who was in it, and
/// where each track seen then stood.
struct Recent {
    at_ms: i64,
    jpeg: Arc<[u8]>,
    scale: f32,
    people: Vec<Bystander>,
    boxes: Vec<(u64, [f32; 4])>,
}

/// A frame as a clip keeps it: JPEG at the clip's size, and that size over the frame's.
pub type ClipJpeg = (Arc<[u8]>, f32);

/// A camera's recent samples, kept for clips while its keeper watches a subject.
#[derive(Default)]
pub(super) struct RecentFrames {
    cfg: ClipConfig,
    frames: VecDeque<Recent>,
    bytes: usize,
    /// A frame brought to the clip's size (reused).
    small: Mat,
}

/// `frame` as a clip keeps it: at the clip's size ([`MAX_WIDTH`]), JPEG; `small` is
/// reused for the resize.
pub fn clip_jpeg(frame: &Frame, small: &mut Mat) -> opencv::Result<ClipJpeg> {
    let (w, h) = clip_size(frame.width as i32, frame.height as i32, MAX_WIDTH);
    let whole = crate::draw::frame_mat(frame)?;
    let jpeg = if (w, h) == (frame.width as i32, frame.height as i32) {
        crate::draw::encode_mat(&whole, QUALITY)?
    } else {
        imgproc::resize(
            &whole,
            small,
            Size::new(w, h),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        crate::draw::encode_mat(small, QUALITY)?
    };
    Ok((jpeg.into(), w as f32 / frame.width.max(1) as f32))
}

/// What the clip of one violation draws, besides the frames.
pub(super) struct ClipSubject<'a> {
    /// The subject as a track (parking, vending), else `None`.
    pub track: Option<u64>,
    /// A subject that is not a track: its fixed box and since when it is there.
    pub object: Option<(i64, [f32; 4])>,
    /// The boxes to pixelate among a frame's people.
    pub blur: &'a dyn Fn(&[Bystander]) -> Vec<[f32; 4]>,
    /// A frame's strip lines.
    pub lines: &'a dyn Fn(i64) -> Vec<String>,
    /// The subject's box in the violation's frame.
    pub bbox: [f32; 4],
    /// Its label.
    pub label: &'a str,
    /// The zone's outline in the camera's pixels.
    pub zone: &'a [(f64, f64)],
    /// The strip's font.
    pub captioner: Option<&'a Arc<Captioner>>,
    /// The plate detector.
    pub plates: Option<&'a Arc<Plates>>,
}

impl RecentFrames {
    pub(super) fn new(cfg: ClipConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Whether clips are made.
    pub(super) fn on(&self) -> bool {
        self.cfg.on()
    }

    /// Bytes held now.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The violation's frame as its clip takes it: the one kept of the sample of `t`,
    /// or `frame` made so now.
    pub(super) fn current(&mut self, t: i64, frame: &Frame) -> opencv::Result<ClipJpeg> {
        match self.frames.back().filter(|r| r.at_ms == t) {
            Some(r) => Ok((r.jpeg.clone(), r.scale)),
            None => clip_jpeg(frame, &mut self.small),
        }
    }

    /// Looks at the sample `frame` of `t` (`tracks` its tracks): kept when something
    /// is `watching` and it is far enough from the last one kept, with the people in
    /// it that `privacy` may blur; all dropped when nothing is watched.
    pub(super) fn look(
        &mut self,
        t: i64,
        frame: &Frame,
        tracks: &[Track],
        watching: bool,
        privacy: &PrivacyConfig,
    ) -> opencv::Result<()> {
        if !self.on() {
            return Ok(());
        }
        if !watching {
            self.frames.clear();
            self.bytes = 0;
            return Ok(());
        }
        let every = self.cfg.every.as_millis() as i64;
        if self.frames.back().is_some_and(|r| t - r.at_ms < every) {
            return Ok(());
        }
        let (jpeg, scale) = clip_jpeg(frame, &mut self.small)?;
        let mut people = Vec::new();
        privacy.people(t, tracks, &mut people);
        self.bytes += jpeg.len();
        self.frames.push_back(Recent {
            at_ms: t,
            jpeg,
            scale,
            people,
            boxes: tracks
                .iter()
                .filter(|tr| tr.seen_at(t))
                .map(|tr| (tr.id, tr.bbox))
                .collect(),
        });
        // a violation at this sample takes frames - 1 before it and this one
        while self.frames.len() > self.cfg.frames
            || (self.bytes > CLIP_BUDGET && self.frames.len() > 1)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.jpeg.len();
            }
        }
        Ok(())
    }

    /// The clip of a violation at `t` whose frame is `current` ([`Self::current`];
    /// `people` the people in it): the kept frames of the last [`WINDOW_MS`] before
    /// it, then it. `None` when clips are off.
    pub(super) fn request(
        &self,
        t: i64,
        current: ClipJpeg,
        people: &[Bystander],
        subject: &ClipSubject,
    ) -> Option<ClipRequest> {
        if !self.on() {
            return None;
        }
        let box_in = |r: &Recent| match subject.track {
            Some(id) => r.boxes.iter().find(|(i, _)| *i == id).map(|(_, b)| *b),
            None => subject
                .object
                .filter(|(since, _)| r.at_ms >= *since)
                .map(|o| o.1),
        };
        let before: Vec<&Recent> = self
            .frames
            .iter()
            .filter(|r| r.at_ms < t && t - r.at_ms <= WINDOW_MS)
            .collect();
        let skip = before.len().saturating_sub(self.cfg.frames - 1);
        let mut frames: Vec<ClipFrame> = before[skip..]
            .iter()
            .map(|r| ClipFrame {
                at_ms: r.at_ms,
                jpeg: r.jpeg.clone(),
                bbox: box_in(r),
                blur: (subject.blur)(&r.people),
                scale: r.scale,
                lines: (subject.lines)(r.at_ms),
            })
            .collect();
        frames.push(ClipFrame {
            at_ms: t,
            jpeg: current.0,
            scale: current.1,
            bbox: Some(subject.bbox),
            blur: (subject.blur)(people),
            lines: (subject.lines)(t),
        });
        Some(ClipRequest {
            frames,
            label: subject.label.to_string(),
            zone: subject.zone.to_vec(),
            captioner: subject.captioner.cloned(),
            plates: subject.plates.cloned(),
            mp4: Mp4Options {
                frame_ms: self.cfg.shown_for.as_millis().clamp(1, 60_000) as u32,
                max_width: MAX_WIDTH,
                ..Mp4Options::default()
            },
        })
    }
}

#[cfg(test)]
#[path = "clip_tests.rs"]
mod tests;

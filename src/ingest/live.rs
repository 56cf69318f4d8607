//! A live camera's access units and its decode job: what a decode worker does with the
//! steps the [`Planner`](crate::decode::plan::Planner) chose, and how the pictures it
//! takes reach the camera's hand-off slot.
//!
//! The decoder-side [`Sampler`] picks pictures as they come out of the decoder, in
//! presentation order, so B-frames sample the picture a full decode would; each picture
//! finds its unit's receipt time and index again by the presentation time it was sent
//! with.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::Notify;

use super::handoff::{Recycler, Slot};
use super::session::InFlight;
use super::CameraShared;
use crate::decode::plan::{Step, Unit};
use crate::decode::stream::Picture;
use crate::decode::{Frame, Sampler, Sampling, StreamDecoder};

/// One access unit as received.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// Annex B data with in-band parameter sets on keyframes (shared, not copied, when
    /// the planner keeps a keyframe as an anchor).
    pub data: Bytes,
    /// Stream time in milliseconds from the first unit of the session (presentation
    /// time: RTP timestamps are presentation times).
    pub pts_ms: i64,
    /// A random-access point (IDR, or H.265 CRA/BLA).
    pub keyframe: bool,
    /// Nothing references it (may be skipped without harm).
    pub disposable: bool,
    /// Wall-clock time it was received.
    pub received: SystemTime,
    /// Index of the frame in the session (counting every frame received).
    pub index: u64,
}

impl Unit for AccessUnit {
    fn pts_ms(&self) -> Option<i64> {
        Some(self.pts_ms)
    }
    fn keyframe(&self) -> bool {
        self.keyframe
    }
    fn disposable(&self) -> bool {
        self.disposable
    }
    fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// Units sent to the decoder whose pictures may still come out: enough for any
/// reorder delay (16 at most).
const SENT_KEPT: usize = 64;

/// A camera's decoder, moved into a worker for each job and back.
pub(crate) struct LiveDecoder {
    dec: StreamDecoder,
    sampler: Sampler,
    /// (pts, received, index) of the units sent lately.
    sent: VecDeque<(i64, SystemTime, u64)>,
    /// A frame buffer to decode into (given back by the hand-off when a frame was
    /// replaced before detection took it).
    spare: Option<Frame>,
    /// Pictures that came out in the last job (taken or not).
    pub pictures: u64,
    /// Units of the last job that were sent to the decoder.
    pub sent_units: u64,
    /// Units or pictures of the last job the decoder refused as corrupt.
    pub failed: u64,
}

impl LiveDecoder {
    /// A decoder with its sampler for `sampling`.
    pub fn new(dec: StreamDecoder, sampling: Sampling) -> Self {
        Self {
            dec,
            sampler: Sampler::new(sampling),
            sent: VecDeque::with_capacity(SENT_KEPT),
            spare: None,
            pictures: 0,
            sent_units: 0,
            failed: 0,
        }
    }

    /// The sampler's next due time, for the planner.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.sampler.next_due_ms()
    }

    /// Forgets references and pending pictures (after a dropped backlog).
    pub fn reset(&mut self) {
        self.dec.reset();
        self.sent.clear();
    }

    /// Runs the steps of one job, handing the pictures sampling takes to `slot`; stops
    /// early, handing nothing more on, once the session is given up on.
    pub fn run(
        &mut self,
        work: Vec<Step<AccessUnit>>,
        cam: &CameraShared,
        slot: &Slot,
        notify: &Notify,
        recycler: &Recycler,
        in_flight: &InFlight,
    ) {
        self.pictures = 0;
        self.sent_units = 0;
        self.failed = 0;
        for step in work {
            if in_flight.abandoned() {
                return;
            }
            match step {
                Step::Feed(unit) => {
                    cam.counters.decoded.fetch_add(1, Ordering::Relaxed);
                    self.sent_units += 1;
                    if self.sent.len() == SENT_KEPT {
                        self.sent.pop_front();
                    }
                    self.sent
                        .push_back((unit.pts_ms, unit.received, unit.index));
                    if let Err(e) = self.dec.send(&unit.data, unit.pts_ms) {
                        self.corrupt(cam, &e);
                    }
                    self.take_pictures(cam, slot, notify, recycler);
                }
                Step::Drain => {
                    self.dec.send_end();
                    self.take_pictures(cam, slot, notify, recycler);
                    self.sent.clear();
                }
            }
        }
    }

    fn corrupt(&mut self, cam: &CameraShared, e: &str) {
        self.failed += 1;
        let n = cam.counters.corrupt.fetch_add(1, Ordering::Relaxed) + 1;
        let of = cam.counters.received.load(Ordering::Relaxed);
        tracing::debug!(camera = %cam.config.id, error = %e, "corrupt access unit");
        cam.set_error(Some(format!(
            "corrupt stream: {e} ({n} of {of} access units so far)"
        )));
    }

    /// Takes every picture that is ready.
    fn take_pictures(
        &mut self,
        cam: &CameraShared,
        slot: &Slot,
        notify: &Notify,
        recycler: &Recycler,
    ) {
        loop {
            let (pts, keyframe) = match self.dec.receive() {
                Ok(Picture::Ready { pts, keyframe }) => (pts, keyframe),
                Ok(Picture::Again | Picture::Drained) => return,
                Err(e) => {
                    self.corrupt(cam, &e);
                    continue;
                }
            };
            self.pictures += 1;
            let meta = pts
                .and_then(|p| self.sent.iter().find(|s| s.0 == p))
                .or(self.sent.back())
                .copied();
            let Some((pts_ms, received, index)) = meta else {
                continue;
            };
            if !self.sampler.take(pts_ms, keyframe) {
                continue;
            }
            let mut frame = self.spare.take().unwrap_or_else(|| recycler.get());
            if let Err(e) = self.dec.convert(&mut frame) {
                self.corrupt(cam, &e);
                self.spare = Some(frame);
                continue;
            }
            frame.index = index;
            frame.pts_ms = Some(pts_ms);
            frame.keyframe = keyframe;
            self.spare = slot.publish(cam, frame, received, notify);
        }
    }
}

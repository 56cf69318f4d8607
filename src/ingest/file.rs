//! Files and image folders as cameras: the demo cameras, tests and offline runs.
//!
//! Runs on a thread of its own for the life of the session. Each decode call holds one
//! of the pool's decode permits, like an RTSP camera's decode job, so file cameras
//! share the same CPU budget; the call is registered in the session's
//! `InFlight` (in `session`) so the supervisor's watchdog can leave a call
//! that never returns behind (a file on a hung network share, a FIFO nobody writes). With `realtime`, frames are handed on at their
//! timestamps' pace; otherwise as fast as the detector takes them (the hand-off's
//! newest-frame-wins slot still applies).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::handoff::Slot;
use super::session::{End, InFlight, Shared};
use super::{CameraShared, CameraState, Source};
use crate::decode::{read_image, FileDecoder, Frame, Input, Sampler};

/// One session of a file or image-folder camera.
pub(crate) struct Session {
    pub cam: Arc<CameraShared>,
    pub slot: Arc<Slot>,
    pub pool: Shared,
    pub stop: watch::Receiver<bool>,
    pub in_flight: Arc<InFlight>,
    pub rt: tokio::runtime::Handle,
}

impl Session {
    /// Runs `f` as one decode call: with a decode permit, seen by the watchdog. `None`
    /// when the session was given up on (stopped, or left behind while `f` ran).
    fn call<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        if self.in_flight.abandoned() {
            return None;
        }
        let permit = self
            .rt
            .block_on(self.pool.decode.clone().acquire_owned())
            .ok()?;
        self.in_flight.begin(permit);
        let out = f();
        if self.in_flight.end() {
            // stuck, then came back after the supervisor had given up on it
            self.cam.stuck.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        (!self.in_flight.abandoned()).then_some(out)
    }

    /// Runs until the source's end, an error or stop.
    pub fn run(&self) -> End {
        run_blocking(self)
    }
}

/// Runs one session of a file or image-folder camera until its end, an error or stop.
fn run_blocking(session: &Session) -> End {
    let (cam, slot, pool, stop) = (&session.cam, &session.slot, &session.pool, &session.stop);
    let stopped = || *stop.borrow() || session.in_flight.abandoned();
    let mut spare: Option<Frame> = None;
    let publish = |frame: Frame, received: SystemTime, spare: &mut Option<Frame>| {
        *spare = slot.publish(cam, frame, received, &pool.notify);
    };
    match &cam.config.source {
        Source::File {
            path,
            realtime,
            looping,
        } => {
            let mut offset_ms = 0i64;
            let mut index_offset = 0u64;
            loop {
                let mut dec = match session.call(|| FileDecoder::open(path)) {
                    Some(Ok(mut d)) => {
                        // a camera does not detect on concealed garbage (as RTSP cameras)
                        d.drop_damaged(true);
                        d
                    }
                    Some(Err(e)) => return End::Retry(e.to_string()),
                    None => return End::Stop,
                };
                cam.set_state(CameraState::Streaming);
                let mut sampler = Sampler::new(cam.config.sampling);
                let start = Instant::now();
                let mut last_pts = 0i64;
                let mut last_index = 0u64;
                let mut seen = dec.stats();
                loop {
                    if stopped() {
                        return End::Stop;
                    }
                    let mut frame = spare.take().unwrap_or_else(|| pool.recycler.get());
                    let Some(got) = session.call(|| dec.next_sampled(&mut sampler, &mut frame))
                    else {
                        return End::Stop;
                    };
                    let now = dec.stats();
                    let c = &cam.counters;
                    c.received
                        .fetch_add(now.packets - seen.packets, Ordering::Relaxed);
                    c.decoded
                        .fetch_add(now.decoded - seen.decoded, Ordering::Relaxed);
                    c.corrupt.fetch_add(
                        (now.corrupt_packets + now.damaged) - (seen.corrupt_packets + seen.damaged),
                        Ordering::Relaxed,
                    );
                    seen = now;
                    match got {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => return End::Retry(e.to_string()),
                    }
                    let pts = frame.pts_ms.unwrap_or(0);
                    last_pts = pts;
                    last_index = frame.index;
                    if frame.keyframe {
                        c.keyframes.fetch_add(1, Ordering::Relaxed);
                    }
                    if *realtime {
                        let due = start + Duration::from_millis(pts.max(0) as u64);
                        while Instant::now() < due {
                            if stopped() {
                                return End::Stop;
                            }
                            std::thread::sleep(
                                (due - Instant::now()).min(Duration::from_millis(50)),
                            );
                        }
                    }
                    frame.pts_ms = Some(pts + offset_ms);
                    frame.index += index_offset;
                    publish(frame, SystemTime::now(), &mut spare);
                }
                if dec.stats().converted == 0 {
                    return End::Retry(format!("{}: no frame could be decoded", path.display()));
                }
                if !looping {
                    return End::Finished;
                }
                let frame_ms = if dec.info().fps > 0.0 {
                    (1000.0 / dec.info().fps) as i64
                } else {
                    100
                };
                offset_ms += last_pts + frame_ms;
                index_offset += last_index + 1;
            }
        }
        Source::Images {
            dir,
            interval,
            looping,
        } => {
            let paths = match Input::classify(dir) {
                Ok(Input::Images(_, p)) => p,
                Ok(_) => {
                    return End::Fatal(format!("{} is not a directory of images", dir.display()))
                }
                Err(e) => return End::Retry(e.to_string()),
            };
            cam.set_state(CameraState::Streaming);
            let mut index = 0u64;
            loop {
                for p in &paths {
                    if stopped() {
                        return End::Stop;
                    }
                    let mut frame = spare.take().unwrap_or_else(|| pool.recycler.get());
                    cam.counters.received.fetch_add(1, Ordering::Relaxed);
                    let Some(read) = session.call(|| read_image(p, &mut frame)) else {
                        return End::Stop;
                    };
                    match read {
                        Ok(()) => {
                            cam.counters.decoded.fetch_add(1, Ordering::Relaxed);
                            cam.counters.keyframes.fetch_add(1, Ordering::Relaxed);
                            frame.index = index;
                            frame.pts_ms = Some((index as u128 * interval.as_millis()) as i64);
                            publish(frame, SystemTime::now(), &mut spare);
                        }
                        Err(e) => {
                            cam.counters.corrupt.fetch_add(1, Ordering::Relaxed);
                            cam.set_error(Some(e.to_string()));
                        }
                    }
                    index += 1;
                    let until = Instant::now() + *interval;
                    while Instant::now() < until {
                        if stopped() {
                            return End::Stop;
                        }
                        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
                    }
                }
                if !looping {
                    return End::Finished;
                }
            }
        }
        Source::Rtsp { .. } => End::Fatal("not a file source".into()),
    }
}

//! Files and image folders as cameras: the demo cameras, tests and offline runs.
//!
//! Runs on a blocking thread for the life of the session. Each decode burst holds one
//! of the pool's decode permits, like an RTSP camera's decode job, so file cameras
//! share the same CPU budget. With `realtime`, frames are handed on at their
//! timestamps' pace; otherwise as fast as the detector takes them (the hand-off's
//! newest-frame-wins slot still applies).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::camera::{End, Shared};
use super::handoff::{CameraFrame, Slot};
use super::{CameraShared, CameraState, Source};
use crate::decode::{read_image, FileDecoder, Frame, Input, Sampler};

/// Runs one session of a file or image-folder camera until its end, an error or stop.
pub(crate) fn run_blocking(
    cam: &Arc<CameraShared>,
    slot: &Arc<Slot>,
    pool: &Shared,
    stop: &watch::Receiver<bool>,
) -> End {
    let rt = tokio::runtime::Handle::current();
    let stopped = || *stop.borrow();
    let mut spare: Option<Frame> = None;
    let publish = |frame: Frame, received: SystemTime, spare: &mut Option<Frame>| {
        let pose = cam.pose_at(received);
        let handed = CameraFrame {
            camera: cam.id.clone(),
            received,
            frame,
            pose,
        };
        cam.counters.lag_ms.store(0, Ordering::Relaxed);
        *spare = slot.put(handed, cam, &pool.notify).map(|old| old.frame);
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
                let mut dec = match FileDecoder::open(path) {
                    Ok(d) => d,
                    Err(e) => return End::Retry(e.to_string()),
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
                    let got = {
                        let _permit = rt.block_on(pool.decode.acquire());
                        dec.next_sampled(&mut sampler, &mut frame)
                    };
                    let now = dec.stats();
                    let c = &cam.counters;
                    c.received
                        .fetch_add(now.packets - seen.packets, Ordering::Relaxed);
                    c.decoded
                        .fetch_add(now.decoded - seen.decoded, Ordering::Relaxed);
                    c.corrupt.fetch_add(
                        now.corrupt_packets - seen.corrupt_packets,
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
                    let read = {
                        let _permit = rt.block_on(pool.decode.acquire());
                        read_image(p, &mut frame)
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

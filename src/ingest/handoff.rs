//! Newest-frame-wins hand-off from the cameras to detection.
//!
//! Each camera has one slot. Putting a frame into a full slot replaces the frame that
//! detection has not taken yet and counts a drop, so a slow detector never grows
//! memory: at most one decoded frame per camera waits. The replaced frame's buffer is
//! given back to the decoder for its next picture.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

use super::CameraShared;
use crate::decode::Frame;

/// A decoded frame of a camera.
#[derive(Debug, Clone)]
pub struct CameraFrame {
    /// Camera id.
    pub camera: Arc<str>,
    /// Wall-clock time the access unit arrived (the capture time as seen here).
    pub received: SystemTime,
    /// The picture, its index in the session, stream pts and keyframe flag.
    pub frame: Frame,
    /// A drone's pose at `received`, when the camera has telemetry.
    pub pose: Option<super::telemetry::DronePose>,
}

impl std::borrow::Borrow<Frame> for CameraFrame {
    fn borrow(&self) -> &Frame {
        &self.frame
    }
}

/// Frame buffers given back by detection, reused by the decoders: a 1080p BGR frame
/// is 6 MB, and a fresh one costs page faults and zeroing every time.
#[derive(Debug, Default)]
pub struct Recycler {
    free: Mutex<Vec<Frame>>,
}

/// Buffers kept for reuse at most.
const MAX_FREE: usize = 64;

impl Recycler {
    /// A buffer to decode into: a recycled one when there is one.
    pub fn get(&self) -> Frame {
        self.free
            .lock()
            .expect("recycler lock")
            .pop()
            .unwrap_or_default()
    }

    /// Gives a buffer back (dropped when enough are kept).
    pub fn put(&self, frame: Frame) {
        let mut free = self.free.lock().expect("recycler lock");
        if free.len() < MAX_FREE {
            free.push(frame);
        }
    }
}

/// One camera's slot.
#[derive(Debug, Default)]
pub struct Slot {
    frame: Mutex<Option<CameraFrame>>,
}

impl Slot {
    /// Puts a frame in, waking `notify`; returns the frame it replaced (a drop).
    pub fn put(
        &self,
        frame: CameraFrame,
        shared: &CameraShared,
        notify: &Notify,
    ) -> Option<CameraFrame> {
        let old = self.frame.lock().expect("slot lock").replace(frame);
        if old.is_some() {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        shared.counters.handed_on.fetch_add(1, Ordering::Relaxed);
        notify.notify_waiters();
        old
    }

    /// Hands a decoded picture of `cam`, received at `received`, to detection: with
    /// the drone pose of that moment, the camera's lag updated (receipt → now), into
    /// the slot. Returns the picture it replaced, whose buffer the decoder reuses. The
    /// one way every source hands on a frame.
    pub fn publish(
        &self,
        cam: &CameraShared,
        frame: Frame,
        received: SystemTime,
        notify: &Notify,
    ) -> Option<Frame> {
        let lag = SystemTime::now()
            .duration_since(received)
            .unwrap_or_default();
        cam.counters
            .lag_ms
            .store(lag.as_millis() as u64, Ordering::Relaxed);
        let handed = CameraFrame {
            camera: cam.id.clone(),
            received,
            frame,
            pose: cam.pose_at(received),
        };
        self.put(handed, cam, notify).map(|old| old.frame)
    }

    /// Takes the waiting frame, if any.
    pub fn take(&self) -> Option<CameraFrame> {
        self.frame.lock().expect("slot lock").take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Sampling;
    use crate::ingest::CameraConfig;

    #[test]
    fn the_newest_frame_wins_and_replacements_count_as_drops() {
        let shared = CameraShared::new(CameraConfig::new(
            "c",
            "rtsp://127.0.0.1/x".parse().unwrap(),
            Sampling::All,
        ));
        let notify = Notify::new();
        let slot = Slot::default();
        let frame = |i| CameraFrame {
            camera: "c".into(),
            received: SystemTime::UNIX_EPOCH,
            frame: Frame {
                index: i,
                ..Frame::default()
            },
            pose: None,
        };
        assert!(slot.put(frame(1), &shared, &notify).is_none());
        let old = slot.put(frame(2), &shared, &notify).unwrap();
        assert_eq!(old.frame.index, 1);
        assert_eq!(slot.take().unwrap().frame.index, 2);
        assert!(slot.take().is_none());
        assert_eq!(shared.counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(shared.counters.handed_on.load(Ordering::Relaxed), 2);
    }
}

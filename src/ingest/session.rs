//! What a camera session shares with its supervisor: how it ended, what the pool lends
//! it, and the decode call it has in flight — so the supervisor's watchdog can tell a
//! call that never returns (a wedged decoder, a read that blocks forever) and take its
//! decode permit back, leaving the thread behind.
//!
//! A blocking FFmpeg call cannot be cancelled. The watchdog does not try: it gives the
//! call's permit back to the pool (other cameras keep their decode capacity), marks
//! the call abandoned (if it ever returns, it hands nothing on and ends), and the
//! camera starts a new session after its backoff. A camera with too many calls stuck
//! at once gives up (`failed`), so a camera that wedges every decoder it gets cannot
//! pile up threads and buffers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retina::client::SessionGroup;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Calls of one camera stuck at once after which the camera is failed, not restarted.
pub(crate) const MAX_STUCK: u64 = 3;

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The camera was removed or the pool shut down.
    Stop,
    /// A failure worth retrying.
    Retry(String),
    /// A failure retrying cannot fix.
    Fatal(String),
    /// A finite source (a file that does not loop) reached its end.
    Finished,
}

/// What the pool lends every camera.
#[derive(Clone)]
pub(crate) struct Shared {
    pub decode: Arc<Semaphore>,
    pub notify: Arc<Notify>,
    pub group: Arc<SessionGroup>,
    pub recycler: Arc<super::handoff::Recycler>,
}

/// The decode call a session has in flight on a blocking thread.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    call: Mutex<Option<(Instant, OwnedSemaphorePermit)>>,
    abandoned: AtomicBool,
}

impl InFlight {
    /// A call starts, holding one of the pool's decode permits.
    pub fn begin(&self, permit: OwnedSemaphorePermit) {
        *self.call.lock().expect("in-flight lock") = Some((Instant::now(), permit));
    }

    /// The call returned: its permit goes back (unless the watchdog took it already).
    /// Returns whether the call had been given up on while it ran (it was stuck and
    /// came back late).
    pub fn end(&self) -> bool {
        let had = self.call.lock().expect("in-flight lock").take().is_some();
        !had && self.abandoned()
    }

    /// How long the current call has run, if one is running.
    pub fn running_for(&self) -> Option<Duration> {
        self.call
            .lock()
            .expect("in-flight lock")
            .as_ref()
            .map(|c| c.0.elapsed())
    }

    /// Gives up on the session: the permit goes back to the pool now, and the thread, if
    /// it ever comes back, must hand nothing on. Returns whether a call was running
    /// (and is now left behind).
    pub fn abandon(&self) -> bool {
        let mut call = self.call.lock().expect("in-flight lock");
        self.abandoned.store(true, Ordering::SeqCst);
        call.take().is_some()
    }

    /// Whether the supervisor gave up on this session.
    pub fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn abandoning_a_call_gives_its_permit_back_at_once() {
        let sem = Arc::new(Semaphore::new(1));
        let f = InFlight::default();
        f.begin(sem.clone().acquire_owned().await.unwrap());
        assert_eq!(sem.available_permits(), 0);
        assert!(f.running_for().is_some());
        assert!(f.abandon(), "a call was running");
        assert_eq!(
            sem.available_permits(),
            1,
            "the stuck call's permit is back"
        );
        assert!(f.abandoned() && f.running_for().is_none());
        // the stuck call returns late: nothing is given back twice, and it knows
        assert!(f.end());
        assert_eq!(sem.available_permits(), 1);
        // a session given up between calls leaves nothing behind
        let g = InFlight::default();
        g.begin(sem.clone().acquire_owned().await.unwrap());
        assert!(!g.end());
        assert!(!g.abandon());
    }
}

//! One camera's supervisor: `run` retries `run_once` with exponential backoff and
//! jitter until the camera is removed; `run_once` runs one session of the camera's
//! source — RTSP ([`super::rtsp`]) or a file / image folder ([`super::file`]) on a
//! watched thread of its own.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

use super::handoff::Slot;
use super::session::{End, InFlight, Shared, MAX_STUCK};
use super::{CameraShared, CameraState, Source};

/// Runs until `stop` turns true.
pub(crate) async fn run(
    cam: Arc<CameraShared>,
    slot: Arc<Slot>,
    pool: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &cam.config;
    if let (Some(src), Some(track)) = (cfg.telemetry.clone(), cam.track.clone()) {
        let (cam2, stop2) = (cam.clone(), stop.clone());
        tokio::spawn(super::telemetry::run_reader(src, track, stop2, move |e| {
            warn!(camera = %cam2.config.id, "telemetry: {e}");
            cam2.set_error(Some(format!("telemetry: {e}")));
        }));
    }
    let mut backoff = cfg.backoff_min;
    let mut first = true;
    loop {
        if !first {
            cam.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        cam.set_state(CameraState::Connecting);
        let started = Instant::now();
        let end = run_once(&cam, &slot, &pool, &mut stop).await;
        match end {
            End::Stop => break,
            End::Finished => {
                info!("source finished");
                cam.set_state(CameraState::Stopped);
                return;
            }
            End::Fatal(e) => {
                warn!(error = %e, "camera failed; not retrying");
                cam.set_error(Some(e));
                cam.set_state(CameraState::Failed);
                return;
            }
            End::Retry(e) => {
                warn!(error = %e, "camera session ended");
                cam.set_error(Some(e));
            }
        }
        // a session that streamed for a while earns a fresh backoff
        if started.elapsed() > cfg.stall_timeout * 3 {
            backoff = cfg.backoff_min;
        }
        let jitter = rand::random_range(0.8..1.2);
        let wait = backoff.mul_f64(jitter);
        backoff = (backoff * 2).min(cfg.backoff_max);
        cam.set_state(CameraState::BackingOff);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    cam.set_state(CameraState::Stopped);
}

/// One session of whatever source the camera has.
async fn run_once(
    cam: &Arc<CameraShared>,
    slot: &Arc<Slot>,
    pool: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let stuck = cam.stuck.load(Ordering::SeqCst);
    if stuck >= MAX_STUCK {
        return End::Fatal(format!(
            "{stuck} decoder threads of this camera are stuck in calls that never returned: \
             not restarting it (restart gridwatch to try again)"
        ));
    }
    match &cam.config.source {
        Source::Rtsp { url, transport } => {
            super::rtsp::run(cam, slot, pool, stop, url, *transport).await
        }
        Source::File { .. } | Source::Images { .. } => run_file(cam, slot, pool, stop).await,
    }
}

/// A file or image-folder session on a thread of its own (not tokio's blocking pool: a
/// read or decode that never returns must not hold the runtime's shutdown), watched:
/// a call running longer than the stall timeout is left behind and the session ends.
async fn run_file(
    cam: &Arc<CameraShared>,
    slot: &Arc<Slot>,
    pool: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let in_flight = Arc::new(InFlight::default());
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let session = super::file::Session {
        cam: cam.clone(),
        slot: slot.clone(),
        pool: pool.clone(),
        stop: stop.clone(),
        in_flight: in_flight.clone(),
        rt: tokio::runtime::Handle::current(),
    };
    let spawned = std::thread::Builder::new()
        .name(format!("file-{}", cam.config.id))
        .spawn(move || {
            let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.run()))
                .unwrap_or_else(|_| End::Retry("the file reader panicked".into()));
            let _ = tx.send(end);
        });
    if let Err(e) = spawned {
        return End::Retry(format!("cannot start a reader thread: {e}"));
    }
    let limit = cam.config.stall_timeout;
    let mut watchdog = tokio::time::interval(Duration::from_millis(500));
    let leave = |in_flight: &InFlight| {
        if in_flight.abandon() {
            cam.stuck.fetch_add(1, Ordering::SeqCst);
        }
    };
    loop {
        tokio::select! {
            end = &mut rx => {
                return end.unwrap_or_else(|_| End::Retry("the file reader ended without a word".into()));
            }
            _ = stop.wait_for(|s| *s) => break,
            _ = watchdog.tick() => {
                if let Some(t) = in_flight.running_for().filter(|t| *t > limit) {
                    leave(&in_flight);
                    return cam.decoder_fault(format!(
                        "reading or decoding did not return for {t:.1?} (wedged); its thread is left behind"
                    ));
                }
            }
        }
    }
    // stopped: the reader sees it between frames; one stuck in a call is left behind
    if tokio::time::timeout(Duration::from_secs(2), &mut rx)
        .await
        .is_err()
    {
        leave(&in_flight);
    }
    End::Stop
}

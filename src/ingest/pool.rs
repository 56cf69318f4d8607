//! The pool: cameras added and removed at run time, each on its own supervised task,
//! sharing a bounded set of decode workers and one hand-off to detection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retina::client::SessionGroup;
use tokio::sync::{watch, Notify, Semaphore};
use tracing::Instrument;

use super::camera;
use super::handoff::{CameraFrame, Slot};
use super::session::Shared;
use super::{CameraConfig, CameraShared, CameraStatus};

/// Pool-wide settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Decode jobs running at once (threads off the async runtime). Default: the
    /// number of cores.
    pub decode_workers: usize,
    /// How long shutdown waits for TEARDOWN answers.
    pub teardown_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            decode_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            teardown_timeout: Duration::from_secs(2),
        }
    }
}

struct Camera {
    shared: Arc<CameraShared>,
    slot: Arc<Slot>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What went wrong adding a camera.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The id is taken.
    #[error("camera `{0}` is already in the pool")]
    Duplicate(String),
}

/// The camera pool. Must be used inside a tokio runtime.
pub struct Pool {
    cameras: Mutex<BTreeMap<String, Camera>>,
    shared: Shared,
    opts: PoolOptions,
}

impl Pool {
    /// An empty pool.
    pub fn new(opts: PoolOptions) -> Self {
        Self {
            cameras: Mutex::new(BTreeMap::new()),
            shared: Shared {
                decode: Arc::new(Semaphore::new(opts.decode_workers.max(1))),
                notify: Arc::new(Notify::new()),
                group: Arc::new(SessionGroup::default().named("gridwatch".into())),
                recycler: Arc::default(),
            },
            opts,
        }
    }

    /// Starts a camera. The others are not touched.
    pub fn add(&self, config: CameraConfig) -> Result<(), PoolError> {
        let mut cams = self.cameras.lock().expect("pool lock");
        if cams.contains_key(&config.id) {
            return Err(PoolError::Duplicate(config.id));
        }
        let id = config.id.clone();
        let shared = Arc::new(CameraShared::new(config));
        let slot = Arc::new(Slot::default());
        let (stop, stop_rx) = watch::channel(false);
        let span = tracing::info_span!("camera", id = %id);
        let task = tokio::spawn(
            camera::run(shared.clone(), slot.clone(), self.shared.clone(), stop_rx)
                .instrument(span),
        );
        cams.insert(
            id,
            Camera {
                shared,
                slot,
                stop,
                task,
            },
        );
        Ok(())
    }

    /// Stops a camera (its session is torn down) and waits for its task; the others
    /// are not touched. Returns whether it was there.
    pub async fn remove(&self, id: &str) -> bool {
        let cam = self.cameras.lock().expect("pool lock").remove(id);
        match cam {
            Some(c) => {
                let _ = c.stop.send(true);
                let _ = c.task.await;
                true
            }
            None => false,
        }
    }

    /// Status of every camera, by id.
    pub fn status(&self) -> Vec<CameraStatus> {
        self.cameras
            .lock()
            .expect("pool lock")
            .values()
            .map(|c| c.shared.status())
            .collect()
    }

    /// Status of one camera.
    pub fn camera(&self, id: &str) -> Option<CameraStatus> {
        self.cameras
            .lock()
            .expect("pool lock")
            .get(id)
            .map(|c| c.shared.status())
    }

    /// Takes the newest waiting frame of every camera that has one.
    pub fn take_frames(&self, out: &mut Vec<CameraFrame>) {
        let cams = self.cameras.lock().expect("pool lock");
        out.extend(cams.values().filter_map(|c| c.slot.take()));
    }

    /// Takes the newest waiting frame of every camera `mine` accepts (detection
    /// workers each serve their own cameras).
    pub fn take_frames_of(&self, out: &mut Vec<CameraFrame>, mine: impl Fn(&str) -> bool) {
        let cams = self.cameras.lock().expect("pool lock");
        out.extend(
            cams.iter()
                .filter(|(id, _)| mine(id))
                .filter_map(|(_, c)| c.slot.take()),
        );
    }

    /// Gives frames back once detection is done with them, so decoders reuse their
    /// buffers instead of allocating new ones.
    pub fn recycle(&self, frames: impl IntoIterator<Item = CameraFrame>) {
        for f in frames {
            self.shared.recycler.put(f.frame);
        }
    }

    /// Waits until some camera hands on a frame (or `limit` passes).
    pub async fn frames_ready(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.shared.notify.notified()).await;
    }

    /// Stops every camera, then waits (up to the teardown timeout) for the RTSP
    /// sessions' TEARDOWN requests to be answered.
    pub async fn shutdown(&self) {
        let cams: Vec<Camera> = std::mem::take(&mut *self.cameras.lock().expect("pool lock"))
            .into_values()
            .collect();
        for c in &cams {
            let _ = c.stop.send(true);
        }
        for c in cams {
            let _ = c.task.await;
        }
        let _ = tokio::time::timeout(
            self.opts.teardown_timeout,
            self.shared.group.await_teardown(),
        )
        .await;
    }
}

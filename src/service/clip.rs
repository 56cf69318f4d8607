//! The clip worker: the MP4 of each new case's frames, made off the detection thread.
//!
//! When a violation opens a case, the recorder hands the case and the violation's
//! [`ClipRequest`] here. One thread renders each (every frame made private, drawn and
//! captioned, then H.264: a fraction of a second of one core for a few frames) and adds
//! the MP4 to the case as its `clip` item, chained like every photo. It is bounded: at
//! most [`Clips::WAITING`] requests wait (more are dropped and counted), and closing
//! drops what still waits, so a stop never waits on encodes.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

use crate::cases::photo::PhotoRole;
use crate::cases::CaseStore;
use crate::metrics::Metrics;
use crate::rules::clip::{render, ClipRequest};

/// A case waiting for its clip.
struct Job {
    camera: Arc<str>,
    case: i64,
    req: Box<ClipRequest>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// The worker's handle: [`Clips::request`] from any thread, [`Clips::run`] on its own.
pub struct Clips {
    queue: Mutex<Queue>,
    wake: Condvar,
    store: Arc<dyn CaseStore>,
    per_case: usize,
    metrics: Arc<Metrics>,
}

/// Outcomes, as `gridwatch_clips_total{outcome}` counts them ([`crate::metrics::CLIP_OUTCOMES`]).
const STORED: usize = 0;
const FAILED: usize = 1;
const DROPPED: usize = 2;

impl Clips {
    /// Requests that wait at most.
    pub const WAITING: usize = 16;

    /// A worker adding clips to cases of `store` (at most `per_case` items a case).
    pub fn new(store: Arc<dyn CaseStore>, per_case: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            store,
            per_case,
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, outcome: usize, n: u64) {
        self.metrics.clips[outcome].fetch_add(n, Ordering::Relaxed);
    }

    /// Asks for the clip of `case`, found on `camera`; never blocks.
    pub fn request(&self, camera: Arc<str>, case: i64, req: Box<ClipRequest>) {
        let mut q = self.lock();
        if q.closed || q.jobs.len() >= Self::WAITING {
            let closed = q.closed;
            drop(q);
            if !closed {
                tracing::warn!(
                    camera = &*camera,
                    "{} clips already wait to be encoded; case {case} gets none",
                    Self::WAITING
                );
            }
            self.count(DROPPED, 1);
            return;
        }
        q.jobs.push_back(Job { camera, case, req });
        drop(q);
        self.wake.notify_one();
    }

    /// Ends [`Self::run`]: what still waits is dropped (counted), the clip being made
    /// is finished.
    pub fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        let left = q.jobs.len() as u64;
        q.jobs.clear();
        drop(q);
        self.count(DROPPED, left);
        self.wake.notify_all();
    }

    /// The thread's loop, until [`Self::close`].
    pub fn run(&self) {
        loop {
            let job = {
                let mut q = self.lock();
                loop {
                    if q.closed {
                        return;
                    }
                    if let Some(j) = q.jobs.pop_front() {
                        break j;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.make(job);
        }
    }

    /// Renders and stores one clip.
    fn make(&self, job: Job) {
        let Job { camera, case, req } = job;
        let stored = render(&req).map_err(|e| e.to_string()).and_then(|mp4| {
            self.store
                .add_photo(
                    case,
                    &camera,
                    req.at_ms(),
                    Some(PhotoRole::Clip),
                    &mp4,
                    self.per_case,
                )
                .map_err(|e| e.to_string())
        });
        match stored {
            Ok(Some(e)) => {
                tracing::debug!(
                    camera = &*camera,
                    "case {case}: clip {} ({} frames)",
                    e.file,
                    req.frames.len()
                );
                self.count(STORED, 1);
            }
            Ok(None) => {
                tracing::info!(
                    camera = &*camera,
                    "case {case} already has {} evidence items: no clip",
                    self.per_case
                );
                self.count(DROPPED, 1);
            }
            Err(e) => {
                tracing::error!(camera = &*camera, "the clip of case {case}: {e}");
                self.count(FAILED, 1);
            }
        }
    }
}

//! The stage between the scenes and the case store: violations (with their evidence)
//! go into a bounded queue that a thread of its own records, in order. The detection
//! loop only pushes and never waits on I/O: a store that is slow, unreachable or
//! hanging on a dead network (a PostgreSQL call blocked for as long as the network
//! is silent) holds up this thread alone, while the cameras go on being detected.
//!
//! When the store is unavailable ([`StoreError::is_unavailable`]) the violation in
//! hand stays first and is tried again a second later; every violation found
//! meanwhile waits behind it and is recorded once the store answers. The queue is
//! bounded: past [`Recorder::MAX`] the oldest is dropped (counted in
//! `gridwatch_violations_lost_total`), and only the oldest
//! [`Recorder::MAX_WITH_EVIDENCE`] keep their evidence images.
//!
//! A violation that opens a case keeps its whole sequence (first sight, middle frames,
//! violation, close-up); one that an open case absorbs adds only its violation frame,
//! as the case's latest sighting, so that a case's photos are its first violation's
//! story and then its later sightings, up to `cases.evidence_per_case`.
//!
//! [`StoreError::is_unavailable`]: crate::cases::StoreError::is_unavailable

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::clip::Clips;
use super::detail::Details;
use super::scene::Found;
use crate::cases::photo::{Photo, PhotoRole};
use crate::cases::{CaseStore, Outcome};
use crate::metrics::Metrics;

/// What waits to be recorded.
struct Queue {
    items: VecDeque<(Arc<str>, Found)>,
    /// One is being recorded (counted as waiting).
    in_hand: bool,
    /// No more will come: record what is left, then end.
    closing: bool,
}

/// The queue and the thread that empties it.
pub struct Recorder {
    queue: Mutex<Queue>,
    wake: Condvar,
    metrics: Arc<Metrics>,
}

impl Recorder {
    /// Violations kept waiting at most.
    pub const MAX: usize = 10_000;
    /// Violations that keep their evidence while waiting, at most.
    pub const MAX_WITH_EVIDENCE: usize = 200;
    /// How long after a failure the store is tried again.
    const RETRY: Duration = Duration::from_secs(1);
    /// A call to the store this slow is logged.
    const SLOW: Duration = Duration::from_secs(5);

    /// A recorder reporting into `metrics`; start its thread with [`Recorder::run`].
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                in_hand: false,
                closing: false,
            }),
            wake: Condvar::new(),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, q: &Queue) {
        let n = q.items.len() + usize::from(q.in_hand);
        self.metrics.waiting.store(n as u64, Ordering::Relaxed);
    }

    /// Queues a violation found on `camera`; never blocks on the store.
    pub fn push(&self, camera: Arc<str>, mut f: Found) {
        let mut q = self.lock();
        if q.items.len() >= Self::MAX_WITH_EVIDENCE {
            f.evidence.clear();
            f.detail = None;
            f.clip = None;
        }
        if q.items.len() >= Self::MAX {
            if let Some((cam, old)) = q.items.pop_front() {
                tracing::error!(
                    camera = &*cam,
                    "the case store has not taken {} violations; dropping the oldest ({} in cell {})",
                    Self::MAX,
                    old.violation.kind,
                    old.violation.cell
                );
                self.metrics.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        q.items.push_back((camera, f));
        self.report(&q);
        drop(q);
        self.wake.notify_one();
    }

    /// Violations waiting (queued and in hand).
    pub fn waiting(&self) -> usize {
        let q = self.lock();
        q.items.len() + usize::from(q.in_hand)
    }

    /// Asks the thread to record what is left and end; [`Recorder::run`] returns once
    /// the queue is empty (or at once when the store is unavailable).
    pub fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_all();
    }

    /// The thread's loop: records violations in order into `store`, their evidence
    /// (at most `evidence_per_case` images a case), and wakes the outbox after each.
    /// A violation that opens a case hands its close-up from the camera's main stream
    /// and its clip to `after`'s workers.
    pub fn run(
        &self,
        store: Arc<dyn CaseStore>,
        evidence_per_case: usize,
        outbox: Arc<Notify>,
        after: Followups,
    ) {
        let m = &self.metrics;
        let mut failing_since: Option<Instant> = None;
        loop {
            let (camera, mut f) = {
                let mut q = self.lock();
                loop {
                    if let Some(item) = q.items.pop_front() {
                        q.in_hand = true;
                        break item;
                    }
                    if q.closing {
                        return;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            let t = Instant::now();
            match store.record(&f.violation) {
                Ok((case, outcome)) => {
                    m.violations.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        camera = &*camera,
                        "{} in zone {} (cell {}): case {case} {outcome:?}",
                        f.violation.kind,
                        f.violation.zone,
                        f.violation.cell
                    );
                    for (role, p) in photos_to_keep(outcome, &f.evidence) {
                        let kept =
                            store.add_photo_and_original(case, &camera, role, p, evidence_per_case);
                        if let Err(e) = kept {
                            tracing::error!(camera = &*camera, "evidence of case {case}: {e}");
                            m.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if outcome == Outcome::Opened {
                        if let (Some(d), Some(req)) = (&after.details, f.detail.take()) {
                            d.request(camera.clone(), case, req);
                        }
                        if let (Some(c), Some(req)) = (&after.clips, f.clip.take()) {
                            c.request(camera.clone(), case, req);
                        }
                    }
                    outbox.notify_one();
                    if t.elapsed() >= Self::SLOW {
                        tracing::warn!(
                            camera = &*camera,
                            "the case store took {:.1?} to record a violation; {} more waited meanwhile",
                            t.elapsed(),
                            self.waiting().saturating_sub(1)
                        );
                    }
                    if let Some(since) = failing_since.take() {
                        tracing::info!(
                            "the case store answers again after {:.1?}; {} violation(s) still to record",
                            since.elapsed(),
                            self.waiting().saturating_sub(1)
                        );
                    }
                    m.stages[4].observe(t.elapsed());
                    let mut q = self.lock();
                    q.in_hand = false;
                    self.report(&q);
                }
                Err(e) if e.is_unavailable() => {
                    m.errors.fetch_add(1, Ordering::Relaxed);
                    let mut q = self.lock();
                    // first again, ahead of what came meanwhile
                    q.items.push_front((camera.clone(), f));
                    q.in_hand = false;
                    self.report(&q);
                    if failing_since.is_none() {
                        tracing::warn!(
                            camera = &*camera,
                            "the case store is unavailable ({e}); {} violation(s) wait for it",
                            q.items.len()
                        );
                        failing_since = Some(Instant::now());
                    }
                    if q.closing {
                        return;
                    }
                    // tried again after a pause (a close ends the wait)
                    let _ = self
                        .wake
                        .wait_timeout_while(q, Self::RETRY, |q| !q.closing)
                        .unwrap_or_else(|p| p.into_inner());
                }
                Err(e) => {
                    // the store refused this one: retrying would not help
                    tracing::error!(camera = &*camera, "recording a violation: {e}");
                    m.errors.fetch_add(1, Ordering::Relaxed);
                    let mut q = self.lock();
                    q.in_hand = false;
                    self.report(&q);
                }
            }
        }
    }
}
/// The workers that finish a new case's evidence after it is recorded.
#[derive(Default, Clone)]
pub struct Followups {
    /// The close-up from the camera's main stream.
    pub details: Option<Arc<Details>>,
    /// The clip.
    pub clips: Option<Arc<Clips>>,
}

/// The photos of a violation that its case keeps, each with its role there.
fn photos_to_keep(outcome: Outcome, photos: &[Photo]) -> impl Iterator<Item = (PhotoRole, &Photo)> {
    photos.iter().filter_map(move |p| match (outcome, p.role) {
        (Outcome::Opened, role) => Some((role, p)),
        (_, PhotoRole::Violation) => Some((PhotoRole::Latest, p)),
        (_, PhotoRole::Fault) => Some((PhotoRole::Fault, p)),
        _ => None,
    })
}

#[cfg(test)]
mod keep_tests {
    use super::*;

    #[test]
    fn a_new_case_keeps_the_sequence_and_an_absorbed_sighting_its_frame() {
        let photo = |role, at_ms| Photo {
            role,
            at_ms,
            jpeg: vec![0xFF, 0xD8],
            original: None,
        };
        let seq = [
            photo(PhotoRole::FirstSight, 1),
            photo(PhotoRole::Middle, 2),
            photo(PhotoRole::Violation, 3),
            photo(PhotoRole::Crop, 3),
        ];
        let kept = |o| {
            photos_to_keep(o, &seq)
                .map(|(r, p)| (r, p.at_ms))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kept(Outcome::Opened),
            [
                (PhotoRole::FirstSight, 1),
                (PhotoRole::Middle, 2),
                (PhotoRole::Violation, 3),
                (PhotoRole::Crop, 3)
            ]
        );
        assert_eq!(kept(Outcome::Absorbed), [(PhotoRole::Latest, 3)]);
        let fault = [photo(PhotoRole::Fault, 1), photo(PhotoRole::Fault, 9)];
        assert_eq!(photos_to_keep(Outcome::Absorbed, &fault).count(), 2);
    }
}

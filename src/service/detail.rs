//! The detail worker: close-ups of new cases from the cameras' main streams.
//!
//! A camera may name a main stream (`main_source`) beside the substream it is
//! detected on. When a violation of it opens a case, the recorder hands the case and
//! the violation's [`DetailRequest`] here. Per camera, one short RTSP session at a time
//! fetches the next keyframe of the main stream ([`crate::ingest::keyframe`]); every
//! request of that camera waiting when it arrives is served from it (one session for a
//! burst of cases). The close-up is cut ([`crate::rules::detail`]) and added to the
//! case as its `detail` photo, chained like every other item. When the main stream
//! cannot be had, or does not show the detection's view, the photo is the substream's
//! close-up with a strip saying why: a case never waits on, or loses anything to, a
//! main stream.
//!
//! Nothing here runs on the detection thread, and it is bounded: at most
//! [`Details::WAITING`] requests wait (past that they are dropped and counted), at
//! most [`Details::SESSIONS`] main-stream sessions are open at once, each under the
//! camera-independent `limit`. Stopping the service drops what is still waiting.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use crate::cases::CaseStore;
use crate::ingest::keyframe::grab;
use crate::ingest::RtspTransport;
use crate::metrics::Metrics;
use crate::rules::detail::{detail_photo, fallback, DetailRequest};

/// A case waiting for its close-up.
struct Job {
    case: i64,
    req: Box<DetailRequest>,
}

/// What waits, per camera, and which cameras have a session running.
#[derive(Default)]
struct Waiting {
    jobs: HashMap<Arc<str>, Vec<Job>>,
    running: std::collections::HashSet<Arc<str>>,
    total: usize,
}

/// The worker's handle: [`Details::request`] from any thread.
pub struct Details {
    waiting: Mutex<Waiting>,
    sessions: Arc<Semaphore>,
    store: Arc<dyn CaseStore>,
    per_case: usize,
    limit: Duration,
    metrics: Arc<Metrics>,
    rt: tokio::runtime::Handle,
    stop: watch::Receiver<bool>,
}

impl Details {
    /// Requests that wait at most (all cameras).
    pub const WAITING: usize = 64;
    /// Main-stream sessions open at once at most.
    pub const SESSIONS: usize = 4;

    /// A worker adding close-ups to cases of `store` (at most `per_case` photos a
    /// case), each main stream given `limit` to connect and again to send a keyframe;
    /// its sessions run on `rt` and end at `stop`.
    pub fn new(
        store: Arc<dyn CaseStore>,
        per_case: usize,
        limit: Duration,
        metrics: Arc<Metrics>,
        rt: tokio::runtime::Handle,
        stop: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(Self {
            waiting: Mutex::new(Waiting::default()),
            sessions: Arc::new(Semaphore::new(Self::SESSIONS)),
            store,
            per_case,
            limit,
            metrics,
            rt,
            stop,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, outcome: usize) {
        self.metrics.details[outcome].fetch_add(1, Ordering::Relaxed);
    }

    /// Asks for the close-up of `case`, found on `camera`; never blocks.
    pub fn request(self: &Arc<Self>, camera: Arc<str>, case: i64, req: Box<DetailRequest>) {
        let mut w = self.lock();
        if w.total >= Self::WAITING {
            drop(w);
            tracing::warn!(
                camera = &*camera,
                "{} close-ups already wait for main streams; case {case} keeps the detection stream's",
                Self::WAITING
            );
            self.count(3);
            return;
        }
        w.total += 1;
        w.jobs
            .entry(camera.clone())
            .or_default()
            .push(Job { case, req });
        if w.running.insert(camera.clone()) {
            let me = self.clone();
            self.rt.spawn(async move { me.serve(camera).await });
        }
    }

    /// The camera's session loop: while requests wait, one keyframe serves them all.
    async fn serve(self: Arc<Self>, camera: Arc<str>) {
        let mut stop = self.stop.clone();
        loop {
            let main = {
                let w = self.lock();
                match w.jobs.get(&camera).and_then(|j| j.first()) {
                    Some(j) => j.req.main.clone(),
                    None => {
                        drop(w);
                        self.lock().running.remove(&camera);
                        return;
                    }
                }
            };
            let transport = match main.udp {
                true => RtspTransport::Udp,
                false => RtspTransport::Tcp,
            };
            let grabbed = tokio::select! {
                g = async {
                    let _permit = self.sessions.acquire().await;
                    grab(&main.url, transport, self.limit).await
                } => g,
                _ = stop.wait_for(|s| *s) => {
                    let mut w = self.lock();
                    let left = w.jobs.remove(&camera).map_or(0, |j| j.len());
                    w.total -= left;
                    w.running.remove(&camera);
                    self.metrics.details[3].fetch_add(left as u64, Ordering::Relaxed);
                    return;
                }
            };
            let jobs = {
                let mut w = self.lock();
                let jobs = w.jobs.remove(&camera).unwrap_or_default();
                w.total -= jobs.len();
                jobs
            };
            if let Err(e) = &grabbed {
                tracing::warn!(
                    camera = &*camera,
                    "main stream: {e}; {} case(s) keep the detection stream's close-up",
                    jobs.len()
                );
            }
            let grabbed = Arc::new(grabbed);
            let me = self.clone();
            let cam = camera.clone();
            let done = tokio::task::spawn_blocking(move || {
                for job in jobs {
                    me.add(&cam, job, &grabbed);
                }
            });
            let _ = done.await;
        }
    }

    /// Makes and stores one case's close-up (blocking: image work and the store).
    fn add(
        &self,
        camera: &str,
        job: Job,
        grabbed: &Result<crate::ingest::keyframe::Grabbed, String>,
    ) {
        let made = match grabbed {
            Ok(g) => crate::draw::frame_mat(&g.frame)
                .and_then(|m| {
                    let at = super::ms(g.received);
                    detail_photo(&job.req, &m, at)
                })
                .map(|(p, reg)| {
                    let outcome = if reg.matched() { 0 } else { 1 };
                    if outcome == 1 {
                        tracing::warn!(
                            camera,
                            "the main stream does not show the detection view (similarity {:.2}); case {} keeps the detection stream's close-up",
                            reg.similarity,
                            job.case
                        );
                    }
                    (p, outcome)
                }),
            Err(e) => fallback(&job.req, &format!("main stream unavailable: {e}")).map(|p| (p, 2)),
        };
        let (photo, outcome) = match made {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(camera, "close-up of case {}: {e}", job.case);
                self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        self.count(outcome);
        let kept =
            self.store
                .add_photo_and_original(job.case, camera, photo.role, &photo, self.per_case);
        if let Err(e) = kept {
            tracing::error!(camera, "close-up of case {}: {e}", job.case);
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::photo::{Photo, PhotoRole};
    use crate::cases::sqlite::SqliteStore;
    use crate::cases::{DedupConfig, NewViolation};
    use crate::rules::detail::MainStream;
    use opencv::core::{Mat, Scalar, CV_8UC3};
    use opencv::prelude::*;

    #[test]
    fn a_main_stream_that_cannot_be_had_leaves_the_substream_close_up() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn CaseStore> =
            Arc::new(SqliteStore::open(dir.path(), DedupConfig::default()).unwrap());
        let (case, _) = store
            .record(&NewViolation {
                kind: "illegal_parking".parse().unwrap(),
                cell: "A1".into(),
                admin_path: "D / S / A1".into(),
                lat: 31.23,
                lon: 121.47,
                camera: "c1".into(),
                zone: "z".into(),
                zone_version: None,
                at_ms: 1_000_000,
                since_ms: 940_000,
                footprint: None,
                model: String::new(),
                model_sha256: String::new(),
            })
            .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let details = Details::new(
            store.clone(),
            10,
            Duration::from_secs(2),
            metrics.clone(),
            rt.handle().clone(),
            stop,
        );
        // a port nobody listens on any more
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let main = Arc::new(MainStream {
            url: format!("rtsp://127.0.0.1:{port}/main").parse().unwrap(),
            udp: false,
        });
        let frame = Mat::new_rows_cols_with_default(576, 720, CV_8UC3, Scalar::all(80.0)).unwrap();
        let close_up =
            Mat::new_rows_cols_with_default(60, 90, CV_8UC3, Scalar::all(120.0)).unwrap();
        let fallback = Photo {
            role: PhotoRole::Crop,
            at_ms: 1_000_000,
            jpeg: crate::draw::encode_mat(&close_up, 90).unwrap(),
            original: None,
        };
        let words = ["parking  zone z".into(), "camera c1".into(), "A1".into()];
        let req = DetailRequest::new(
            main,
            &frame,
            1_000_000,
            [10.0, 10.0, 70.0, 50.0],
            Vec::new(),
            fallback,
            words,
        )
        .unwrap();
        details.request(Arc::from("c1"), case, Box::new(req));
        let t = std::time::Instant::now();
        let item = loop {
            let ev = store.evidence(case).unwrap();
            if let Some(e) = ev.into_iter().find(|e| e.role == Some(PhotoRole::Detail)) {
                break e;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "no detail photo");
            std::thread::sleep(Duration::from_millis(50));
        };
        // the substream close-up again, at the violation's time, counted as unavailable
        assert_eq!(item.at_ms, 1_000_000);
        let jpeg = store.evidence_bytes(case, item.id).unwrap().unwrap();
        let img = opencv::imgcodecs::imdecode(
            &opencv::core::Vector::from_slice(&jpeg),
            opencv::imgcodecs::IMREAD_COLOR,
        )
        .unwrap();
        assert_eq!((img.cols(), img.rows()), (90, 60));
        assert_eq!(metrics.details[2].load(Ordering::Relaxed), 1);
        assert_eq!(metrics.details[0].load(Ordering::Relaxed), 0);
        // and the camera's session is over: nothing waits, nothing runs (its loop
        // ends just after the photo is stored)
        let t = std::time::Instant::now();
        while !details.lock().running.is_empty() {
            assert!(t.elapsed() < Duration::from_secs(5), "the session goes on");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(details.lock().total, 0);
    }
}

//! Service metrics: per-stage latency histograms and counters the detection loop
//! updates, and the last processed frame of each camera (JPEG, refreshed at most every
//! few seconds) for the cameras view. `/metrics` is one [`Scrape`], encoded by the
//! official client (`prometheus-client`, OpenMetrics text, label values escaped).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::cases::{CaseStatus, DeliveryCounts, ViolationKind};
use crate::ingest::CameraStatus;

/// Upper bounds of the latency buckets, seconds.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram over [`BUCKETS`].
#[derive(Debug, Clone)]
pub struct Histogram {
    inner: prometheus_client::metrics::histogram::Histogram,
    count: Arc<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            inner: prometheus_client::metrics::histogram::Histogram::new(BUCKETS),
            count: Arc::default(),
        }
    }
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&self, d: Duration) {
        self.inner.observe(d.as_secs_f64());
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Stages of the detection loop.
pub const STAGES: [&str; 5] = ["preprocess", "inference", "postprocess", "rules", "store"];

/// What the detection loop reports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per stage (see [`STAGES`]), per frame (inference: per call).
    pub stages: [Histogram; STAGES.len()],
    /// Frames through detection.
    pub frames: AtomicU64,
    /// Inference calls.
    pub batches: AtomicU64,
    /// Violations found by the scenes (handed to the recorder).
    pub found: AtomicU64,
    /// Violations recorded.
    pub violations: AtomicU64,
    /// Errors in the loop (store, evidence), logged.
    pub errors: AtomicU64,
    /// Violations waiting to be recorded (see `recorder`).
    pub waiting: AtomicU64,
    /// Violations given up on (the waiting queue overflowed).
    pub lost: AtomicU64,
    /// Close-ups from cameras' main streams, by outcome (see [`DETAIL_OUTCOMES`]).
    pub details: [AtomicU64; DETAIL_OUTCOMES.len()],
    /// Clips of new cases, by outcome (see [`CLIP_OUTCOMES`]).
    pub clips: [AtomicU64; CLIP_OUTCOMES.len()],
    last: Mutex<BTreeMap<String, (Instant, Vec<u8>)>>,
    /// What each camera's view check said last.
    views: Mutex<BTreeMap<String, crate::geo::view::ViewReport>>,
    /// What each drone camera's frames have been.
    drones: Mutex<BTreeMap<String, crate::geo::drone::DroneReport>>,
    /// A scrape's question to the store is in flight (one at a time).
    pub store_query: std::sync::atomic::AtomicBool,
}

/// What became of a case's close-up from the main stream: cut from it; the main
/// stream did not match the detection view (substream close-up, with a note); it could
/// not be had (likewise); not tried (too many waiting, or the service stopping).
pub const DETAIL_OUTCOMES: [&str; 4] = ["main_stream", "mismatch", "unavailable", "dropped"];

/// What became of a new case's clip: stored; failed (drawing, encoding or storing);
/// not made (too many waiting, the case's evidence full, or the service stopping).
pub const CLIP_OUTCOMES: [&str; 3] = ["stored", "failed", "dropped"];

/// How often a camera's last frame is re-encoded for the cameras view.
pub const LAST_FRAME_EVERY: Duration = Duration::from_secs(5);

impl Metrics {
    /// Whether a camera's last frame is due for a refresh.
    pub fn last_frame_due(&self, camera: &str) -> bool {
        self.last
            .lock()
            .expect("metrics lock")
            .get(camera)
            .is_none_or(|(t, _)| t.elapsed() >= LAST_FRAME_EVERY)
    }

    /// Keeps a camera's last frame.
    pub fn set_last_frame(&self, camera: &str, jpeg: Vec<u8>) {
        self.last
            .lock()
            .expect("metrics lock")
            .insert(camera.to_string(), (Instant::now(), jpeg));
    }

    /// Notes what a camera's view check said (logged when it changes).
    pub fn set_view(&self, camera: &str, report: crate::geo::view::ViewReport) {
        let mut v = self.views.lock().expect("metrics lock");
        let state = &report.state;
        let changed = v
            .get(camera)
            .is_none_or(|r| r.state.name() != state.name() || r.preset != report.preset);
        if changed {
            let at = report.preset.as_deref().unwrap_or("-");
            if state.paused() {
                tracing::warn!(
                    camera,
                    preset = at,
                    "view: {} ({state:?}); its rules wait",
                    state.name()
                );
            } else {
                tracing::info!(camera, preset = at, "view: {} ({state:?})", state.name());
            }
        }
        match v.get_mut(camera) {
            Some(r) => *r = report,
            None => {
                v.insert(camera.to_string(), report);
            }
        }
    }

    /// Keeps what a drone camera's frames have been.
    pub fn set_drone(&self, camera: &str, report: &crate::geo::drone::DroneReport) {
        let mut d = self.drones.lock().expect("metrics lock");
        match d.get_mut(camera) {
            Some(r) => r.clone_from(report),
            None => {
                d.insert(camera.to_string(), report.clone());
            }
        }
    }

    /// What a drone camera's frames have been.
    pub fn drone(&self, camera: &str) -> Option<crate::geo::drone::DroneReport> {
        self.drones
            .lock()
            .expect("metrics lock")
            .get(camera)
            .cloned()
    }

    /// What a camera's view check said last.
    pub fn view(&self, camera: &str) -> Option<crate::geo::view::ViewReport> {
        self.views
            .lock()
            .expect("metrics lock")
            .get(camera)
            .cloned()
    }

    /// Forgets a camera's view (it stopped here).
    pub fn forget_view(&self, camera: &str) {
        self.views.lock().expect("metrics lock").remove(camera);
        self.drones.lock().expect("metrics lock").remove(camera);
    }

    /// A camera's last frame, JPEG.
    pub fn last_frame(&self, camera: &str) -> Option<Vec<u8>> {
        self.last
            .lock()
            .expect("metrics lock")
            .get(camera)
            .map(|(_, j)| j.clone())
    }
}

/// The case store's totals, when it answered the scrape: cases by (kind, status),
/// deliveries by state, and the reviewers' ledger of the last 28 days.
pub type StoreTotals = (
    Vec<(ViolationKind, CaseStatus, u64)>,
    DeliveryCounts,
    crate::cases::ledger::ReviewTotals,
);

/// What one `/metrics` answer shows, read at the scrape.
#[derive(Debug)]
pub struct Scrape {
    /// The cameras running here.
    pub cameras: Vec<CameraStatus>,
    /// The detection loop's metrics.
    pub metrics: Arc<Metrics>,
    /// The store's totals; `None` when it did not answer in time.
    pub store: Option<StoreTotals>,
}

impl Scrape {
    /// The OpenMetrics text.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The content type of [`Scrape::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One metric without labels.
fn one(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    m: impl EncodeMetric,
) -> std::fmt::Result {
    m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)
}

/// One metric with a row per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    rows: impl IntoIterator<Item = (L, M)>,
) -> std::fmt::Result {
    let mut d = e.encode_descriptor(name, help, None, ty)?;
    for (labels, m) in rows {
        m.encode(d.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A camera's counters: name (without `_total`), help, value.
type CameraCounter = (&'static str, &'static str, fn(&CameraStatus) -> u64);

const CAMERA_COUNTERS: [CameraCounter; 7] = [
    ("gridwatch_camera_received", "Access units received.", |c| {
        c.received
    }),
    ("gridwatch_camera_decoded", "Access units decoded.", |c| {
        c.decoded
    }),
    (
        "gridwatch_camera_frames",
        "Frames handed on to detection.",
        |c| c.handed_on,
    ),
    (
        "gridwatch_camera_dropped",
        "Frames or units dropped (newest frame wins).",
        |c| c.dropped,
    ),
    ("gridwatch_camera_corrupt", "Corrupt access units.", |c| {
        c.corrupt
    }),
    ("gridwatch_camera_reconnects", "Reconnections.", |c| {
        c.reconnects
    }),
    (
        "gridwatch_camera_decoder_faults",
        "Decoders found wedged (a call that never returned) or silent (units in, no picture out).",
        |c| c.decoder_faults,
    ),
];

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let cam = |c: &CameraStatus| [("camera", c.id.clone())];
        for (name, help, get) in CAMERA_COUNTERS {
            let rows = self
                .cameras
                .iter()
                .map(|c| (cam(c), ConstCounter::new(get(c))));
            family(&mut e, name, help, MetricType::Counter, rows)?;
        }
        let rows = self
            .cameras
            .iter()
            .map(|c| (cam(c), ConstGauge::new(c.lag_ms as i64)));
        family(
            &mut e,
            "gridwatch_camera_lag_ms",
            "Receipt to hand-off of the newest frame, ms.",
            MetricType::Gauge,
            rows,
        )?;
        let rows = self.cameras.iter().map(|c| {
            let state = serde_json::to_value(c.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (
                [("camera", c.id.clone()), ("state", state)],
                ConstGauge::new(1),
            )
        });
        family(
            &mut e,
            "gridwatch_camera_state",
            "1 for the state each camera is in.",
            MetricType::Gauge,
            rows,
        )?;
        let views: Vec<(String, crate::geo::view::ViewReport)> = self
            .cameras
            .iter()
            .filter_map(|c| Some((c.id.clone(), self.metrics.view(&c.id)?)))
            .collect();
        family(
            &mut e,
            "gridwatch_camera_view",
            "1 for what each camera's view check said last (steady, shifted: corrected; the others pause its rules), at which preset (empty: none, or a camera without presets).",
            MetricType::Gauge,
            views.iter().map(|(id, v)| {
                (
                    [
                        ("camera", id.clone()),
                        ("state", v.state.name().to_string()),
                        ("preset", v.preset.as_deref().unwrap_or("").to_string()),
                    ],
                    ConstGauge::new(1),
                )
            }),
        )?;
        family(
            &mut e,
            "gridwatch_camera_view_shift_px",
            "How far each camera's view moved from its reference, pixels (shifted or moved).",
            MetricType::Gauge,
            views.iter().filter_map(|(id, v)| match &v.state {
                crate::geo::view::ViewState::Shifted { shift_px, .. }
                | crate::geo::view::ViewState::ViewMoved { shift_px } => {
                    Some(([("camera", id.clone())], ConstGauge::new(*shift_px)))
                }
                _ => None,
            }),
        )?;
        let m = &self.metrics;
        let rows = STAGES
            .iter()
            .zip(&m.stages)
            .map(|(s, h)| ([("stage", *s)], h.inner.clone()));
        family(
            &mut e,
            "gridwatch_stage_seconds",
            "Time per frame in each stage of the detection loop (inference: per batch).",
            MetricType::Histogram,
            rows,
        )?;
        for (name, help, v) in [
            ("gridwatch_detect_frames", "Frames through detection.", &m.frames),
            ("gridwatch_detect_batches", "Inference calls.", &m.batches),
            (
                "gridwatch_violations_found",
                "Violations found by the rules, handed to the recorder.",
                &m.found,
            ),
            ("gridwatch_violations", "Violations recorded.", &m.violations),
            ("gridwatch_loop_errors", "Errors in the detection loop.", &m.errors),
            (
                "gridwatch_violations_lost",
                "Violations dropped because the store stayed unreachable while the waiting queue filled.",
                &m.lost,
            ),
        ] {
            one(&mut e, name, help, ConstCounter::new(v.load(Ordering::Relaxed)))?;
        }
        for (name, help, outcomes, counts) in [
            (
                "gridwatch_detail_closeups",
                "Close-ups of new cases from the cameras' main streams, by outcome.",
                &DETAIL_OUTCOMES[..],
                &m.details[..],
            ),
            (
                "gridwatch_clips",
                "MP4 clips of the frames up to new cases' violations, by outcome.",
                &CLIP_OUTCOMES[..],
                &m.clips[..],
            ),
        ] {
            let rows = outcomes.iter().zip(counts).map(|(o, v)| {
                (
                    [("outcome", *o)],
                    ConstCounter::new(v.load(Ordering::Relaxed)),
                )
            });
            family(&mut e, name, help, MetricType::Counter, rows)?;
        }
        one(
            &mut e,
            "gridwatch_violations_waiting",
            "Violations waiting in the recorder's queue for the case store.",
            ConstGauge::new(m.waiting.load(Ordering::Relaxed) as i64),
        )?;
        for (name, help, v) in process() {
            one(&mut e, name, help, ConstGauge::new(v as i64))?;
        }
        one(
            &mut e,
            "gridwatch_store_up",
            "1 when the case store answered this scrape in time.",
            ConstGauge::new(i64::from(self.store.is_some())),
        )?;
        if let Some((cases, d, reviews)) = &self.store {
            let rows = cases.iter().map(|(kind, status, n)| {
                (
                    [
                        ("kind", kind.to_string()),
                        ("status", status.as_str().to_string()),
                    ],
                    ConstGauge::new(*n as i64),
                )
            });
            family(
                &mut e,
                "gridwatch_cases",
                "Cases by kind and status.",
                MetricType::Gauge,
                rows,
            )?;
            let rows = [
                ("pending", d.pending),
                ("delivered", d.delivered),
                ("failed", d.failed),
                ("skipped", d.skipped),
            ]
            .map(|(state, n)| ([("state", state)], ConstGauge::new(n as i64)));
            family(
                &mut e,
                "gridwatch_deliveries",
                "Outbox entries by state.",
                MetricType::Gauge,
                rows,
            )?;
            reviews_family(&mut e, reviews)?;
        }
        Ok(())
    }
}

/// The reviewers' ledger: verdicts and precision by kind, flagged cameras and zones.
fn reviews_family(
    e: &mut DescriptorEncoder,
    r: &crate::cases::ledger::ReviewTotals,
) -> std::fmt::Result {
    let kind = |row: &crate::cases::ledger::LedgerRow| row.kind.clone().unwrap_or_default();
    let rows = r.by_kind.iter().flat_map(|row| {
        [("confirm", row.confirmed), ("reject", row.rejected)].map(|(verdict, n)| {
            (
                [("kind", kind(row)), ("verdict", verdict.to_string())],
                ConstGauge::new(n as i64),
            )
        })
    });
    family(
        e,
        "gridwatch_reviews",
        "Reviewed cases of the last 28 days by kind and latest verdict.",
        MetricType::Gauge,
        rows,
    )?;
    let rows = r
        .by_kind
        .iter()
        .map(|row| ([("kind", kind(row))], ConstGauge::new(row.precision)));
    family(
        e,
        "gridwatch_review_precision",
        "Confirmed over reviewed cases of the last 28 days, by kind.",
        MetricType::Gauge,
        rows,
    )?;
    let rows = [("camera", r.flagged_cameras), ("zone", r.flagged_zones)]
        .map(|(by, n)| ([("by", by)], ConstGauge::new(n as i64)));
    family(
        e,
        "gridwatch_review_flagged",
        "Cameras, and zones of a camera, whose precision over the last 28 days is below 0.7 over at least 10 reviews.",
        MetricType::Gauge,
        rows,
    )
}

/// The process's memory and threads: resident memory (kernel), heap in use (the C
/// library's allocator: what is allocated and not freed, unlike RSS not raised by
/// fragmentation, so it shows growth that is a leak), threads and open files.
fn process() -> [(&'static str, &'static str, u64); 4] {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    // SAFETY: sysconf has no preconditions
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let resident = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |p| p * page);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads the allocator's counters (all arenas); in use is
    // the small blocks allocated plus the large ones mapped on their own
    let heap = {
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd) as u64
    };
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let heap = 0u64;
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    let files = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    [
        (
            "gridwatch_process_resident_bytes",
            "Resident memory.",
            resident,
        ),
        (
            "gridwatch_process_heap_bytes",
            "Heap memory in use (allocated and not freed).",
            heap,
        ),
        ("gridwatch_process_threads", "Threads.", threads as u64),
        (
            "gridwatch_process_open_files",
            "Open file descriptors.",
            files as u64,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrape_is_openmetrics_with_cumulative_buckets_and_escaped_labels() {
        let m = Arc::new(Metrics::default());
        m.stages[1].observe(Duration::from_millis(3));
        m.stages[1].observe(Duration::from_millis(30));
        m.frames.fetch_add(7, Ordering::Relaxed);
        let camera = CameraStatus {
            id: "odd\"camera\n".into(),
            url: String::new(),
            sampling: String::new(),
            state: crate::ingest::CameraState::Streaming,
            since: std::time::SystemTime::now(),
            last_error: None,
            received: 5,
            keyframes: 1,
            decoded: 4,
            handed_on: 3,
            dropped: 1,
            corrupt: 0,
            reconnects: 0,
            lag_ms: 12,
            decoder_faults: 0,
        };
        let s = Scrape {
            cameras: vec![camera],
            metrics: m.clone(),
            store: Some((
                vec![(ViolationKind::Dumping, CaseStatus::Open, 2)],
                DeliveryCounts::default(),
                crate::cases::ledger::ReviewTotals {
                    by_kind: crate::cases::ledger::ledger(
                        &[crate::cases::ledger::VerdictRow::of(
                            1,
                            "dumping".into(),
                            "c".into(),
                            "z".into(),
                            "m".into(),
                            "ab".into(),
                            "confirm",
                            "",
                            0,
                        )],
                        &[crate::cases::ledger::Dimension::Kind],
                        Default::default(),
                    ),
                    flagged_cameras: 3,
                    flagged_zones: 0,
                },
            )),
        }
        .render();
        let b = |le: &str, n: u64| {
            format!("gridwatch_stage_seconds_bucket{{le=\"{le}\",stage=\"inference\"}} {n}")
        };
        for line in [b("0.0025", 0), b("0.005", 1), b("0.05", 2), b("+Inf", 2)] {
            assert!(s.lines().any(|l| l == line), "{line}\n{s}");
        }
        assert!(
            s.contains("gridwatch_stage_seconds_count{stage=\"inference\"} 2"),
            "{s}"
        );
        assert!(
            s.contains("gridwatch_stage_seconds_sum{stage=\"inference\"} 0.033"),
            "{s}"
        );
        assert!(s.contains("\ngridwatch_detect_frames_total 7\n"), "{s}");
        assert!(s.contains("# TYPE gridwatch_detect_frames counter"), "{s}");
        assert!(s.contains("gridwatch_store_up 1"), "{s}");
        assert!(
            s.contains("gridwatch_cases{kind=\"dumping\",status=\"open\"} 2"),
            "{s}"
        );
        assert!(
            s.contains("gridwatch_reviews{kind=\"dumping\",verdict=\"confirm\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("gridwatch_review_precision{kind=\"dumping\"} 1.0"),
            "{s}"
        );
        assert!(
            s.contains("gridwatch_review_flagged{by=\"camera\"} 3"),
            "{s}"
        );
        assert!(
            s.contains("gridwatch_camera_received_total{camera=\"odd\\\"camera\\n\"} 5"),
            "label values are escaped: {s}"
        );
        assert!(s.trim_end().ends_with("# EOF"), "{s}");
        assert_eq!(m.stages[1].count(), 2);
    }
}

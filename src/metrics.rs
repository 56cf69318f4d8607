//! Service metrics: per-stage latency histograms and counters the detection loop
//! updates, and the last processed frame of each camera (JPEG, refreshed at most every
//! few seconds) for the cameras view. Rendered as Prometheus text by the API.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the latency buckets, seconds.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram (Prometheus cumulative buckets).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum{{{}}} {}",
            labels.trim_end_matches(','),
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{}}} {n}", labels.trim_end_matches(','));
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
    last: Mutex<BTreeMap<String, (Instant, Vec<u8>)>>,
    /// A scrape's question to the store is in flight (one at a time).
    pub store_query: std::sync::atomic::AtomicBool,
}

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

    /// A camera's last frame, JPEG.
    pub fn last_frame(&self, camera: &str) -> Option<Vec<u8>> {
        self.last
            .lock()
            .expect("metrics lock")
            .get(camera)
            .map(|(_, j)| j.clone())
    }

    /// The loop's metrics as Prometheus text.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP gridwatch_stage_seconds Time per frame in each stage of the detection loop (inference: per batch).\n# TYPE gridwatch_stage_seconds histogram"
        );
        for (i, s) in STAGES.iter().enumerate() {
            self.stages[i].render(out, "gridwatch_stage_seconds", &format!("stage=\"{s}\","));
        }
        for (name, help, v) in [
            (
                "gridwatch_detect_frames_total",
                "Frames through detection.",
                &self.frames,
            ),
            (
                "gridwatch_detect_batches_total",
                "Inference calls.",
                &self.batches,
            ),
            (
                "gridwatch_violations_found_total",
                "Violations found by the rules, handed to the recorder.",
                &self.found,
            ),
            (
                "gridwatch_violations_total",
                "Violations recorded.",
                &self.violations,
            ),
            (
                "gridwatch_loop_errors_total",
                "Errors in the detection loop.",
                &self.errors,
            ),
            (
                "gridwatch_violations_lost_total",
                "Violations dropped because the store stayed unreachable while the waiting queue filled.",
                &self.lost,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gridwatch_violations_waiting Violations held in memory until the case store answers again.\n# TYPE gridwatch_violations_waiting gauge\ngridwatch_violations_waiting {}",
            self.waiting.load(Ordering::Relaxed)
        );
        render_process(out);
    }
}

/// The process's memory and threads: resident memory (kernel), heap in use (the C
/// library's allocator: what is allocated and not freed, unlike RSS not raised by
/// fragmentation, so it shows growth that is a leak), threads and open files.
fn render_process(out: &mut String) {
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
    for (name, help, v) in [
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
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        let mut s = String::new();
        h.render(&mut s, "x", "stage=\"a\",");
        assert!(s.contains("x_bucket{stage=\"a\",le=\"0.0025\"} 0"), "{s}");
        assert!(s.contains("x_bucket{stage=\"a\",le=\"0.005\"} 1"), "{s}");
        assert!(s.contains("x_bucket{stage=\"a\",le=\"0.05\"} 2"), "{s}");
        assert!(s.contains("x_count{stage=\"a\"} 2"), "{s}");
        assert!(s.contains("x_sum{stage=\"a\"} 0.033"), "{s}");
    }
}

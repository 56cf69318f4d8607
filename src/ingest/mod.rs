//! Ingest: the pool of live camera feeds. One supervised task per camera ([`camera`])
//! keeps an RTSP session (retina, [`rtsp`]) or a file alive, plans which access units
//! to decode ([`crate::decode::plan`]), decodes them off the async runtime in a bounded
//! worker pool under a watchdog ([`live`], `session`), and hands the newest frame of
//! each camera to detection ([`handoff`]), counting what it drops.

pub mod camera;
pub mod file;
pub mod handoff;
pub mod keyframe;
pub mod live;
pub mod pool;
pub mod rtsp;
pub(crate) mod session;
pub mod telemetry;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use handoff::CameraFrame;
pub use pool::{Pool, PoolOptions};

use crate::decode::Sampling;

/// How RTP packets travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (robust through NAT and firewalls).
    #[default]
    Tcp,
    /// Separate UDP ports (lower latency on a LAN; no reordering).
    Udp,
}

impl std::str::FromStr for RtspTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            _ => Err(format!("unknown RTSP transport `{s}`: use tcp or udp")),
        }
    }
}

/// Where a camera's frames come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A live RTSP stream (fixed camera or drone).
    Rtsp {
        /// `rtsp://[user:password@]host[:port]/path`; credentials in the URL are used
        /// for digest or basic authentication and never logged.
        url: url::Url,
        /// RTP transport.
        transport: RtspTransport,
    },
    /// A video file (mp4, mkv, avi, …) played as a camera: the demo cameras.
    File {
        /// The clip.
        path: std::path::PathBuf,
        /// Pace frames at their timestamps (true) or as fast as decoding goes.
        realtime: bool,
        /// Start again at the end (true) or stop there.
        looping: bool,
    },
    /// A folder of images, one handed on per interval, in name order.
    Images {
        /// The folder.
        dir: std::path::PathBuf,
        /// Time between images.
        interval: Duration,
        /// Start again after the last image.
        looping: bool,
    },
}

/// One camera of the pool.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// Unique id, used in logs, metrics and cases.
    pub id: String,
    /// Where its frames come from.
    pub source: Source,
    /// Drone pose side channel, matched to frames by time.
    pub telemetry: Option<telemetry::TelemetrySource>,
    /// A frame gets a pose only from samples within this time of its capture.
    pub telemetry_max_gap: Duration,
    /// How much later video arrives than telemetry of the same instant.
    pub video_latency: Duration,
    /// Which frames are decoded and handed on.
    pub sampling: Sampling,
    /// No frame for this long → reconnect.
    pub stall_timeout: Duration,
    /// Limit for each RTSP request while connecting.
    pub connect_timeout: Duration,
    /// First wait after a failure; doubles up to `backoff_max`, with ±20 % jitter.
    pub backoff_min: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
}

impl CameraConfig {
    /// A camera with the default timings: 10 s stall and connect timeouts, backoff
    /// from 1 s to 60 s.
    pub fn new(id: impl Into<String>, url: url::Url, sampling: Sampling) -> Self {
        Self::with_source(
            id,
            Source::Rtsp {
                url,
                transport: RtspTransport::Tcp,
            },
            sampling,
        )
    }

    /// A camera reading from any source, with the default timings.
    pub fn with_source(id: impl Into<String>, source: Source, sampling: Sampling) -> Self {
        Self {
            id: id.into(),
            source,
            telemetry: None,
            telemetry_max_gap: Duration::from_secs(1),
            video_latency: Duration::ZERO,
            sampling,
            stall_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }

    /// Where the camera reads from, without credentials, for logs and status pages:
    /// no user or password, and every query value shown as `***` (cameras and video
    /// platforms put tokens there: `?token=…`, `?auth=…`; the names stay).
    pub fn redacted_url(&self) -> String {
        match &self.source {
            Source::Rtsp { url, .. } => {
                let mut u = url.clone();
                let _ = u.set_username("");
                let _ = u.set_password(None);
                hide_query_values(&mut u);
                u.to_string()
            }
            Source::File { path, .. } => format!("file:{}", path.display()),
            Source::Images { dir, .. } => format!("images:{}", dir.display()),
        }
    }
}

/// Shows every query value of `u` as `***` (cameras and video platforms put tokens
/// there: `?token=…`, `?auth=…`); the names stay.
fn hide_query_values(u: &mut url::Url) {
    if u.query().is_some() {
        let names: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let mut q = u.query_pairs_mut();
        q.clear();
        for k in names {
            q.append_pair(&k, "***");
        }
    }
}

/// `message` (an error that may quote `url`: the RTSP client's do) with the URL's
/// query values shown as `***`.
pub(crate) fn without_query_values(url: &url::Url, message: String) -> String {
    match url.query() {
        Some(q) if !q.is_empty() => {
            let mut shown = url.clone();
            hide_query_values(&mut shown);
            message.replace(q, shown.query().unwrap_or(""))
        }
        _ => message,
    }
}

/// Where a camera's supervisor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Opening the RTSP session.
    Connecting,
    /// Receiving frames.
    Streaming,
    /// Waiting before the next attempt after an error.
    BackingOff,
    /// Gave up: an error that retrying cannot fix (see the last error).
    Failed,
    /// Removed or shut down.
    Stopped,
}

impl fmt::Display for CameraState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connecting => "connecting",
            Self::Streaming => "streaming",
            Self::BackingOff => "backing_off",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        })
    }
}

/// Counters of one camera, shared between its task, its decode jobs and readers.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Access units received from the network.
    pub received: AtomicU64,
    /// Of those, random-access (key) frames.
    pub keyframes: AtomicU64,
    /// Access units decoded.
    pub decoded: AtomicU64,
    /// Frames handed on to detection.
    pub handed_on: AtomicU64,
    /// Frames or access units dropped: replaced before detection took them, or a
    /// decode backlog discarded.
    pub dropped: AtomicU64,
    /// Access units the decoder refused as corrupt.
    pub corrupt: AtomicU64,
    /// Sessions opened after the first.
    pub reconnects: AtomicU64,
    /// Milliseconds from receipt to hand-off of the newest frame.
    pub lag_ms: AtomicU64,
    /// Decoders found wedged (a call that never returned) or silent (units in, no
    /// picture out for the stall timeout).
    pub decoder_faults: AtomicU64,
}

/// A camera's shared state.
#[derive(Debug)]
pub struct CameraShared {
    /// The camera's configuration.
    pub config: CameraConfig,
    /// The camera id, shared by every frame handed on (no allocation per frame).
    pub id: std::sync::Arc<str>,
    /// Counters.
    pub counters: CameraCounters,
    /// Poses from the telemetry side channel, when the camera has one.
    pub track: Option<std::sync::Arc<telemetry::Track>>,
    /// Threads of this camera stuck in calls the watchdog left behind.
    pub(crate) stuck: AtomicU64,
    state: Mutex<(CameraState, Option<String>, SystemTime)>,
}

impl CameraShared {
    pub(crate) fn new(config: CameraConfig) -> Self {
        let track = config.telemetry.as_ref().map(|_| Default::default());
        Self {
            id: config.id.as_str().into(),
            config,
            counters: CameraCounters::default(),
            track,
            stuck: AtomicU64::new(0),
            state: Mutex::new((CameraState::Connecting, None, SystemTime::now())),
        }
    }

    /// The drone pose for a frame received at `received`, if telemetry has one.
    pub fn pose_at(&self, received: SystemTime) -> Option<telemetry::DronePose> {
        let t = received
            .checked_sub(self.config.video_latency)
            .unwrap_or(received);
        self.track.as_ref()?.at(t, self.config.telemetry_max_gap)
    }

    pub(crate) fn set_state(&self, state: CameraState) {
        let mut s = self.state.lock().expect("camera state lock");
        if s.0 != state {
            s.0 = state;
            s.2 = SystemTime::now();
        }
    }

    pub(crate) fn set_error(&self, error: Option<String>) {
        // an error may quote the URL (the RTSP client's do): never with its query values
        let error = error.map(|e| match &self.config.source {
            Source::Rtsp { url, .. } => without_query_values(url, e),
            _ => e,
        });
        self.state.lock().expect("camera state lock").1 = error;
    }

    /// A decoder fault ends the session: counted, retried after the backoff — unless
    /// too many of this camera's threads are stuck already.
    pub(crate) fn decoder_fault(&self, message: String) -> session::End {
        self.counters.decoder_faults.fetch_add(1, Ordering::Relaxed);
        let stuck = self.stuck.load(Ordering::SeqCst);
        if stuck >= session::MAX_STUCK {
            session::End::Fatal(format!(
                "{message}; {stuck} decoder threads of this camera are stuck: not restarting it"
            ))
        } else {
            session::End::Retry(format!("decoder fault: {message}"))
        }
    }

    /// State, last error and counters now.
    pub fn status(&self) -> CameraStatus {
        let (state, last_error, since) = self.state.lock().expect("camera state lock").clone();
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CameraStatus {
            id: self.config.id.clone(),
            url: self.config.redacted_url(),
            sampling: self.config.sampling.to_string(),
            state,
            since,
            last_error,
            received: get(&c.received),
            keyframes: get(&c.keyframes),
            decoded: get(&c.decoded),
            handed_on: get(&c.handed_on),
            dropped: get(&c.dropped),
            corrupt: get(&c.corrupt),
            reconnects: get(&c.reconnects),
            lag_ms: get(&c.lag_ms),
            decoder_faults: get(&c.decoder_faults),
        }
    }
}

/// A snapshot of one camera, for status pages, metrics and tests.
#[derive(Debug, Clone, Serialize)]
pub struct CameraStatus {
    /// Camera id.
    pub id: String,
    /// URL without credentials.
    pub url: String,
    /// Sampling rule.
    pub sampling: String,
    /// Current state.
    pub state: CameraState,
    /// When the state was entered.
    #[serde(with = "humantime_serde_compat")]
    pub since: SystemTime,
    /// The last error, kept while streaming again so it can be read.
    pub last_error: Option<String>,
    /// Access units received.
    pub received: u64,
    /// Keyframes received.
    pub keyframes: u64,
    /// Access units decoded.
    pub decoded: u64,
    /// Frames handed on to detection.
    pub handed_on: u64,
    /// Frames or units dropped.
    pub dropped: u64,
    /// Corrupt access units.
    pub corrupt: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Receipt → hand-off of the newest frame, in ms.
    pub lag_ms: u64,
    /// Decoders found wedged or silent.
    pub decoder_faults: u64,
}

mod humantime_serde_compat {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_query_values_are_not_shown() {
        let c = CameraConfig::new(
            "c",
            "rtsp://admin:hunter2@10.0.0.7:554/live?token=s3cr3t&channel=1"
                .parse()
                .unwrap(),
            Sampling::All,
        );
        let shown = c.redacted_url();
        assert_eq!(shown, "rtsp://10.0.0.7:554/live?token=***&channel=***");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cr3t"));
        let cam = CameraShared::new(c);
        cam.set_error(Some(
            "DESCRIBE rtsp://10.0.0.7:554/live?token=s3cr3t&channel=1: 401".into(),
        ));
        let err = cam.status().last_error.unwrap();
        assert!(
            !err.contains("s3cr3t") && err.contains("token=***"),
            "{err}"
        );
    }
}

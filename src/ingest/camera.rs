//! One camera's supervisor: `run` retries `run_once` with exponential backoff and
//! jitter until the camera is removed; `run_once` opens an RTSP session (every request
//! under a timeout), reads access units with stall detection, plans what to decode,
//! and hands decode work to the pool's bounded workers, one job per camera at a time.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use retina::client::{
    Credentials, PlayOptions, SessionGroup, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{info, warn};

use super::handoff::{CameraFrame, Recycler, Slot};
use super::plan::{AccessUnit, DecodeStep, Planner};
use super::{CameraShared, CameraState, RtspTransport, Source};
use crate::decode::{Frame, StreamDecoder, VideoCodec};

/// Decode steps that may wait for a worker before the backlog is dropped.
const MAX_BACKLOG: usize = 250;

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
    match &cam.config.source {
        Source::Rtsp { url, transport } => run_rtsp(cam, slot, pool, stop, url, *transport).await,
        Source::File { .. } | Source::Images { .. } => {
            let (cam, slot, pool, stop) = (cam.clone(), slot.clone(), pool.clone(), stop.clone());
            match tokio::task::spawn_blocking(move || {
                super::file::run_blocking(&cam, &slot, &pool, &stop)
            })
            .await
            {
                Ok(end) => end,
                Err(e) => End::Retry(format!("file reader failed: {e}")),
            }
        }
    }
}

/// One RTSP session, from DESCRIBE to its end.
async fn run_rtsp(
    cam: &Arc<CameraShared>,
    slot: &Arc<Slot>,
    pool: &Shared,
    stop: &mut watch::Receiver<bool>,
    url: &url::Url,
    transport: RtspTransport,
) -> End {
    let cfg = &cam.config;
    let limit = cfg.connect_timeout;
    let mut url = url.clone();
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decode(url.username()),
        password: percent_decode(url.password().unwrap_or("")),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.scheme() != "rtsp" {
        return End::Fatal(format!(
            "unsupported URL scheme `{}` (use rtsp://)",
            url.scheme()
        ));
    }
    let opts = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("gridwatch/{}", env!("CARGO_PKG_VERSION")))
        .session_group(pool.group.clone());

    macro_rules! step {
        ($what:expr, $fut:expr) => {
            tokio::select! {
                r = tokio::time::timeout(limit, $fut) => match r {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => return End::Retry(format!("{}: {e}", $what)),
                    Err(_) => return End::Retry(format!("{}: no answer within {:?}", $what, limit)),
                },
                _ = stop.wait_for(|s| *s) => return End::Stop,
            }
        };
    }

    let mut session = step!(
        "DESCRIBE",
        retina::client::Session::describe(url.clone(), opts)
    );
    let Some((index, codec)) = session.streams().iter().enumerate().find_map(|(i, s)| {
        (s.media() == "video")
            .then(|| VideoCodec::from_encoding_name(s.encoding_name()).map(|c| (i, c)))?
    }) else {
        let found: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return End::Fatal(format!(
            "no H.264 or H.265 video stream (the camera offers: {})",
            if found.is_empty() {
                "nothing".to_string()
            } else {
                found.join(", ")
            }
        ));
    };
    let transport = match transport {
        RtspTransport::Tcp => Transport::Tcp(TcpTransportOptions::default()),
        RtspTransport::Udp => Transport::Udp(UdpTransportOptions::default()),
    };
    step!(
        "SETUP",
        session.setup(
            index,
            SetupOptions::default()
                .transport(transport)
                .frame_format(FrameFormat::SIMPLE)
        )
    );
    let playing = step!("PLAY", session.play(PlayOptions::default()));
    let mut demuxed = match playing.demuxed() {
        Ok(d) => d,
        Err(e) => return End::Fatal(format!("cannot read the stream: {e}")),
    };
    info!(%codec, "streaming");
    cam.set_state(CameraState::Streaming);

    let mut planner = Planner::new(cfg.sampling);
    let mut backlog: VecDeque<DecodeStep> = VecDeque::new();
    let mut steps = Vec::new();
    let mut decoder: Option<Box<Decoder>> = None;
    let mut job: Option<tokio::task::JoinHandle<Box<Decoder>>> = None;
    let mut reset_decoder = false;
    let mut last_unit = tokio::time::Instant::now();
    // since when every decoded unit failed (None while decoding works)
    let mut failing_since: Option<Instant> = None;
    let mut first_ts: Option<i64> = None;
    let mut index_in_session: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return End::Stop,
            _ = tokio::time::sleep_until(last_unit + cfg.stall_timeout) => {
                return End::Retry(format!("stalled: no frame for {:?}", cfg.stall_timeout));
            }
            item = demuxed.next() => {
                let item = match item {
                    None => return End::Retry("the server ended the stream".into()),
                    Some(Err(e)) => return End::Retry(format!("stream error: {e}")),
                    Some(Ok(i)) => i,
                };
                let CodecItem::VideoFrame(f) = item else { continue };
                last_unit = tokio::time::Instant::now();
                cam.counters.received.fetch_add(1, Ordering::Relaxed);
                let ts = f.timestamp();
                let elapsed = ts.elapsed();
                let base = *first_ts.get_or_insert(elapsed);
                let pts_ms = (elapsed - base) * 1000 / i64::from(ts.clock_rate().get());
                if f.is_random_access_point() {
                    cam.counters.keyframes.fetch_add(1, Ordering::Relaxed);
                }
                let unit = AccessUnit {
                    keyframe: f.is_random_access_point(),
                    disposable: f.is_disposable(),
                    pts_ms,
                    received: SystemTime::now(),
                    index: index_in_session,
                    data: f.into_data(),
                };
                index_in_session += 1;
                planner.push(unit, &mut steps);
                backlog.extend(steps.drain(..));
                if backlog.len() > MAX_BACKLOG {
                    // decoding cannot keep up: drop the backlog, restart at a keyframe
                    cam.counters.dropped.fetch_add(backlog.len() as u64, Ordering::Relaxed);
                    backlog.clear();
                    planner.reset();
                    reset_decoder = true;
                }
                // a stream that arrives but never decodes is broken, not streaming
                if failing_since.is_some_and(|t| t.elapsed() > cfg.stall_timeout) {
                    let corrupt = cam.counters.corrupt.load(Ordering::Relaxed);
                    return End::Retry(format!(
                        "no decodable picture for {:?} ({corrupt} corrupt access units so far)",
                        cfg.stall_timeout
                    ));
                }
            }
            done = async { job.as_mut().expect("guarded").await }, if job.is_some() => {
                job = None;
                match done {
                    Ok(d) => {
                        if d.ok > 0 {
                            failing_since = None;
                        } else if d.failed > 0 {
                            failing_since.get_or_insert_with(Instant::now);
                        }
                        decoder = Some(d);
                    }
                    Err(e) => return End::Retry(format!("decode worker failed: {e}")),
                }
            }
            permit = pool.decode.clone().acquire_owned(), if job.is_none() && !backlog.is_empty() => {
                let Ok(permit) = permit else { return End::Stop };
                let mut d = match decoder.take() {
                    Some(d) => d,
                    None => match StreamDecoder::new(codec) {
                        Ok(dec) => Box::new(Decoder { dec, spare: None, ok: 0, failed: 0 }),
                        Err(e) => return End::Fatal(e),
                    },
                };
                if std::mem::take(&mut reset_decoder) {
                    d.dec.reset();
                }
                let work: Vec<DecodeStep> = backlog.drain(..).collect();
                let (cam2, slot2, notify, recycler) =
                    (cam.clone(), slot.clone(), pool.notify.clone(), pool.recycler.clone());
                job = Some(tokio::task::spawn_blocking(move || {
                    d.run(&work, &cam2, &slot2, &notify, &recycler);
                    drop(permit);
                    d
                }));
            }
        }
    }
}

/// A camera's decoder, moved into a worker for each job and back.
struct Decoder {
    dec: StreamDecoder,
    /// A frame buffer to decode into (given back by the hand-off when a frame was
    /// replaced before detection took it).
    spare: Option<Frame>,
    /// Units of the last job that decoded without error.
    ok: u64,
    /// Units of the last job the decoder refused.
    failed: u64,
}

impl Decoder {
    fn run(
        &mut self,
        work: &[DecodeStep],
        cam: &CameraShared,
        slot: &Slot,
        notify: &Notify,
        recycler: &Recycler,
    ) {
        self.ok = 0;
        self.failed = 0;
        for step in work {
            cam.counters.decoded.fetch_add(1, Ordering::Relaxed);
            let mut frame = if step.output {
                Some(self.spare.take().unwrap_or_else(|| recycler.get()))
            } else {
                None
            };
            match self.dec.decode(&step.unit.data, frame.as_mut()) {
                Ok(true) => {
                    self.ok += 1;
                    if let Some(mut frame) = frame {
                        frame.index = step.unit.index;
                        frame.pts_ms = Some(step.unit.pts_ms);
                        frame.keyframe = step.unit.keyframe;
                        let lag = SystemTime::now()
                            .duration_since(step.unit.received)
                            .unwrap_or(Duration::ZERO);
                        cam.counters
                            .lag_ms
                            .store(lag.as_millis() as u64, Ordering::Relaxed);
                        let handed = CameraFrame {
                            camera: cam.id.clone(),
                            received: step.unit.received,
                            frame,
                            pose: cam.pose_at(step.unit.received),
                        };
                        self.spare = slot.put(handed, cam, notify).map(|old| old.frame);
                    }
                }
                Ok(false) => {
                    self.ok += 1;
                    self.spare = frame.or(self.spare.take());
                }
                Err(e) => {
                    self.failed += 1;
                    let n = cam.counters.corrupt.fetch_add(1, Ordering::Relaxed) + 1;
                    let of = cam.counters.received.load(Ordering::Relaxed);
                    tracing::debug!(camera = %cam.config.id, error = %e, "corrupt access unit");
                    cam.set_error(Some(format!(
                        "corrupt stream: {e} ({n} of {of} access units so far)"
                    )));
                    self.spare = frame.or(self.spare.take());
                }
            }
        }
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn credentials_are_percent_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
        assert_eq!(percent_decode("ü%"), "ü%");
    }
}

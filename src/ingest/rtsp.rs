//! One RTSP session of a camera: DESCRIBE, SETUP and PLAY (each under a timeout, each
//! raced against removal), then access units read with stall detection, planned
//! ([`Planner`]), and decoded in the pool's bounded workers, one job per camera at a
//! time, under the watchdog of `session`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
    UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};
use tokio::sync::watch;
use tracing::info;

use super::handoff::Slot;
use super::live::{AccessUnit, LiveDecoder};
use super::session::{End, InFlight, Shared};
use super::{CameraShared, CameraState, RtspTransport};
use crate::decode::nal::{Family, NalReader};
use crate::decode::plan::{Planner, Step};
use crate::decode::{StreamDecoder, VideoCodec};

/// Decode steps that may wait for a worker before the backlog is dropped.
const MAX_BACKLOG: usize = 250;
/// Compressed bytes that may wait for a worker before the backlog is dropped.
const MAX_BACKLOG_BYTES: usize = 64 << 20;

/// One RTSP session, from DESCRIBE to its end.
pub(crate) async fn run(
    cam: &Arc<CameraShared>,
    slot: &Arc<Slot>,
    pool: &Shared,
    stop: &mut watch::Receiver<bool>,
    url: &url::Url,
    transport: RtspTransport,
) -> End {
    let cfg = &cam.config;
    let (mut demuxed, codec) = tokio::select! {
        r = connect(url, transport, cfg.connect_timeout, Some(pool.group.clone())) => match r {
            Ok(c) => c,
            Err(end) => return end,
        },
        _ = stop.wait_for(|s| *s) => return End::Stop,
    };
    info!(%codec, "streaming");
    cam.set_state(CameraState::Streaming);
    let mut s = Streaming {
        cam,
        slot,
        pool,
        codec,
        planner: Planner::new(cfg.sampling),
        // retina counts IDR pictures only as keyframes, and says which H.264 pictures
        // are disposable but not which H.265 ones
        nal: NalReader::new(
            match codec {
                VideoCodec::H264 => Family::H264,
                VideoCodec::H265 => Family::H265,
            },
            &[],
        ),
        backlog: VecDeque::new(),
        backlog_bytes: 0,
        steps: Vec::new(),
        decoder: None,
        job: None,
        in_flight: Arc::new(InFlight::default()),
        reset_decoder: false,
        fed_since_picture: 0,
        last_picture: Instant::now(),
    };
    let mut last_unit = tokio::time::Instant::now();
    let mut first_ts: Option<i64> = None;
    let mut index_in_session: u64 = 0;
    let mut watchdog = tokio::time::interval(Duration::from_millis(500));
    let mut server_ended = false; // or stalled
    let end = loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break End::Stop,
            _ = tokio::time::sleep_until(last_unit + cfg.stall_timeout) => {
                server_ended = true;
                break End::Retry(format!("stalled: no frame for {:?}", cfg.stall_timeout));
            }
            _ = watchdog.tick() => {
                if let Some(end) = s.check() {
                    break end;
                }
            }
            item = demuxed.next() => {
                let item = match item {
                    None => {
                        server_ended = true;
                        break End::Retry("the server ended the stream".into());
                    }
                    Some(Err(e)) => break End::Retry(format!("stream error: {e}")),
                    Some(Ok(i)) => i,
                };
                let CodecItem::VideoFrame(f) = item else { continue };
                last_unit = tokio::time::Instant::now();
                cam.counters.received.fetch_add(1, Ordering::Relaxed);
                let ts = f.timestamp();
                let elapsed = ts.elapsed();
                let base = *first_ts.get_or_insert(elapsed);
                let pts_ms = (elapsed - base) * 1000 / i64::from(ts.clock_rate().get());
                let retina_disposable = f.is_disposable();
                let mut unit = AccessUnit {
                    keyframe: f.is_random_access_point(),
                    disposable: false,
                    pts_ms,
                    received: SystemTime::now(),
                    index: index_in_session,
                    data: f.into_data().into(),
                };
                unit.keyframe = unit.keyframe || s.nal.random_access(&unit.data);
                unit.disposable = !unit.keyframe
                    && match codec {
                        VideoCodec::H264 => retina_disposable,
                        VideoCodec::H265 => s.nal.disposable(&unit.data),
                    };
                if unit.keyframe {
                    cam.counters.keyframes.fetch_add(1, Ordering::Relaxed);
                }
                index_in_session += 1;
                s.push(unit);
            }
            done = async { s.job.as_mut().expect("guarded").await }, if s.job.is_some() => {
                s.job = None;
                match done {
                    Ok(d) => s.job_done(d),
                    Err(e) => break End::Retry(format!("decode worker failed: {e}")),
                }
            }
            permit = pool.decode.clone().acquire_owned(), if s.job.is_none() && !s.backlog.is_empty() => {
                let Ok(permit) = permit else { break End::Stop };
                if let Err(e) = s.start_job(permit) {
                    break e;
                }
            }
        }
    };
    if server_ended {
        // no more units are coming: the last pictures are still inside the decoder
        s.finish().await;
    }
    if s.job.is_some() && s.in_flight.abandon() {
        // a job still decoding: leave it behind, with its permit given back
        cam.stuck.fetch_add(1, Ordering::SeqCst);
    }
    end
}

/// DESCRIBE, SETUP and PLAY of the first H.264 or H.265 video stream at `url`, each
/// under `limit`: the demuxed stream and its codec. Credentials in the URL are used
/// and never sent in it.
pub(crate) async fn connect(
    url: &url::Url,
    transport: RtspTransport,
    limit: Duration,
    group: Option<Arc<retina::client::SessionGroup>>,
) -> Result<(retina::client::Demuxed, VideoCodec), End> {
    let mut url = url.clone();
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decode(url.username()),
        password: percent_decode(url.password().unwrap_or("")),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.scheme() != "rtsp" {
        return Err(End::Fatal(format!(
            "unsupported URL scheme `{}` (use rtsp://)",
            url.scheme()
        )));
    }
    let mut opts = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("gridwatch/{}", env!("CARGO_PKG_VERSION")));
    if let Some(g) = group {
        opts = opts.session_group(g);
    }

    macro_rules! step {
        ($what:expr, $fut:expr) => {
            match tokio::time::timeout(limit, $fut).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(End::Retry(format!("{}: {e}", $what))),
                Err(_) => {
                    return Err(End::Retry(format!(
                        "{}: no answer within {:?}",
                        $what, limit
                    )))
                }
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
        return Err(End::Fatal(format!(
            "no H.264 or H.265 video stream (the camera offers: {})",
            if found.is_empty() {
                "nothing".to_string()
            } else {
                found.join(", ")
            }
        )));
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
    match playing.demuxed() {
        Ok(d) => Ok((d, codec)),
        Err(e) => Err(End::Fatal(format!("cannot read the stream: {e}"))),
    }
}

/// The decoding side of a streaming session.
struct Streaming<'a> {
    cam: &'a Arc<CameraShared>,
    slot: &'a Arc<Slot>,
    pool: &'a Shared,
    codec: VideoCodec,
    planner: Planner<AccessUnit>,
    nal: NalReader,
    backlog: VecDeque<Step<AccessUnit>>,
    backlog_bytes: usize,
    steps: Vec<Step<AccessUnit>>,
    decoder: Option<Box<LiveDecoder>>,
    job: Option<tokio::task::JoinHandle<Box<LiveDecoder>>>,
    in_flight: Arc<InFlight>,
    reset_decoder: bool,
    /// Units sent to the decoder since a picture last came out.
    fed_since_picture: u64,
    last_picture: Instant,
}

impl Streaming<'_> {
    fn push(&mut self, unit: AccessUnit) {
        self.planner.push(unit, &mut self.steps);
        for step in self.steps.drain(..) {
            if let Step::Feed(u) = &step {
                self.backlog_bytes += u.data.len();
            }
            self.backlog.push_back(step);
        }
        if self.backlog.len() > MAX_BACKLOG || self.backlog_bytes > MAX_BACKLOG_BYTES {
            // decoding cannot keep up: drop the backlog, restart at a keyframe
            self.cam
                .counters
                .dropped
                .fetch_add(self.backlog.len() as u64, Ordering::Relaxed);
            self.backlog.clear();
            self.backlog_bytes = 0;
            self.planner.reset();
            self.reset_decoder = true;
        }
    }

    /// The watchdog: a job that does not return, or a decoder that takes units and
    /// gives no picture, ends the session.
    fn check(&mut self) -> Option<End> {
        let limit = self.cam.config.stall_timeout;
        if let Some(t) = self.in_flight.running_for() {
            if t > limit {
                if self.in_flight.abandon() {
                    self.cam.stuck.fetch_add(1, Ordering::SeqCst);
                }
                self.job = None;
                return Some(self.cam.decoder_fault(format!(
                    "the decoder did not return for {t:.1?} (wedged); its thread is left behind"
                )));
            }
        }
        if self.fed_since_picture > 0 && self.last_picture.elapsed() > limit {
            let corrupt = self.cam.counters.corrupt.load(Ordering::Relaxed);
            return Some(self.cam.decoder_fault(format!(
                "no decodable picture for {limit:?} ({} access units sent to the decoder, \
                 {corrupt} corrupt so far)",
                self.fed_since_picture
            )));
        }
        None
    }

    /// At the end of the stream: decodes what is waiting and drains the decoder, under
    /// the watchdog's limit.
    async fn finish(&mut self) {
        let limit = self.cam.config.stall_timeout;
        let work = async {
            if let Some(job) = self.job.take() {
                match job.await {
                    Ok(d) => self.job_done(d),
                    Err(_) => return,
                }
            }
            self.backlog.push_back(Step::Drain);
            let Ok(permit) = self.pool.decode.clone().acquire_owned().await else {
                return;
            };
            if self.start_job(permit).is_ok() {
                if let Some(job) = self.job.take() {
                    if let Ok(d) = job.await {
                        self.job_done(d);
                    }
                }
            }
        };
        if tokio::time::timeout(limit, work).await.is_err() && self.in_flight.abandon() {
            self.cam.stuck.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn job_done(&mut self, d: Box<LiveDecoder>) {
        self.planner.sampled(d.next_due_ms());
        if d.pictures > 0 {
            self.fed_since_picture = 0;
            self.last_picture = Instant::now();
        } else {
            if self.fed_since_picture == 0 {
                self.last_picture = Instant::now();
            }
            self.fed_since_picture += d.sent_units;
        }
        self.decoder = Some(d);
    }

    fn start_job(&mut self, permit: tokio::sync::OwnedSemaphorePermit) -> Result<(), End> {
        let mut d = match self.decoder.take() {
            Some(d) => d,
            None => match StreamDecoder::new(self.codec) {
                Ok(dec) => Box::new(LiveDecoder::new(dec, self.cam.config.sampling)),
                Err(e) => return Err(End::Fatal(e)),
            },
        };
        if std::mem::take(&mut self.reset_decoder) {
            d.reset();
        }
        let work: Vec<Step<AccessUnit>> = self.backlog.drain(..).collect();
        self.backlog_bytes = 0;
        let (cam, slot, notify, recycler) = (
            self.cam.clone(),
            self.slot.clone(),
            self.pool.notify.clone(),
            self.pool.recycler.clone(),
        );
        let in_flight = self.in_flight.clone();
        in_flight.begin(permit);
        self.job = Some(tokio::task::spawn_blocking(move || {
            d.run(work, &cam, &slot, &notify, &recycler, &in_flight);
            if in_flight.end() {
                cam.stuck.fetch_sub(1, Ordering::SeqCst);
            }
            d
        }));
        Ok(())
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

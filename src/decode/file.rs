//! Video files through FFmpeg: demux, decode only what sampling needs, convert to BGR.
//!
//! Every packet of the video stream is read (demuxing is cheap next to decoding, and
//! works the same for containers with an index and without: MP4, Matroska, MPEG-TS,
//! raw streams); the [`Planner`] decides which packets the decoder sees, and the
//! [`Sampler`] picks among the pictures the decoder gives back, in presentation order.
//! So B-frames, pyramids and open GOPs sample the frame a full decode would give,
//! while frames nobody looks at are not decoded at all (with a keyframe every 2 s and
//! `every = 2s`, only keyframes are).
//!
//! Timestamps are made one rising timeline: a jump back (concatenated MPEG-TS
//! segments, a camera's clock reset) or, in formats that allow discontinuities, a jump
//! forward of more than 10 s continues one frame after the last packet, as FFmpeg's
//! own command-line tool does.
//!
//! The BGR conversion is [`super::convert::BgrConverter`]: frames are bit-identical to
//! what OpenCV's `VideoCapture` reads.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Once;

use ffmpeg::ffi;
use ffmpeg::media::Type;
use ffmpeg::packet::{Mut as _, Ref as _};
use ffmpeg::{codec, Packet, Rational};
use ffmpeg_next as ffmpeg;

use super::convert::BgrConverter;
use super::nal::{Family, NalReader};
use super::plan::{Planner, Step, Unit};
use super::sample::{Sampler, Sampling};
use super::{DecodeError, Frame};

/// What is known about a clip before decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipInfo {
    /// Codec name, e.g. `h264`.
    pub codec: String,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Average frames per second (0 when the container does not say).
    pub fps: f64,
    /// Duration in milliseconds, when the container says.
    pub duration_ms: Option<i64>,
    /// Frame count, from the container or duration × fps.
    pub frames: Option<u64>,
}

/// Counters of what the decoder did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Packets read from the container for the video stream.
    pub packets: u64,
    /// Of those, packets sent to the decoder (the rest were never decoded).
    pub fed: u64,
    /// Frames the codec decoded.
    pub decoded: u64,
    /// Frames converted to BGR and handed out.
    pub converted: u64,
    /// Packets or frames refused as corrupt (skipped).
    pub corrupt_packets: u64,
    /// Timestamp discontinuities made continuous.
    pub discontinuities: u64,
    /// Changes of the picture size mid-stream.
    pub size_changes: u64,
    /// Pictures the decoder flagged as damaged (concealed), handed on or, with
    /// [`FileDecoder::drop_damaged`], skipped.
    pub damaged: u64,
    /// Whether reading stopped at damaged data before the container's end.
    pub truncated: bool,
}

/// Consecutive unreadable packets after which the rest of a file is given up.
const MAX_READ_ERRORS: u32 = 32;

/// Sets FFmpeg up once per process (quiet logging: errors are reported by gridwatch
/// with the file named).
pub fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        super::log::install();
    });
}

/// Packets the decoder may take without giving a picture back before the file is
/// called undecodable: far above any reorder delay (16 at most in H.264/H.265).
const MAX_SILENT_FEEDS: u32 = 300;

/// Pictures larger than this (8K UHD) are refused by the decoder: a damaged or hostile
/// header must not make it allocate gigabytes.
pub const MAX_PIXELS: i64 = 7680 * 4320;

/// A demuxed packet with the times and flags the planner reads.
pub(crate) struct FilePacket {
    packet: Packet,
    pts_ms: Option<i64>,
    dts_ms: Option<i64>,
    key: bool,
    disposable: bool,
}

impl Clone for FilePacket {
    fn clone(&self) -> Self {
        let mut packet = Packet::empty();
        // SAFETY: both packets are valid; av_packet_ref shares the reference-counted
        // data (ffmpeg-next's Clone copies it).
        unsafe { ffi::av_packet_ref(packet.as_mut_ptr(), self.packet.as_ptr()) };
        Self {
            packet,
            pts_ms: self.pts_ms,
            dts_ms: self.dts_ms,
            key: self.key,
            disposable: self.disposable,
        }
    }
}

impl Unit for FilePacket {
    fn pts_ms(&self) -> Option<i64> {
        self.pts_ms
    }
    fn dts_ms(&self) -> Option<i64> {
        self.dts_ms
    }
    fn keyframe(&self) -> bool {
        self.key
    }
    fn disposable(&self) -> bool {
        self.disposable
    }
    fn bytes(&self) -> usize {
        self.packet.size()
    }
}

/// Packet timestamps made one rising timeline (see the module notes).
#[derive(Debug, Clone)]
struct Timeline {
    offset: i64,
    last_dts: Option<i64>,
    frame_ticks: i64,
    /// The format allows discontinuities (MPEG-TS): big forward jumps are rebased too.
    discontinuous_format: bool,
    jump_ticks: i64,
}

impl Timeline {
    /// Shifts the packet onto the timeline; returns whether it rebased.
    fn fix(&mut self, p: &mut Packet) -> bool {
        let mut jumped = false;
        if let Some(dts) = p.dts() {
            let mut d = dts + self.offset;
            if let Some(last) = self.last_dts {
                let back = d < last;
                let leap = self.discontinuous_format && d > last + self.jump_ticks;
                if back || leap {
                    let delta = last + self.frame_ticks - d;
                    self.offset += delta;
                    d += delta;
                    jumped = true;
                }
            }
            self.last_dts = Some(d);
            p.set_dts(Some(d));
        }
        if self.offset != 0 {
            p.set_pts(p.pts().map(|x| x + self.offset));
        }
        jumped
    }
}

/// A video file opened for sampled decoding.
pub struct FileDecoder {
    path: PathBuf,
    input: ffmpeg::format::context::Input,
    stream: usize,
    decoder: ffmpeg::decoder::Video,
    time_base: Rational,
    start_pts: i64,
    info: ClipInfo,
    nal: Option<NalReader>,
    planner: Option<Planner<FilePacket>>,
    steps: VecDeque<Step<FilePacket>>,
    planned: Vec<Step<FilePacket>>,
    /// A drain is under way: the decoder was told the input ended.
    draining: bool,
    /// The container has no more packets.
    demuxed: bool,
    /// The end was signalled to the decoder.
    ended: bool,
    decoded: ffmpeg::frame::Video,
    bgr: BgrConverter,
    timeline: Timeline,
    max_read_pts: i64,
    read_errors: u32,
    silent_feeds: u32,
    last_pts_ms: i64,
    /// The time of the last picture out of the decoder (any, taken or not).
    last_out_ms: Option<i64>,
    frame_ms: i64,
    /// Packets without presentation times were seen: every packet is decoded.
    untimed: bool,
    /// Skip pictures the decoder flagged as damaged instead of handing them on.
    drop_damaged: bool,
    last_size: (u32, u32),
    stats: DecodeStats,
}

impl FileDecoder {
    /// Opens `path` and its best video stream, decoded on the calling thread alone.
    /// Errors name the file.
    ///
    /// One thread per decoder is the right default for gridwatch: cameras are decoded
    /// side by side, and FFmpeg's frame threads would only compete with inference
    /// for the same cores (measured in docs/benchmarks.md).
    pub fn open(path: &Path) -> Result<Self, DecodeError> {
        Self::open_with_threads(path, 1)
    }

    /// As [`FileDecoder::open`], with `threads` FFmpeg frame threads (0: FFmpeg
    /// picks, one per core plus one).
    pub fn open_with_threads(path: &Path, threads: usize) -> Result<Self, DecodeError> {
        init_ffmpeg();
        super::log::clear();
        let err = |what: &str, e: ffmpeg::Error| DecodeError::Open {
            path: path.to_path_buf(),
            message: super::log::explain(format!("{what}: {e}")),
        };
        let open_err = |message: &str| DecodeError::Open {
            path: path.to_path_buf(),
            message: message.into(),
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(m) if m.is_dir() => return Err(open_err("a directory, not a video file")),
            // a FIFO or device is read as a stream (a recorder writing into a pipe)
            Ok(_) => {}
            Err(_) => return Err(open_err("no such file")),
        }
        let input =
            ffmpeg::format::input(path).map_err(|e| err("not a video file FFmpeg can read", e))?;
        let stream = input
            .streams()
            .best(Type::Video)
            .ok_or_else(|| open_err("the file has no video stream"))?;
        let index = stream.index();
        let time_base = stream.time_base();
        let start_pts = if stream.start_time() == ffi::AV_NOPTS_VALUE {
            0
        } else {
            stream.start_time()
        };
        let rate = stream.avg_frame_rate();
        let fps = if rate.denominator() != 0 && rate.numerator() > 0 {
            rate.numerator() as f64 / rate.denominator() as f64
        } else {
            0.0
        };
        let params = stream.parameters();
        let family = match params.id() {
            codec::Id::H264 => Some(Family::H264),
            codec::Id::HEVC => Some(Family::H265),
            _ => None,
        };
        // SAFETY: the parameters belong to the open stream; extradata is read only.
        let extradata = unsafe {
            let p = params.as_ptr();
            if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize)
            }
        };
        let nal = family.map(|f| NalReader::new(f, extradata));
        let mut ctx = codec::context::Context::from_parameters(params)
            .map_err(|e| err("unsupported codec parameters", e))?;
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
        // SAFETY: a plain field of a context not yet opened.
        unsafe { (*ctx.as_mut_ptr()).max_pixels = MAX_PIXELS };
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| err("no decoder for this codec", e))?;
        let duration_ms = (stream.duration() > 0)
            .then(|| ts_to_ms(stream.duration(), time_base))
            .or_else(|| (input.duration() > 0).then(|| input.duration() / 1000));
        let frames = (stream.frames() > 0)
            .then_some(stream.frames() as u64)
            .or_else(|| duration_ms.map(|d| (d as f64 * fps / 1000.0).round() as u64));
        let info = ClipInfo {
            codec: decoder
                .codec()
                .map(|c| c.name().to_string())
                .unwrap_or_else(|| "unknown".into()),
            width: decoder.width(),
            height: decoder.height(),
            fps,
            duration_ms,
            frames,
        };
        if info.width == 0 || info.height == 0 {
            return Err(open_err("the video stream has no frame size"));
        }
        let frame_ticks = if fps > 0.0 {
            ms_to_ts((1000.0 / fps).round() as i64, time_base).max(1)
        } else {
            ms_to_ts(40, time_base).max(1)
        };
        // SAFETY: reading the input format's flags.
        let discontinuous_format =
            unsafe { (*(*input.as_ptr()).iformat).flags & ffi::AVFMT_TS_DISCONT != 0 };
        Ok(Self {
            path: path.to_path_buf(),
            input,
            stream: index,
            decoder,
            time_base,
            start_pts,
            info,
            nal,
            planner: None,
            steps: VecDeque::new(),
            planned: Vec::new(),
            draining: false,
            demuxed: false,
            ended: false,
            decoded: ffmpeg::frame::Video::empty(),
            bgr: BgrConverter::default(),
            timeline: Timeline {
                offset: 0,
                last_dts: None,
                frame_ticks,
                discontinuous_format,
                jump_ticks: ms_to_ts(10_000, time_base),
            },
            max_read_pts: i64::MIN,
            read_errors: 0,
            silent_feeds: 0,
            last_pts_ms: i64::MIN,
            last_out_ms: None,
            frame_ms: if fps > 0.0 {
                (1000.0 / fps).round() as i64
            } else {
                40
            },
            untimed: false,
            drop_damaged: false,
            last_size: (0, 0),
            stats: DecodeStats::default(),
        })
    }

    /// What the container says about the clip.
    pub fn info(&self) -> &ClipInfo {
        &self.info
    }

    /// What the decoder has done so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Skip pictures the decoder flagged as damaged (concealed over corrupt data), as
    /// live cameras do: a camera should not detect on garbage. Off by default, so that
    /// `detect` and `bench` show what FFmpeg shows.
    pub fn drop_damaged(&mut self, yes: bool) {
        self.drop_damaged = yes;
    }

    fn decode_error(&self, message: impl Into<String>) -> DecodeError {
        DecodeError::Decode {
            path: self.path.clone(),
            message: super::log::explain(message),
        }
    }

    /// Decodes up to the next frame `sampler` takes and writes it into `out`.
    /// Returns `Ok(false)` at the end of the file.
    pub fn next_sampled(
        &mut self,
        sampler: &mut Sampler,
        out: &mut Frame,
    ) -> Result<bool, DecodeError> {
        if self
            .planner
            .as_ref()
            .is_none_or(|p| p.sampling() != sampler.sampling())
        {
            self.planner = Some(Planner::new(sampler.sampling()));
        }
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    if self.take(sampler, out)? {
                        return Ok(true);
                    }
                    continue;
                }
                Err(ffmpeg::Error::Eof) => {
                    if self.draining {
                        // a drain is done: the decoder starts clean at the next keyframe
                        self.decoder.flush();
                        self.draining = false;
                        continue;
                    }
                    self.check_complete();
                    return Ok(false);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(ffmpeg::Error::InvalidData) => {
                    // a corrupt or truncated frame: skip it, keep the stream going
                    self.stats.corrupt_packets += 1;
                    continue;
                }
                Err(e) => return Err(self.decode_error(e.to_string())),
            }
            if self.draining {
                self.decoder.flush();
                self.draining = false;
            }
            if let Some(step) = self.steps.pop_front() {
                self.run_step(step)?;
                continue;
            }
            if self.demuxed {
                if !self.ended {
                    self.ended = true;
                    let _ = self.decoder.send_eof();
                    continue;
                }
                self.check_complete();
                return Ok(false);
            }
            self.read_packet()?;
        }
    }

    /// A picture came out of the decoder: hands it on if sampling takes it.
    fn take(&mut self, sampler: &mut Sampler, out: &mut Frame) -> Result<bool, DecodeError> {
        self.stats.decoded += 1;
        // SAFETY: reading two plain fields of the picture just decoded.
        let damaged = unsafe {
            let p = self.decoded.as_ptr();
            (*p).decode_error_flags != 0 || (*p).flags & ffi::AV_FRAME_FLAG_CORRUPT != 0
        };
        if damaged {
            self.stats.damaged += 1;
            if self.drop_damaged {
                // not progress: a stream of nothing but damaged pictures is a fault
                return Ok(false);
            }
        }
        self.silent_feeds = 0;
        let size = (self.decoded.width(), self.decoded.height());
        if self.last_size != (0, 0) && size != self.last_size {
            self.stats.size_changes += 1;
            tracing::info!(file = %self.path.display(), "picture size changed from {}x{} to {}x{}",
                self.last_size.0, self.last_size.1, size.0, size.1);
        }
        self.last_size = size;
        // a picture without a time, or one that goes back (a stream without
        // presentation times, the last picture of a drain): one frame after the last
        let guess = self.last_out_ms.map_or(0, |l| l + self.frame_ms);
        let pts_ms = match self.decoded.timestamp().or(self.decoded.pts()) {
            Some(pts) => ts_to_ms(pts - self.start_pts, self.time_base),
            None => guess,
        };
        let pts_ms = match self.last_out_ms {
            Some(last) if pts_ms < last => guess,
            _ => pts_ms,
        };
        self.last_out_ms = Some(pts_ms);
        self.last_pts_ms = self.last_pts_ms.max(pts_ms);
        if !sampler.take(pts_ms, self.decoded.is_key()) {
            return Ok(false);
        }
        if let Some(p) = self.planner.as_mut() {
            p.sampled(sampler.next_due_ms());
        }
        self.bgr
            .convert(&self.decoded, out)
            .map_err(|m| self.decode_error(m))?;
        out.pts_ms = Some(pts_ms);
        out.index = if self.info.fps > 0.0 {
            (pts_ms as f64 * self.info.fps / 1000.0).round().max(0.0) as u64
        } else {
            self.stats.decoded - 1
        };
        out.keyframe = self.decoded.is_key();
        self.stats.converted += 1;
        Ok(true)
    }

    fn run_step(&mut self, step: Step<FilePacket>) -> Result<(), DecodeError> {
        match step {
            Step::Drain => {
                let _ = self.decoder.send_eof();
                self.draining = true;
            }
            Step::Feed(p) => match self.decoder.send_packet(&p.packet) {
                Ok(()) => {
                    self.stats.fed += 1;
                    self.silent_feeds += 1;
                    if self.silent_feeds > MAX_SILENT_FEEDS {
                        return Err(self.decode_error(format!(
                            "the decoder gave no usable picture for {MAX_SILENT_FEEDS} packets \
                             in a row ({} decoded before, {} corrupt packets, {} damaged pictures)",
                            self.stats.decoded, self.stats.corrupt_packets, self.stats.damaged
                        )));
                    }
                }
                Err(ffmpeg::Error::InvalidData) => {
                    self.stats.fed += 1;
                    self.stats.corrupt_packets += 1;
                    tracing::debug!(file = %self.path.display(), "skipping a corrupt packet");
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    // pictures must be taken out first: try this packet again after
                    self.steps.push_front(Step::Feed(p));
                }
                Err(e) => return Err(self.decode_error(e.to_string())),
            },
        }
        Ok(())
    }

    /// Reads the next packet of the video stream and plans it (or notes the end).
    fn read_packet(&mut self) -> Result<(), DecodeError> {
        loop {
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream {
                        continue;
                    }
                    self.stats.packets += 1;
                    self.read_errors = 0;
                    if self.timeline.fix(&mut packet) {
                        self.stats.discontinuities += 1;
                        tracing::debug!(file = %self.path.display(), "timestamp discontinuity");
                    }
                    if let Some(p) = packet.pts().or(packet.dts()) {
                        self.max_read_pts = self.max_read_pts.max(p);
                    }
                    let key = packet.is_key();
                    let planner = self.planner.as_mut().expect("planner made first");
                    if packet.pts().is_none() && !self.untimed {
                        self.untimed = true;
                        tracing::debug!(file = %self.path.display(),
                            "packets without presentation times: decoding every packet");
                        planner.feed_everything(&mut self.planned);
                    }
                    let every = matches!(planner.sampling(), Sampling::Every(_));
                    let disposable = !key
                        && every
                        && (packet.flags().bits() & ffi::AV_PKT_FLAG_DISPOSABLE != 0
                            || match (self.nal.as_mut(), packet.data()) {
                                (Some(nal), Some(data)) => nal.disposable(data),
                                _ => false,
                            });
                    let ms = |t: i64| ts_to_ms(t - self.start_pts, self.time_base);
                    let unit = FilePacket {
                        pts_ms: packet.pts().map(ms),
                        dts_ms: packet.dts().map(ms),
                        key,
                        disposable,
                        packet,
                    };
                    planner.push(unit, &mut self.planned);
                    self.steps.extend(self.planned.drain(..));
                    return Ok(());
                }
                Err(ffmpeg::Error::Eof) => {
                    self.demuxed = true;
                    return Ok(());
                }
                Err(e) => {
                    // A damaged container: skip what cannot be read; give up on the rest
                    // after a run of failures (a truncated file ends this way).
                    self.stats.corrupt_packets += 1;
                    self.read_errors += 1;
                    tracing::debug!(file = %self.path.display(), error = %e, "unreadable packet");
                    if self.read_errors >= MAX_READ_ERRORS {
                        self.stats.truncated = true;
                        self.demuxed = true;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// At the end: flags a file whose frames stop well before its stated duration.
    fn check_complete(&mut self) {
        if let Some(duration) = self.info.duration_ms {
            let frame_ms = if self.info.fps > 0.0 {
                1000.0 / self.info.fps
            } else {
                100.0
            };
            let slack = (2.0 * frame_ms).max(500.0) as i64;
            // the furthest packet read, not the last frame decoded: frames after the
            // last sample are read but never decoded
            let read_ms = if self.max_read_pts > i64::MIN {
                ts_to_ms(self.max_read_pts - self.start_pts, self.time_base)
            } else {
                self.last_pts_ms
            };
            if self.last_pts_ms.max(read_ms) + slack < duration {
                self.stats.truncated = true;
            }
        }
    }
}

fn ts_to_ms(ts: i64, tb: Rational) -> i64 {
    let v = ts as f64 * tb.numerator() as f64 * 1000.0 / tb.denominator() as f64;
    v.round() as i64
}

fn ms_to_ts(ms: i64, tb: Rational) -> i64 {
    (ms as f64 * tb.denominator() as f64 / (tb.numerator() as f64 * 1000.0)).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_milliseconds() {
        let tb = Rational::new(1, 10240);
        assert_eq!(ts_to_ms(1024, tb), 100);
        assert_eq!(ms_to_ts(100, tb), 1024);
        let tb = Rational::new(1001, 30000);
        assert_eq!(ts_to_ms(30, tb), 1001);
    }
}

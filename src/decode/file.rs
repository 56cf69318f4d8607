//! Video files through FFmpeg: demux, decode only what sampling needs, convert to BGR.
//!
//! Two savings keep decoding proportional to what is looked at:
//! - frames the sampler does not take are decoded (later frames depend on them) but
//!   never colour-converted;
//! - when the next sample lies beyond a keyframe that has not been read yet, and the
//!   container has an index (MP4, MKV, AVI), the demuxer seeks straight to that
//!   keyframe: the frames in between are not even decoded. With a keyframe every 2 s
//!   and `every = 10s`, four GOPs in five are skipped whole.
//!
//! The BGR conversion is [`super::convert::BgrConverter`]: frames are bit-identical to
//! what OpenCV's `VideoCapture` reads.

use std::path::{Path, PathBuf};
use std::sync::Once;

use ffmpeg::ffi;
use ffmpeg::media::Type;
use ffmpeg::{codec, Packet, Rational};
use ffmpeg_next as ffmpeg;

use super::convert::BgrConverter;
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
    /// Frames the codec decoded.
    pub decoded: u64,
    /// Frames converted to BGR and handed out.
    pub converted: u64,
    /// Seeks made to skip to a keyframe.
    pub seeks: u64,
    /// Packets or frames refused as corrupt (skipped).
    pub corrupt_packets: u64,
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
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
    });
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
    has_index: bool,
    packet: Packet,
    decoded: ffmpeg::frame::Video,
    bgr: BgrConverter,
    max_read_pts: i64,
    eof_sent: bool,
    read_errors: u32,
    keyframes_only: bool,
    /// The sampling grid falls on keyframes: frames between them are never needed.
    key_is_sample: bool,
    /// The keyframe spacing, when the index shows a regular one starting at 0.
    key_interval_ms: Option<i64>,
    last_pts_ms: i64,
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
        let err = |what: &str, e: ffmpeg::Error| DecodeError::Open {
            path: path.to_path_buf(),
            message: format!("{what}: {e}"),
        };
        if !path.is_file() {
            return Err(DecodeError::Open {
                path: path.to_path_buf(),
                message: "no such file".into(),
            });
        }
        let input =
            ffmpeg::format::input(path).map_err(|e| err("not a video file FFmpeg can read", e))?;
        let stream = input
            .streams()
            .best(Type::Video)
            .ok_or_else(|| DecodeError::Open {
                path: path.to_path_buf(),
                message: "the file has no video stream".into(),
            })?;
        let index = stream.index();
        let time_base = stream.time_base();
        let start_pts = if stream.start_time() == ffi::AV_NOPTS_VALUE {
            0
        } else {
            stream.start_time()
        };
        let rate = stream.avg_frame_rate();
        let fps = if rate.denominator() != 0 {
            rate.numerator() as f64 / rate.denominator() as f64
        } else {
            0.0
        };
        // SAFETY: the stream pointer is valid while `input` lives.
        let has_index = unsafe { ffi::avformat_index_get_entries_count(stream.as_ptr()) } > 0;
        let key_interval_ms = if has_index {
            // SAFETY: as above; index entries are only read
            let keys: Vec<i64> = unsafe {
                let st = stream.as_ptr() as *mut ffi::AVStream;
                (0..ffi::avformat_index_get_entries_count(st))
                    .filter_map(|i| {
                        let e = ffi::avformat_index_get_entry(st, i);
                        (!e.is_null() && (*e).flags() & ffi::AVINDEX_KEYFRAME != 0)
                            .then(|| ts_to_ms((*e).timestamp - start_pts, time_base))
                    })
                    .collect()
            };
            regular_interval(&keys)
        } else {
            None
        };
        let mut ctx = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| err("unsupported codec parameters", e))?;
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
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
            return Err(DecodeError::Open {
                path: path.to_path_buf(),
                message: "the video stream has no frame size".into(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            input,
            stream: index,
            decoder,
            time_base,
            start_pts,
            info,
            has_index,
            packet: Packet::empty(),
            decoded: ffmpeg::frame::Video::empty(),
            bgr: BgrConverter::default(),
            max_read_pts: i64::MIN,
            eof_sent: false,
            read_errors: 0,
            keyframes_only: false,
            key_is_sample: false,
            key_interval_ms,
            last_pts_ms: i64::MIN,
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

    /// Decodes up to the next frame `sampler` takes and writes it into `out`.
    /// Returns `Ok(false)` at the end of the file.
    pub fn next_sampled(
        &mut self,
        sampler: &mut Sampler,
        out: &mut Frame,
    ) -> Result<bool, DecodeError> {
        self.keyframes_only = sampler.sampling() == Sampling::Keyframes;
        // a sampling grid that falls on keyframes (every 2 s with a keyframe every 2 s,
        // or every 4 s): every sample is a keyframe, frames between them are not needed
        self.key_is_sample = match (sampler.sampling(), self.key_interval_ms) {
            (Sampling::Every(d), Some(g)) => {
                let d = d.as_millis() as i64;
                g > 0 && d >= g && d % g == 0
            }
            _ => false,
        };
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    self.stats.decoded += 1;
                    let pts = self.decoded.timestamp().or(self.decoded.pts()).unwrap_or(0);
                    let pts_ms = ts_to_ms(pts - self.start_pts, self.time_base);
                    self.last_pts_ms = self.last_pts_ms.max(pts_ms);
                    if sampler.take(pts_ms, self.decoded.is_key()) {
                        self.bgr.convert(&self.decoded, out).map_err(|message| {
                            DecodeError::Decode {
                                path: self.path.clone(),
                                message,
                            }
                        })?;
                        out.pts_ms = Some(pts_ms);
                        out.index = if self.info.fps > 0.0 {
                            (pts_ms as f64 * self.info.fps / 1000.0).round().max(0.0) as u64
                        } else {
                            self.stats.decoded - 1
                        };
                        out.keyframe = self.decoded.is_key();
                        self.stats.converted += 1;
                        return Ok(true);
                    }
                    continue;
                }
                Err(ffmpeg::Error::Eof) => {
                    self.check_complete();
                    return Ok(false);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(ffmpeg::Error::InvalidData) => {
                    // a corrupt or truncated frame: skip it, keep the stream going
                    self.stats.corrupt_packets += 1;
                    continue;
                }
                Err(e) => {
                    return Err(DecodeError::Decode {
                        path: self.path.clone(),
                        message: e.to_string(),
                    })
                }
            }
            if self.eof_sent {
                self.check_complete();
                return Ok(false);
            }
            if let Some(due) = sampler.next_due_ms() {
                self.skip_to_keyframe_before(due)?;
            }
            self.feed()?;
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
            // the furthest packet read, not the last frame decoded: with keyframe
            // sampling the frames after the last keyframe are read but never decoded
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

    /// Reads one packet of the video stream into the decoder (or signals the end).
    fn feed(&mut self) -> Result<(), DecodeError> {
        loop {
            match self.packet.read(&mut self.input) {
                Ok(()) => {
                    if self.packet.stream() != self.stream {
                        continue;
                    }
                    self.stats.packets += 1;
                    self.read_errors = 0;
                    if let Some(p) = self.packet.pts().or(self.packet.dts()) {
                        self.max_read_pts = self.max_read_pts.max(p);
                    }
                    if (self.keyframes_only || self.key_is_sample) && !self.packet.is_key() {
                        // keyframe sampling: other frames are never decoded
                        continue;
                    }
                    match self.decoder.send_packet(&self.packet) {
                        Ok(()) => return Ok(()),
                        Err(ffmpeg::Error::InvalidData) => {
                            self.stats.corrupt_packets += 1;
                            tracing::debug!(file = %self.path.display(), "skipping a corrupt packet");
                            continue;
                        }
                        Err(e) => {
                            return Err(DecodeError::Decode {
                                path: self.path.clone(),
                                message: e.to_string(),
                            })
                        }
                    }
                }
                Err(ffmpeg::Error::Eof) => {
                    self.eof_sent = true;
                    let _ = self.decoder.send_eof();
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
                        self.eof_sent = true;
                        let _ = self.decoder.send_eof();
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Seeks to the last keyframe at or before `due_ms` when it lies beyond what was
    /// read so far: everything before it is not needed.
    fn skip_to_keyframe_before(&mut self, due_ms: i64) -> Result<(), DecodeError> {
        if !self.has_index {
            return Ok(());
        }
        let target = self.start_pts + ms_to_ts(due_ms, self.time_base);
        let Some(stream) = self.input.stream(self.stream) else {
            return Ok(());
        };
        // SAFETY: the stream belongs to `self.input`; the index lookup only reads it,
        // and the entry is read before anything else touches the context.
        let key_ts = unsafe {
            let st = stream.as_ptr() as *mut ffi::AVStream;
            let e =
                ffi::avformat_index_get_entry_from_timestamp(st, target, ffi::AVSEEK_FLAG_BACKWARD);
            if e.is_null() || (*e).flags() & ffi::AVINDEX_KEYFRAME == 0 {
                return Ok(());
            }
            (*e).timestamp
        };
        if key_ts <= self.max_read_pts {
            return Ok(());
        }
        // SAFETY: a valid open format context and stream index.
        let r = unsafe {
            ffi::av_seek_frame(
                self.input.as_mut_ptr(),
                self.stream as i32,
                key_ts,
                ffi::AVSEEK_FLAG_BACKWARD,
            )
        };
        if r < 0 {
            // keep decoding sequentially; correctness does not depend on the seek
            self.has_index = false;
            return Ok(());
        }
        self.decoder.flush();
        self.max_read_pts = key_ts - 1;
        self.stats.seeks += 1;
        Ok(())
    }
}

/// The spacing of keyframes at `keys` ms when it is the same throughout (within 1 ms)
/// and they start at 0.
fn regular_interval(keys: &[i64]) -> Option<i64> {
    if keys.len() < 2 || keys[0].abs() > 1 {
        return None;
    }
    let g = keys[1] - keys[0];
    (g > 0 && keys.windows(2).all(|w| ((w[1] - w[0]) - g).abs() <= 1)).then_some(g)
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

//! Live streams: H.264 / H.265 access units (Annex B, parameter sets in band) decoded
//! one at a time, as RTSP delivers them. Each unit is sent with its presentation time
//! and its picture comes back with it, in presentation order (B-frames reordered).
//!
//! Single-threaded by design: the ingest pool decodes many cameras in parallel, one
//! decoder per camera, so threads inside a decoder would only compete with the others.

use ffmpeg::codec;
use ffmpeg_next as ffmpeg;

use super::convert::BgrConverter;
use super::file::init_ffmpeg;
use super::Frame;

/// Video codecs a live source may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

impl VideoCodec {
    /// From an RTP encoding name (`H264`, `H265`, any case).
    pub fn from_encoding_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "h264" => Some(Self::H264),
            "h265" | "hevc" => Some(Self::H265),
            _ => None,
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::H264 => "h264",
            Self::H265 => "h265",
        })
    }
}

/// What came out of the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// A picture, with the time its access unit was sent with and its keyframe flag;
    /// [`StreamDecoder::convert`] turns it into a frame.
    Ready {
        /// The `pts` given to [`StreamDecoder::send`] for this picture's unit.
        pts: Option<i64>,
        /// Coded as a random-access picture.
        keyframe: bool,
    },
    /// Nothing more until more input.
    Again,
    /// A drain is complete (after [`StreamDecoder::send_end`]); the decoder is flushed
    /// and starts clean at the next keyframe.
    Drained,
}

/// A decoder for one live stream.
pub struct StreamDecoder {
    decoder: ffmpeg::decoder::Video,
    picture: ffmpeg::frame::Video,
    bgr: BgrConverter,
}

impl StreamDecoder {
    /// A decoder for `codec`; parameter sets come in band with the keyframes.
    /// Pictures come out in presentation order, as many units later as the stream's
    /// reordering needs (none without B-frames).
    pub fn new(codec: VideoCodec) -> Result<Self, String> {
        init_ffmpeg();
        let id = match codec {
            VideoCodec::H264 => codec::Id::H264,
            VideoCodec::H265 => codec::Id::HEVC,
        };
        let found =
            ffmpeg::decoder::find(id).ok_or_else(|| format!("FFmpeg has no {codec} decoder"))?;
        let mut ctx = codec::context::Context::new_with_codec(found);
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: 1,
            ..Default::default()
        });
        // SAFETY: a plain field of a context not yet opened.
        unsafe { (*ctx.as_mut_ptr()).max_pixels = super::file::MAX_PIXELS };
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| format!("cannot open the {codec} decoder: {e}"))?;
        Ok(Self {
            decoder,
            picture: ffmpeg::frame::Video::empty(),
            bgr: BgrConverter::default(),
        })
    }

    /// Sends one access unit, tagged with `pts` (any unit; it comes back with the
    /// picture). Corrupt data is an error for this unit only; the decoder stays usable.
    pub fn send(&mut self, au: &[u8], pts: i64) -> Result<(), String> {
        // a copy with FFmpeg's padding, owned by the packet
        let mut packet = ffmpeg::Packet::copy(au);
        packet.set_pts(Some(pts));
        packet.set_dts(None);
        super::log::clear();
        match self.decoder.send_packet(&packet) {
            Ok(()) => Ok(()),
            Err(ffmpeg::Error::InvalidData) => {
                Err(super::log::explain("corrupt data in an access unit"))
            }
            Err(e) => Err(super::log::explain(format!(
                "decoder refused an access unit: {e}"
            ))),
        }
    }

    /// Tells the decoder the input ended: [`StreamDecoder::receive`] then gives every
    /// picture still inside, and [`Picture::Drained`] at the end.
    pub fn send_end(&mut self) {
        let _ = self.decoder.send_eof();
    }

    /// The next picture, if one is ready. A picture the decoder flagged as damaged is
    /// an error (concealed garbage is not worth detecting on); call again for more.
    pub fn receive(&mut self) -> Result<Picture, String> {
        match self.decoder.receive_frame(&mut self.picture) {
            Ok(()) => {
                // SAFETY: reading two plain fields of the picture just decoded.
                let damaged = unsafe {
                    let p = self.picture.as_ptr();
                    (*p).decode_error_flags != 0
                        || (*p).flags & ffmpeg::ffi::AV_FRAME_FLAG_CORRUPT != 0
                };
                if damaged {
                    return Err(super::log::explain(
                        "the decoder flagged the picture as corrupt",
                    ));
                }
                Ok(Picture::Ready {
                    pts: self.picture.pts(),
                    keyframe: self.picture.is_key(),
                })
            }
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                Ok(Picture::Again)
            }
            Err(ffmpeg::Error::Eof) => {
                self.decoder.flush();
                Ok(Picture::Drained)
            }
            Err(ffmpeg::Error::InvalidData) => {
                Err(super::log::explain("corrupt data in an access unit"))
            }
            Err(e) => Err(super::log::explain(format!("decoding failed: {e}"))),
        }
    }

    /// Converts the picture [`StreamDecoder::receive`] last gave into `out`.
    pub fn convert(&mut self, out: &mut Frame) -> Result<(), String> {
        self.bgr.convert(&self.picture, out)
    }

    /// Forgets references (after a gap: the next access unit must be a keyframe).
    pub fn reset(&mut self) {
        self.decoder.flush();
    }
}

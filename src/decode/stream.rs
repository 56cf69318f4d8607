//! Live streams: H.264 / H.265 access units (Annex B, parameter sets in band) decoded
//! one at a time, as RTSP delivers them.
//!
//! Single-threaded by design: the ingest pool decodes many cameras in parallel, one
//! decoder per camera, so threads inside a decoder would only compete with the others.

use ffmpeg::codec;
use ffmpeg_next as ffmpeg;

use super::convert::BgrConverter;
use super::file::init_ffmpeg;
use super::Frame;

/// FFmpeg wants this many readable zero bytes after a packet's data.
const PADDING: usize = 64;

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

/// A decoder for one live stream.
pub struct StreamDecoder {
    decoder: ffmpeg::decoder::Video,
    picture: ffmpeg::frame::Video,
    bgr: BgrConverter,
    scratch: Vec<u8>,
}

impl StreamDecoder {
    /// A decoder for `codec`; parameter sets come in band with the keyframes.
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
        ctx.set_flags(codec::Flags::LOW_DELAY);
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| format!("cannot open the {codec} decoder: {e}"))?;
        Ok(Self {
            decoder,
            picture: ffmpeg::frame::Video::empty(),
            bgr: BgrConverter::default(),
            scratch: Vec::new(),
        })
    }

    /// Decodes one access unit. When `out` is given, the picture it yields is converted
    /// into it. Returns whether a picture came out. Corrupt data is an error for this
    /// access unit only; the decoder stays usable.
    pub fn decode(&mut self, au: &[u8], mut out: Option<&mut Frame>) -> Result<bool, String> {
        self.scratch.clear();
        self.scratch.extend_from_slice(au);
        self.scratch.resize(au.len() + PADDING, 0);
        let packet = ffmpeg::Packet::borrow(&self.scratch[..au.len()]);
        match self.decoder.send_packet(&packet) {
            Ok(()) => {}
            Err(ffmpeg::Error::InvalidData) => return Err("corrupt data in an access unit".into()),
            Err(e) => return Err(format!("decoder refused an access unit: {e}")),
        }
        let mut got = false;
        loop {
            match self.decoder.receive_frame(&mut self.picture) {
                Ok(()) => {
                    // SAFETY: reading two plain fields of the picture just decoded.
                    let damaged = unsafe {
                        let p = self.picture.as_ptr();
                        (*p).decode_error_flags != 0
                            || (*p).flags & ffmpeg::ffi::AV_FRAME_FLAG_CORRUPT != 0
                    };
                    if damaged {
                        // concealed garbage is not worth detecting on
                        return Err("the decoder flagged the picture as corrupt".into());
                    }
                    got = true;
                    if let Some(out) = out.as_deref_mut() {
                        self.bgr.convert(&self.picture, out)?;
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    break
                }
                Err(ffmpeg::Error::Eof) => break,
                Err(ffmpeg::Error::InvalidData) => {
                    return Err("corrupt data in an access unit".into())
                }
                Err(e) => return Err(format!("decoding failed: {e}")),
            }
        }
        Ok(got)
    }

    /// Forgets references (after a gap: the next access unit must be a keyframe).
    pub fn reset(&mut self) {
        self.decoder.flush();
    }
}

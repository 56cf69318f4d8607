//! A short MP4 of a few images (a violation's sampled frames): H.264 (x264, 4:2:0, so
//! every browser plays it) in an MP4 whose index comes first (`faststart`, so it plays
//! while it loads), each image shown for the same time.
//!
//! The images are BGR as OpenCV has them; the first one's size is the clip's (halved
//! until it is at most `max_width` wide, made even as 4:2:0 needs), and any other size
//! is scaled to it.

use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{codec, encoder, frame, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;

use crate::decode::log::explain;

/// Why no clip was made.
#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    /// Nothing to encode.
    #[error("no frames to encode")]
    Empty,
    /// OpenCV failed on a frame.
    #[error("preparing a frame: {0}")]
    Image(#[from] opencv::Error),
    /// FFmpeg failed: the step, its error and what FFmpeg said.
    #[error("{0}")]
    Ffmpeg(String),
    /// The temporary file.
    #[error("the clip's temporary file: {0}")]
    Io(#[from] std::io::Error),
}

/// How a clip is encoded.
#[derive(Debug, Clone, Copy)]
pub struct Mp4Options {
    /// How long each image is shown, ms.
    pub frame_ms: u32,
    /// Widest the clip is, pixels.
    pub max_width: i32,
    /// x264's constant rate factor (lower: better and bigger).
    pub crf: u8,
}

impl Default for Mp4Options {
    fn default() -> Self {
        Self {
            frame_ms: 500,
            max_width: 1280,
            crf: 26,
        }
    }
}

fn ff(what: &'static str) -> impl FnOnce(ffmpeg::Error) -> Mp4Error {
    move |e| Mp4Error::Ffmpeg(explain(format!("{what}: {e}")))
}

/// The clip's size for a first image of `w` × `h`: halved until at most `max_width`
/// wide, even.
pub fn clip_size(w: i32, h: i32, max_width: i32) -> (i32, i32) {
    let (mut w, mut h) = (w.max(2), h.max(2));
    while w > max_width.max(16) {
        w /= 2;
        h /= 2;
    }
    (w & !1, h.max(2) & !1)
}

/// The MP4 of `images`, in order.
pub fn encode_mp4(images: &[Mat], opts: Mp4Options) -> Result<Vec<u8>, Mp4Error> {
    let first = images.first().ok_or(Mp4Error::Empty)?;
    crate::decode::file::init_ffmpeg();
    crate::decode::log::clear();
    let (w, h) = clip_size(first.cols(), first.rows(), opts.max_width);
    let file = tempfile::Builder::new()
        .prefix("gridwatch-clip-")
        .suffix(".mp4")
        .tempfile()?;
    let path = file.path().to_path_buf();
    {
        let mut out =
            ffmpeg::format::output_as(&path, "mp4").map_err(ff("opening the MP4 muxer"))?;
        let x264 = encoder::find_by_name("libx264")
            .or_else(|| encoder::find(codec::Id::H264))
            .ok_or_else(|| {
                ff("finding an H.264 encoder (FFmpeg without libx264?)")(
                    ffmpeg::Error::EncoderNotFound,
                )
            })?;
        let global = out
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
        let mut stream = out
            .add_stream(x264)
            .map_err(ff("adding the video stream"))?;
        let mut enc = codec::context::Context::new_with_codec(x264)
            .encoder()
            .video()
            .map_err(ff("making the encoder"))?;
        let tb = Rational(1, 1000);
        enc.set_width(w as u32);
        enc.set_height(h as u32);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(tb);
        enc.set_frame_rate(Some(Rational(1000, opts.frame_ms.max(1) as i32)));
        if global {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut x264_opts = Dictionary::new();
        x264_opts.set("preset", "veryfast");
        x264_opts.set("crf", &opts.crf.to_string());
        let mut enc = enc
            .open_with(x264_opts)
            .map_err(ff("opening the encoder"))?;
        stream.set_parameters(&enc);
        stream.set_time_base(tb);
        let mut mux_opts = Dictionary::new();
        mux_opts.set("movflags", "+faststart");
        out.write_header_with(mux_opts)
            .map_err(ff("writing the MP4 header"))?;
        let stream_tb = out.stream(0).map(|s| s.time_base()).unwrap_or(tb);

        let mut scaler = scaling::Context::get(
            Pixel::BGR24,
            w as u32,
            h as u32,
            Pixel::YUV420P,
            w as u32,
            h as u32,
            scaling::Flags::BILINEAR,
        )
        .map_err(ff("making the colour converter"))?;
        let mut bgr = frame::Video::new(Pixel::BGR24, w as u32, h as u32);
        let mut yuv = frame::Video::new(Pixel::YUV420P, w as u32, h as u32);
        let mut sized = Mat::default();
        let mut packet = Packet::empty();
        let mut drain = |enc: &mut encoder::Video,
                         out: &mut ffmpeg::format::context::Output|
         -> Result<(), Mp4Error> {
            while enc.receive_packet(&mut packet).is_ok() {
                packet.set_stream(0);
                packet.set_duration(opts.frame_ms as i64);
                packet.rescale_ts(tb, stream_tb);
                packet
                    .write_interleaved(out)
                    .map_err(ff("writing a packet"))?;
            }
            Ok(())
        };
        for (i, image) in images.iter().enumerate() {
            let image = if image.cols() == w && image.rows() == h {
                image
            } else {
                imgproc::resize(
                    image,
                    &mut sized,
                    Size::new(w, h),
                    0.0,
                    0.0,
                    imgproc::INTER_AREA,
                )?;
                &sized
            };
            let image = if image.is_continuous() {
                image.clone()
            } else {
                image.try_clone()?
            };
            let src = image.data_bytes()?;
            let row = w as usize * 3;
            let stride = bgr.stride(0);
            let dst = bgr.data_mut(0);
            for y in 0..h as usize {
                dst[y * stride..y * stride + row].copy_from_slice(&src[y * row..(y + 1) * row]);
            }
            scaler
                .run(&bgr, &mut yuv)
                .map_err(ff("converting a frame to YUV"))?;
            yuv.set_pts(Some(i as i64 * opts.frame_ms as i64));
            enc.send_frame(&yuv).map_err(ff("encoding a frame"))?;
            drain(&mut enc, &mut out)?;
        }
        enc.send_eof().map_err(ff("ending the encoder"))?;
        drain(&mut enc, &mut out)?;
        out.write_trailer().map_err(ff("writing the MP4 index"))?;
    }
    Ok(std::fs::read(&path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, CV_8UC3};

    #[test]
    fn sizes_are_even_and_at_most_the_width() {
        assert_eq!(clip_size(1920, 1136, 1280), (960, 568));
        assert_eq!(clip_size(704, 577, 1280), (704, 576));
        assert_eq!(clip_size(3, 3, 1280), (2, 2));
    }

    #[test]
    fn an_mp4_ffprobe_reads_with_one_frame_per_image() {
        let images: Vec<Mat> = (0..5)
            .map(|i| {
                Mat::new_rows_cols_with_default(
                    241,
                    321,
                    CV_8UC3,
                    Scalar::new(40.0 * i as f64, 90.0, 200.0 - 30.0 * i as f64, 0.0),
                )
                .unwrap()
            })
            .collect();
        let mp4 = encode_mp4(&images, Mp4Options::default()).unwrap();
        assert_eq!(&mp4[4..8], b"ftyp", "an MP4");
        let moov = mp4.windows(4).position(|w| w == b"moov").unwrap();
        let mdat = mp4.windows(4).position(|w| w == b"mdat").unwrap();
        assert!(moov < mdat, "faststart: the index before the media");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mp4");
        std::fs::write(&path, &mp4).unwrap();
        let probe = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=codec_name,pix_fmt,width,height,nb_read_frames",
            ])
            .args(["-show_entries", "format=duration", "-of", "default=nw=1"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&probe.stdout);
        for want in [
            "codec_name=h264",
            "pix_fmt=yuv420p",
            "width=320",
            "height=240",
            "nb_read_frames=5",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        let duration: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("duration="))
            .unwrap()
            .parse()
            .unwrap();
        assert!((duration - 2.5).abs() < 0.05, "5 × 0.5 s: {duration}");
    }

    #[test]
    fn no_images_is_an_error() {
        assert!(matches!(
            encode_mp4(&[], Mp4Options::default()),
            Err(Mp4Error::Empty)
        ));
    }
}

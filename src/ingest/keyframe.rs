//! One picture from a camera's main stream: a short RTSP session that waits for the
//! next keyframe, decodes that one access unit and ends. Evidence asks for it (a
//! high-resolution close-up when a violation opens a case); detection never does, so a
//! camera's main stream costs nothing while nothing is found on it.

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use retina::codec::CodecItem;

use super::rtsp::connect;
use super::session::End;
use super::RtspTransport;
use crate::decode::nal::{Family, NalReader};
use crate::decode::stream::Picture;
use crate::decode::{Frame, StreamDecoder, VideoCodec};

/// A main-stream picture and when it was received.
#[derive(Debug)]
pub struct Grabbed {
    /// The picture, BGR.
    pub frame: Frame,
    /// When its access unit arrived.
    pub received: SystemTime,
    /// How long connecting took (DESCRIBE to PLAY).
    pub connect: Duration,
    /// How long the keyframe took to come after PLAY.
    pub wait: Duration,
}

/// The next keyframe of the stream at `url`, decoded: connecting within `limit` (each
/// request), then the keyframe within `limit` again. The session ends when this
/// returns (or is dropped).
pub async fn grab(
    url: &url::Url,
    transport: RtspTransport,
    limit: Duration,
) -> Result<Grabbed, String> {
    // errors may quote the URL (the RTSP client's do): never with its query values
    let scrub = |m: String| super::without_query_values(url, m);
    let t0 = Instant::now();
    let (mut demuxed, codec) = connect(url, transport, limit, None)
        .await
        .map_err(|e| match e {
            End::Retry(m) | End::Fatal(m) => scrub(m),
            End::Stop | End::Finished => "the stream ended".into(),
        })?;
    let connected = t0.elapsed();
    let mut nal = NalReader::new(
        match codec {
            VideoCodec::H264 => Family::H264,
            VideoCodec::H265 => Family::H265,
        },
        &[],
    );
    let t1 = Instant::now();
    let unit = tokio::time::timeout(limit, async {
        while let Some(item) = demuxed.next().await {
            let item = item.map_err(|e| scrub(format!("stream error: {e}")))?;
            let CodecItem::VideoFrame(f) = item else {
                continue;
            };
            let key = f.is_random_access_point();
            let data = f.into_data();
            if key || nal.random_access(&data) {
                return Ok((data, SystemTime::now()));
            }
        }
        Err("the server ended the stream before a keyframe".to_string())
    })
    .await
    .map_err(|_| format!("no keyframe within {limit:?} of PLAY"))??;
    let wait = t1.elapsed();
    drop(demuxed);
    let (data, received) = unit;
    let frame = tokio::task::spawn_blocking(move || decode_one(codec, &data))
        .await
        .map_err(|e| format!("decoding the keyframe: {e}"))??;
    Ok(Grabbed {
        frame,
        received,
        connect: connected,
        wait,
    })
}

/// Decodes one keyframe access unit (Annex B, parameter sets in band).
pub fn decode_one(codec: VideoCodec, unit: &[u8]) -> Result<Frame, String> {
    let mut dec = StreamDecoder::new(codec)?;
    dec.send(unit, 0)?;
    dec.send_end();
    // after the end, the decoder gives the picture and then says it is drained
    for _ in 0..64 {
        match dec.receive()? {
            Picture::Ready { .. } => {
                let mut frame = Frame::default();
                dec.convert(&mut frame)?;
                return Ok(frame);
            }
            Picture::Again => continue,
            Picture::Drained => break,
        }
    }
    Err("the keyframe decoded to no picture".into())
}

//! The video conformance corpus (scripts/make-corpus.sh) and FFmpeg's own decode of
//! it as the reference: which frames there are, at what time, with what pixels.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gridwatch::decode::Sampling;

/// The corpus directory, built on first use (the script locks and skips a corpus
/// that is up to date, so test binaries running side by side build it once).
pub fn dir() -> PathBuf {
    let dir = super::path("target/corpus");
    let status = Command::new(super::path("scripts/make-corpus.sh"))
        .arg(&dir)
        .current_dir(super::root())
        .status()
        .expect("scripts/make-corpus.sh runs");
    assert!(status.success(), "scripts/make-corpus.sh failed");
    dir
}

/// A clip of the corpus.
pub fn clip(name: &str) -> PathBuf {
    dir().join(name)
}

/// One frame as FFmpeg decodes it: time in ms from the first frame, MD5 of its BGR24
/// pixels, keyframe flag.
#[derive(Debug, Clone, PartialEq)]
pub struct RefFrame {
    pub ms: i64,
    pub md5: String,
    pub key: bool,
}

/// Every frame of the clip's first video stream as FFmpeg's command-line tool decodes
/// it on one thread (as gridwatch does; on damaged data concealment differs between
/// threading modes): `-fps_mode passthrough` (no frame dropped or repeated), the
/// demuxer's time base, BGR24 pixels (gridwatch's conversion is bit-identical),
/// timestamps as `ffmpeg` makes them continuous. Keyframe flags and sizes come from
/// ffprobe, in the same order. `ffmpeg` scales every frame to the first frame's size,
/// so a clip whose size changes is decoded once per size, each frame's checksum taken
/// from the pass at its own size.
pub fn reference(clip: &Path) -> Vec<RefFrame> {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-threads", "1", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "frame=key_frame,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(clip)
        .output()
        .expect("ffprobe runs");
    let probed: Vec<(bool, String)> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0] == "1", format!("{}:{}", f[1], f[2]))
        })
        .collect();
    let mut sizes: Vec<&String> = probed.iter().map(|p| &p.1).collect();
    sizes.dedup();
    sizes.sort();
    sizes.dedup();
    let passes: Vec<(String, Vec<(i64, String)>)> = sizes
        .iter()
        .map(|size| {
            (
                (*size).clone(),
                framemd5(clip, (sizes.len() > 1).then_some(size)),
            )
        })
        .collect();
    let frames = &passes[0].1;
    assert_eq!(
        probed.len(),
        frames.len(),
        "{}: ffprobe and ffmpeg see the same frames",
        clip.display()
    );
    let first = frames.first().map_or(0, |f| f.0);
    (0..frames.len())
        .map(|i| {
            let (key, size) = &probed[i];
            let pass = &passes.iter().find(|p| &p.0 == size).unwrap().1;
            RefFrame {
                ms: frames[i].0 - first,
                md5: pass[i].1.clone(),
                key: *key,
            }
        })
        .collect()
}

/// (ms, MD5 of BGR24) of every frame, optionally scaled to `size` (`W:H`).
fn framemd5(clip: &Path, size: Option<&String>) -> Vec<(i64, String)> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-threads", "1", "-i"])
        .arg(clip)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
        ]);
    if let Some(s) = size {
        cmd.args(["-vf", &format!("scale={s}"), "-sws_flags", "bicubic"]);
    }
    let out = cmd
        .args(["-pix_fmt", "bgr24", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let tb = text
        .lines()
        .find_map(|l| l.strip_prefix("#tb 0: "))
        .expect("framemd5 names the time base");
    let (num, den) = tb.trim().split_once('/').unwrap();
    let (num, den): (f64, f64) = (num.parse().unwrap(), den.parse().unwrap());
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let pts: f64 = f[2].parse().unwrap();
            ((pts * num * 1000.0 / den).round() as i64, f[5].to_string())
        })
        .collect()
}

/// The frames a sampling rule takes from a full decode: the first frame at or after
/// each grid time from the first frame; a grid time without a frame of its own is
/// skipped (the rule of `gridwatch::decode::Sampler`, written out again here).
pub fn expected(frames: &[RefFrame], sampling: Sampling) -> Vec<RefFrame> {
    match sampling {
        Sampling::All => frames.to_vec(),
        Sampling::Keyframes => frames.iter().filter(|f| f.key).cloned().collect(),
        Sampling::Every(d) => {
            let every = d.as_millis() as i64;
            let mut due: Option<i64> = None;
            let mut out = Vec::new();
            for f in frames {
                let d = *due.get_or_insert(f.ms);
                if f.ms >= d {
                    out.push(f.clone());
                    due = Some(d + ((f.ms - d) / every + 1) * every);
                }
            }
            out
        }
    }
}

/// MD5 of bytes, as hex.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// An interval.
pub fn every(ms: u64) -> Sampling {
    Sampling::Every(Duration::from_millis(ms))
}

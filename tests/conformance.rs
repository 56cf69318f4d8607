//! The video conformance corpus (scripts/make-corpus.sh) against FFmpeg's own decode:
//! for every clip and sampling rule, gridwatch's file decoder takes the frames a full
//! decode by the `ffmpeg` command gives for that rule — same times, same pixels
//! (MD5 of the BGR frame) — or, for a clip that cannot be read, fails naming the
//! file and the reason.

mod common;

use common::corpus::{self, every, RefFrame};
use gridwatch::decode::{FileDecoder, Frame, Sampler, Sampling};

/// What a clip must give.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Exactly FFmpeg's frames for every rule.
    Exact,
    /// Damaged data: the same frame times for every rule, the same pixels where the
    /// decoder saw every packet FFmpeg saw (`all`); elsewhere concealment may differ.
    Damaged,
    /// Unreadable: an error naming the file and containing this.
    Unreadable(&'static str),
}

/// Every clip of the corpus and what it must give.
const CLIPS: &[(&str, Expect)] = &[
    ("h264-medium.mp4", Expect::Exact),
    ("h264-slow.mp4", Expect::Exact),
    ("h264-cam-25fps.mp4", Expect::Exact),
    ("h264-baseline.mp4", Expect::Exact),
    ("h264-longgop.mkv", Expect::Exact),
    ("h264-opengop.mp4", Expect::Exact),
    ("hevc-opengop.mp4", Expect::Exact),
    ("hevc-10bit.mkv", Expect::Exact),
    ("h264-pal-interlaced.ts", Expect::Exact),
    ("h264-vfr.mp4", Expect::Exact),
    ("h264-bframes.ts", Expect::Exact),
    ("h264-audio.mp4", Expect::Exact),
    ("mjpeg.avi", Expect::Exact),
    ("mpeg4-asp.avi", Expect::Exact),
    ("h264-size-change.ts", Expect::Exact),
    ("h264-ts-discont.ts", Expect::Exact),
    ("h264-cut.mp4", Expect::Exact),
    (
        "h264-cut-noindex.mp4",
        Expect::Unreadable("moov atom not found"),
    ),
    ("h264-corrupt.ts", Expect::Damaged),
    ("h264-corrupt.mp4", Expect::Damaged),
];

fn rules() -> Vec<Sampling> {
    vec![
        Sampling::All,
        Sampling::Keyframes,
        every(100),
        every(500),
        every(1000),
        every(2000),
        every(3300),
        every(10_000),
    ]
}

/// Decodes the clip with the rule: (ms from the first sample, MD5, keyframe) per frame
/// taken, and the decoder's counters.
fn sampled(
    clip: &std::path::Path,
    sampling: Sampling,
) -> (Vec<RefFrame>, gridwatch::decode::DecodeStats) {
    let mut dec = FileDecoder::open(clip).unwrap_or_else(|e| panic!("{e}"));
    let mut sampler = Sampler::new(sampling);
    let mut frame = Frame::default();
    let mut out = Vec::new();
    while dec
        .next_sampled(&mut sampler, &mut frame)
        .unwrap_or_else(|e| panic!("{e}"))
    {
        out.push(RefFrame {
            ms: frame.pts_ms.unwrap(),
            md5: corpus::md5_hex(&frame.data),
            key: frame.keyframe,
        });
    }
    (out, dec.stats())
}

#[test]
fn every_clip_samples_the_frames_ffmpeg_decodes() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for &(name, expect) in CLIPS {
        let clip = corpus::clip(name);
        if let Expect::Unreadable(why) = expect {
            let err = FileDecoder::open(&clip).err().map(|e| e.to_string());
            match err {
                Some(e) if e.contains(name) && e.contains(why) => {}
                other => failures.push(format!(
                    "{name}: expected an error with `{why}`, got {other:?}"
                )),
            }
            continue;
        }
        let all = corpus::reference(&clip);
        assert!(
            all.len() > 20,
            "{name}: FFmpeg decodes {} frames",
            all.len()
        );
        for sampling in rules() {
            let want = corpus::expected(&all, sampling);
            let (got, stats) = sampled(&clip, sampling);
            // times from the first frame FFmpeg shows (gridwatch's from the stream start)
            let base = got.first().map_or(0, |g| g.ms);
            let got_ms: Vec<i64> = got.iter().map(|g| g.ms - base).collect();
            let want_ms: Vec<i64> = want.iter().map(|w| w.ms).collect();
            checked += 1;
            if got_ms != want_ms {
                failures.push(format!(
                    "{name} {sampling}: frame times differ\n  gridwatch {got_ms:?}\n  ffmpeg    {want_ms:?}"
                ));
                continue;
            }
            let pixels = expect == Expect::Exact || sampling == Sampling::All;
            if pixels {
                for (g, w) in got.iter().zip(&want) {
                    if g.md5 != w.md5 {
                        failures.push(format!(
                            "{name} {sampling}: the frame at {} ms has other pixels than FFmpeg's",
                            w.ms
                        ));
                        break;
                    }
                }
            }
            // never more decoding than a full decode
            if stats.decoded as usize > all.len() + 1 {
                failures.push(format!(
                    "{name} {sampling}: decoded more than a full decode: {stats:?}"
                ));
            }
            // a camera's 1 s GOP sampled every 2 s: the keyframes alone are decoded
            if name == "h264-cam-25fps.mp4" && sampling == every(2000) {
                let fed = stats.fed as usize;
                if fed > got.len() + 4 {
                    failures.push(format!(
                        "{name} {sampling}: fed {fed} packets for {} samples",
                        got.len()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The clips an RTSP camera can send (H.264 / H.265), served by GStreamer's RTSP
/// server without re-encoding: the pool hands on the frames FFmpeg's full decode gives
/// for the rule, at the same times from the first, with the same pixels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_cameras_hand_on_the_frames_ffmpeg_decodes() {
    use common::rtsp::RtspServer;
    use gridwatch::ingest::{CameraConfig, CameraState, Pool, PoolOptions};
    use std::time::Duration;

    let clips: Vec<(&str, &str)> = vec![
        ("h264-medium.mp4", "h264"),
        ("h264-slow.mp4", "h264"),
        ("h264-cam-25fps.mp4", "h264"),
        ("h264-baseline.mp4", "h264"),
        ("h264-longgop.mkv", "h264"),
        ("h264-opengop.mp4", "h264"),
        ("hevc-opengop.mp4", "h265"),
        ("hevc-10bit.mkv", "h265"),
        ("h264-pal-interlaced.ts", "h264"),
        ("h264-vfr.mp4", "h264"),
        ("h264-bframes.ts", "h264"),
        ("h264-audio.mp4", "h264"),
        ("h264-size-change.ts", "h264"),
        ("h264-ts-discont.ts", "h264"),
    ];
    let dir = corpus::dir();
    let mounts: Vec<String> = clips
        .iter()
        .enumerate()
        .map(|(i, (name, codec))| format!("c{i}={codec}:{}", dir.join(name).display()))
        .collect();
    let mounts: Vec<&str> = mounts.iter().map(String::as_str).collect();
    let server = RtspServer::start(&mounts, 0);
    // enough decode workers that no job has to cover two due times (the hand-off keeps
    // only the newest frame, and the test must see every one)
    let pool = Pool::new(PoolOptions {
        decode_workers: 16,
        ..PoolOptions::default()
    });
    let rules = [every(1000), Sampling::Keyframes, every(300)];
    let mut ids = Vec::new();
    for i in 0..clips.len() {
        for (r, rule) in rules.iter().enumerate() {
            let id = format!("c{i}-r{r}");
            let mut c = CameraConfig::new(&id, server.url(&format!("c{i}")), *rule);
            c.stall_timeout = Duration::from_secs(3);
            c.backoff_min = Duration::from_secs(30); // one session: the clip once
            pool.add(c).unwrap();
            ids.push((id, i, *rule));
        }
    }
    let mut frames = Vec::new();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        pool.take_frames(&mut seen);
        frames.append(&mut seen);
        // each camera's session ends with its clip ("the server ended the stream")
        let ended = ids.iter().all(|(id, ..)| {
            pool.camera(id).is_some_and(|s| {
                s.state != CameraState::Streaming && s.reconnects == 0 && s.received > 0
            })
        });
        if ended || std::time::Instant::now() > deadline {
            break ended;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let status = pool.status();
    pool.shutdown().await;
    assert!(done, "every stream played to its end: {status:#?}");
    let mut failures = Vec::new();
    for (id, i, rule) in &ids {
        let (name, _) = clips[*i];
        let st = status.iter().find(|s| &s.id == id).unwrap();
        let want = corpus::expected(&corpus::reference(&dir.join(name)), *rule);
        // the stream starts at the clip's first frame: pts count from it, as the
        // reference's do. The hand-off keeps the newest frame only, and the server sends
        // some frames in bursts: every frame handed on must be the reference's at that
        // time, and as many must have been handed on as the reference has.
        if st.handed_on as usize != want.len() {
            let got: Vec<i64> = frames
                .iter()
                .filter(|f| &*f.camera == id.as_str())
                .map(|f| f.frame.pts_ms.unwrap())
                .collect();
            let want_ms: Vec<i64> = want.iter().map(|w| w.ms).collect();
            failures.push(format!(
                "{name} {rule} over RTSP: {} frames handed on ({} replaced), the reference has {} \
                 ({} units received, {} decoded, last error {:?})\n  \
                 seen      {got:?}\n  reference {want_ms:?}",
                st.handed_on,
                st.dropped,
                want.len(),
                st.received,
                st.decoded,
                st.last_error
            ));
            continue;
        }
        for f in frames.iter().filter(|f| &*f.camera == id.as_str()) {
            let ms = f.frame.pts_ms.unwrap();
            match want.iter().find(|w| w.ms == ms) {
                None => {
                    failures.push(format!(
                        "{name} {rule} over RTSP: a frame at {ms} ms, not in the reference"
                    ));
                    break;
                }
                Some(w) if corpus::md5_hex(&f.frame.data) != w.md5 => {
                    failures.push(format!(
                        "{name} {rule} over RTSP: the frame at {ms} ms has other pixels"
                    ));
                    break;
                }
                Some(_) => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `gridwatch run` with every clip of the corpus as a camera (played once, in real
/// time, one frame a second): each hands on as many frames as FFmpeg's decode gives
/// for the rule and finishes; the unreadable one is in backing off, its error naming
/// the file and FFmpeg's reason; the others are not held up by it.
#[test]
fn run_plays_every_clip_as_a_camera() {
    use common::node::{get, Node};
    let dir = corpus::dir();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = format!(
        "data_dir = \"{}\"\n[api]\nlisten = \"127.0.0.1:0\"\nopen_writes = true\n",
        tmp.path().join("data").display()
    );
    for (i, (name, _)) in CLIPS.iter().enumerate() {
        cfg += &format!(
            "[[camera]]\nid = \"c{i}\"\nsource = \"{}\"\nevery = \"1s\"\nloop = false\nlocation = [31.23, 121.47]\n",
            dir.join(name).display()
        );
    }
    let path = tmp.path().join("gridwatch.toml");
    std::fs::write(&path, cfg).unwrap();
    let node = Node::start("corpus", &path, "", tmp.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let cams = loop {
        let cams = get(&format!("{}/api/cameras", node.url)).expect("/api/cameras answers");
        let settled = cams.as_array().unwrap().iter().all(|c| {
            c["state"] == "stopped" || (c["state"] == "backing_off" && !c["last_error"].is_null())
        });
        if settled || std::time::Instant::now() > deadline {
            break cams;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let mut failures = Vec::new();
    for (i, (name, expect)) in CLIPS.iter().enumerate() {
        let c = cams
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == format!("c{i}").as_str())
            .unwrap();
        match expect {
            Expect::Unreadable(why) => {
                let err = c["last_error"].as_str().unwrap_or("");
                if !(err.contains(name) && err.contains(why)) || c["handed_on"] != 0 {
                    failures.push(format!("{name}: {c}"));
                }
            }
            Expect::Exact => {
                let want = corpus::expected(&corpus::reference(&dir.join(name)), every(1000)).len();
                if c["state"] != "stopped" || c["handed_on"].as_u64() != Some(want as u64) {
                    failures.push(format!(
                        "{name}: expected {want} frames handed on and the end: {c}"
                    ));
                }
            }
            Expect::Damaged => {
                // cameras skip pictures concealed over damage: fewer, never more, and
                // the damage counted
                let want = corpus::expected(&corpus::reference(&dir.join(name)), every(1000)).len();
                let got = c["handed_on"].as_u64().unwrap_or(0);
                if c["state"] != "stopped" || got == 0 || got > want as u64 || c["corrupt"] == 0 {
                    failures.push(format!(
                        "{name}: expected up to {want} frames handed on, damage counted: {c}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        node.log()
    );
}

/// Every clip through `gridwatch detect --every 1s --raw-frames` and `gridwatch bench
/// --every 1s`: the frames listed in frames.jsonl are the reference's, at the same
/// times, and each written PNG holds the reference's pixels; bench detects on as many
/// frames. The unreadable clip fails both commands with its name and FFmpeg's reason.
#[test]
fn detect_and_bench_take_every_clip() {
    use common::{gridwatch, run};
    let dir = corpus::dir();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, (name, expect)) in CLIPS.iter().enumerate() {
        let clip = dir.join(name);
        let clip_s = clip.to_str().unwrap();
        let out = tmp.path().join(format!("c{i}"));
        let out_s = out.to_str().unwrap();
        let (o, _, stderr) = run(&mut gridwatch(&[
            "detect",
            clip_s,
            "--every",
            "1s",
            "--raw-frames",
            "--no-images",
            "--out",
            out_s,
        ]));
        let (bo, bench, bench_err) = run(&mut gridwatch(&[
            "bench",
            "--clip",
            clip_s,
            "--every",
            "1s",
            "--raw-calls",
            "2",
            "--json",
        ]));
        if let Expect::Unreadable(why) = expect {
            for (ok, err) in [
                (o.status.success(), &stderr),
                (bo.status.success(), &bench_err),
            ] {
                if ok || !err.contains(name) || !err.contains(why) {
                    failures.push(format!(
                        "{name}: expected a failure naming it and `{why}`: {err}"
                    ));
                }
            }
            continue;
        }
        if !o.status.success() || !bo.status.success() {
            failures.push(format!(
                "{name}: detect or bench failed:\n{stderr}\n{bench_err}"
            ));
            continue;
        }
        let want = corpus::expected(&corpus::reference(&clip), every(1000));
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("frames.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let base = lines
            .first()
            .and_then(|l| l["pts_ms"].as_i64())
            .unwrap_or(0);
        let got_ms: Vec<i64> = lines
            .iter()
            .map(|l| l["pts_ms"].as_i64().unwrap() - base)
            .collect();
        let want_ms: Vec<i64> = want.iter().map(|w| w.ms).collect();
        if got_ms != want_ms {
            failures.push(format!(
                "{name}: detect's frames differ\n  gridwatch {got_ms:?}\n  ffmpeg    {want_ms:?}"
            ));
            continue;
        }
        if *expect == Expect::Exact {
            for (l, w) in lines.iter().zip(&want) {
                let stem = clip.file_stem().unwrap().to_string_lossy();
                let png = out.join(format!("{stem}_{:06}.png", l["frame"].as_u64().unwrap()));
                let img = opencv::imgcodecs::imread(
                    png.to_str().unwrap(),
                    opencv::imgcodecs::IMREAD_UNCHANGED,
                )
                .unwrap();
                use opencv::prelude::*;
                if corpus::md5_hex(img.data_bytes().unwrap()) != w.md5 {
                    failures.push(format!(
                        "{name}: {} has other pixels than FFmpeg's frame at {} ms",
                        png.display(),
                        w.ms
                    ));
                    break;
                }
            }
        }
        let v: serde_json::Value = serde_json::from_str(bench.trim()).unwrap();
        if v["frames"].as_u64() != Some(want.len() as u64) {
            failures.push(format!(
                "{name}: bench detected on {} frames, the reference has {}",
                v["frames"],
                want.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! Tests of violation clips: what the keeper puts in them, and the MP4 as FFmpeg's own
//! command-line tools read it back.

use std::process::Command;

use super::*;
use crate::cases::photo::PhotoRole;
use crate::decode::Frame;
use crate::rules::caption::{caption_lines, DEFAULT_FONT};
use crate::rules::evidence::tests::{at_second, crossing, noise, parked, parked_car, textured};
use crate::rules::evidence::{Captions, EvidenceKeeper};
use crate::track::{Observation, Tracker, TrackerConfig};

/// The frames of an MP4 as `ffmpeg` decodes them, grey: width, height, frames, and
/// its duration (s) as `ffprobe` reads it.
fn decoded(mp4: &[u8]) -> (usize, usize, Vec<Vec<u8>>, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    std::fs::write(&path, mp4).unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height:format=duration"])
        .args(["-of", "default=nw=1:nk=1"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8(probe.stdout).unwrap();
    let v: Vec<f64> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    let (w, h) = (v[0] as usize, v[1] as usize);
    let raw = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let frames = raw.stdout.chunks(w * h).map(<[u8]>::to_vec).collect();
    (w, h, frames, v[2])
}

fn mean_and_sd(frame: &[u8], w: usize, [x1, y1, x2, y2]: [usize; 4]) -> (f64, f64) {
    let px: Vec<f64> = (y1..y2)
        .flat_map(|y| (x1..x2).map(move |x| frame[y * w + x] as f64))
        .collect();
    let mean = px.iter().sum::<f64>() / px.len() as f64;
    let var = px.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / px.len() as f64;
    (mean, var.sqrt())
}

#[test]
fn a_clip_is_the_samples_up_to_the_violation_each_with_its_own_time() {
    let captioner = Arc::new(Captioner::load(std::path::Path::new(DEFAULT_FONT)).unwrap());
    let tz = Some(chrono_tz::Asia::Shanghai);
    let clip = ClipConfig {
        frames: 6,
        every: Duration::from_secs(1),
        shown_for: Duration::from_millis(250),
    };
    let mut keeper = EvidenceKeeper::default()
        .with_clip(clip)
        .with_captions(Some(Captions {
            captioner: captioner.clone(),
            tz,
        }));
    let mut tracker = Tracker::new(TrackerConfig::default());
    let car = parked_car();
    let passer = Observation {
        class: "person".into(),
        bbox: [240.0, 60.0, 290.0, 200.0],
        ..car.clone()
    };
    // a sample every 500 ms for 20 s; sample k is grey level 5·k
    let t0 = 1_764_750_000_000;
    for k in 0..=40 {
        let tracks = tracker
            .update(t0 + k * 500, &[car.clone(), passer.clone()])
            .to_vec();
        keeper
            .observe(t0 + k * 500, &at_second(k), &tracks, |tr| tr.class == "car")
            .unwrap();
    }
    let tracks = tracker.tracks().to_vec();
    let t = t0 + 40 * 500;
    let car_id = tracks.iter().find(|tr| tr.class == "car").unwrap().id;
    let ev = parked(car_id, t, car.bbox);
    let place = crossing();
    let e = keeper
        .evidence(t, &at_second(40), &tracks, &ev, &[], &place)
        .unwrap();
    let req = e.clip.expect("clips are on");
    // one sample a second of the last ones, then the violation's
    let ks: Vec<i64> = req.frames.iter().map(|f| (f.at_ms - t0) / 500).collect();
    assert_eq!(ks, [30, 32, 34, 36, 38, 40]);
    assert_eq!(req.at_ms(), t);
    for f in &req.frames {
        assert_eq!(f.bbox, Some(car.bbox), "the car was seen in each");
        assert_eq!(f.blur.len(), 1, "the passer is pixelated in each");
        assert_eq!(
            f.lines,
            caption_lines(PhotoRole::Clip, f.at_ms, tz, &ev, &place)
        );
    }
    let mp4 = render(&req).unwrap();
    let (w, h, frames, duration) = decoded(&mp4);
    let strip = Captioner::strip_height(320, 3) as usize;
    assert_eq!((w, h), (320, (240 + strip) & !1), "the frame and its strip");
    assert_eq!(frames.len(), 6, "one decoded frame per sample");
    for (k, f) in ks.iter().zip(&frames) {
        // each is the frame of its own time
        let (level, _) = mean_and_sd(f, w, [100, 10, 140, 50]);
        let want = 5.0 * *k as f64;
        assert!((level - want).abs() < 6.0, "sample {k}: level {level}");
        // and its strip is not blank
        let (_, sd) = mean_and_sd(f, w, [0, 242, 320, 240 + strip - 2]);
        assert!(sd > 10.0, "sample {k}: the strip has text ({sd:.1})");
    }
    assert!((duration - 1.5).abs() < 0.05, "6 × 250 ms: {duration}");
}

#[test]
fn a_bystander_is_pixelated_in_the_clip_and_nothing_else_is() {
    let frame = textured(320, 240);
    let jpeg: Arc<[u8]> = crate::draw::encode_jpeg(&frame, 90).unwrap().into();
    let bystander = [200.0, 40.0, 264.0, 200.0];
    let req = ClipRequest {
        frames: (0..3)
            .map(|i| ClipFrame {
                at_ms: i * 1000,
                jpeg: jpeg.clone(),
                bbox: None,
                blur: vec![bystander],
                scale: 1.0,
                lines: Vec::new(),
            })
            .collect(),
        label: String::new(),
        zone: Vec::new(),
        captioner: None,
        plates: None,
        mp4: Mp4Options::default(),
    };
    let (w, h, frames, _) = decoded(&render(&req).unwrap());
    assert_eq!((w, h, frames.len()), (320, 240, 3));
    for f in &frames {
        let (_, inside) = mean_and_sd(f, w, [208, 48, 256, 192]);
        let (_, outside) = mean_and_sd(f, w, [40, 48, 88, 192]);
        assert!(
            outside > 60.0 && inside < outside / 3.0,
            "texture kept outside ({outside:.1}), pixelated inside ({inside:.1})"
        );
    }
}

#[test]
fn recent_frames_stay_within_the_budget_and_go_when_nothing_is_watched() {
    let clip = ClipConfig {
        frames: ClipConfig::MAX_FRAMES,
        every: Duration::from_millis(40),
        ..ClipConfig::default()
    };
    let mut keeper = EvidenceKeeper::default().with_clip(clip);
    let mut tracker = Tracker::new(TrackerConfig::default());
    let car = parked_car();
    let (mut biggest, mut most) = (0, 0);
    for k in 0..40 {
        let frame: Frame = noise(1280, 720, k as u64);
        biggest = biggest.max(crate::draw::encode_jpeg(&frame, 85).unwrap().len());
        let tracks = tracker.update(k * 100, std::slice::from_ref(&car)).to_vec();
        keeper.observe(k * 100, &frame, &tracks, |_| true).unwrap();
        most = most.max(keeper.clip_bytes());
        assert!(
            keeper.clip_bytes() <= CLIP_BUDGET,
            "{}",
            keeper.clip_bytes()
        );
    }
    assert!(
        most > CLIP_BUDGET - biggest && most / biggest < ClipConfig::MAX_FRAMES,
        "the budget is what bounds them ({most} bytes)"
    );
    // the car gone: nothing watched, nothing kept
    for k in 40..80 {
        let tracks = tracker.update(k * 100, &[]).to_vec();
        keeper
            .observe(k * 100, &Frame::filled(64, 48, [0, 0, 0]), &tracks, |_| {
                true
            })
            .unwrap();
    }
    assert_eq!(keeper.clip_bytes(), 0);
    let off = ClipConfig {
        frames: 0,
        ..ClipConfig::default()
    };
    assert!(off.check().is_empty() && !off.on());
    let bad = ClipConfig {
        frames: 1,
        shown_for: Duration::from_secs(60),
        ..ClipConfig::default()
    };
    let problems = bad.check();
    assert!(
        problems.iter().any(|p| p.starts_with("cases.clip.frames")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("cases.clip.shown_for")),
        "{problems:?}"
    );
}

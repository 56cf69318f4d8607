//! Tests of the evidence keeper.

use super::*;
use crate::rules::caption::Captioner;
use crate::rules::Stage;
use crate::track::{Observation, Tracker, TrackerConfig};

#[test]
fn first_frame_is_from_the_start_of_the_stay() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut keeper = EvidenceKeeper::default();
    let car = Observation {
        class: "car".into(),
        score: 0.9,
        bbox: [40.0, 40.0, 100.0, 80.0],
        ground: None,
    };
    // the first frame is dark, later frames bright: the evidence must show both
    let dark = Frame::filled(160, 120, [20, 20, 20]);
    let bright = Frame::filled(160, 120, [230, 230, 230]);
    for (t, f) in [(0, &dark), (1000, &bright), (2000, &bright)] {
        let tracks = tracker.update(t, std::slice::from_ref(&car)).to_vec();
        keeper.observe(t, f, &tracks, |_| true).unwrap();
    }
    let tracks = tracker.tracks().to_vec();
    let ev = RuleEvent {
        kind: ViolationKind::IllegalParking,
        stage: Stage::Violation,
        zone: "z".into(),
        track: tracker.tracks()[0].id,
        class: "car".into(),
        since_ms: 0,
        at_ms: 2000,
        bbox: car.bbox,
        related: None,
        ground: None,
    };
    let e = keeper
        .evidence(
            2000,
            &bright,
            &tracks,
            &ev,
            &[(10.0, 10.0), (150.0, 10.0), (150.0, 110.0)],
            &Place::default(),
        )
        .unwrap();
    let mean = |jpeg: &[u8]| {
        let m =
            imgcodecs::imdecode(&Vector::from_slice(jpeg), imgcodecs::IMREAD_GRAYSCALE).unwrap();
        (
            opencv::core::mean(&m, &opencv::core::no_array()).unwrap()[0],
            m.cols(),
            m.rows(),
        )
    };
    let (first, _, _) = mean(e.jpeg(PhotoRole::FirstSight).unwrap());
    let (latest, w, h) = mean(e.jpeg(PhotoRole::Violation).unwrap());
    assert!(
        first < 80.0 && latest > 150.0,
        "first {first}, latest {latest}"
    );
    assert_eq!((w, h), (160, 120));
    let (_, cw, ch) = mean(e.jpeg(PhotoRole::Crop).unwrap());
    assert_eq!((cw, ch), (90, 60), "box 60x40 plus a quarter on each side");
}

/// A checkerboard of 4-pixel squares: JPEG keeps it, pixelation does not.
pub(crate) fn textured(w: u32, h: u32) -> Frame {
    let mut f = Frame::filled(w, h, [0, 0, 0]);
    for y in 0..h as usize {
        for x in 0..w as usize {
            let v = if (x / 4 + y / 4) % 2 == 0 { 240 } else { 20 };
            f.data[(y * w as usize + x) * 3..][..3].copy_from_slice(&[v, v, v]);
        }
    }
    f
}

fn grey(jpeg: &[u8]) -> Mat {
    imgcodecs::imdecode(&Vector::from_slice(jpeg), imgcodecs::IMREAD_GRAYSCALE).unwrap()
}

fn grey_mat(m: &impl opencv::core::ToInputArray) -> Mat {
    let mut g = Mat::default();
    imgproc::cvt_color_def(m, &mut g, imgproc::COLOR_BGR2GRAY).unwrap();
    g
}

/// Mean absolute difference of two images over a rectangle.
fn diff(a: &Mat, b: &Mat, [x1, y1, x2, y2]: [i32; 4]) -> f64 {
    let mut sum = 0.0;
    for y in y1..y2 {
        for x in x1..x2 {
            let (p, q) = (*a.at_2d::<u8>(y, x).unwrap(), *b.at_2d::<u8>(y, x).unwrap());
            sum += (p as f64 - q as f64).abs();
        }
    }
    sum / ((x2 - x1) * (y2 - y1)) as f64
}

#[test]
fn a_bystander_is_pixelated_in_every_image_and_the_vendor_is_not() {
    let frame = textured(320, 240);
    let vendor = Observation {
        class: "person".into(),
        score: 0.9,
        bbox: [20.0, 40.0, 80.0, 200.0],
        ground: None,
    };
    let passer = Observation {
        bbox: [200.0, 40.0, 260.0, 200.0],
        ..vendor.clone()
    };
    let run = |privacy: PrivacyConfig, originals: bool| {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut keeper = EvidenceKeeper::new(privacy).with_originals(originals);
        for t in [0, 1000, 2000] {
            let tracks = tracker
                .update(t, &[vendor.clone(), passer.clone()])
                .to_vec();
            keeper.observe(t, &frame, &tracks, |_| true).unwrap();
        }
        let tracks = tracker.tracks().to_vec();
        let subject = tracks.iter().find(|t| t.bbox[0] < 100.0).unwrap().id;
        let ev = RuleEvent {
            kind: ViolationKind::StreetVending,
            stage: Stage::Violation,
            zone: "z".into(),
            track: subject,
            class: "person".into(),
            since_ms: 0,
            at_ms: 2000,
            bbox: vendor.bbox,
            related: None,
            ground: None,
        };
        keeper
            .evidence(2000, &frame, &tracks, &ev, &[], &Place::default())
            .unwrap()
    };
    let private = run(PrivacyConfig::default(), true);
    let open = run(
        PrivacyConfig {
            blur: vec![],
            ..PrivacyConfig::default()
        },
        true,
    );
    // the unblurred originals, made only where something was pixelated, are the
    // photos as they would be without privacy
    let crop = private.of(PhotoRole::Crop).next().unwrap();
    assert_eq!(
        crop.original, None,
        "the close-up of the vendor shows no bystander"
    );
    for p in private.photos.iter().filter(|p| p.role != PhotoRole::Crop) {
        let original = p
            .original
            .as_ref()
            .expect("something was pixelated in each");
        let unblurred = &open.of(p.role).next().unwrap().jpeg;
        assert_eq!(original, unblurred, "{:?}", p.role);
        assert_ne!(original, &p.jpeg, "{:?}", p.role);
    }
    assert!(open.photos.iter().all(|p| p.original.is_none()));
    let off = run(PrivacyConfig::default(), false);
    assert!(off.photos.iter().all(|p| p.original.is_none()));
    let bystander = [204, 44, 256, 196];
    let vendor_box = [24, 44, 76, 196];
    let elsewhere = [100, 0, 180, 40];
    for (name, role) in [
        ("first", PhotoRole::FirstSight),
        ("middle", PhotoRole::Middle),
        ("violation", PhotoRole::Violation),
    ] {
        let (p, o) = (private.jpeg(role).unwrap(), open.jpeg(role).unwrap());
        let (p, o) = (grey(p), grey(o));
        let d = diff(&p, &o, bystander);
        assert!(
            d > 40.0,
            "{name}: the bystander's box changed by {d:.1} only"
        );
        // the outline and label are drawn the same on both; the texture away from
        // the boxes and the vendor are untouched
        assert!(diff(&p, &o, elsewhere) < 1.0, "{name}: outside the box");
        assert!(diff(&p, &o, vendor_box) < 1.0, "{name}: the vendor");
    }
    // the crop (the vendor with a margin) holds no bystander here: alike
    let crop = |e: &Evidence| grey(e.jpeg(PhotoRole::Crop).unwrap());
    assert!(diff(&crop(&private), &crop(&open), [0, 0, 30, 30]) < 1.0);
}

#[test]
fn subjects_kept_are_bounded_and_forgotten() {
    let mut k = EvidenceKeeper::default();
    let frame = Frame::filled(64, 48, [10, 20, 30]);
    for id in 0..(MAX_OBJECTS as u64 + 40) {
        k.remember(
            ViolationKind::Dumping,
            id,
            id as i64,
            [1.0, 1.0, 9.0, 9.0],
            &frame,
            &[],
        )
        .unwrap();
    }
    assert_eq!(k.objects(), MAX_OBJECTS, "the oldest go past the bound");
    k.forget(ViolationKind::Dumping, MAX_OBJECTS as u64 + 39);
    assert_eq!(k.objects(), MAX_OBJECTS - 1);
}

pub(crate) fn parked(track: u64, at_ms: i64, bbox: [f32; 4]) -> RuleEvent {
    RuleEvent {
        kind: ViolationKind::IllegalParking,
        stage: Stage::Violation,
        zone: "解放路-东".into(),
        track,
        class: "car".into(),
        since_ms: 0,
        at_ms,
        bbox,
        related: None,
        ground: None,
    }
}

/// Where the strips of these tests say a case is: Chinese names, a cell.
pub(crate) fn crossing() -> Place<'static> {
    Place {
        camera: "街口-1",
        name: "城东区/解放路",
        cell: "C-0412",
        lat: 31.230416,
        lon: 121.473701,
    }
}

/// A car standing at one place of a 320x240 frame.
pub(crate) fn parked_car() -> Observation {
    Observation {
        class: "car".into(),
        score: 0.9,
        bbox: [60.0, 80.0, 180.0, 160.0],
        ground: None,
    }
}

/// A frame whose brightness says its time: `t` seconds → grey level 5·t.
pub(crate) fn at_second(t: i64) -> Frame {
    let v = (5 * t).min(250) as u8;
    Frame::filled(320, 240, [v, v, v])
}

#[test]
fn the_sequence_spans_the_stay_and_each_strip_says_its_photo() {
    let captioner = Arc::new(
        Captioner::load(std::path::Path::new(super::super::caption::DEFAULT_FONT))
            .expect("the CJK font (scripts/setup.sh installs fonts-wqy-microhei)"),
    );
    let tz = Some(chrono_tz::Asia::Shanghai);
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut keeper = EvidenceKeeper::default().with_captions(Some(Captions {
        captioner: captioner.clone(),
        tz,
    }));
    let car = parked_car();
    let t0 = 1_764_750_000_000;
    for s in 0..=40 {
        let tracks = tracker
            .update(t0 + s * 1000, std::slice::from_ref(&car))
            .to_vec();
        keeper
            .observe(t0 + s * 1000, &at_second(s), &tracks, |_| true)
            .unwrap();
    }
    let tracks = tracker.tracks().to_vec();
    let t = t0 + 40_000;
    let ev = parked(tracks[0].id, t, car.bbox);
    let place = crossing();
    let e = keeper
        .evidence(t, &at_second(40), &tracks, &ev, &[], &place)
        .unwrap();
    let roles: Vec<PhotoRole> = e.photos.iter().map(|p| p.role).collect();
    assert_eq!(roles[0], PhotoRole::FirstSight);
    assert_eq!(
        &roles[roles.len() - 2..],
        [PhotoRole::Violation, PhotoRole::Crop]
    );
    let middle: Vec<i64> = e.of(PhotoRole::Middle).map(|p| p.at_ms - t0).collect();
    assert!(
        (2..=MAX_MIDDLE).contains(&middle.len()),
        "middle frames at {middle:?}"
    );
    // spread over the stay: one in each half, none at its ends
    assert!(
        middle[0] <= 20_000 && middle[middle.len() - 1] > 20_000,
        "{middle:?}"
    );
    assert!(middle.iter().all(|&m| m > 0 && m < 40_000), "{middle:?}");
    let times: Vec<i64> = e.photos.iter().map(|p| p.at_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(times[0], t0);
    for p in e.photos.iter().filter(|p| p.role != PhotoRole::Crop) {
        let img =
            imgcodecs::imdecode(&Vector::from_slice(&p.jpeg), imgcodecs::IMREAD_COLOR).unwrap();
        let h = Captioner::strip_height(320, 3) as i32;
        assert_eq!((img.cols(), img.rows()), (320, 240 + h), "{:?}", p.role);
        // the photo is the frame of its own time
        let above = Mat::roi(&img, Rect::new(100, 10, 40, 40)).unwrap();
        let level = opencv::core::mean(&above, &opencv::core::no_array()).unwrap()[0];
        let want = (5 * (p.at_ms - t0) / 1000) as f64;
        assert!(
            (level - want).abs() < 4.0,
            "{:?}: {level} for {want}",
            p.role
        );
        // its strip reads as its own lines, not as those of the photo before or after
        let strip = grey_mat(&Mat::roi(&img, Rect::new(0, 240, 320, h)).unwrap());
        let render = |at: i64, role| {
            let lines = caption_lines(role, at, tz, &ev, &place);
            grey_mat(&captioner.strip(320, &lines).unwrap())
        };
        let own = diff(&strip, &render(p.at_ms, p.role), [0, 0, 320, h]);
        let other = diff(
            &strip,
            &render(p.at_ms + 60_000, PhotoRole::Latest),
            [0, 0, 320, h],
        );
        assert!(
            own < 4.0 && other > 2.0 * own,
            "{:?}: {own:.2} vs {other:.2}",
            p.role
        );
    }
    let lines = caption_lines(PhotoRole::FirstSight, t0, tz, &ev, &place);
    assert_eq!(
        lines,
        [
            "2025-12-03 16:20:00 +08:00  first sight  illegal_parking  zone 解放路-东",
            "camera 街口-1  31.230416, 121.473701",
            "城东区/解放路  cell C-0412",
        ]
    );
}

/// Noise (JPEG keeps little of it small): a frame of about 1.5 MB, different per `seed`.
pub(crate) fn noise(w: u32, h: u32, seed: u64) -> Frame {
    let mut f = Frame::filled(w, h, [0, 0, 0]);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for v in f.data.iter_mut() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *v = (x >> 56) as u8;
    }
    f
}

/// A dumped object appears at `t` (id `t`), then the keeper looks at the frame.
fn new_subject_then_sample(k: &mut EvidenceKeeper, t: i64, frame: &Frame) {
    let bbox = [1.0, 1.0, 9.0, 9.0];
    k.remember(ViolationKind::Dumping, t as u64, t, bbox, frame, &[])
        .unwrap();
    k.observe(t, frame, &[], |_| true).unwrap();
}

#[test]
fn the_stays_of_a_camera_share_their_middle_frames() {
    let mut k = EvidenceKeeper::default();
    let frame = textured(320, 240);
    let mut canvas = Mat::default();
    copy_to_canvas(&frame, &mut canvas).unwrap();
    let jpeg = encode(&canvas).unwrap().len();
    for t in 0..200i64 {
        // a new subject every sample: stays of every length at once
        new_subject_then_sample(&mut k, t, &frame);
        // stays of one stride keep the same frames: a few per stride, log₂ 200 < 8
        // strides, not three frames per subject
        assert!(
            k.middle_bytes() <= (MAX_MIDDLE + 1) * 8 * jpeg,
            "{} bytes of middle frames for {} subjects at sample {t}",
            k.middle_bytes(),
            k.objects()
        );
    }
    assert!(k.middle_bytes() > 0);
    for id in 0..200u64 {
        k.forget(ViolationKind::Dumping, id);
    }
    assert_eq!(k.middle_bytes(), 0, "forgotten subjects free their frames");
}

#[test]
fn middle_frames_stay_within_one_budget() {
    let mut k = EvidenceKeeper::default();
    let (mut most, mut biggest) = (0, 0);
    for t in 0..64i64 {
        let frame = noise(1280, 720, t as u64);
        let mut canvas = Mat::default();
        copy_to_canvas(&frame, &mut canvas).unwrap();
        biggest = biggest.max(encode(&canvas).unwrap().len());
        new_subject_then_sample(&mut k, t, &frame);
        most = most.max(k.middle_bytes());
        assert!(
            k.middle_bytes() <= MIDDLE_BUDGET + biggest,
            "{} bytes of middle frames at sample {t}",
            k.middle_bytes()
        );
    }
    assert!(
        most > MIDDLE_BUDGET,
        "the frames are big enough that the budget is what bounds them ({most} bytes)"
    );
}

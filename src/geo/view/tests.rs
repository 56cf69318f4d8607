//! The view checks on real frames of the street clip, warped, blurred, blacked out and
//! frozen the way cameras are.

use super::*;
use crate::decode::{FileDecoder, Sampler, Sampling};

/// Frames of the street clip, one every `every`.
fn street(n: usize, every: std::time::Duration) -> Vec<Frame> {
    let path = crate::source_dir().join("samples/street.mp4");
    let mut dec = FileDecoder::open(&path).unwrap();
    let mut s = Sampler::new(Sampling::Every(every));
    let mut out = Vec::new();
    while out.len() < n {
        let mut f = Frame::default();
        assert!(dec.next_sampled(&mut s, &mut f).unwrap(), "the clip ended");
        out.push(f);
    }
    out
}

/// `f` through the homography `h` (3×3, row-major), as a camera that moved by it sees.
fn warp(f: &Frame, h: [f64; 9]) -> Frame {
    let hm = Mat::from_slice_2d(&[&h[0..3], &h[3..6], &h[6..9]]).unwrap();
    let mut out = Frame::default();
    super::warp(f, &hm, core::BORDER_REPLICATE, &mut out).unwrap();
    out
}

fn map(h: [f64; 9], x: f64, y: f64) -> (f64, f64) {
    let w = h[6] * x + h[7] * y + h[8];
    (
        (h[0] * x + h[1] * y + h[2]) / w,
        (h[3] * x + h[4] * y + h[5]) / w,
    )
}

/// A pan of `dx` pixels with a turn of `deg` degrees about the frame's centre.
fn pan(f: &Frame, dx: f64, deg: f64) -> [f64; 9] {
    let (cx, cy) = (f.width as f64 / 2.0, f.height as f64 / 2.0);
    let (s, c) = deg.to_radians().sin_cos();
    [
        c,
        -s,
        cx - c * cx + s * cy + dx,
        s,
        c,
        cy - s * cx - c * cy,
        0.0,
        0.0,
        1.0,
    ]
}

fn watch(reference: &Frame) -> ViewWatch {
    let mut w = ViewWatch::new(ViewConfig::default()).unwrap();
    assert_eq!(w.observe(reference).unwrap(), &ViewState::Steady, "learned");
    w
}

#[test]
fn the_reference_view_is_steady_through_traffic_and_light() {
    let frames = street(6, std::time::Duration::from_secs(2));
    let mut w = watch(&frames[0]);
    for f in &frames[1..] {
        assert_eq!(w.observe(f).unwrap(), &ViewState::Steady);
    }
    // darker, as at dusk: still the view
    let mut dusk = frames[3].clone();
    for b in dusk.data.iter_mut() {
        *b = (*b as f32 * 0.55) as u8;
    }
    assert_eq!(w.observe(&dusk).unwrap(), &ViewState::Steady);
}

#[test]
fn small_pans_are_corrected_to_within_three_pixels_and_large_turns_pause() {
    let frames = street(3, std::time::Duration::from_secs(2));
    let (f0, f1) = (&frames[0], &frames[2]);
    let mut w = watch(f0);
    // the corners of a zone in the reference view's pixels
    let zone = [
        (300.0, 400.0),
        (700.0, 420.0),
        (720.0, 600.0),
        (280.0, 560.0),
    ];
    for (dx, deg) in [(12.0, 0.0), (-25.0, 1.0), (40.0, -2.0), (6.0, 0.5)] {
        // the camera moved by h: a ground point at p in the reference is at h(p) now
        let h = pan(f0, dx, deg);
        let moved = warp(f1, h);
        let st = w.observe(&moved).unwrap().clone();
        let ViewState::Shifted {
            shift_px,
            rotation_deg,
        } = st
        else {
            panic!("pan {dx} px, {deg}°: {st:?}")
        };
        assert!(shift_px > 4.0 && shift_px < 150.0, "{shift_px}");
        assert!((rotation_deg + deg).abs() < 0.5, "{rotation_deg} for {deg}");
        // where the zone is now, carried back into the reference, lands on the zone
        for &(x, y) in &zone {
            let (u, v) = map(h, x, y);
            let (bx, by) = w.point_to_reference(u, v);
            let err = ((bx - x).powi(2) + (by - y).powi(2)).sqrt();
            assert!(
                err < 3.0,
                "pan {dx} px {deg}°: ({x}, {y}) back at ({bx:.1}, {by:.1})"
            );
        }
        // the corrected frame is the reference view again
        let mut out = Frame::default();
        assert!(w.correct(&moved, &mut out).unwrap());
        let mut again = ViewWatch::new(ViewConfig::default()).unwrap();
        again.observe(f0).unwrap();
        assert_eq!(
            again.observe(&out).unwrap(),
            &ViewState::Steady,
            "pan {dx}: corrected"
        );
    }
    for (dx, deg) in [(250.0, 0.0), (0.0, 12.0), (600.0, 5.0)] {
        let st = w.observe(&warp(f1, pan(f0, dx, deg))).unwrap().clone();
        assert!(st.paused(), "pan {dx} px, {deg}°: {st:?}");
        assert!(
            matches!(
                st,
                ViewState::ViewMoved { .. } | ViewState::ViewChanged { .. }
            ),
            "{st:?}"
        );
    }
    // and back: steady again, nothing to correct
    assert_eq!(w.observe(f1).unwrap(), &ViewState::Steady);
    assert!(!w.correct(f1, &mut Frame::default()).unwrap());
}

#[test]
fn covered_defocused_frozen_and_another_scene_each_pause_and_recover() {
    let frames = street(4, std::time::Duration::from_secs(2));
    let mut w = watch(&frames[0]);
    let black = Frame::filled(frames[0].width, frames[0].height, [3, 3, 3]);
    assert!(matches!(
        w.observe(&black).unwrap(),
        ViewState::Covered { .. }
    ));
    let grey = Frame::filled(frames[0].width, frames[0].height, [128, 128, 128]);
    assert!(
        matches!(w.observe(&grey).unwrap(), ViewState::Covered { .. }),
        "sprayed over"
    );
    // a smeared lens
    let src = crate::draw::frame_mat(&frames[1]).unwrap();
    let mut blurred = Mat::default();
    imgproc::gaussian_blur_def(&src, &mut blurred, Size::new(31, 31), 12.0).unwrap();
    let mut smeared = frames[1].clone();
    smeared.data.copy_from_slice(blurred.data_bytes().unwrap());
    let st = w.observe(&smeared).unwrap().clone();
    assert!(matches!(st, ViewState::Defocused { .. }), "{st:?}");
    assert!(st.paused());
    // another scene altogether (a photo where the street was)
    let mut other = Frame::default();
    crate::decode::image::read_image(&crate::source_dir().join("samples/kite.jpg"), &mut other)
        .unwrap();
    let st = w.observe(&other).unwrap().clone();
    assert!(matches!(st, ViewState::ViewChanged { .. }), "{st:?}");
    // recovery
    assert_eq!(w.observe(&frames[2]).unwrap(), &ViewState::Steady);
    // one image again and again while the stream delivers
    let cfg = ViewConfig {
        frozen_samples: 5,
        ..ViewConfig::default()
    };
    let mut w = ViewWatch::new(cfg).unwrap();
    let mut states = Vec::new();
    for _ in 0..6 {
        states.push(w.observe(&frames[3]).unwrap().name());
    }
    assert_eq!(
        states,
        ["steady", "steady", "steady", "steady", "frozen", "frozen"]
    );
    assert_eq!(
        w.observe(&frames[2]).unwrap(),
        &ViewState::Steady,
        "moving again"
    );
}

#[test]
fn between_registrations_a_sample_like_the_last_keeps_its_state_and_a_moved_one_is_registered_at_once(
) {
    let frames = street(12, std::time::Duration::from_secs(2));
    let cfg = ViewConfig::default();
    let mut w = ViewWatch::new(cfg.clone()).unwrap();
    let mut thumb = |f: &Frame| {
        w.small_grey(f).unwrap();
        let mut t = Mat::default();
        register::thumbnail(&w.small, &mut t).unwrap();
        t
    };
    // traffic 2 to 20 s apart changes a few per cent of the thumbnail; a pan of 8 px
    // and more, a tenth and more
    let first = thumb(&frames[0]);
    for f in &frames[1..] {
        let share = register::changed_share(&thumb(f), &first).unwrap();
        assert!(share < cfg.change_share / 2.0, "traffic: {share}");
    }
    for dx in [8.0, 24.0, 60.0, 250.0] {
        let share =
            register::changed_share(&thumb(&warp(&frames[1], pan(&frames[1], dx, 0.0))), &first)
                .unwrap();
        assert!(share > cfg.change_share, "pan {dx} px: {share}");
    }
    // registered every 5th sample through traffic
    let mut w = watch(&frames[0]);
    for f in &frames[1..9] {
        assert_eq!(w.observe(f).unwrap(), &ViewState::Steady);
    }
    assert_eq!(
        w.registrations(),
        2,
        "the first sample and the 5th after it"
    );
    // a pan between registrations is registered at once, and its correction kept
    // for the samples like it that follow
    for (i, f) in frames[9..].iter().enumerate() {
        let moved = warp(f, pan(f, 60.0, 0.0));
        let st = w.observe(&moved).unwrap().clone();
        assert!(matches!(st, ViewState::Shifted { .. }), "{st:?}");
        assert!(w.correct(&moved, &mut Frame::default()).unwrap());
        assert_eq!(w.registrations(), 3, "sample {i} of the pan");
    }
}

/// The `w`×`h` part of `f` at (`x`, `y`): what a camera steered there sees.
fn crop(f: &Frame, x: i32, y: i32, w: i32, h: i32) -> Frame {
    f.crop(x as u32, y as u32, w as u32, h as u32)
}

#[test]
fn presets_are_recognised_from_the_image_and_a_view_of_none_pauses() {
    let frames = street(6, std::time::Duration::from_secs(2));
    // two positions of a camera steered over the street: two crops of the wider frame,
    // 240 px apart
    let a = |f: &Frame| crop(f, 0, 0, 576, 432);
    let b = |f: &Frame| crop(f, 192, 144, 576, 432);
    let mut w =
        ViewWatch::with_presets(ViewConfig::default(), &[a(&frames[0]), b(&frames[0])]).unwrap();
    assert_eq!(w.state(), &ViewState::Learning, "no sample yet");
    let mut seen = Vec::new();
    for (i, f) in frames[1..].iter().enumerate() {
        let view = if i % 2 == 0 { a(f) } else { b(f) };
        let st = w.observe(&view).unwrap().clone();
        seen.push((st.name(), w.preset()));
    }
    assert_eq!(
        seen,
        [
            ("steady", Some(0)),
            ("steady", Some(1)),
            ("steady", Some(0)),
            ("steady", Some(1)),
            ("steady", Some(0)),
        ]
    );
    // near a preset: corrected against it
    let st = w
        .observe(&crop(&frames[3], 172, 144, 576, 432))
        .unwrap()
        .clone();
    assert!(matches!(st, ViewState::Shifted { .. }), "{st:?}");
    assert_eq!(w.preset(), Some(1));
    // a view of neither (another scene at the stream's size): paused, at no preset
    let mut kite = Frame::default();
    crate::decode::image::read_image(&crate::source_dir().join("samples/kite.jpg"), &mut kite)
        .unwrap();
    let mut small = Mat::default();
    let src = crate::draw::frame_mat(&kite).unwrap();
    imgproc::resize(
        &src,
        &mut small,
        Size::new(576, 432),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .unwrap();
    let mut other = Frame::default();
    other.reshape(576, 432);
    other.data.copy_from_slice(small.data_bytes().unwrap());
    let st = w.observe(&other).unwrap().clone();
    assert!(matches!(st, ViewState::ViewChanged { .. }), "{st:?}");
    assert_eq!(w.preset(), None);
    assert_eq!(w.observe(&a(&frames[5])).unwrap(), &ViewState::Steady);
    assert_eq!(w.preset(), Some(0));
    // a preset picture nothing can be recognised in is refused
    let black = Frame::filled(576, 432, [0, 0, 0]);
    let e = ViewWatch::with_presets(ViewConfig::default(), &[a(&frames[0]), black])
        .err()
        .expect("refused");
    assert!(e.message.contains("reference 2"), "{e}");
}

//! The view check's cost per sample beside the detector's, in one run on the same
//! frames of the street clip: `observe` of a steady sample registered every time
//! (`every = 1`), the same at the default `every = 5` (four samples in five compared
//! with the last registered one, a thumbnail), `observe` + `correct` of one shifted
//! 24 px (the frame carried into the reference view), a PTZ camera at the second of
//! two presets (matched against both), and the bundled NanoDet's `detect` on the same
//! frame (preprocess, inference, postprocess) — the check's share of the pipeline is
//! their ratio.

use criterion::{criterion_group, criterion_main, Criterion};
use gridwatch::decode::{FileDecoder, Frame, Sampler, Sampling};
use gridwatch::detect::{Detector, EngineOptions, ModelManifest};
use gridwatch::geo::view::{ViewConfig, ViewState, ViewWatch};
use opencv::core::{self, Mat};

fn frames() -> Vec<Frame> {
    let path = gridwatch::source_dir().join("samples/street.mp4");
    let mut dec = FileDecoder::open(&path).unwrap();
    let mut s = Sampler::new(Sampling::Every(std::time::Duration::from_secs(2)));
    let mut out = Vec::new();
    while out.len() < 4 {
        let mut f = Frame::default();
        assert!(dec.next_sampled(&mut s, &mut f).unwrap());
        out.push(f);
    }
    out
}

fn shifted(f: &Frame, dx: f64) -> Frame {
    let h = Mat::from_slice_2d(&[[1.0, 0.0, dx], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
    let mut out = Frame::default();
    gridwatch::geo::view::warp(f, &h, core::BORDER_REPLICATE, &mut out).unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let fs = frames();
    let mut g = c.benchmark_group("view");
    let every = |n| ViewConfig {
        every: n,
        ..ViewConfig::default()
    };
    let mut w = ViewWatch::new(every(1)).unwrap();
    assert_eq!(w.observe(&fs[0]).unwrap(), &ViewState::Steady);
    // frames in turn: one frame again and again is a frozen camera
    let mut i = 0;
    g.bench_function(
        format!("observe-steady-{}x{}-every-1", fs[0].width, fs[0].height),
        |b| {
            b.iter(|| {
                i += 1;
                assert_eq!(w.observe(&fs[1 + i % 3]).unwrap().name(), "steady")
            })
        },
    );
    let mut w5 = ViewWatch::new(every(5)).unwrap();
    assert_eq!(w5.observe(&fs[0]).unwrap(), &ViewState::Steady);
    g.bench_function("observe-steady-every-5", |b| {
        b.iter(|| {
            i += 1;
            assert_eq!(w5.observe(&fs[1 + i % 3]).unwrap().name(), "steady")
        })
    });
    // a PTZ camera of two presets (the view, and the view panned 300 px), at the second
    let far: Vec<Frame> = fs.iter().map(|f| shifted(f, 300.0)).collect();
    let mut ptz = ViewWatch::with_presets(every(1), &[fs[0].clone(), far[0].clone()]).unwrap();
    g.bench_function("observe-ptz-changing-preset-every-sample", |b| {
        b.iter(|| {
            i += 1;
            // each sample at the other preset: tried against the last one first, then
            // against the one it is at
            let (f, at) = if i % 2 == 0 {
                (&far[1 + i % 3], 1)
            } else {
                (&fs[1 + i % 3], 0)
            };
            let st = ptz.observe(f).unwrap().name();
            assert_eq!((st, ptz.preset()), ("steady", Some(at)));
        })
    });
    let moved: Vec<Frame> = fs[1..].iter().map(|f| shifted(f, 24.0)).collect();
    let mut out = Frame::default();
    g.bench_function("observe-and-correct-shifted-24px", |b| {
        b.iter(|| {
            i += 1;
            let m = &moved[i % 3];
            assert_eq!(w.observe(m).unwrap().name(), "shifted");
            assert!(w.correct(m, &mut out).unwrap());
        })
    });
    let manifest = ModelManifest::load(&gridwatch::detect::default_model()).unwrap();
    let mut det = Detector::load(manifest, &EngineOptions::default()).unwrap();
    let mut dets = Vec::new();
    g.bench_function("detect-nanodet-same-frame", |b| {
        b.iter(|| det.detect(std::slice::from_ref(&fs[2]), &mut dets).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

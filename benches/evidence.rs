//! What evidence clips cost. Per sample, on the detection thread while a subject is in
//! sight: the frame kept for a clip (resized to the clip's size, JPEG), against what a
//! full-size JPEG of the same frame costs. Per case, on the clip worker: eight kept
//! frames drawn, captioned and encoded as the MP4. Frames are the sample photo scaled
//! to each size (real texture, not noise).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gridwatch::decode::Frame;
use gridwatch::rules::clip::{clip_jpeg, render, ClipFrame, ClipRequest};
use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;

fn photo(w: i32, h: i32) -> Frame {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/person.jpg");
    let mut f = Frame::default();
    gridwatch::decode::image::read_image(&path, &mut f).unwrap();
    let src = gridwatch::draw::frame_mat(&f).unwrap();
    let mut out = Mat::default();
    imgproc::resize(
        &src,
        &mut out,
        Size::new(w, h),
        0.0,
        0.0,
        imgproc::INTER_LINEAR,
    )
    .unwrap();
    let mut frame = Frame::filled(w as u32, h as u32, [0; 3]);
    frame.data.copy_from_slice(out.data_bytes().unwrap());
    frame
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("evidence");
    for (w, h) in [(704, 576), (1280, 720), (1920, 1080)] {
        let f = photo(w, h);
        let size = format!("{w}x{h}");
        g.bench_with_input(BenchmarkId::new("full-size-jpeg", &size), &f, |b, f| {
            b.iter(|| gridwatch::draw::encode_jpeg(f, 85).unwrap())
        });
        let mut small = Mat::default();
        g.bench_with_input(BenchmarkId::new("clip-frame", &size), &f, |b, f| {
            b.iter(|| clip_jpeg(f, &mut small).unwrap())
        });
    }
    let f = photo(1920, 1080);
    let (jpeg, scale) = clip_jpeg(&f, &mut Mat::default()).unwrap();
    let req = ClipRequest {
        frames: (0..8)
            .map(|i| ClipFrame {
                at_ms: i * 1000,
                jpeg: jpeg.clone(),
                bbox: Some([600.0, 300.0, 1100.0, 800.0]),
                blur: vec![[100.0, 100.0, 300.0, 600.0]],
                scale,
                lines: Vec::new(),
            })
            .collect(),
        label: "car".into(),
        zone: vec![(500.0, 200.0), (1300.0, 200.0), (1300.0, 900.0)],
        captioner: None,
        plates: None,
        mp4: Default::default(),
    };
    g.sample_size(10);
    g.bench_function("clip-mp4/8-frames-of-1920x1080", |b| {
        b.iter(|| render(&req).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

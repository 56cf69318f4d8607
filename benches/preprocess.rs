//! Preprocessing cost per frame: resize (OpenCV INTER_LINEAR) + normalise into the
//! tensor, for the bundled NanoDet input (stretch to 416) and a YOLO-style letterbox
//! to 640, from the sample clip's size and from 1080p.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gridwatch::decode::Frame;
use gridwatch::detect::manifest::{ChannelOrder, InputSpec, ResizeMode, TensorLayout};
use gridwatch::detect::Preprocessor;

fn spec(size: u32, resize: ResizeMode, channels: ChannelOrder) -> InputSpec {
    InputSpec {
        name: "x".into(),
        width: size,
        height: size,
        layout: TensorLayout::Nchw,
        channels,
        mean: [103.53, 116.28, 123.675],
        std: [57.375, 57.12, 58.395],
        resize,
        pad: 114,
    }
}

/// A frame with texture, so nothing is special-cased by flat input.
fn frame(w: u32, h: u32) -> Frame {
    let mut f = Frame::filled(w, h, [0; 3]);
    for (i, b) in f.data.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    f
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("preprocess");
    let cases = [
        (
            "nanodet416-stretch",
            spec(416, ResizeMode::Stretch, ChannelOrder::Bgr),
        ),
        (
            "yolo640-letterbox",
            spec(640, ResizeMode::Letterbox, ChannelOrder::Rgb),
        ),
    ];
    for (name, s) in cases {
        let mut pre = Preprocessor::new(&s);
        let mut out = vec![0.0f32; pre.item_len()];
        for (w, h) in [(768, 576), (1920, 1080)] {
            let f = frame(w, h);
            g.bench_with_input(BenchmarkId::new(name, format!("{w}x{h}")), &f, |b, f| {
                b.iter(|| pre.run(f, &mut out).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

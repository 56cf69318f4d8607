//! Postprocessing cost: class-aware NMS over candidate sets of realistic sizes, and
//! NanoDet output decoding (3 levels, 80 classes) at a 0.35 threshold.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gridwatch::detect::postprocess::nms;
use gridwatch::detect::{Candidate, OutputLayout, OutputView};

/// Deterministic pseudo-random numbers in 0..1.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Clustered candidates: objects with several overlapping boxes each, as detectors give.
fn candidates(n: usize) -> Vec<Candidate> {
    let mut r = Lcg(7);
    let objects = (n / 8).max(1);
    let centres: Vec<(f32, f32, u32)> = (0..objects)
        .map(|_| {
            (
                r.next() * 1800.0,
                r.next() * 1000.0,
                (r.next() * 5.0) as u32,
            )
        })
        .collect();
    (0..n)
        .map(|i| {
            let (cx, cy, class_id) = centres[i % objects];
            let (dx, dy) = (r.next() * 12.0 - 6.0, r.next() * 12.0 - 6.0);
            Candidate {
                bbox: [cx + dx, cy + dy, cx + dx + 60.0, cy + dy + 120.0],
                score: 0.3 + 0.7 * r.next(),
                class_id,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("nms");
    for n in [100, 1000, 5000] {
        let base = candidates(n);
        let mut work = base.clone();
        let mut kept = Vec::new();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                work.copy_from_slice(&base);
                nms(&mut work, Some(0.5), 100, &mut kept);
                kept.len()
            })
        });
    }
    g.finish();

    let layout = OutputLayout::Nanodet {
        strides: vec![8, 16, 32],
        reg_max: 10,
        scores: vec!["s8".into(), "s16".into(), "s32".into()],
        boxes: vec!["b8".into(), "b16".into(), "b32".into()],
    };
    let mut r = Lcg(11);
    let cells = [2704usize, 676, 169];
    // mostly low scores, as real frames give: about 1 in 1000 (cell, class) pairs
    // passes the threshold, a few hundred candidates a frame
    let scores: Vec<Vec<f32>> = cells
        .iter()
        .map(|&n| {
            (0..n * 80)
                .map(|_| {
                    if r.next() < 0.001 {
                        0.4 + 0.5 * r.next()
                    } else {
                        0.3 * r.next()
                    }
                })
                .collect()
        })
        .collect();
    let boxes: Vec<Vec<f32>> = cells
        .iter()
        .map(|&n| (0..n * 44).map(|_| r.next() * 4.0).collect())
        .collect();
    let shapes: Vec<[usize; 3]> = cells
        .iter()
        .map(|&n| [1, n, 80])
        .chain(cells.iter().map(|&n| [1, n, 44]))
        .collect();
    let data: Vec<&Vec<f32>> = scores.iter().chain(boxes.iter()).collect();
    let views: Vec<OutputView<'_>> = shapes
        .iter()
        .zip(&data)
        .map(|(s, d)| OutputView { shape: s, data: d })
        .collect();
    let mut out = Vec::new();
    c.bench_function("decode/nanodet416", |b| {
        b.iter(|| {
            out.clear();
            layout.decode(&views, 0, 80, 0.35, 416, &mut out);
            out.len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

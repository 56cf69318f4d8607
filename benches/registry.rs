//! The camera registry at 10 000 cameras: a catalogue imported (every row new; then
//! again, every row unchanged), a node's first read of the whole list (what a node
//! starting does), and one page of the API's list from a node's copy (100 cameras at
//! offset 9 900, and a label filter over all). SQLite always; PostgreSQL too when
//! `GRIDWATCH_BENCH_PG_URL` names an empty database (`scripts/bench-postgres.sh`).
//! The lease heartbeat with 10 000 cameras is `cargo bench --bench cases`'s
//! `cluster/beat/10000-cameras-2-nodes`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gridwatch::cases::DedupConfig;
use gridwatch::registry::view::{CameraQuery, View};
use gridwatch::registry::{Actor, CameraEntry, Registry};

const N: usize = 10_000;

fn catalogue(tag: &str) -> Vec<CameraEntry> {
    (0..N)
        .map(|i| {
            let mut c = CameraEntry::new(
                &format!("cam-{i:05}"),
                &format!(
                    "rtsp://10.{}.{}.{}/{tag}",
                    i / 65536,
                    (i / 256) % 256,
                    i % 256
                ),
            );
            c.location = Some([31.2 + i as f64 * 1e-5, 121.4]);
            c.labels.insert("district".into(), format!("d{}", i % 16));
            c
        })
        .collect()
}

/// The registries to measure (emptied first): SQLite, and PostgreSQL when given.
fn registries(dir: &std::path::Path) -> Vec<(&'static str, Registry)> {
    gridwatch::cases::sqlite::SqliteStore::open(dir, DedupConfig::default()).unwrap();
    let mut out = vec![("sqlite", Registry::open(None, dir).unwrap())];
    match std::env::var("GRIDWATCH_BENCH_PG_URL") {
        Ok(url) if !url.is_empty() => {
            gridwatch::cases::postgres::PgStore::open(&url, dir, DedupConfig::default()).unwrap();
            out.push(("postgres", Registry::open(Some(&url), dir).unwrap()));
        }
        _ => eprintln!(
            "registry bench: PostgreSQL not measured (scripts/bench-postgres.sh sets GRIDWATCH_BENCH_PG_URL)"
        ),
    }
    out
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let who = Actor::system("bench");
    let mut g = c.benchmark_group("registry");
    g.throughput(Throughput::Elements(N as u64));
    for (name, reg) in registries(tmp.path()) {
        // every row new: a fresh set of sources each time changes every camera
        let mut round = 0;
        g.bench_function(format!("{name}/import-{N}-changed"), |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let cams = catalogue(&format!("r{round}"));
                    let t = Instant::now();
                    let s = reg.import(&who, &cams).unwrap();
                    took += t.elapsed();
                    assert_eq!(s.unchanged, 0);
                }
                took
            })
        });
        let same = catalogue(&format!("r{round}"));
        g.bench_function(format!("{name}/import-{N}-unchanged"), |b| {
            b.iter(|| assert_eq!(reg.import(&who, &same).unwrap().unchanged, N))
        });
        g.bench_function(format!("{name}/first-sync-{N}"), |b| {
            b.iter(|| {
                let v = View::of_registry();
                v.sync(&reg).unwrap();
                assert_eq!(v.len(), N);
            })
        });
    }
    let (_, reg) = registries(tmp.path()).remove(0);
    let view = View::of_registry();
    view.sync(&reg).unwrap();
    g.throughput(Throughput::Elements(100));
    g.bench_function("view/page-100-at-9900", |b| {
        let q = CameraQuery {
            limit: 100,
            offset: 9_900,
            ..CameraQuery::default()
        };
        b.iter(|| assert_eq!(view.list(&q).0.len(), 100))
    });
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("view/label-filter-over-10000", |b| {
        let q = CameraQuery {
            labels: vec![("district".into(), "d3".into())],
            limit: 1000,
            ..CameraQuery::default()
        };
        b.iter(|| assert_eq!(view.list(&q).1, N / 16))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);

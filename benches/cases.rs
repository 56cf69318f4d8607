//! Violations per second through dedup + the SQLite store (WAL, synchronous=normal, a
//! temporary file): 10 cameras reporting over 50 cells, so most violations are absorbed
//! by open cases and some open new ones.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{CaseStore, DedupConfig, NewViolation};

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(tmp.path(), DedupConfig::default()).unwrap();
    let mut k: i64 = 0;
    let mut g = c.benchmark_group("cases");
    g.throughput(Throughput::Elements(1));
    g.bench_function("record/dedup+store", |b| {
        b.iter(|| {
            k += 1;
            let v = NewViolation {
                kind: if k % 4 == 0 {
                    "dumping".into()
                } else {
                    "illegal_parking".into()
                },
                cell: format!("310101-007-{:04}", k % 50),
                admin_path: "Huangpu / Nanjing East Road / Riverside".into(),
                lat: 31.2304,
                lon: 121.4737,
                camera: format!("cam{}", k % 10),
                zone: "np".into(),
                at_ms: 1_795_000_000_000 + k * 1000,
                since_ms: 1_795_000_000_000 + k * 1000 - 300_000,
            };
            store.record(&v).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

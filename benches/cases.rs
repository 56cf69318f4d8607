//! Violations per second through dedup + the SQLite store (WAL, synchronous=normal, a
//! temporary file): 10 cameras reporting over 50 cells, so most violations are absorbed
//! by open cases and some open new ones. And deliveries per second from the outbox to
//! the built-in Open311 inbox over loopback HTTP.

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gridwatch::cases::config::DeliveryConfig;
use gridwatch::cases::inbox::{Inbox, InboxConfig, InboxStore};
use gridwatch::cases::outbox::{Client, Outbox};
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

/// Deliveries per second from the outbox to the built-in inbox over loopback HTTP:
/// each delivery reads its case, POSTs the Open311 form, the inbox validates and stores
/// it (idempotency check included), and the outbox records the attempt.
fn deliveries(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox {
        store: InboxStore::open(&tmp.path().join("inbox")).unwrap(),
        cfg: InboxConfig::default(),
    });
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/open311/v2", listener.local_addr().unwrap());
        tokio::spawn(gridwatch::cases::inbox::serve(
            listener,
            inbox,
            std::future::pending(),
        ));
        url
    });
    let store =
        Arc::new(SqliteStore::open(&tmp.path().join("gw"), DedupConfig::default()).unwrap());
    let cfg = DeliveryConfig::open311(&url);
    let outbox = Outbox::new(
        store.clone(),
        Client::from_config(&cfg).unwrap(),
        cfg.retry(),
        cfg.concurrency,
    );
    let mut k: i64 = 0;
    let mut g = c.benchmark_group("cases");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.bench_function("deliver/open311-inbox", |b| {
        b.iter_custom(|iters| {
            for _ in 0..iters {
                k += 1;
                store
                    .record(&NewViolation {
                        kind: "illegal_parking".into(),
                        cell: format!("cell-{k}"),
                        admin_path: "Huangpu / Nanjing East Road / Riverside".into(),
                        lat: 31.2304,
                        lon: 121.4737,
                        camera: "cam1".into(),
                        zone: "np".into(),
                        at_ms: 1_795_000_000_000 + k,
                        since_ms: 1_795_000_000_000 + k,
                    })
                    .unwrap();
            }
            let t = Instant::now();
            assert!(rt.block_on(outbox.drain(None)).unwrap());
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench, deliveries);
criterion_main!(benches);

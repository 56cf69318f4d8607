//! Violations per second through dedup + the case store (10 cameras reporting over 50
//! cells, so most violations are absorbed by open cases and some open new ones), and
//! deliveries per second from the outbox to the built-in Open311 inbox over loopback
//! HTTP — for the embedded SQLite store (WAL, synchronous=normal, a temporary file), and
//! for PostgreSQL when `GRIDWATCH_BENCH_PG_URL` names an empty database
//! (`scripts/bench-postgres.sh` starts a throwaway cluster and sets it), where one
//! node's camera-lease heartbeat is measured too.

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gridwatch::cases::config::DeliveryConfig;
use gridwatch::cases::inbox::{Inbox, InboxConfig, InboxStore};
use gridwatch::cases::outbox::{Client, Outbox};
use gridwatch::cases::postgres::PgStore;
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{CaseStore, DedupConfig, NewViolation, ViolationKind};

fn violation(k: i64, cell: String) -> NewViolation {
    NewViolation {
        kind: if k % 4 == 0 {
            ViolationKind::Dumping
        } else {
            ViolationKind::IllegalParking
        },
        cell,
        admin_path: "Huangpu / Nanjing East Road / Riverside".into(),
        lat: 31.2304,
        lon: 121.4737,
        camera: format!("cam{}", k % 10),
        zone: "np".into(),
        zone_version: Some(1),
        at_ms: 1_795_000_000_000 + k * 1000,
        since_ms: 1_795_000_000_000 + k * 1000 - 300_000,
        footprint: None,
        model: String::new(),
        model_sha256: String::new(),
    }
}

/// The stores to measure: SQLite, and PostgreSQL when a URL is given.
fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn CaseStore>)> {
    // follow-ups go at once, so the outbox drains without waiting for them
    let dedup = DedupConfig {
        followup_delay: std::time::Duration::ZERO,
        ..DedupConfig::default()
    };
    let mut out: Vec<(&'static str, Arc<dyn CaseStore>)> = vec![(
        "sqlite",
        Arc::new(SqliteStore::open(&dir.join("sqlite"), dedup).unwrap()),
    )];
    match std::env::var("GRIDWATCH_BENCH_PG_URL") {
        Ok(url) if !url.is_empty() => out.push((
            "postgres",
            Arc::new(PgStore::open(&url, &dir.join("pg"), dedup).unwrap()),
        )),
        _ => eprintln!(
            "cases bench: PostgreSQL not measured (scripts/bench-postgres.sh sets GRIDWATCH_BENCH_PG_URL)"
        ),
    }
    out
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let inbox = Arc::new(Inbox {
        store: InboxStore::open(&tmp.path().join("inbox")).unwrap(),
        cfg: InboxConfig::default().with_client("gridwatch", "bench-key"),
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
    let mut cfg = DeliveryConfig::open311(&url);
    cfg.api_key = Some("bench-key".into());
    let mut g = c.benchmark_group("cases");
    g.throughput(Throughput::Elements(1));
    for (name, store) in stores(tmp.path()) {
        let mut k: i64 = 0;
        // the original name for SQLite keeps earlier figures comparable
        let record = if name == "sqlite" {
            "record/dedup+store".to_string()
        } else {
            format!("record/dedup+store/{name}")
        };
        g.bench_function(record, |b| {
            b.iter(|| {
                k += 1;
                store
                    .record(&violation(k, format!("310101-007-{:04}", k % 50)))
                    .unwrap()
            })
        });
        let outbox = Outbox::new(
            store.clone(),
            Client::from_config(&cfg).unwrap(),
            cfg.retry(),
            cfg.concurrency,
        );
        let deliver = if name == "sqlite" {
            "deliver/open311-inbox".to_string()
        } else {
            format!("deliver/open311-inbox/{name}")
        };
        // deliveries of the cases opened above first, outside the timing
        assert!(rt.block_on(outbox.drain(None)).unwrap());
        let mut n: i64 = 0;
        g.bench_function(deliver, |b| {
            b.iter_custom(|iters| {
                for _ in 0..iters {
                    n += 1;
                    store
                        .record(&violation(n, format!("{name}-new-{n}")))
                        .unwrap();
                }
                let t = Instant::now();
                assert!(rt.block_on(outbox.drain(None)).unwrap());
                t.elapsed()
            })
        });
    }
    g.finish();
    // the camera leases: one node's heartbeat (it renews its share of the leases),
    // with 1 000 cameras over 4 nodes, 10 000 over 2 and 100 000 over 20; PostgreSQL
    // only
    if let Ok(url) = std::env::var("GRIDWATCH_BENCH_PG_URL") {
        if !url.is_empty() {
            use gridwatch::cluster::Membership;
            let mut g = c.benchmark_group("cluster");
            for (n_cams, n_nodes) in [(1_000usize, 4usize), (10_000, 2), (100_000, 20)] {
                let cams: Vec<String> = (0..n_cams).map(|i| format!("cam-{i:06}")).collect();
                let ttl = std::time::Duration::from_secs(600);
                let nodes: Vec<Membership> = (0..n_nodes)
                    .map(|i| {
                        Membership::new(
                            &url,
                            &format!("bench-{n_cams}-{i}"),
                            None,
                            cams.clone(),
                            ttl,
                        )
                        .with_registry()
                    })
                    .collect();
                for _ in 0..2 {
                    for n in &nodes {
                        n.beat().unwrap();
                    }
                }
                g.throughput(Throughput::Elements(nodes[0].held().len() as u64));
                g.bench_function(format!("beat/{n_cams}-cameras-{n_nodes}-nodes"), |b| {
                    b.iter(|| nodes[0].beat().unwrap())
                });
                for n in &nodes {
                    n.leave().unwrap();
                }
            }
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

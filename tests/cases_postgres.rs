//! The PostgreSQL store against a real, throwaway PostgreSQL cluster: the same outcomes
//! as the SQLite store for random violations and reviews; two nodes (connections) on two
//! threads opening the same key at the same instant make one case; deliveries claimed by
//! one node are skipped by another until finished or expired; two nodes' outboxes
//! deliver 100 cases to the inbox, each exactly once; the reviewers' ledger reads the
//! same; migrations run once; and
//! `gridwatch cases` on a PostgreSQL store.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::pg::Pg;
use gridwatch::cases::config::DeliveryConfig;
use gridwatch::cases::inbox::{Inbox, InboxStore, RequestFilter};
use gridwatch::cases::ledger::RejectReason;
use gridwatch::cases::outbox::{Client, Outbox};
use gridwatch::cases::postgres::{PgStore, CLAIM_MS};
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{now_ms, CaseStatus, CaseStore, Outcome, Review, Verdict};
use proptest::prelude::*;

use common::cases::{dedup, violation, MIN};

#[derive(Debug, Clone)]
enum Op {
    See(usize, usize, usize, i64),
    Review(usize, usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..3usize, 0..3usize, 1..50i64).prop_map(|(k, c, cam, dt)| Op::See(k, c, cam, dt)),
        1 => (0..2usize, 0..3usize, any::<bool>()).prop_map(|(k, c, ok)| Op::Review(k, c, ok)),
    ]
}

#[test]
fn postgres_decides_like_sqlite() {
    // one cluster for every case (each gets a fresh database); stopped when the test ends
    let pg = Pg::start();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    });
    let ops = proptest::collection::vec(op(), 1..60);
    runner
        .run(&ops, |ops| {
            let tmp = tempfile::tempdir().unwrap();
            let lite = SqliteStore::open(&tmp.path().join("lite"), dedup()).unwrap();
            let pgs = PgStore::open(&pg.database(), &tmp.path().join("pg"), dedup()).unwrap();
            let kinds = ["illegal_parking", "dumping"];
            let mut t = 1_795_000_000_000i64;
            for o in ops {
                match o {
                    Op::See(k, c, cam, dt) => {
                        t += dt * MIN / 4;
                        let mut v = violation(kinds[k], &format!("c{c}"), &format!("cam{cam}"), t);
                        v.model = format!("model-{cam}");
                        v.model_sha256 = "ab".repeat(32);
                        prop_assert_eq!(lite.record(&v).unwrap(), pgs.record(&v).unwrap());
                    }
                    Op::Review(k, c, ok) => {
                        let open = lite.cases(None, 1000).unwrap().into_iter().find(|x| {
                            x.kind == kinds[k]
                                && x.cell == format!("c{c}")
                                && matches!(x.status, CaseStatus::Open | CaseStatus::Confirmed)
                        });
                        if let Some(x) = open {
                            let r = Review {
                                case_id: x.id,
                                verdict: if ok {
                                    Verdict::Confirm
                                } else {
                                    Verdict::Reject
                                },
                                reviewer: "r".into(),
                                note: String::new(),
                                at_ms: t,
                                reason: (!ok).then_some(RejectReason::CameraMoved),
                            };
                            prop_assert_eq!(lite.review(&r).is_ok(), pgs.review(&r).is_ok());
                        }
                    }
                }
            }
            prop_assert_eq!(
                lite.cases(None, 1000).unwrap(),
                pgs.cases(None, 1000).unwrap()
            );
            let keys = |s: &dyn CaseStore| -> Vec<(i64, String)> {
                s.deliveries(None)
                    .unwrap()
                    .into_iter()
                    .map(|d| (d.case_id, d.event.as_str().to_string()))
                    .collect()
            };
            prop_assert_eq!(keys(&lite), keys(&pgs));
            // the reviewers' ledger reads the same from both
            prop_assert_eq!(lite.verdicts(0).unwrap(), pgs.verdicts(0).unwrap());
            Ok(())
        })
        .unwrap();
}

#[test]
fn two_nodes_opening_the_same_key_at_once_make_one_case() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = pg.database();
    let a = Arc::new(PgStore::open(&url, tmp.path(), dedup()).unwrap());
    let b = Arc::new(PgStore::open(&url, tmp.path(), dedup()).unwrap());
    for round in 0..40 {
        let barrier = Arc::new(Barrier::new(2));
        let cell = format!("x{round}");
        let run = |s: Arc<PgStore>, cam: &'static str| {
            let (barrier, cell) = (barrier.clone(), cell.clone());
            std::thread::spawn(move || {
                barrier.wait();
                s.record(&violation("illegal_parking", &cell, cam, 1_000_000))
                    .unwrap()
            })
        };
        let (ha, hb) = (run(a.clone(), "node-a-cam"), run(b.clone(), "node-b-cam"));
        let (ra, rb) = (ha.join().unwrap(), hb.join().unwrap());
        assert_eq!(ra.0, rb.0, "round {round}: one case");
        let mut outcomes = [ra.1, rb.1];
        outcomes.sort_by_key(|o| *o as u8);
        assert_eq!(
            outcomes,
            [Outcome::Opened, Outcome::Absorbed],
            "round {round}"
        );
        let c = a.case(ra.0).unwrap();
        assert_eq!(c.count, 2);
        assert_eq!(
            c.cameras,
            vec!["node-a-cam".to_string(), "node-b-cam".to_string()]
        );
    }
    assert_eq!(a.cases(None, 1000).unwrap().len(), 40);
    assert_eq!(
        b.delivery_counts().unwrap().pending,
        40 + 40,
        "a create and a follow-up each"
    );
}

#[test]
fn a_claimed_delivery_is_skipped_by_other_nodes_until_its_claim_runs_out() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = pg.database();
    let a = PgStore::open(&url, tmp.path(), dedup()).unwrap();
    let b = PgStore::open(&url, tmp.path(), dedup()).unwrap();
    for i in 0..10 {
        a.record(&violation("dumping", &format!("d{i}"), "c", 1_000))
            .unwrap();
    }
    let now = now_ms();
    let got_a = a.due(now, 4).unwrap();
    let got_b = b.due(now, 100).unwrap();
    assert_eq!(got_a.len(), 4);
    assert_eq!(got_b.len(), 6, "the rest");
    assert!(
        got_a.iter().all(|d| got_b.iter().all(|e| e.id != d.id)),
        "disjoint"
    );
    assert!(a.due(now, 100).unwrap().is_empty(), "all claimed");
    // a node that died keeps nothing for ever
    let later = a.due(now + CLAIM_MS + 1, 100).unwrap();
    assert_eq!(later.len(), 10);
}

#[test]
fn two_nodes_deliver_every_case_exactly_once() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = pg.database();
    let a = Arc::new(PgStore::open(&url, &tmp.path().join("a"), dedup()).unwrap());
    let b = Arc::new(PgStore::open(&url, &tmp.path().join("b"), dedup()).unwrap());
    for i in 0..100 {
        let s = if i % 2 == 0 { &a } else { &b };
        s.record(&violation(
            "illegal_parking",
            &format!("p{i}"),
            "cam",
            1_000 + i,
        ))
        .unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let inbox = Arc::new(Inbox {
            store: InboxStore::open(&tmp.path().join("inbox")).unwrap(),
            cfg: common::cases::inbox_config(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/open311/v2", listener.local_addr().unwrap());
        tokio::spawn(gridwatch::cases::inbox::serve(
            listener,
            inbox.clone(),
            std::future::pending(),
        ));
        let mut cfg = DeliveryConfig::open311(&url);
        cfg.api_key = Some(common::cases::INBOX_KEY.into());
        let outbox = |s: &Arc<PgStore>| {
            Outbox::new(
                s.clone(),
                Client::from_config(&cfg).unwrap(),
                cfg.retry(),
                4,
            )
        };
        let (oa, ob) = (outbox(&a), outbox(&b));
        let deadline = Some(Instant::now() + Duration::from_secs(60));
        let (ra, rb) = tokio::join!(oa.drain(deadline), ob.drain(deadline));
        assert!(ra.unwrap() && rb.unwrap());
        let reqs = inbox
            .store
            .requests(&RequestFilter {
                limit: Some(10_000),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(reqs.len(), 100);
        assert!(
            reqs.iter().all(|r| r.received == 1),
            "no case was sent by both nodes"
        );
    });
    assert_eq!(a.delivery_counts().unwrap().delivered, 100);
}

#[test]
fn migrations_run_once_and_a_newer_schema_is_refused() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = pg.database();
    let s = PgStore::open(&url, tmp.path(), dedup()).unwrap();
    s.record(&violation("dumping", "m", "c", 1_000)).unwrap();
    drop(s);
    let s = PgStore::open(&url, tmp.path(), dedup()).unwrap();
    assert_eq!(s.cases(None, 10).unwrap().len(), 1);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("UPDATE gridwatch_schema SET version = 99")
        .unwrap();
    let err = PgStore::open(&url, tmp.path(), dedup())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("newer") && err.contains("127.0.0.1"), "{err}");
}

/// Two `gridwatch run` nodes over one PostgreSQL store, each with its own camera on the
/// same scene (camera lists from their files, `registry.cameras = "config"`): the van
/// both see is one case, seen by both cameras, filed once.
#[test]
fn two_nodes_seeing_the_same_cell_file_one_case() {
    let pg = Pg::start();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let p = |rel: &str| common::path(rel).display().to_string();
    let node = |name: &str, clip: &str| {
        let cfg = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                r#"data_dir = "{data}"
store_env = "GW_TEST_STORE"
[api]
listen = "127.0.0.1:0"
open_reads = true
[geo]
zones = "{zones}"
grid = "{grid}"
[rules]
override_zone_dwell = true
parking = {{ dwell = "30s" }}
dumping = {{ dwell = "10m" }}
# each node's own camera list, from its file
[registry]
cameras = "config"
[[camera]]
id = "{name}"
source = "{clip}"
every = "1s"
calibration = "{cal}"
"#,
                data = tmp.path().join(name).display(),
                zones = p("samples/geo/zones.geojson"),
                grid = p("samples/geo/grid.geojson"),
                clip = p(clip),
                cal = p("calibration/street.toml"),
            ),
        )
        .unwrap();
        common::node::Node::start(name, &cfg, &url, tmp.path())
    };
    let mut a = node("street", "samples/street.mp4");
    let mut b = node("street-east", "tests/fixtures/clips/street-dumping.mp4");
    let store = PgStore::open(&url, tmp.path(), dedup()).unwrap();
    let t = Instant::now();
    let case = loop {
        let cases = store.cases(None, 10).unwrap();
        if let Some(c) = cases
            .iter()
            .find(|c| c.kind == "illegal_parking" && c.cameras.len() == 2)
        {
            break c.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(150),
            "no case seen by both nodes' cameras: {cases:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(case.cameras, ["street", "street-east"]);
    let parking: Vec<_> = store
        .cases(None, 10)
        .unwrap()
        .into_iter()
        .filter(|c| c.kind == "illegal_parking")
        .collect();
    assert_eq!(parking.len(), 1, "one van, one case: {parking:?}");
    // filed once, by whichever node claimed it
    let t = Instant::now();
    while store.deliveries(Some(case.id)).unwrap()[0].state
        != gridwatch::cases::DeliveryState::Delivered
    {
        assert!(t.elapsed() < Duration::from_secs(30), "never delivered");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        store.deliveries(Some(case.id)).unwrap()[0].attempts,
        1,
        "one attempt, by one node"
    );
    for n in [&mut a, &mut b] {
        unsafe {
            libc::kill(n.child.id() as i32, libc::SIGTERM);
        }
        assert!(
            n.child.wait().unwrap().success(),
            "{}:\n{}",
            n.name,
            n.log()
        );
    }
}

#[test]
fn the_store_reconnects_after_the_server_restarts() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = PgStore::open(&pg.database(), tmp.path(), dedup()).unwrap();
    let t = 1_795_000_000_000i64;
    let (case, outcome) = store
        .record(&violation("illegal_parking", "c1", "cam1", t))
        .unwrap();
    assert_eq!(outcome, Outcome::Opened);
    pg.restart();
    // the call that finds the connection gone may fail (naming the store); the next
    // ones reconnect
    let mut results = Vec::new();
    for i in 0..3 {
        let r = store.record(&violation(
            "illegal_parking",
            "c1",
            "cam2",
            t + (i + 1) * MIN,
        ));
        if let Err(e) = &r {
            assert!(
                e.to_string().contains("postgres://gridwatch@127.0.0.1"),
                "{e}"
            );
        }
        results.push(r);
    }
    assert!(
        results.iter().filter(|r| r.is_err()).count() <= 1,
        "{results:?}"
    );
    let last = results.pop().unwrap().unwrap();
    assert_eq!(
        last,
        (case, Outcome::Absorbed),
        "the same case after the restart"
    );
    assert_eq!(store.case(case).unwrap().cameras, ["cam1", "cam2"]);
}

#[test]
fn evidence_lives_in_the_database_for_every_node_and_retention_prunes_it() {
    let pg = Pg::start();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let node_a = PgStore::open(&url, &tmp.path().join("a"), dedup()).unwrap();
    let node_b = PgStore::open(&url, &tmp.path().join("b"), dedup()).unwrap();
    let jpeg = std::fs::read(common::path("samples/dog.jpg")).unwrap();
    let t = 1_795_000_000_000i64;
    let (old, _) = node_a
        .record(&violation("dumping", "c1", "cam1", t))
        .unwrap();
    let (new, _) = node_a
        .record(&violation("dumping", "c2", "cam1", t + 60 * MIN))
        .unwrap();
    let e_old = node_a
        .add_evidence(old, "cam1", t, &jpeg, 3)
        .unwrap()
        .unwrap();
    let e_new = node_a
        .add_evidence(new, "cam1", t + 60 * MIN, &jpeg[..1000], 3)
        .unwrap()
        .unwrap();
    // nothing on node a's disk; node b serves the same bytes
    assert!(!tmp.path().join("a").join(&e_old.file).exists());
    assert_eq!(node_b.evidence_bytes(old, e_old.id).unwrap().unwrap(), jpeg);
    assert_eq!(
        node_b.evidence_bytes(new, e_new.id).unwrap().unwrap(),
        &jpeg[..1000]
    );
    assert_eq!(
        node_b.evidence_bytes(new, e_old.id).unwrap(),
        None,
        "not that case's"
    );
    assert_eq!(node_b.evidence_bytes(old, 999).unwrap(), None);
    // retention: cases last seen before the cut lose their evidence, others keep it
    assert_eq!(node_b.prune_evidence(t + 30 * MIN).unwrap(), 1);
    assert_eq!(node_a.evidence_bytes(old, e_old.id).unwrap(), None);
    assert!(node_a.evidence(old).unwrap().is_empty());
    assert_eq!(node_a.evidence(new).unwrap(), [e_new]);
    assert_eq!(node_a.prune_evidence(t + 30 * MIN).unwrap(), 0);
}

/// The error of a connection that must fail.
#[test]
fn unblurred_originals_live_in_the_database_and_are_pruned_sooner() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = PgStore::open(&pg.database(), tmp.path(), dedup()).unwrap();
    common::cases::originals_round_trip(&store);
}

fn connect_error(url: &str) -> String {
    match gridwatch::pg::connect(url) {
        Ok(_) => panic!("{url} connected"),
        Err(e) => e,
    }
}

/// Whether the connection `url` opens is encrypted, as the server sees it.
fn server_sees_tls(url: &str) -> bool {
    let mut c = gridwatch::pg::connect(url).unwrap();
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn tls_to_postgres_follows_libpq_sslmode_and_sslrootcert() {
    let tmp = tempfile::tempdir().unwrap();
    // a certificate for a name that is not the address connected to: verify-ca passes,
    // verify-full must not
    let pki = common::tls::private_ca(&tmp.path().join("pki"), "DNS:db.city.example");
    let pg = Pg::start_tls(&pki);
    let url = pg.database();
    let with = |q: &str| format!("{url}?{q}");
    let ca = pki.ca.display().to_string();

    // libpq's default (prefer) encrypts when the server offers it; disable does not
    assert!(server_sees_tls(&url));
    assert!(!server_sees_tls(&with("sslmode=disable")));
    assert!(server_sees_tls(&with("sslmode=require")));

    // the server's CA is not in the system store: verification fails, naming why
    let e = connect_error(&with("sslmode=verify-ca"));
    assert!(e.contains("certificate"), "{e}");
    // with sslrootcert the chain verifies, and the store works over it
    let verified = with(&format!("sslmode=verify-ca&sslrootcert={ca}"));
    assert!(server_sees_tls(&verified));
    let store = PgStore::open(&verified, tmp.path(), dedup()).unwrap();
    let (_, outcome) = store
        .record(&violation("dumping", "c1", "cam1", 1_795_000_000_000))
        .unwrap();
    assert_eq!(outcome, Outcome::Opened);
    // require with sslrootcert checks the chain too (as libpq does)
    assert!(server_sees_tls(&with(&format!(
        "sslmode=require&sslrootcert={ca}"
    ))));
    // verify-full also wants the host's name in the certificate: 127.0.0.1 is not
    let e = connect_error(&with(&format!("sslmode=verify-full&sslrootcert={ca}")));
    assert!(e.contains("mismatch"), "{e}");
    // a wrong CA for require is refused too
    let other = common::tls::private_ca(&tmp.path().join("other"), "DNS:db.city.example");
    let e = connect_error(&with(&format!(
        "sslmode=require&sslrootcert={}",
        other.ca.display()
    )));
    assert!(e.contains("certificate"), "{e}");
    // a bad sslmode or root file is an error naming it
    let e = match PgStore::open(&with("sslmode=always"), tmp.path(), dedup()) {
        Ok(_) => panic!("sslmode=always accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("sslmode=always"), "{e}");
}

#[test]
fn the_cases_command_works_on_the_postgresql_store() {
    let pg = Pg::start();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("v.jsonl");
    let line = |at: i64| {
        format!(
            "{{\"kind\":\"dumping\",\"cell\":\"310101-007-0101\",\"lat\":31.2,\"lon\":121.4,\"camera\":\"cam-1\",\"at_ms\":{at}}}\n"
        )
    };
    let t = now_ms() - 60_000;
    std::fs::write(&input, line(t) + &line(t + 1000)).unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--data",
            data.to_str().unwrap(),
            "--store-env",
            "GW_TEST_STORE",
        ]);
        let out = common::gridwatch(&all)
            .env("GW_TEST_STORE", &url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let said = run(&["cases", "record", input.to_str().unwrap()]);
    assert!(said.contains("1 opened a case, 1 absorbed"), "{said}");
    assert!(
        said.contains("store postgres://gridwatch@127.0.0.1"),
        "{said}"
    );
    let listed = run(&["cases", "list", "--json"]);
    assert!(
        listed.contains("\"dumping\"") && listed.contains("\"count\":2"),
        "{listed}"
    );
    run(&["cases", "review", "1", "confirm", "--by", "ana"]);
    let store = PgStore::open(&url, tmp.path(), dedup()).unwrap();
    assert_eq!(store.case(1).unwrap().status, CaseStatus::Confirmed);
    assert!(store.evidence(1).unwrap().is_empty());
    // nothing went into a SQLite file meanwhile
    assert!(!data.join("cases.sqlite").exists());

    let out = common::gridwatch(&["cases", "list", "--store", "mysql://db/x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("only postgres://"),
        "{err}"
    );
}

#[test]
fn a_cases_sightings_keep_a_drones_frame_on_the_ground_in_postgresql() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = PgStore::open(&pg.database(), tmp.path(), dedup()).unwrap();
    common::cases::sightings_keep_footprints(&store);
}

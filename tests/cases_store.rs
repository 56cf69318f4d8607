//! The case store: dedup against a simple reference model (property test), two cameras
//! on different threads reporting the same spot at once → one case, window expiry and
//! cool-down, status transitions, migrations on reopen.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{CaseStatus, CaseStore, Outcome};
use proptest::prelude::*;

use common::cases::{dedup, violation, MIN};

/// A model case: id, status, last seen, closed at.
type ModelCase = (i64, CaseStatus, i64, Option<i64>);

/// The reference model: a few lines of plain logic.
#[derive(Default)]
struct Model {
    next: i64,
    cases: HashMap<(String, String), Vec<ModelCase>>,
}

impl Model {
    fn record(&mut self, kind: &str, cell: &str, at: i64) -> (i64, Outcome) {
        let (window, cooldown) = (60 * MIN, 30 * MIN);
        let list = self.cases.entry((kind.into(), cell.into())).or_default();
        if let Some(c) = list
            .iter_mut()
            .find(|c| matches!(c.1, CaseStatus::Open | CaseStatus::Confirmed))
        {
            if at - c.2 <= window {
                c.2 = c.2.max(at);
                return (c.0, Outcome::Absorbed);
            }
            c.1 = CaseStatus::Closed;
            c.3 = Some(c.2 + window);
        }
        let cooling = list
            .iter()
            .filter(|c| matches!(c.1, CaseStatus::Rejected | CaseStatus::Closed))
            .filter_map(|c| c.3.map(|closed| (closed, c.0)))
            .filter(|(closed, _)| at - closed < cooldown)
            .max();
        if let Some((_, id)) = cooling {
            return (id, Outcome::Suppressed);
        }
        self.next += 1;
        list.push((self.next, CaseStatus::Open, at, None));
        (self.next, Outcome::Opened)
    }

    fn set(&mut self, kind: &str, cell: &str, status: CaseStatus, at: i64) -> Option<i64> {
        let list = self.cases.get_mut(&(kind.to_string(), cell.to_string()))?;
        let c = list
            .iter_mut()
            .find(|c| matches!(c.1, CaseStatus::Open | CaseStatus::Confirmed))?;
        if c.1 == status {
            return None; // confirming twice is not a transition
        }
        c.1 = status;
        if matches!(status, CaseStatus::Rejected | CaseStatus::Closed) {
            c.3 = Some(at);
        }
        Some(c.0)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Record {
        kind: u8,
        cell: u8,
        camera: u8,
        dt_min: i64,
    },
    Review {
        kind: u8,
        cell: u8,
        status: u8,
        dt_min: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..2, 0u8..3, 0u8..3, 0i64..50).prop_map(|(kind, cell, camera, dt_min)| Op::Record { kind, cell, camera, dt_min }),
        1 => (0u8..2, 0u8..3, 0u8..3, 0i64..10).prop_map(|(kind, cell, status, dt_min)| Op::Review { kind, cell, status, dt_min }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn dedup_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..120)) {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
        let mut model = Model::default();
        let mut t = 1_000_000_000_000i64;
        let kinds = ["illegal_parking", "dumping"];
        for op in ops {
            match op {
                Op::Record { kind, cell, camera, dt_min } => {
                    t += dt_min * MIN;
                    let (k, c) = (kinds[kind as usize], format!("cell{cell}"));
                    let got = store.record(&violation(k, &c, &format!("cam{camera}"), t)).unwrap();
                    let want = model.record(k, &c, t);
                    prop_assert_eq!(got, want, "record {} {} at {}", k, c, t);
                }
                Op::Review { kind, cell, status, dt_min } => {
                    t += dt_min * MIN;
                    let (k, c) = (kinds[kind as usize], format!("cell{cell}"));
                    let status = [CaseStatus::Confirmed, CaseStatus::Rejected, CaseStatus::Closed][status as usize];
                    match model.set(k, &c, status, t) {
                        Some(id) => store.set_status(id, status, t).unwrap(),
                        None => {
                            // the store refuses what the model cannot do either
                            if let Some(active) = store.cases(None, 10_000).unwrap().into_iter()
                                .find(|x| x.kind == k && x.cell == c && matches!(x.status, CaseStatus::Open | CaseStatus::Confirmed)) {
                                prop_assert!(store.set_status(active.id, status, t).is_err());
                            }
                        }
                    }
                }
            }
        }
        // counts agree with the violations absorbed
        for case in store.cases(None, 10_000).unwrap() {
            prop_assert!(case.count >= 1);
            prop_assert!(case.first_seen_ms <= case.last_seen_ms);
        }
    }
}

#[test]
fn two_cameras_on_two_threads_at_the_same_instant_make_one_case() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(tmp.path(), dedup()).unwrap());
    for round in 0..50 {
        let cell = format!("c{round}");
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = ["north", "south"]
            .into_iter()
            .map(|cam| {
                let (store, barrier, cell) = (store.clone(), barrier.clone(), cell.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store
                        .record(&violation("illegal_parking", &cell, cam, 5_000_000))
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<(i64, Outcome)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results[0].0, results[1].0, "one case for both cameras");
        let mut outcomes: Vec<Outcome> = results.iter().map(|r| r.1).collect();
        outcomes.sort_by_key(|o| *o as u8);
        assert_eq!(outcomes, [Outcome::Opened, Outcome::Absorbed]);
        let case = store.case(results[0].0).unwrap();
        assert_eq!(case.count, 2);
        assert_eq!(case.cameras, ["north", "south"]);
    }
    assert_eq!(store.cases(None, 1000).unwrap().len(), 50);
}

#[test]
fn the_window_expires_cases_and_the_cooldown_holds_new_ones_back() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
    let t0 = 10 * 60 * MIN;
    let (a, o) = store.record(&violation("dumping", "x", "c1", t0)).unwrap();
    assert_eq!(o, Outcome::Opened);
    assert_eq!(
        store
            .record(&violation("dumping", "x", "c2", t0 + 59 * MIN))
            .unwrap(),
        (a, Outcome::Absorbed)
    );
    // another kind in the same cell is another case
    assert_eq!(
        store
            .record(&violation("illegal_parking", "x", "c1", t0 + 59 * MIN))
            .unwrap()
            .1,
        Outcome::Opened
    );
    // rejected: within the 30 min cool-down nothing new opens
    store
        .set_status(a, CaseStatus::Rejected, t0 + 60 * MIN)
        .unwrap();
    assert_eq!(
        store
            .record(&violation("dumping", "x", "c1", t0 + 80 * MIN))
            .unwrap(),
        (a, Outcome::Suppressed)
    );
    let (b, o) = store
        .record(&violation("dumping", "x", "c1", t0 + 95 * MIN))
        .unwrap();
    assert_eq!(o, Outcome::Opened);
    assert_ne!(a, b);
    // not seen for over an hour: b expires and, past its cool-down, c opens
    let (c, o) = store
        .record(&violation(
            "dumping",
            "x",
            "c1",
            t0 + 95 * MIN + 61 * MIN + 31 * MIN,
        ))
        .unwrap();
    assert_eq!(o, Outcome::Opened);
    assert_eq!(store.case(b).unwrap().status, CaseStatus::Closed);
    assert_ne!(b, c);
    let first = store.case(a).unwrap();
    assert_eq!(
        (first.count, first.cameras.clone()),
        (2, vec!["c1".to_string(), "c2".to_string()])
    );
    assert!(
        store.set_status(a, CaseStatus::Confirmed, t0).is_err(),
        "a rejected case stays rejected"
    );
}

#[test]
fn reopening_keeps_cases_and_runs_no_migration_twice() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
        store
            .record(&violation("dumping", "x", "c1", 1_000))
            .unwrap();
    }
    let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
    assert_eq!(store.cases(None, 10).unwrap().len(), 1);
    assert_eq!(
        store
            .record(&violation("dumping", "x", "c2", 2_000))
            .unwrap()
            .1,
        Outcome::Absorbed
    );
    // a store written by a newer gridwatch is refused, not damaged
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    drop(store);
    let err = SqliteStore::open(tmp.path(), dedup())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cases.sqlite") && err.contains("newer"),
        "{err}"
    );
}

#[test]
fn a_version_1_store_is_migrated_and_its_active_cases_queued_for_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    // the version 1 schema as gridwatch 0.1 wrote it, with one open and one closed case
    let conn = rusqlite::Connection::open(tmp.path().join("cases.sqlite")).unwrap();
    conn.execute_batch(
        "CREATE TABLE cases (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, cell TEXT NOT NULL,
            admin_path TEXT NOT NULL, status TEXT NOT NULL, first_seen_ms INTEGER NOT NULL,
            last_seen_ms INTEGER NOT NULL, count INTEGER NOT NULL, lat REAL NOT NULL,
            lon REAL NOT NULL, closed_ms INTEGER);
         CREATE TABLE violations (id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL, outcome TEXT NOT NULL,
            camera TEXT NOT NULL, zone TEXT NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL,
            at_ms INTEGER NOT NULL, since_ms INTEGER NOT NULL);
         CREATE TABLE case_cameras (case_id INTEGER NOT NULL, camera TEXT NOT NULL,
            PRIMARY KEY (case_id, camera)) WITHOUT ROWID;
         INSERT INTO cases VALUES (1, 'dumping', 'x', 'D', 'open', 5, 9, 2, 31.2, 121.4, NULL);
         INSERT INTO cases VALUES (2, 'dumping', 'y', 'D', 'closed', 5, 9, 1, 31.2, 121.4, 100);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
    let ds = store.deliveries(None).unwrap();
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(
        (ds[0].case_id, ds[0].event),
        (1, gridwatch::cases::Event::Create)
    );
    assert_eq!(store.due(0, 10).unwrap().len(), 1);
    assert_eq!(store.case(1).unwrap().count, 2);
    // keys are unique to this store and stable
    assert!(ds[0].idempotency_key.starts_with("gw-") && ds[0].idempotency_key.ends_with("-1-1"));
}

#[test]
fn retention_deletes_the_evidence_files_of_cases_not_seen_since() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
    let jpeg = std::fs::read(common::path("samples/dog.jpg")).unwrap();
    let t = 1_795_000_000_000i64;
    let (old, _) = store
        .record(&violation("dumping", "c1", "cam1", t))
        .unwrap();
    let (new, _) = store
        .record(&violation("dumping", "c2", "cam1", t + 60 * MIN))
        .unwrap();
    let e_old = store
        .add_evidence(old, "cam1", t, &jpeg, 3)
        .unwrap()
        .unwrap();
    let e_new = store
        .add_evidence(new, "cam1", t + 60 * MIN, &jpeg, 3)
        .unwrap()
        .unwrap();
    assert!(tmp.path().join(&e_old.file).is_file());
    assert_eq!(store.evidence_bytes(old, e_old.id).unwrap().unwrap(), jpeg);
    assert_eq!(store.prune_evidence(t + 30 * MIN).unwrap(), 1);
    assert!(!tmp.path().join(&e_old.file).exists(), "file removed");
    assert!(
        !tmp.path().join(format!("evidence/{old}")).exists(),
        "empty case folder removed"
    );
    assert_eq!(store.evidence_bytes(old, e_old.id).unwrap(), None);
    assert!(store.evidence(old).unwrap().is_empty());
    assert!(tmp.path().join(&e_new.file).is_file());
    assert_eq!(store.prune_evidence(t + 30 * MIN).unwrap(), 0);
}

#[test]
fn unblurred_originals_are_kept_apart_and_pruned_sooner() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
    common::cases::originals_round_trip(&store);
}

#[test]
fn a_cases_sightings_keep_a_drones_frame_on_the_ground() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
    common::cases::sightings_keep_footprints(&store);
}

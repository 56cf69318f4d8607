//! The policy without a database: its decisions one by one, then the operations over
//! an in-memory transaction (a test double at the [`CaseTx`] seam; the stores' own
//! tests and the SQLite-vs-PostgreSQL differential test check the SQL).

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::cases::ViolationKind;

fn cfg() -> DedupConfig {
    DedupConfig {
        window: Duration::from_secs(60),
        cooldown: Duration::from_secs(30),
        followup_delay: Duration::from_secs(5),
    }
}

#[test]
fn an_active_case_absorbs_within_the_window_and_expires_past_it() {
    let c = cfg();
    assert_eq!(on_active(None, 1_000, &c), ActiveStep::None);
    assert_eq!(
        on_active(Some((7, 1_000)), 61_000, &c),
        ActiveStep::Absorb(7)
    );
    assert_eq!(
        on_active(Some((7, 1_000)), 61_001, &c),
        ActiveStep::Expire {
            id: 7,
            closed_ms: 61_000
        }
    );
    // a late violation (older than the case's last) is still absorbed
    assert_eq!(
        on_active(Some((7, 50_000)), 1_000, &c),
        ActiveStep::Absorb(7)
    );
}

#[test]
fn the_cool_down_suppresses_only_inside_it() {
    let c = cfg();
    assert_eq!(in_cooldown(None, 5_000, &c), None);
    assert_eq!(in_cooldown(Some((3, 1_000)), 30_999, &c), Some(3));
    assert_eq!(in_cooldown(Some((3, 1_000)), 31_000, &c), None);
    // closed after the violation's time: inside
    assert_eq!(in_cooldown(Some((3, 9_000)), 1_000, &c), Some(3));
}

#[test]
fn transitions_follow_the_case_life() {
    use CaseStatus::*;
    assert_eq!(transition(1, Open, Confirmed, 5).unwrap(), None);
    assert_eq!(transition(1, Open, Rejected, 5).unwrap(), Some(5));
    assert_eq!(transition(1, Confirmed, Closed, 6).unwrap(), Some(6));
    for (from, to) in [
        (Rejected, Open),
        (Closed, Confirmed),
        (Confirmed, Open),
        (Open, Open),
    ] {
        match transition(9, from, to, 1) {
            Err(StoreError::Conflict { id: 9, .. }) => {}
            other => panic!("{from:?} → {to:?}: {other:?}"),
        }
    }
    assert_eq!(verdict_status(Verdict::Confirm), Confirmed);
    assert_eq!(verdict_status(Verdict::Reject), Rejected);
}

#[test]
fn what_an_attempt_writes() {
    let w = after_attempt(
        Event::Create,
        100,
        &AfterAttempt::Delivered {
            remote_id: None,
            token: Some("t1".into()),
        },
    );
    assert_eq!(w.delivery.state, DeliveryState::Delivered);
    assert_eq!(w.delivery.done_ms, Some(100));
    assert_eq!(w.remote, Some((None, Some("t1".into()))));
    assert!(w.resolve, "a token without an id is resolved later");
    let w = after_attempt(
        Event::Create,
        100,
        &AfterAttempt::Delivered {
            remote_id: Some("r1".into()),
            token: None,
        },
    );
    assert!(!w.resolve);
    let w = after_attempt(
        Event::Update,
        100,
        &AfterAttempt::Retry {
            at_ms: 900,
            error: "timeout".into(),
        },
    );
    assert_eq!(
        w.delivery,
        DeliveryWrite {
            state: DeliveryState::Pending,
            next_at_ms: Some(900),
            done_ms: None,
            error: Some("timeout".into())
        }
    );
    assert_eq!(w.fail_rest, None);
    // a create that fails takes the follow-ups with it; an update does not
    let w = after_attempt(Event::Create, 100, &AfterAttempt::Failed("HTTP 400".into()));
    assert_eq!(w.delivery.state, DeliveryState::Failed);
    assert!(w.fail_rest.unwrap().contains("create failed: HTTP 400"));
    let w = after_attempt(Event::Resolve, 100, &AfterAttempt::Failed("gone".into()));
    assert!(w.fail_rest.is_some());
    let w = after_attempt(Event::Update, 100, &AfterAttempt::Failed("HTTP 400".into()));
    assert_eq!(w.fail_rest, None);
    let w = after_attempt(
        Event::Update,
        100,
        &AfterAttempt::Skipped("no updates".into()),
    );
    assert_eq!(w.delivery.state, DeliveryState::Skipped);
}

/// A case in memory: kind, cell, status, last seen, closed, count.
type MemCase = (String, String, CaseStatus, i64, Option<i64>, i64);

/// Cases, deliveries and evidence in memory.
#[derive(Default)]
struct Mem {
    cases: BTreeMap<i64, MemCase>,
    /// id → (case, event, state, next at)
    deliveries: BTreeMap<i64, (i64, Event, DeliveryState, i64)>,
    violations: Vec<(i64, Outcome)>,
    evidence: Vec<i64>,
    /// insert_case answers "someone else opened it" this many times first
    races: u32,
}

impl CaseTx for Mem {
    fn active_case(&mut self, kind: &str, cell: &str) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(self.cases.iter().find_map(|(id, c)| {
            (c.0 == kind && c.1 == cell && matches!(c.2, CaseStatus::Open | CaseStatus::Confirmed))
                .then_some((*id, c.3))
        }))
    }
    fn last_closed(&mut self, kind: &str, cell: &str) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(self
            .cases
            .iter()
            .filter(|(_, c)| c.0 == kind && c.1 == cell && c.4.is_some())
            .map(|(id, c)| (*id, c.4.unwrap()))
            .max_by_key(|&(_, closed)| closed))
    }
    fn insert_case(&mut self, v: &NewViolation) -> Result<Option<i64>, StoreError> {
        let id = self.cases.len() as i64 + 1;
        let row = (
            v.kind.as_str().to_string(),
            v.cell.clone(),
            CaseStatus::Open,
            v.at_ms,
            None,
            1,
        );
        self.cases.insert(id, row);
        if self.races > 0 {
            // as if another writer had opened it: the policy must absorb into it
            self.races -= 1;
            return Ok(None);
        }
        Ok(Some(id))
    }
    fn absorb(&mut self, id: i64, at_ms: i64) -> Result<(), StoreError> {
        let c = self.cases.get_mut(&id).unwrap();
        c.3 = c.3.max(at_ms);
        c.5 += 1;
        Ok(())
    }
    fn status(&mut self, id: i64) -> Result<Option<CaseStatus>, StoreError> {
        Ok(self.cases.get(&id).map(|c| c.2))
    }
    fn set_status(
        &mut self,
        id: i64,
        s: CaseStatus,
        closed: Option<i64>,
    ) -> Result<(), StoreError> {
        let c = self.cases.get_mut(&id).unwrap();
        c.2 = s;
        c.4 = closed.or(c.4);
        Ok(())
    }
    fn insert_violation(
        &mut self,
        id: i64,
        o: Outcome,
        _: &NewViolation,
    ) -> Result<(), StoreError> {
        self.violations.push((id, o));
        Ok(())
    }
    fn add_camera(&mut self, _: i64, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn insert_review(&mut self, _: &Review) -> Result<(), StoreError> {
        Ok(())
    }
    fn delivery_count(&mut self, case_id: i64) -> Result<i64, StoreError> {
        Ok(self.deliveries.values().filter(|d| d.0 == case_id).count() as i64)
    }
    fn pending_update(&mut self, case_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .deliveries
            .values()
            .any(|d| d.0 == case_id && d.1 == Event::Update && d.2 == DeliveryState::Pending))
    }
    fn hasten_update(&mut self, case_id: i64, at_ms: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        for d in self.deliveries.values_mut() {
            if d.0 == case_id && d.1 == Event::Update && d.2 == DeliveryState::Pending {
                d.3 = d.3.min(at_ms);
                n += 1;
            }
        }
        Ok(n)
    }
    fn insert_delivery(&mut self, d: &NewDelivery) -> Result<(), StoreError> {
        let seq = self.delivery_count(d.case_id)? + 1;
        assert!(
            d.key.starts_with(&format!("gw-{}-{seq}-", d.case_id)),
            "{}",
            d.key
        );
        let id = self.deliveries.len() as i64 + 1;
        self.deliveries.insert(
            id,
            (d.case_id, d.event, DeliveryState::Pending, d.next_at_ms),
        );
        Ok(())
    }
    fn delivery(&mut self, id: i64) -> Result<Option<(i64, Event)>, StoreError> {
        Ok(self.deliveries.get(&id).map(|d| (d.0, d.1)))
    }
    fn insert_attempt(&mut self, _: &Attempt) -> Result<(), StoreError> {
        Ok(())
    }
    fn set_remote(&mut self, _: i64, _: Option<&str>, _: Option<&str>) -> Result<(), StoreError> {
        Ok(())
    }
    fn update_delivery(&mut self, id: i64, w: &DeliveryWrite) -> Result<(), StoreError> {
        let d = self.deliveries.get_mut(&id).unwrap();
        d.2 = w.state;
        d.3 = w.next_at_ms.unwrap_or(d.3);
        Ok(())
    }
    fn fail_pending(&mut self, case_id: i64, _: i64, _: &str) -> Result<(), StoreError> {
        for d in self.deliveries.values_mut() {
            if d.0 == case_id && d.2 == DeliveryState::Pending {
                d.2 = DeliveryState::Failed;
            }
        }
        Ok(())
    }
    fn evidence_count(&mut self, case_id: i64) -> Result<i64, StoreError> {
        Ok(self.evidence.iter().filter(|&&c| c == case_id).count() as i64)
    }
    fn insert_evidence(
        &mut self,
        case_id: i64,
        camera: &str,
        at_ms: i64,
        role: Option<crate::cases::photo::PhotoRole>,
        _: &[u8],
        (sha256, chain): (&str, &str),
    ) -> Result<Evidence, StoreError> {
        self.evidence.push(case_id);
        Ok(Evidence {
            id: self.evidence.len() as i64,
            case_id,
            file: String::new(),
            sha256: sha256.into(),
            camera: camera.into(),
            at_ms,
            role,
            chain: Some(chain.into()),
        })
    }
    fn case_key(&mut self, id: i64) -> Result<Option<(String, String, i64)>, StoreError> {
        Ok(self.status(id)?.map(|_| ("k".into(), "c".into(), 0)))
    }
    fn chain_head(&mut self, _: i64) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    fn first_chained(&mut self, _: i64) -> Result<Option<super::ChainedItem>, StoreError> {
        Ok(None)
    }
}

fn seen(at_ms: i64) -> NewViolation {
    NewViolation {
        kind: ViolationKind::IllegalParking,
        cell: "c1".into(),
        admin_path: String::new(),
        lat: 31.0,
        lon: 121.0,
        camera: "cam".into(),
        zone: "z".into(),
        zone_version: None,
        at_ms,
        since_ms: at_ms,
        footprint: None,
        model: String::new(),
        model_sha256: String::new(),
    }
}

#[test]
fn a_key_opens_absorbs_expires_and_cools_down() {
    let (mut tx, c) = (Mem::default(), cfg());
    assert_eq!(
        record(&mut tx, &seen(0), &c, 0).unwrap(),
        (1, Outcome::Opened)
    );
    assert_eq!(
        record(&mut tx, &seen(10_000), &c, 0).unwrap(),
        (1, Outcome::Absorbed)
    );
    assert_eq!(
        record(&mut tx, &seen(20_000), &c, 0).unwrap(),
        (1, Outcome::Absorbed)
    );
    // one create and one follow-up (not one per sighting), due after the delay
    let d: Vec<_> = tx.deliveries.values().cloned().collect();
    assert_eq!(
        d,
        [
            (1, Event::Create, DeliveryState::Pending, 0),
            (1, Event::Update, DeliveryState::Pending, 5_000)
        ]
    );
    // not seen for the window: case 1 closes at 80 s; 100 s is within its cool-down
    assert_eq!(
        record(&mut tx, &seen(100_000), &c, 0).unwrap(),
        (1, Outcome::Suppressed)
    );
    assert_eq!(tx.cases[&1].2, CaseStatus::Closed);
    assert_eq!(tx.cases[&1].4, Some(80_000));
    assert_eq!(
        record(&mut tx, &seen(111_000), &c, 0).unwrap(),
        (2, Outcome::Opened)
    );
    // a review confirms it and its decision goes at once
    let r = Review {
        case_id: 2,
        verdict: Verdict::Reject,
        reviewer: "a".into(),
        note: String::new(),
        at_ms: 112_000,
        reason: None,
    };
    review(&mut tx, &r, 7).unwrap();
    assert_eq!(tx.cases[&2].2, CaseStatus::Rejected);
    assert!(tx
        .deliveries
        .values()
        .any(|d| *d == (2, Event::Update, DeliveryState::Pending, 0)));
    match review(&mut tx, &r, 8) {
        Err(StoreError::Conflict {
            id: 2,
            from: "rejected",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        tx.violations.iter().map(|v| v.1).collect::<Vec<_>>(),
        [
            Outcome::Opened,
            Outcome::Absorbed,
            Outcome::Absorbed,
            Outcome::Suppressed,
            Outcome::Opened
        ]
    );
}

#[test]
fn a_key_opened_meanwhile_by_another_writer_absorbs_the_violation() {
    let (mut tx, c) = (
        Mem {
            races: 1,
            ..Mem::default()
        },
        cfg(),
    );
    assert_eq!(
        record(&mut tx, &seen(0), &c, 0).unwrap(),
        (1, Outcome::Absorbed)
    );
    assert_eq!(tx.cases.len(), 1, "one case for the key");
}

#[test]
fn a_failed_create_fails_the_follow_ups_and_evidence_is_bounded() {
    let (mut tx, c) = (Mem::default(), cfg());
    record(&mut tx, &seen(0), &c, 0).unwrap();
    record(&mut tx, &seen(1), &c, 0).unwrap();
    let a = |id| Attempt {
        delivery_id: id,
        at_ms: 50,
        result: "http".into(),
        http_status: Some(400),
        detail: String::new(),
    };
    finish(&mut tx, 1, &a(1), &AfterAttempt::Failed("HTTP 400".into())).unwrap();
    assert!(tx.deliveries.values().all(|d| d.2 == DeliveryState::Failed));
    match finish(&mut tx, 99, &a(99), &AfterAttempt::Failed(String::new())) {
        Err(StoreError::NoDelivery(99)) => {}
        other => panic!("{other:?}"),
    }
    for _ in 0..5 {
        add_evidence(&mut tx, 1, "cam", 3, None, b"jpeg", 3).unwrap();
    }
    assert_eq!(tx.evidence.len(), 3);
    match add_evidence(&mut tx, 42, "cam", 3, None, b"jpeg", 3) {
        Err(StoreError::NotFound(42)) => {}
        other => panic!("{other:?}"),
    }
}

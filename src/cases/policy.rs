//! The case policy, written once for every store: what a violation does to the cases
//! of its key (absorb, expire and open, suppress, open), what a review, a status change
//! and a delivery attempt write, how deliveries are queued and under which key. The
//! decisions are pure functions ([`on_active`], [`in_cooldown`], [`transition`],
//! [`after_attempt`]); the operations ([`record`], [`review`], [`set_status`],
//! [`finish`], [`add_evidence`]) run them inside one transaction of a store, through
//! [`CaseTx`]: the SQL a store answers, nothing more. Each store keeps its own
//! migrations, locking and claiming queries.

use super::photo::PhotoRole;
use super::{
    AfterAttempt, Attempt, CaseStatus, DedupConfig, DeliveryState, Event, Evidence, NewViolation,
    Outcome, Review, StoreError, Verdict,
};

/// The statements of one store transaction the policy needs. A store that shares its
/// database among nodes locks the rows it reads for a decision (the key's active case,
/// a case whose status changes, the case of a delivery) until the transaction ends.
pub trait CaseTx {
    /// The key's active (open or confirmed) case: its id and when it was last seen.
    fn active_case(&mut self, kind: &str, cell: &str) -> Result<Option<(i64, i64)>, StoreError>;
    /// The key's most recently closed or rejected case: its id and when it closed.
    fn last_closed(&mut self, kind: &str, cell: &str) -> Result<Option<(i64, i64)>, StoreError>;
    /// Opens a case for `v`; `None` when another writer opened the key meanwhile.
    fn insert_case(&mut self, v: &NewViolation) -> Result<Option<i64>, StoreError>;
    /// A case absorbs a sighting at `at_ms`: first and last seen widen, the count grows.
    fn absorb(&mut self, id: i64, at_ms: i64) -> Result<(), StoreError>;
    /// A case's status; `None` when there is no such case.
    fn status(&mut self, id: i64) -> Result<Option<CaseStatus>, StoreError>;
    /// Sets a case's status, and its closing time when given.
    fn set_status(
        &mut self,
        id: i64,
        status: CaseStatus,
        closed_ms: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Keeps a violation under a case, with what it did.
    fn insert_violation(
        &mut self,
        case_id: i64,
        outcome: Outcome,
        v: &NewViolation,
    ) -> Result<(), StoreError>;
    /// Adds a camera to the cameras that saw a case (once).
    fn add_camera(&mut self, case_id: i64, camera: &str) -> Result<(), StoreError>;
    /// Keeps a review decision.
    fn insert_review(&mut self, r: &Review) -> Result<(), StoreError>;
    /// How many deliveries a case has had queued.
    fn delivery_count(&mut self, case_id: i64) -> Result<i64, StoreError>;
    /// Whether a follow-up of the case waits to be sent.
    fn pending_update(&mut self, case_id: i64) -> Result<bool, StoreError>;
    /// Brings the case's waiting follow-up forward to `at_ms` at the latest; how many
    /// were waiting.
    fn hasten_update(&mut self, case_id: i64, at_ms: i64) -> Result<u64, StoreError>;
    /// Queues a delivery.
    fn insert_delivery(&mut self, d: &NewDelivery) -> Result<(), StoreError>;
    /// A delivery's case and event; `None` when there is no such delivery.
    fn delivery(&mut self, id: i64) -> Result<Option<(i64, Event)>, StoreError>;
    /// Logs an attempt.
    fn insert_attempt(&mut self, a: &Attempt) -> Result<(), StoreError>;
    /// Keeps the receiver's request id and token for a case (each only when given).
    fn set_remote(
        &mut self,
        case_id: i64,
        remote_id: Option<&str>,
        token: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Moves a delivery on after an attempt (one more attempt counted).
    fn update_delivery(&mut self, id: i64, w: &DeliveryWrite) -> Result<(), StoreError>;
    /// Fails every pending delivery of a case, with why.
    fn fail_pending(&mut self, case_id: i64, at_ms: i64, why: &str) -> Result<(), StoreError>;
    /// How many evidence images a case has.
    fn evidence_count(&mut self, case_id: i64) -> Result<i64, StoreError>;
    /// A case's fixed fields: kind, cell, first seen (locking the case where the
    /// store can, so that its evidence is chained in one order).
    fn case_key(&mut self, id: i64) -> Result<Option<(String, String, i64)>, StoreError>;
    /// The chain of a case's newest chained evidence item.
    fn chain_head(&mut self, case_id: i64) -> Result<Option<String>, StoreError>;
    /// A case's oldest chained evidence item: its SHA-256, camera, time and chain
    /// (which says the chain's version).
    fn first_chained(&mut self, case_id: i64) -> Result<Option<ChainedItem>, StoreError>;
    /// Keeps an evidence image (with its SHA-256 and chain, hex) for a case.
    fn insert_evidence(
        &mut self,
        case_id: i64,
        camera: &str,
        at_ms: i64,
        role: Option<PhotoRole>,
        jpeg: &[u8],
        hashes: (&str, &str),
    ) -> Result<Evidence, StoreError>;
}

/// A delivery to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The case.
    pub case_id: i64,
    /// What it carries.
    pub event: Event,
    /// Its idempotency key ([`super::new_idempotency_key`]).
    pub key: String,
    /// When it is due, ms since the Unix epoch.
    pub next_at_ms: i64,
    /// When it was queued.
    pub created_ms: i64,
}

/// What an attempt writes to its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryWrite {
    /// The delivery's new state.
    pub state: DeliveryState,
    /// When it is due next (a retry), else unchanged.
    pub next_at_ms: Option<i64>,
    /// When it was done (delivered, failed, skipped).
    pub done_ms: Option<i64>,
    /// The error kept (unchanged when `None`).
    pub error: Option<String>,
}

/// What an attempt's outcome writes.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptWrites {
    /// To the delivery.
    pub delivery: DeliveryWrite,
    /// The receiver's request id and token to keep, when it gave either.
    pub remote: Option<(Option<String>, Option<String>)>,
    /// Queue a resolve (the receiver answered with a token and no id).
    pub resolve: bool,
    /// Fail the case's other pending deliveries, with this reason (a create or a
    /// resolve failed for good: the case was never filed, its follow-ups cannot go).
    pub fail_rest: Option<String>,
}

/// The first step of a violation's dedup, from the key's active case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveStep {
    /// Seen within the case window: the active case absorbs it.
    Absorb(i64),
    /// Not seen for the whole window: the active case expires (closed at the window's
    /// end), and the violation goes on as if the key had none.
    Expire {
        /// The case.
        id: i64,
        /// When it closed: its last sighting plus the window.
        closed_ms: i64,
    },
    /// No active case.
    None,
}

/// What the key's active case (id, last seen) does with a violation at `at_ms`.
pub fn on_active(active: Option<(i64, i64)>, at_ms: i64, cfg: &DedupConfig) -> ActiveStep {
    let window = cfg.window.as_millis() as i64;
    match active {
        Some((id, last)) if at_ms - last <= window => ActiveStep::Absorb(id),
        Some((id, last)) => ActiveStep::Expire {
            id,
            closed_ms: last + window,
        },
        None => ActiveStep::None,
    }
}

/// The case whose cool-down suppresses a violation at `at_ms`, given the key's most
/// recently closed case (id, closed at): `None` when the key may open a new case.
pub fn in_cooldown(last_closed: Option<(i64, i64)>, at_ms: i64, cfg: &DedupConfig) -> Option<i64> {
    let cooldown = cfg.cooldown.as_millis() as i64;
    last_closed
        .filter(|&(_, closed)| at_ms - closed < cooldown)
        .map(|(id, _)| id)
}

/// When a follow-up queued at `now_ms` goes out.
pub fn followup_at(now_ms: i64, cfg: &DedupConfig) -> i64 {
    now_ms + cfg.followup_delay.as_millis() as i64
}

/// The status a verdict gives a case.
pub fn verdict_status(v: Verdict) -> CaseStatus {
    match v {
        Verdict::Confirm => CaseStatus::Confirmed,
        Verdict::Reject => CaseStatus::Rejected,
    }
}

/// Whether case `id` may go from `from` to `to` at `at_ms`: the closing time to write
/// (rejected and closed cases close; confirmed keeps what it had), or the conflict.
pub fn transition(
    id: i64,
    from: CaseStatus,
    to: CaseStatus,
    at_ms: i64,
) -> Result<Option<i64>, StoreError> {
    if !from.can_become(to) {
        return Err(StoreError::Conflict {
            id,
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    Ok(matches!(to, CaseStatus::Rejected | CaseStatus::Closed).then_some(at_ms))
}

/// What an attempt at a delivery of `event`, ended at `at_ms`, writes.
pub fn after_attempt(event: Event, at_ms: i64, after: &AfterAttempt) -> AttemptWrites {
    let done = |state, error: &str| DeliveryWrite {
        state,
        next_at_ms: None,
        done_ms: Some(at_ms),
        error: Some(error.to_string()),
    };
    let mut w = AttemptWrites {
        delivery: DeliveryWrite {
            state: DeliveryState::Delivered,
            next_at_ms: None,
            done_ms: Some(at_ms),
            error: None,
        },
        remote: None,
        resolve: false,
        fail_rest: None,
    };
    match after {
        AfterAttempt::Delivered { remote_id, token } => {
            if remote_id.is_some() || token.is_some() {
                w.remote = Some((remote_id.clone(), token.clone()));
            }
            w.resolve = remote_id.is_none() && token.is_some();
        }
        AfterAttempt::Retry { at_ms: next, error } => {
            w.delivery = DeliveryWrite {
                state: DeliveryState::Pending,
                next_at_ms: Some(*next),
                done_ms: None,
                error: Some(error.clone()),
            };
        }
        AfterAttempt::Failed(why) => {
            w.delivery = done(DeliveryState::Failed, why);
            if event != Event::Update {
                w.fail_rest = Some(format!(
                    "the case was not filed ({} failed: {why})",
                    event.as_str()
                ));
            }
        }
        AfterAttempt::Skipped(why) => w.delivery = done(DeliveryState::Skipped, why),
    }
    w
}

/// Queues a delivery of a case under a new unguessable idempotency key, stored with
/// it: the same however often the delivery is retried.
pub fn enqueue(
    tx: &mut dyn CaseTx,
    case_id: i64,
    event: Event,
    next_at_ms: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let seq = tx.delivery_count(case_id)? + 1;
    tx.insert_delivery(&NewDelivery {
        case_id,
        event,
        key: super::new_idempotency_key(case_id, seq),
        next_at_ms,
        created_ms: now_ms,
    })
}

/// Records a violation: dedup and store, in the caller's transaction. A key's active
/// case absorbs it (one follow-up queued at a time, no sooner than the follow-up
/// delay); an active case not seen for the window expires first; a key in cool-down
/// keeps it as suppressed; else it opens a case, queued for delivery at once. When
/// another writer opens the key meanwhile, the violation is decided again against it.
pub fn record(
    tx: &mut dyn CaseTx,
    v: &NewViolation,
    cfg: &DedupConfig,
    now_ms: i64,
) -> Result<(i64, Outcome), StoreError> {
    let (case_id, outcome) = loop {
        match on_active(tx.active_case(v.kind.as_str(), &v.cell)?, v.at_ms, cfg) {
            ActiveStep::Absorb(id) => {
                tx.absorb(id, v.at_ms)?;
                if !tx.pending_update(id)? {
                    enqueue(tx, id, Event::Update, followup_at(now_ms, cfg), now_ms)?;
                }
                break (id, Outcome::Absorbed);
            }
            ActiveStep::Expire { id, closed_ms } => {
                tx.set_status(id, CaseStatus::Closed, Some(closed_ms))?
            }
            ActiveStep::None => {}
        }
        if let Some(id) = in_cooldown(tx.last_closed(v.kind.as_str(), &v.cell)?, v.at_ms, cfg) {
            break (id, Outcome::Suppressed);
        }
        if let Some(id) = tx.insert_case(v)? {
            enqueue(tx, id, Event::Create, 0, now_ms)?;
            break (id, Outcome::Opened);
        }
        // another writer opened the key a moment ago: decide against its case
    };
    tx.insert_violation(case_id, outcome, v)?;
    if outcome != Outcome::Suppressed {
        tx.add_camera(case_id, &v.camera)?;
    }
    Ok((case_id, outcome))
}

/// Moves case `id` to `status` at `at_ms`, when its status allows.
pub fn set_status(
    tx: &mut dyn CaseTx,
    id: i64,
    status: CaseStatus,
    at_ms: i64,
) -> Result<(), StoreError> {
    let from = tx.status(id)?.ok_or(StoreError::NotFound(id))?;
    let closed = transition(id, from, status, at_ms)?;
    tx.set_status(id, status, closed)
}

/// Records a reviewer's decision: the case becomes confirmed or rejected, and the
/// decision goes out at once (a waiting follow-up is brought forward, or one queued).
pub fn review(tx: &mut dyn CaseTx, r: &Review, now_ms: i64) -> Result<(), StoreError> {
    set_status(tx, r.case_id, verdict_status(r.verdict), r.at_ms)?;
    tx.insert_review(r)?;
    if tx.hasten_update(r.case_id, now_ms)? == 0 {
        enqueue(tx, r.case_id, Event::Update, 0, now_ms)?;
    }
    Ok(())
}

/// Logs an attempt and moves its delivery on ([`after_attempt`]).
pub fn finish(
    tx: &mut dyn CaseTx,
    delivery_id: i64,
    attempt: &Attempt,
    after: &AfterAttempt,
) -> Result<(), StoreError> {
    let (case_id, event) = tx
        .delivery(delivery_id)?
        .ok_or(StoreError::NoDelivery(delivery_id))?;
    tx.insert_attempt(attempt)?;
    let w = after_attempt(event, attempt.at_ms, after);
    if let Some((id, token)) = &w.remote {
        tx.set_remote(case_id, id.as_deref(), token.as_deref())?;
    }
    if w.resolve {
        enqueue(tx, case_id, Event::Resolve, attempt.at_ms, attempt.at_ms)?;
    }
    tx.update_delivery(delivery_id, &w.delivery)?;
    if let Some(why) = &w.fail_rest {
        tx.fail_pending(case_id, attempt.at_ms, why)?;
    }
    Ok(())
}

/// An evidence item as its chain's version is read from it: SHA-256, camera, time,
/// chain.
pub type ChainedItem = (String, String, i64, String);

/// Keeps an evidence image for a case, at most `limit` per case (the first ones);
/// `None` when it has them.
pub fn add_evidence(
    tx: &mut dyn CaseTx,
    case_id: i64,
    camera: &str,
    at_ms: i64,
    role: Option<PhotoRole>,
    jpeg: &[u8],
    limit: usize,
) -> Result<Option<Evidence>, StoreError> {
    use sha2::{Digest, Sha256};
    let (kind, cell, first) = tx.case_key(case_id)?.ok_or(StoreError::NotFound(case_id))?;
    if tx.evidence_count(case_id)? as usize >= limit {
        return Ok(None);
    }
    let sha256 = format!("{:x}", Sha256::digest(jpeg));
    use super::integrity::{genesis, link, version_of};
    let oldest = tx.first_chained(case_id)?;
    let oldest = oldest
        .as_ref()
        .map(|(h, c, t, chain)| (h.as_str(), c.as_str(), *t, chain.as_str()));
    let version = version_of(oldest, case_id, &kind, &cell, first);
    let previous = match tx.chain_head(case_id)? {
        Some(h) => h,
        None => genesis(version, case_id, &kind, &cell, first),
    };
    let chain = link(version, &previous, &sha256, camera, at_ms, role);
    tx.insert_evidence(case_id, camera, at_ms, role, jpeg, (&sha256, &chain))
        .map(Some)
}

/// The [`CaseStore`](super::CaseStore) methods that write, each the policy's operation
/// in one transaction of the store: for the `impl CaseStore` of a store with a
/// `write(|tx| …)` method (one transaction, committed on `Ok`), a `dedup` field and a
/// `clock` field (a [`crate::clock::Clock`]: when follow-ups are due, when deliveries
/// were queued).
macro_rules! policy_writes {
    () => {
        fn record(
            &self,
            v: &$crate::cases::NewViolation,
        ) -> Result<(i64, $crate::cases::Outcome), $crate::cases::StoreError> {
            let now = self.clock.now_ms();
            self.write(|tx| $crate::cases::policy::record(tx, v, &self.dedup, now))
        }

        fn set_status(
            &self,
            id: i64,
            status: $crate::cases::CaseStatus,
            at_ms: i64,
        ) -> Result<(), $crate::cases::StoreError> {
            self.write(|tx| $crate::cases::policy::set_status(tx, id, status, at_ms))
        }

        fn add_photo(
            &self,
            case_id: i64,
            camera: &str,
            at_ms: i64,
            role: Option<$crate::cases::photo::PhotoRole>,
            jpeg: &[u8],
            limit: usize,
        ) -> Result<Option<$crate::cases::Evidence>, $crate::cases::StoreError> {
            self.write(|tx| {
                $crate::cases::policy::add_evidence(tx, case_id, camera, at_ms, role, jpeg, limit)
            })
        }

        fn review(&self, review: &$crate::cases::Review) -> Result<(), $crate::cases::StoreError> {
            let now = self.clock.now_ms();
            self.write(|tx| $crate::cases::policy::review(tx, review, now))
        }

        fn finish(
            &self,
            delivery_id: i64,
            attempt: &$crate::cases::Attempt,
            after: &$crate::cases::AfterAttempt,
        ) -> Result<(), $crate::cases::StoreError> {
            self.write(|tx| $crate::cases::policy::finish(tx, delivery_id, attempt, after))
        }
    };
}
pub(crate) use policy_writes;

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

//! The policy's statements ([`CaseTx`]) in PostgreSQL's dialect. Many nodes write at
//! once, so the rows a decision reads are locked until the transaction ends: the key's
//! active case (`FOR UPDATE`), a case whose status changes, the case of a delivery
//! (which orders the case's deliveries) and of new evidence (so that two nodes cannot
//! pass the limit together). A new case goes in with `ON CONFLICT DO NOTHING` on the
//! partial unique index of active cases: a node that loses the race decides again
//! against the winner's case.

use postgres::types::ToSql;
use postgres::{Row, Transaction};

use super::error;
use crate::cases::photo::PhotoRole;
use crate::cases::policy::{CaseTx, DeliveryWrite, NewDelivery};
use crate::cases::{
    Attempt, CaseStatus, Event, Evidence, NewViolation, Outcome, Review, StoreError,
};

/// One transaction's statements.
pub(super) struct PgTx<'a, 'b> {
    pub tx: &'a mut Transaction<'b>,
    pub store: &'a str,
}

impl PgTx<'_, '_> {
    fn run(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.tx.execute(sql, p).map_err(|e| error(self.store, &e))
    }

    fn opt(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, StoreError> {
        self.tx.query_opt(sql, p).map_err(|e| error(self.store, &e))
    }

    fn lock_case(&mut self, id: i64) -> Result<Option<Row>, StoreError> {
        self.opt("SELECT status FROM cases WHERE id = $1 FOR UPDATE", &[&id])
    }
}

impl CaseTx for PgTx<'_, '_> {
    fn active_case(&mut self, kind: &str, cell: &str) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(self
            .opt(
                "SELECT id, last_seen_ms FROM cases WHERE kind = $1 AND cell = $2
                 AND status IN ('open', 'confirmed') FOR UPDATE",
                &[&kind, &cell],
            )?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn last_closed(&mut self, kind: &str, cell: &str) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(self
            .opt(
                "SELECT id, closed_ms FROM cases WHERE kind = $1 AND cell = $2 AND status IN ('rejected', 'closed')
                 AND closed_ms IS NOT NULL ORDER BY closed_ms DESC LIMIT 1",
                &[&kind, &cell],
            )?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn insert_case(&mut self, v: &NewViolation) -> Result<Option<i64>, StoreError> {
        Ok(self
            .opt(
                "INSERT INTO cases (kind, cell, admin_path, status, first_seen_ms, last_seen_ms, count, lat, lon)
                 VALUES ($1, $2, $3, 'open', $4, $4, 1, $5, $6)
                 ON CONFLICT (kind, cell) WHERE status IN ('open', 'confirmed') DO NOTHING
                 RETURNING id",
                &[&v.kind.as_str(), &v.cell, &v.admin_path, &v.at_ms, &v.lat, &v.lon],
            )?
            .map(|r| r.get(0)))
    }

    fn absorb(&mut self, id: i64, at_ms: i64) -> Result<(), StoreError> {
        self.run(
            "UPDATE cases SET last_seen_ms = greatest(last_seen_ms, $2),
             first_seen_ms = least(first_seen_ms, $2), count = count + 1 WHERE id = $1",
            &[&id, &at_ms],
        )
        .map(drop)
    }

    fn status(&mut self, id: i64) -> Result<Option<CaseStatus>, StoreError> {
        Ok(self
            .lock_case(id)?
            .map(|r| CaseStatus::parse(r.get(0)).unwrap_or(CaseStatus::Closed)))
    }

    fn set_status(
        &mut self,
        id: i64,
        status: CaseStatus,
        closed_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.run(
            "UPDATE cases SET status = $2, closed_ms = coalesce($3, closed_ms) WHERE id = $1",
            &[&id, &status.as_str(), &closed_ms],
        )
        .map(drop)
    }

    fn insert_violation(
        &mut self,
        case_id: i64,
        outcome: Outcome,
        v: &NewViolation,
    ) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO violations (case_id, outcome, camera, zone, lat, lon, at_ms, since_ms, zone_version, footprint, model, model_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &case_id,
                &outcome.as_str(),
                &v.camera,
                &v.zone,
                &v.lat,
                &v.lon,
                &v.at_ms,
                &v.since_ms,
                &v.zone_version,
                &super::super::footprint_text(v),
                &v.model,
                &v.model_sha256,
            ],
        )
        .map(drop)
    }

    fn add_camera(&mut self, case_id: i64, camera: &str) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO case_cameras (case_id, camera) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&case_id, &camera],
        )
        .map(drop)
    }

    fn insert_review(&mut self, r: &Review) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO reviews (case_id, verdict, reviewer, note, at_ms, reason) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &r.case_id,
                &r.verdict.as_str(),
                &r.reviewer,
                &r.note,
                &r.at_ms,
                &r.reason.map_or("", |x| x.as_str()),
            ],
        )
        .map(drop)
    }

    fn delivery_count(&mut self, case_id: i64) -> Result<i64, StoreError> {
        Ok(self
            .opt(
                "SELECT count(*) FROM deliveries WHERE case_id = $1",
                &[&case_id],
            )?
            .map_or(0, |r| r.get(0)))
    }

    fn pending_update(&mut self, case_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .opt(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE case_id = $1 AND state = 'pending' AND event = 'update')",
                &[&case_id],
            )?
            .is_some_and(|r| r.get(0)))
    }

    fn hasten_update(&mut self, case_id: i64, at_ms: i64) -> Result<u64, StoreError> {
        self.run(
            "UPDATE deliveries SET next_at_ms = least(next_at_ms, $2)
             WHERE case_id = $1 AND state = 'pending' AND event = 'update'",
            &[&case_id, &at_ms],
        )
    }

    fn insert_delivery(&mut self, d: &NewDelivery) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO deliveries (case_id, event, idempotency_key, state, next_at_ms, created_ms)
             VALUES ($1, $2, $3, 'pending', $4, $5)",
            &[
                &d.case_id,
                &d.event.as_str(),
                &d.key,
                &d.next_at_ms,
                &d.created_ms,
            ],
        )
        .map(drop)
    }

    /// Locks the delivery's case row too: that orders this with the case's other
    /// deliveries.
    fn delivery(&mut self, id: i64) -> Result<Option<(i64, Event)>, StoreError> {
        let Some(r) = self.opt(
            "SELECT case_id, event FROM deliveries WHERE id = $1",
            &[&id],
        )?
        else {
            return Ok(None);
        };
        let case_id: i64 = r.get(0);
        self.lock_case(case_id)?;
        Ok(Some((case_id, Event::parse(r.get(1)))))
    }

    fn insert_attempt(&mut self, a: &Attempt) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO delivery_attempts (delivery_id, at_ms, result, http_status, detail)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &a.delivery_id,
                &a.at_ms,
                &a.result,
                &a.http_status.map(i64::from),
                &a.detail,
            ],
        )
        .map(drop)
    }

    fn set_remote(
        &mut self,
        case_id: i64,
        remote_id: Option<&str>,
        token: Option<&str>,
    ) -> Result<(), StoreError> {
        self.run(
            "UPDATE cases SET remote_id = coalesce($2, remote_id), remote_token = coalesce($3, remote_token)
             WHERE id = $1",
            &[&case_id, &remote_id, &token],
        )
        .map(drop)
    }

    /// The node's claim on the delivery ends with the attempt.
    fn update_delivery(&mut self, id: i64, w: &DeliveryWrite) -> Result<(), StoreError> {
        self.run(
            "UPDATE deliveries SET state = $2, attempts = attempts + 1, next_at_ms = coalesce($3, next_at_ms),
             done_ms = $4, last_error = coalesce($5, last_error), claimed_until = NULL WHERE id = $1",
            &[
                &id,
                &w.state.as_str(),
                &w.next_at_ms,
                &w.done_ms,
                &w.error,
            ],
        )
        .map(drop)
    }

    fn fail_pending(&mut self, case_id: i64, at_ms: i64, why: &str) -> Result<(), StoreError> {
        self.run(
            "UPDATE deliveries SET state = 'failed', done_ms = $2, last_error = $3
             WHERE case_id = $1 AND state = 'pending'",
            &[&case_id, &at_ms, &why],
        )
        .map(drop)
    }

    fn evidence_count(&mut self, case_id: i64) -> Result<i64, StoreError> {
        Ok(self
            .opt(
                "SELECT count(*) FROM evidence WHERE case_id = $1",
                &[&case_id],
            )?
            .map_or(0, |r| r.get(0)))
    }

    /// The bytes go into the database, so that every node's API serves them.
    fn insert_evidence(
        &mut self,
        case_id: i64,
        camera: &str,
        at_ms: i64,
        role: Option<PhotoRole>,
        jpeg: &[u8],
        (sha256, chain): (&str, &str),
    ) -> Result<Evidence, StoreError> {
        let id: i64 = self
            .opt(
                "INSERT INTO evidence (case_id, file, sha256, camera, at_ms, chain, role) VALUES ($1, '', $2, $3, $4, $5, $6) RETURNING id",
                &[&case_id, &sha256, &camera, &at_ms, &chain, &role.map(|r| r.as_str())],
            )?
            .map(|r| r.get(0))
            .expect("INSERT … RETURNING returns its row");
        let file = crate::cases::evidence_file(case_id, id, role);
        self.run(
            "INSERT INTO evidence_jpeg (evidence_id, jpeg) VALUES ($1, $2)",
            &[&id, &jpeg],
        )?;
        self.run("UPDATE evidence SET file = $2 WHERE id = $1", &[&id, &file])?;
        Ok(Evidence {
            id,
            case_id,
            file,
            sha256: sha256.to_string(),
            camera: camera.to_string(),
            at_ms,
            role,
            chain: Some(chain.to_string()),
        })
    }

    /// Locks the case (`FOR UPDATE`): two nodes adding evidence to one case chain it
    /// one after the other.
    fn case_key(&mut self, id: i64) -> Result<Option<(String, String, i64)>, StoreError> {
        Ok(self
            .opt(
                "SELECT kind, cell, first_seen_ms FROM cases WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            .map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    fn first_chained(
        &mut self,
        case_id: i64,
    ) -> Result<Option<crate::cases::policy::ChainedItem>, StoreError> {
        Ok(self
            .opt(
                "SELECT sha256, camera, at_ms, chain FROM evidence WHERE case_id = $1 AND chain IS NOT NULL ORDER BY id LIMIT 1",
                &[&case_id],
            )?
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))))
    }

    fn chain_head(&mut self, case_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .opt(
                "SELECT chain FROM evidence WHERE case_id = $1 AND chain IS NOT NULL ORDER BY id DESC LIMIT 1",
                &[&case_id],
            )?
            .map(|r| r.get(0)))
    }
}

//! The policy's statements ([`CaseTx`]) in SQLite's dialect. The store runs them in
//! one immediate transaction, which takes the file's write lock: nobody else decides
//! meanwhile, so no row locks are needed.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::schema::classify;
use crate::cases::photo::PhotoRole;
use crate::cases::policy::{CaseTx, DeliveryWrite, NewDelivery};
use crate::cases::{
    Attempt, CaseStatus, Event, Evidence, NewViolation, Outcome, Review, StoreError,
};

/// One transaction's statements.
pub(super) struct LiteTx<'a> {
    pub c: &'a Connection,
    pub dir: &'a Path,
    pub store: &'a str,
}

impl LiteTx<'_> {
    fn run(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, StoreError> {
        self.c
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(p))
            .map_err(|e| classify(self.store, e))
    }

    fn one<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        self.c
            .prepare_cached(sql)
            .and_then(|mut st| st.query_row(p, f).optional())
            .map_err(|e| classify(self.store, e))
    }
}

impl CaseTx for LiteTx<'_> {
    fn active_case(&mut self, kind: &str, cell: &str) -> Result<Option<(i64, i64)>, StoreError> {
        self.one(
            "SELECT id, last_seen_ms FROM cases WHERE kind = ?1 AND cell = ?2 AND status IN ('open', 'confirmed')",
            params![kind, cell],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn last_closed(&mut self, kind: &str, cell: &str) -> Result<Option<(i64, i64)>, StoreError> {
        self.one(
            "SELECT id, closed_ms FROM cases WHERE kind = ?1 AND cell = ?2 AND status IN ('rejected', 'closed')
             AND closed_ms IS NOT NULL ORDER BY closed_ms DESC LIMIT 1",
            params![kind, cell],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn insert_case(&mut self, v: &NewViolation) -> Result<Option<i64>, StoreError> {
        self.run(
            "INSERT INTO cases (kind, cell, admin_path, status, first_seen_ms, last_seen_ms, count, lat, lon)
             VALUES (?1, ?2, ?3, 'open', ?4, ?4, 1, ?5, ?6)",
            params![v.kind, v.cell, v.admin_path, v.at_ms, v.lat, v.lon],
        )?;
        Ok(Some(self.c.last_insert_rowid()))
    }

    fn absorb(&mut self, id: i64, at_ms: i64) -> Result<(), StoreError> {
        self.run(
            "UPDATE cases SET last_seen_ms = max(last_seen_ms, ?2), first_seen_ms = min(first_seen_ms, ?2),
             count = count + 1 WHERE id = ?1",
            params![id, at_ms],
        )
        .map(drop)
    }

    fn status(&mut self, id: i64) -> Result<Option<CaseStatus>, StoreError> {
        Ok(self
            .one("SELECT status FROM cases WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })?
            .map(|s| CaseStatus::parse(&s).unwrap_or(CaseStatus::Closed)))
    }

    fn set_status(
        &mut self,
        id: i64,
        status: CaseStatus,
        closed_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.run(
            "UPDATE cases SET status = ?2, closed_ms = coalesce(?3, closed_ms) WHERE id = ?1",
            params![id, status.as_str(), closed_ms],
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                case_id,
                outcome.as_str(),
                v.camera,
                v.zone,
                v.lat,
                v.lon,
                v.at_ms,
                v.since_ms,
                v.zone_version,
                super::super::footprint_text(v),
                v.model,
                v.model_sha256
            ],
        )
        .map(drop)
    }

    fn add_camera(&mut self, case_id: i64, camera: &str) -> Result<(), StoreError> {
        self.run(
            "INSERT OR IGNORE INTO case_cameras (case_id, camera) VALUES (?1, ?2)",
            params![case_id, camera],
        )
        .map(drop)
    }

    fn insert_review(&mut self, r: &Review) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO reviews (case_id, verdict, reviewer, note, at_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                r.case_id,
                r.verdict.as_str(),
                r.reviewer,
                r.note,
                r.at_ms,
                r.reason.map_or("", |x| x.as_str())
            ],
        )
        .map(drop)
    }

    fn delivery_count(&mut self, case_id: i64) -> Result<i64, StoreError> {
        Ok(self
            .one(
                "SELECT count(*) FROM deliveries WHERE case_id = ?1",
                [case_id],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    fn pending_update(&mut self, case_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .one(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE case_id = ?1 AND state = 'pending' AND event = 'update')",
                [case_id],
                |r| r.get(0),
            )?
            .unwrap_or(false))
    }

    fn hasten_update(&mut self, case_id: i64, at_ms: i64) -> Result<u64, StoreError> {
        self.run(
            "UPDATE deliveries SET next_at_ms = min(next_at_ms, ?2)
             WHERE case_id = ?1 AND state = 'pending' AND event = 'update'",
            params![case_id, at_ms],
        )
        .map(|n| n as u64)
    }

    fn insert_delivery(&mut self, d: &NewDelivery) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO deliveries (case_id, event, idempotency_key, state, next_at_ms, created_ms)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
            params![
                d.case_id,
                d.event.as_str(),
                d.key,
                d.next_at_ms,
                d.created_ms
            ],
        )
        .map(drop)
    }

    fn delivery(&mut self, id: i64) -> Result<Option<(i64, Event)>, StoreError> {
        self.one(
            "SELECT case_id, event FROM deliveries WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, Event::parse(&r.get::<_, String>(1)?))),
        )
    }

    fn insert_attempt(&mut self, a: &Attempt) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO delivery_attempts (delivery_id, at_ms, result, http_status, detail)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.delivery_id, a.at_ms, a.result, a.http_status, a.detail],
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
            "UPDATE cases SET remote_id = coalesce(?2, remote_id), remote_token = coalesce(?3, remote_token)
             WHERE id = ?1",
            params![case_id, remote_id, token],
        )
        .map(drop)
    }

    fn update_delivery(&mut self, id: i64, w: &DeliveryWrite) -> Result<(), StoreError> {
        self.run(
            "UPDATE deliveries SET state = ?2, attempts = attempts + 1, next_at_ms = coalesce(?3, next_at_ms),
             done_ms = ?4, last_error = coalesce(?5, last_error) WHERE id = ?1",
            params![id, w.state.as_str(), w.next_at_ms, w.done_ms, w.error],
        )
        .map(drop)
    }

    fn fail_pending(&mut self, case_id: i64, at_ms: i64, why: &str) -> Result<(), StoreError> {
        self.run(
            "UPDATE deliveries SET state = 'failed', done_ms = ?2, last_error = ?3
             WHERE case_id = ?1 AND state = 'pending'",
            params![case_id, at_ms, why],
        )
        .map(drop)
    }

    fn evidence_count(&mut self, case_id: i64) -> Result<i64, StoreError> {
        Ok(self
            .one(
                "SELECT count(*) FROM evidence WHERE case_id = ?1",
                [case_id],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    /// The file goes to `evidence/<case>/<id>.jpg` (`.mp4`) under the data directory (written
    /// whole before the record names it).
    fn insert_evidence(
        &mut self,
        case_id: i64,
        camera: &str,
        at_ms: i64,
        role: Option<PhotoRole>,
        jpeg: &[u8],
        (sha256, chain): (&str, &str),
    ) -> Result<Evidence, StoreError> {
        self.run(
            "INSERT INTO evidence (case_id, file, sha256, camera, at_ms, chain, role) VALUES (?1, '', ?2, ?3, ?4, ?5, ?6)",
            params![case_id, sha256, camera, at_ms, chain, role.map(|r| r.as_str())],
        )?;
        let id = self.c.last_insert_rowid();
        let file = crate::cases::evidence_file(case_id, id, role);
        let path = self.dir.join(&file);
        crate::cases::write_evidence_file(&path, jpeg).map_err(|e| StoreError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.run(
            "UPDATE evidence SET file = ?2 WHERE id = ?1",
            params![id, file],
        )?;
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

    fn case_key(&mut self, id: i64) -> Result<Option<(String, String, i64)>, StoreError> {
        self.one(
            "SELECT kind, cell, first_seen_ms FROM cases WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    fn first_chained(
        &mut self,
        case_id: i64,
    ) -> Result<Option<crate::cases::policy::ChainedItem>, StoreError> {
        self.one(
            "SELECT sha256, camera, at_ms, chain FROM evidence WHERE case_id = ?1 AND chain IS NOT NULL ORDER BY id LIMIT 1",
            [case_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    fn chain_head(&mut self, case_id: i64) -> Result<Option<String>, StoreError> {
        self.one(
            "SELECT chain FROM evidence WHERE case_id = ?1 AND chain IS NOT NULL ORDER BY id DESC LIMIT 1",
            [case_id],
            |r| r.get(0),
        )
    }
}

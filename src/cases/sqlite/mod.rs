//! The embedded case store: one SQLite file (WAL) in the data directory, versioned
//! migrations ([`schema`]), the case policy ([`crate::cases::policy`]) run in one
//! immediate transaction per write ([`tx`]). A partial unique index allows one active
//! (open or confirmed) case per key, so even a second writer on the same file could
//! not open a duplicate.

mod originals;
mod schema;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use schema::MIGRATIONS;
pub(crate) use schema::{classify, open_migrated};
use tx::LiteTx;

use super::ledger::{RejectReason, VerdictRow};
use super::{
    Attempt, Case, CaseQuery, CaseStatus, CaseStore, CaseZone, DedupConfig, Delivery,
    DeliveryCounts, DeliveryState, Event, Evidence, Review, Sighting, StoreError, Verdict,
    ViolationKind,
};

/// The SQLite store.
pub struct SqliteStore {
    dir: PathBuf,
    path: PathBuf,
    /// The file, for errors.
    name: String,
    conn: Mutex<Connection>,
    dedup: DedupConfig,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

fn read_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        case_id: r.get(1)?,
        event: Event::parse(&r.get::<_, String>(2)?),
        idempotency_key: r.get(3)?,
        state: DeliveryState::parse(&r.get::<_, String>(4)?),
        attempts: r.get(5)?,
        next_at_ms: r.get(6)?,
        created_ms: r.get(7)?,
        done_ms: r.get(8)?,
        last_error: r.get(9)?,
    })
}

const DELIVERY_COLUMNS: &str =
    "d.id, d.case_id, d.event, d.idempotency_key, d.state, d.attempts, d.next_at_ms, d.created_ms, d.done_ms, d.last_error";

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir` (file `cases.sqlite`), running
    /// pending migrations.
    pub fn open(dir: &Path, dedup: DedupConfig) -> Result<Self, StoreError> {
        let path = dir.join("cases.sqlite");
        let conn = open_migrated(&path, MIGRATIONS)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            name: path.display().to_string(),
            path,
            conn: Mutex::new(conn),
            dedup,
            clock: std::sync::Arc::new(crate::clock::SystemClock),
        })
    }

    /// The store reading the time from `clock` (tests; the system's clock otherwise).
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.name, e)
    }

    /// Runs `f` in one immediate transaction (the file's write lock held throughout):
    /// committed when it returns `Ok`, rolled back otherwise.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut LiteTx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let r = f(&mut LiteTx {
            c: &tx,
            dir: &self.dir,
            store: &self.name,
        })?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(r)
    }

    fn read_case(&self, conn: &Connection, id: i64) -> Result<Case, StoreError> {
        let mut case = conn
            .query_row(
                "SELECT id, kind, cell, admin_path, status, first_seen_ms, last_seen_ms, count, lat, lon, closed_ms
                 FROM cases WHERE id = ?1",
                [id],
                |r| {
                    Ok(Case {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        cell: r.get(2)?,
                        admin_path: r.get(3)?,
                        status: CaseStatus::parse(&r.get::<_, String>(4)?).unwrap_or(CaseStatus::Closed),
                        first_seen_ms: r.get(5)?,
                        last_seen_ms: r.get(6)?,
                        count: r.get(7)?,
                        cameras: Vec::new(),
                        lat: r.get(8)?,
                        lon: r.get(9)?,
                        closed_ms: r.get(10)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(id))?;
        let mut stmt = conn
            .prepare_cached("SELECT camera FROM case_cameras WHERE case_id = ?1 ORDER BY camera")
            .map_err(|e| self.err(e))?;
        case.cameras = stmt
            .query_map([id], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        Ok(case)
    }
}

impl CaseStore for SqliteStore {
    crate::cases::policy::policy_writes!();

    fn case(&self, id: i64) -> Result<Case, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.read_case(&conn, id)
    }

    fn cases(&self, status: Option<CaseStatus>, limit: usize) -> Result<Vec<Case>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let ids: Vec<i64> = {
            let mut stmt = conn
                .prepare_cached("SELECT id FROM cases WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(params![status.map(|s| s.as_str()), limit as i64], |r| {
                    r.get(0)
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        ids.into_iter()
            .map(|id| self.read_case(&conn, id))
            .collect()
    }

    fn case_counts(&self) -> Result<Vec<(ViolationKind, CaseStatus, u64)>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = conn
            .prepare_cached("SELECT kind, status, count(*) FROM cases GROUP BY kind, status ORDER BY kind, status")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, ViolationKind>(0)?,
                    CaseStatus::parse(&r.get::<_, String>(1)?).unwrap_or(CaseStatus::Closed),
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn find(&self, q: &CaseQuery) -> Result<(Vec<Case>, u64), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        const WHERE: &str = "WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR cell = ?2)
             AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR last_seen_ms >= ?4)
             AND (?5 IS NULL OR first_seen_ms <= ?5)";
        let args = params![
            q.kind,
            q.cell,
            q.status.map(|s| s.as_str()),
            q.since_ms,
            q.until_ms
        ];
        let total: i64 = conn
            .prepare_cached(&format!("SELECT count(*) FROM cases {WHERE}"))
            .and_then(|mut st| st.query_row(args, |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        let ids: Vec<i64> = {
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT id FROM cases {WHERE} ORDER BY last_seen_ms DESC, id DESC LIMIT ?6 OFFSET ?7"
                ))
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(
                    params![
                        q.kind,
                        q.cell,
                        q.status.map(|s| s.as_str()),
                        q.since_ms,
                        q.until_ms,
                        q.limit as i64,
                        q.offset as i64
                    ],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        let cases = ids
            .into_iter()
            .map(|id| self.read_case(&conn, id))
            .collect::<Result<_, _>>()?;
        Ok((cases, total as u64))
    }

    fn evidence_bytes(
        &self,
        case_id: i64,
        evidence_id: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let file: Option<String> = {
            let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.query_row(
                "SELECT file FROM evidence WHERE id = ?1 AND case_id = ?2",
                [evidence_id, case_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
        };
        match file {
            Some(f) => crate::cases::read_evidence_file(&self.dir, &f),
            None => Ok(None),
        }
    }

    fn evidence(&self, case_id: i64) -> Result<Vec<Evidence>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, case_id, file, sha256, camera, at_ms, chain, role FROM evidence WHERE case_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([case_id], |r| {
                Ok(Evidence {
                    id: r.get(0)?,
                    case_id: r.get(1)?,
                    file: r.get(2)?,
                    sha256: r.get(3)?,
                    camera: r.get(4)?,
                    at_ms: r.get(5)?,
                    chain: r.get(6)?,
                    role: r
                        .get::<_, Option<String>>(7)?
                        .and_then(|s| crate::cases::photo::PhotoRole::parse(&s)),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn reviews(&self, case_id: i64) -> Result<Vec<Review>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(
                "SELECT case_id, verdict, reviewer, note, at_ms, reason FROM reviews WHERE case_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([case_id], |r| {
                Ok(Review {
                    case_id: r.get(0)?,
                    verdict: Verdict::parse(&r.get::<_, String>(1)?).unwrap_or(Verdict::Reject),
                    reviewer: r.get(2)?,
                    note: r.get(3)?,
                    at_ms: r.get(4)?,
                    reason: RejectReason::parse(&r.get::<_, String>(5)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn verdicts(&self, since_ms: i64) -> Result<Vec<VerdictRow>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(super::ledger::VERDICTS)
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([since_ms], |r| {
                Ok(VerdictRow::of(
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    &r.get::<_, String>(6)?,
                    &r.get::<_, String>(7)?,
                    r.get(8)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn case_zones(&self, case_id: i64) -> Result<Vec<CaseZone>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(super::CASE_ZONES)
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([case_id], |r| {
                Ok(CaseZone {
                    zone: r.get(0)?,
                    version: r.get(1)?,
                    violations: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn sightings(&self, case_id: i64, limit: usize) -> Result<Vec<Sighting>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(super::CASE_SIGHTINGS)
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params![case_id, limit as i64], |r| {
                Ok(Sighting::of(
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d
                 WHERE d.state = 'pending' AND d.next_at_ms <= ?1
                   AND NOT EXISTS (
                     SELECT 1 FROM deliveries e
                     WHERE e.case_id = d.case_id AND e.state = 'pending' AND e.id != d.id
                       AND ((e.id < d.id AND NOT (d.event = 'resolve' AND e.event = 'update'))
                            OR (e.event = 'resolve' AND d.event = 'update')))
                 ORDER BY d.next_at_ms, d.id LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![now_ms, limit as i64], read_delivery)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(
            "SELECT min(next_at_ms) FROM deliveries WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| self.err(e))
    }

    fn deliveries(&self, case_id: Option<i64>) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE ?1 IS NULL OR d.case_id = ?1 ORDER BY d.id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([case_id], read_delivery)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(
                "SELECT delivery_id, at_ms, result, http_status, detail FROM delivery_attempts
                 WHERE delivery_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([delivery_id], |r| {
                Ok(Attempt {
                    delivery_id: r.get(0)?,
                    at_ms: r.get(1)?,
                    result: r.get(2)?,
                    http_status: r.get(3)?,
                    detail: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached("SELECT state, count(*) FROM deliveries GROUP BY state")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut counts = DeliveryCounts::default();
        for row in rows {
            let (state, n) = row.map_err(|e| self.err(e))?;
            counts.set(&state, n as u64);
        }
        Ok(counts)
    }

    fn remote(&self, case_id: i64) -> Result<(Option<String>, Option<String>), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(
            "SELECT remote_id, remote_token FROM cases WHERE id = ?1",
            [case_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| self.err(e))?
        .ok_or(StoreError::NotFound(case_id))
    }

    fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn prune_evidence(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let files: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "DELETE FROM evidence WHERE case_id IN (SELECT id FROM cases WHERE last_seen_ms < ?1)
                     RETURNING file",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([before_ms], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        tx.commit().map_err(|e| self.err(e))?;
        super::remove_evidence_files(&self.dir, &files);
        Ok(files.len() as u64)
    }
}

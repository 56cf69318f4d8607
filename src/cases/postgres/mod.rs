//! The PostgreSQL case store: the same policy as the SQLite store
//! ([`crate::cases::policy`]), shared by many gridwatch nodes. Dedup is atomic across
//! nodes: the rows a decision reads are locked while it is made ([`tx`]), and a new
//! case goes in with `ON CONFLICT DO NOTHING` on the partial unique index of active
//! cases, so two nodes opening the same key at once make one case. Deliveries are
//! claimed with `FOR UPDATE SKIP LOCKED` and a claim that expires, so one node at a
//! time delivers a case, and a node that dies mid-delivery leaves its claim to run
//! out. Migrations are versioned and run under an advisory lock ([`schema`]).
//! Connections, TLS and reconnecting are [`crate::pg`]'s.
//!
//! It uses the `postgres` crate's blocking client: call it from blocking threads (the
//! outbox and the API do, through `spawn_blocking`), never on an async worker thread.

mod originals;
mod schema;
mod tx;

use std::path::{Path, PathBuf};

use postgres::{GenericClient, Row};

use super::ledger::{RejectReason, VerdictRow};
use super::{
    Attempt, Case, CaseQuery, CaseStatus, CaseStore, CaseZone, DedupConfig, Delivery,
    DeliveryCounts, DeliveryState, Event, Evidence, Review, Sighting, StoreError, Verdict,
    ViolationKind,
};
use crate::pg::Db;
use tx::PgTx;

/// How long a node's claim on a delivery lasts (longer than any request's timeout).
pub const CLAIM_MS: i64 = 120_000;

/// The PostgreSQL store.
pub struct PgStore {
    db: Db,
    dir: PathBuf,
    dedup: DedupConfig,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

/// The store's error for a failed call: unavailable when the database could not be
/// reached or could not take it just now ([`crate::pg::unavailable`]), else refused.
pub(crate) fn error(store: &str, e: &postgres::Error) -> StoreError {
    use crate::pg::Describe;
    if crate::pg::unavailable(e) {
        unavailable(store, e.describe())
    } else {
        refused(store, e.describe())
    }
}

fn unavailable(store: &str, message: String) -> StoreError {
    StoreError::Unavailable {
        store: store.to_string(),
        message,
    }
}

fn refused(store: &str, message: String) -> StoreError {
    StoreError::Refused {
        store: store.to_string(),
        message,
    }
}

const DELIVERY_COLUMNS: &str =
    "id, case_id, event, idempotency_key, state, attempts, next_at_ms, created_ms, done_ms, last_error";

fn read_delivery(r: &Row) -> Delivery {
    Delivery {
        id: r.get(0),
        case_id: r.get(1),
        event: Event::parse(r.get(2)),
        idempotency_key: r.get(3),
        state: DeliveryState::parse(r.get(4)),
        attempts: r.get::<_, i64>(5) as u32,
        next_at_ms: r.get(6),
        created_ms: r.get(7),
        done_ms: r.get(8),
        last_error: r.get(9),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`), running pending
    /// migrations; evidence files go under `dir`.
    pub fn open(url: &str, dir: &Path, dedup: DedupConfig) -> Result<Self, StoreError> {
        let name = crate::pg::redacted(url);
        let mut client = crate::pg::connect(url).map_err(|e| unavailable(&name, e))?;
        schema::migrate(&mut client, &name)?;
        Ok(Self {
            db: Db::with_client(url, client),
            dir: dir.to_path_buf(),
            dedup,
            clock: std::sync::Arc::new(crate::clock::SystemClock),
        })
    }

    /// The store reading the time from `clock` (tests; the system's clock otherwise).
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The connection (made again when the last one was lost; see [`Db`]).
    fn conn(&self) -> Result<crate::pg::Guard<'_>, StoreError> {
        self.db
            .lock()
            .map_err(|e| unavailable(self.db.name(), format!("connecting: {e}")))
    }

    fn err(&self, e: postgres::Error) -> StoreError {
        error(self.db.name(), &e)
    }

    /// A kind read from the database; an unknown one (written by a newer gridwatch)
    /// is refused.
    fn kind(&self, name: &str) -> Result<ViolationKind, StoreError> {
        name.parse()
            .map_err(|e| refused(self.db.name(), format!("a case of {e}")))
    }

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back
    /// otherwise.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut PgTx<'_, '_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut client = self.conn()?;
        let mut tx = client.transaction().map_err(|e| self.err(e))?;
        let r = f(&mut PgTx {
            tx: &mut tx,
            store: self.db.name(),
        })?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(r)
    }

    fn read_case(&self, c: &mut impl GenericClient, id: i64) -> Result<Case, StoreError> {
        let r = c
            .query_opt(
                "SELECT id, kind, cell, admin_path, status, first_seen_ms, last_seen_ms, count, lat, lon, closed_ms
                 FROM cases WHERE id = $1",
                &[&id],
            )
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(id))?;
        let cameras = c
            .query(
                "SELECT camera FROM case_cameras WHERE case_id = $1 ORDER BY camera",
                &[&id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Case {
            id: r.get(0),
            kind: self.kind(r.get(1))?,
            cell: r.get(2),
            admin_path: r.get(3),
            status: CaseStatus::parse(r.get(4)).unwrap_or(CaseStatus::Closed),
            first_seen_ms: r.get(5),
            last_seen_ms: r.get(6),
            count: r.get(7),
            cameras,
            lat: r.get(8),
            lon: r.get(9),
            closed_ms: r.get(10),
        })
    }
}

impl CaseStore for PgStore {
    crate::cases::policy::policy_writes!();

    fn case(&self, id: i64) -> Result<Case, StoreError> {
        let mut client = self.conn()?;
        self.read_case(&mut *client, id)
    }

    fn cases(&self, status: Option<CaseStatus>, limit: usize) -> Result<Vec<Case>, StoreError> {
        let q = CaseQuery {
            status,
            limit,
            ..CaseQuery::default()
        };
        let mut client = self.conn()?;
        let ids: Vec<i64> = client
            .query(
                "SELECT id FROM cases WHERE $1::TEXT IS NULL OR status = $1 ORDER BY id DESC LIMIT $2",
                &[&q.status.map(|s| s.as_str()), &(q.limit as i64)],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.into_iter()
            .map(|id| self.read_case(&mut *client, id))
            .collect()
    }

    fn case_counts(&self) -> Result<Vec<(ViolationKind, CaseStatus, u64)>, StoreError> {
        let mut client = self.conn()?;
        client
            .query(
                "SELECT kind, status, count(*) FROM cases GROUP BY kind, status ORDER BY kind, status",
                &[],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| {
                Ok((
                    self.kind(r.get(0))?,
                    CaseStatus::parse(r.get(1)).unwrap_or(CaseStatus::Closed),
                    r.get::<_, i64>(2) as u64,
                ))
            })
            .collect()
    }

    fn find(&self, q: &CaseQuery) -> Result<(Vec<Case>, u64), StoreError> {
        let mut client = self.conn()?;
        const WHERE: &str =
            "WHERE ($1::TEXT IS NULL OR kind = $1) AND ($2::TEXT IS NULL OR cell = $2)
             AND ($3::TEXT IS NULL OR status = $3) AND ($4::BIGINT IS NULL OR last_seen_ms >= $4)
             AND ($5::BIGINT IS NULL OR first_seen_ms <= $5)";
        let status = q.status.map(|s| s.as_str());
        let kind = q.kind.map(|k| k.as_str());
        let total: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM cases {WHERE}"),
                &[&kind, &q.cell, &status, &q.since_ms, &q.until_ms],
            )
            .map_err(|e| self.err(e))?
            .get(0);
        let ids: Vec<i64> = client
            .query(
                &format!(
                    "SELECT id FROM cases {WHERE} ORDER BY last_seen_ms DESC, id DESC LIMIT $6 OFFSET $7"
                ),
                &[
                    &kind,
                    &q.cell,
                    &status,
                    &q.since_ms,
                    &q.until_ms,
                    &(q.limit as i64),
                    &(q.offset as i64),
                ],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let cases = ids
            .into_iter()
            .map(|id| self.read_case(&mut *client, id))
            .collect::<Result<_, _>>()?;
        Ok((cases, total as u64))
    }

    fn evidence(&self, case_id: i64) -> Result<Vec<Evidence>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                "SELECT id, case_id, file, sha256, camera, at_ms, chain, role FROM evidence WHERE case_id = $1 ORDER BY id",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Evidence {
                id: r.get(0),
                case_id: r.get(1),
                file: r.get(2),
                sha256: r.get(3),
                camera: r.get(4),
                at_ms: r.get(5),
                chain: r.get(6),
                role: r
                    .get::<_, Option<String>>(7)
                    .and_then(|s| crate::cases::photo::PhotoRole::parse(&s)),
            })
            .collect())
    }

    fn reviews(&self, case_id: i64) -> Result<Vec<Review>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                "SELECT case_id, verdict, reviewer, note, at_ms, reason FROM reviews WHERE case_id = $1 ORDER BY id",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Review {
                case_id: r.get(0),
                verdict: Verdict::parse(r.get(1)).unwrap_or(Verdict::Reject),
                reviewer: r.get(2),
                note: r.get(3),
                at_ms: r.get(4),
                reason: RejectReason::parse(r.get(5)),
            })
            .collect())
    }

    fn verdicts(&self, since_ms: i64) -> Result<Vec<VerdictRow>, StoreError> {
        let mut client = self.conn()?;
        let sql = super::ledger::VERDICTS.replace("?1", "$1");
        Ok(client
            .query(&sql, &[&since_ms])
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| {
                VerdictRow::of(
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                    r.get(8),
                )
            })
            .collect())
    }

    fn case_zones(&self, case_id: i64) -> Result<Vec<CaseZone>, StoreError> {
        let mut client = self.conn()?;
        let sql = super::CASE_ZONES.replace("?1", "$1");
        Ok(client
            .query(&sql, &[&case_id])
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| CaseZone {
                zone: r.get(0),
                version: r.get(1),
                violations: r.get(2),
            })
            .collect())
    }

    fn sightings(&self, case_id: i64, limit: usize) -> Result<Vec<Sighting>, StoreError> {
        let mut client = self.conn()?;
        let sql = super::CASE_SIGHTINGS
            .replace("?1", "$1")
            .replace("?2", "$2");
        Ok(client
            .query(&sql, &[&case_id, &(limit as i64)])
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Sighting::of(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect())
    }

    /// Claims the due deliveries for this node: each is skipped by the other nodes
    /// until it is finished or its claim runs out ([`CLAIM_MS`]).
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut client = self.conn()?;
        let mut rows: Vec<Delivery> = client
            .query(
                &format!(
                    "UPDATE deliveries SET claimed_until = $1 + $3
                     WHERE id IN (
                       SELECT d.id FROM deliveries d
                       WHERE d.state = 'pending' AND d.next_at_ms <= $1
                         AND (d.claimed_until IS NULL OR d.claimed_until < $1)
                         AND NOT EXISTS (
                           SELECT 1 FROM deliveries e
                           WHERE e.case_id = d.case_id AND e.state = 'pending' AND e.id != d.id
                             AND ((e.id < d.id AND NOT (d.event = 'resolve' AND e.event = 'update'))
                                  OR (e.event = 'resolve' AND d.event = 'update')))
                       ORDER BY d.next_at_ms, d.id LIMIT $2
                       FOR UPDATE SKIP LOCKED)
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[&now_ms, &(limit as i64), &CLAIM_MS],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(read_delivery)
            .collect();
        rows.sort_by_key(|d| (d.next_at_ms, d.id));
        Ok(rows)
    }

    fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query_one(
                "SELECT min(greatest(next_at_ms, coalesce(claimed_until, 0))) FROM deliveries WHERE state = 'pending'",
                &[],
            )
            .map_err(|e| self.err(e))?
            .get(0))
    }

    fn deliveries(&self, case_id: Option<i64>) -> Result<Vec<Delivery>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE $1::BIGINT IS NULL OR case_id = $1 ORDER BY id"
                ),
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(read_delivery)
            .collect())
    }

    fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                "SELECT delivery_id, at_ms, result, http_status, detail FROM delivery_attempts
                 WHERE delivery_id = $1 ORDER BY id",
                &[&delivery_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Attempt {
                delivery_id: r.get(0),
                at_ms: r.get(1),
                result: r.get(2),
                http_status: r.get::<_, Option<i64>>(3).map(|s| s as u16),
                detail: r.get(4),
            })
            .collect())
    }

    fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let mut client = self.conn()?;
        let mut counts = DeliveryCounts::default();
        for r in client
            .query("SELECT state, count(*) FROM deliveries GROUP BY state", &[])
            .map_err(|e| self.err(e))?
        {
            counts.set(r.get(0), r.get::<_, i64>(1) as u64);
        }
        Ok(counts)
    }

    fn remote(&self, case_id: i64) -> Result<(Option<String>, Option<String>), StoreError> {
        let mut client = self.conn()?;
        let r = client
            .query_opt(
                "SELECT remote_id, remote_token FROM cases WHERE id = $1",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(case_id))?;
        Ok((r.get(0), r.get(1)))
    }

    fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn name(&self) -> &str {
        self.db.name()
    }

    fn evidence_bytes(
        &self,
        case_id: i64,
        evidence_id: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = {
            let mut client = self.conn()?;
            client
                .query_opt(
                    "SELECT j.jpeg FROM evidence e LEFT JOIN evidence_jpeg j ON j.evidence_id = e.id
                     WHERE e.id = $1 AND e.case_id = $2",
                    &[&evidence_id, &case_id],
                )
                .map_err(|e| self.err(e))?
        };
        match row {
            None => Ok(None),
            Some(r) => match r.get::<_, Option<Vec<u8>>>(0) {
                Some(b) => Ok(Some(b)),
                // written as a file by a node before schema 2: on that node's disk
                None => super::read_evidence_file(
                    &self.dir,
                    &super::evidence_file(case_id, evidence_id, None),
                ),
            },
        }
    }

    fn prune_evidence(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut client = self.conn()?;
        let files: Vec<String> = client
            .query(
                "DELETE FROM evidence e USING cases c
                 WHERE e.case_id = c.id AND c.last_seen_ms < $1
                 RETURNING e.file",
                &[&before_ms],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(client);
        // files written before schema 2 by this node
        super::remove_evidence_files(&self.dir, &files);
        Ok(files.len() as u64)
    }
}

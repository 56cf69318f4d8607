//! The embedded case store: one SQLite file (WAL) in the data directory, versioned
//! migrations, dedup in one immediate transaction per violation. A partial unique
//! index allows one active (open or confirmed) case per key, so even a second writer
//! on the same file could not open a duplicate.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use sha2::{Digest, Sha256};

use super::{
    now_ms, AfterAttempt, Attempt, Case, CaseQuery, CaseStatus, CaseStore, DedupConfig, Delivery,
    DeliveryCounts, DeliveryState, Event, Evidence, NewViolation, Outcome, Review, StoreError,
    Verdict,
};

/// Schema migrations, applied in order; the store records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: cases and the violations they absorbed
    "CREATE TABLE cases (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        cell TEXT NOT NULL,
        admin_path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'confirmed', 'rejected', 'closed')),
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        count INTEGER NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        closed_ms INTEGER
     );
     CREATE UNIQUE INDEX one_active_case ON cases (kind, cell) WHERE status IN ('open', 'confirmed');
     CREATE INDEX cases_by_key ON cases (kind, cell, closed_ms);
     CREATE TABLE violations (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases (id),
        outcome TEXT NOT NULL,
        camera TEXT NOT NULL,
        zone TEXT NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        at_ms INTEGER NOT NULL,
        since_ms INTEGER NOT NULL
     );
     CREATE INDEX violations_by_case ON violations (case_id);
     CREATE TABLE case_cameras (
        case_id INTEGER NOT NULL REFERENCES cases (id),
        camera TEXT NOT NULL,
        PRIMARY KEY (case_id, camera)
     ) WITHOUT ROWID;",
    // 2: evidence files, the outbox and its attempts, review decisions, the receiver's
    // ids; cases filed before the outbox existed are queued for delivery.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
     INSERT INTO meta (key, value) VALUES ('install_id', lower(hex(randomblob(6))));
     ALTER TABLE cases ADD COLUMN remote_id TEXT;
     ALTER TABLE cases ADD COLUMN remote_token TEXT;
     CREATE TABLE evidence (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases (id),
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        camera TEXT NOT NULL,
        at_ms INTEGER NOT NULL
     );
     CREATE INDEX evidence_by_case ON evidence (case_id);
     CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases (id),
        event TEXT NOT NULL CHECK (event IN ('create', 'update', 'resolve')),
        idempotency_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'skipped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        done_ms INTEGER,
        last_error TEXT
     );
     CREATE INDEX deliveries_pending ON deliveries (next_at_ms) WHERE state = 'pending';
     CREATE INDEX deliveries_by_case ON deliveries (case_id, state);
     CREATE TABLE delivery_attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
        at_ms INTEGER NOT NULL,
        result TEXT NOT NULL,
        http_status INTEGER,
        detail TEXT NOT NULL
     );
     CREATE INDEX attempts_by_delivery ON delivery_attempts (delivery_id);
     CREATE TABLE reviews (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases (id),
        verdict TEXT NOT NULL CHECK (verdict IN ('confirm', 'reject')),
        reviewer TEXT NOT NULL,
        note TEXT NOT NULL,
        at_ms INTEGER NOT NULL
     );
     CREATE INDEX reviews_by_case ON reviews (case_id);
     INSERT INTO deliveries (case_id, event, idempotency_key, state, next_at_ms, created_ms)
        SELECT id, 'create', 'gw-' || (SELECT value FROM meta WHERE key = 'install_id') || '-' || id || '-1',
               'pending', 0, first_seen_ms
        FROM cases WHERE status IN ('open', 'confirmed');",
];

/// Opens (creating it and its folder) a SQLite file in WAL mode with foreign keys on,
/// and runs the migrations it has not had yet, each in its own transaction, recording
/// how many ran in `PRAGMA user_version`. A file from a newer gridwatch is refused, not
/// touched. Errors name the file.
pub(crate) fn open_migrated(path: &Path, migrations: &[&str]) -> Result<Connection, StoreError> {
    let err = |e: &dyn std::fmt::Display| StoreError::Db {
        store: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    }
    let mut conn = Connection::open(path).map_err(|e| err(&e))?;
    conn.pragma_update(None, "journal_mode", "wal")
        .map_err(|e| err(&e))?;
    conn.pragma_update(None, "synchronous", "normal")
        .map_err(|e| err(&e))?;
    conn.pragma_update(None, "foreign_keys", "on")
        .map_err(|e| err(&e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| err(&e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| err(&e))?;
    if version as usize > migrations.len() {
        return Err(err(&format!(
            "schema version {version} is newer than this gridwatch knows ({}); upgrade gridwatch",
            migrations.len()
        )));
    }
    for (i, m) in migrations.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(|e| err(&e))?;
        tx.execute_batch(m)
            .map_err(|e| err(&format!("migration {}: {e}", i + 1)))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| err(&e))?;
        tx.commit().map_err(|e| err(&e))?;
    }
    Ok(conn)
}

/// The SQLite store.
pub struct SqliteStore {
    dir: PathBuf,
    path: PathBuf,
    conn: Mutex<Connection>,
    dedup: DedupConfig,
}

/// Queues a delivery for a case under a new unguessable idempotency key
/// ([`super::new_idempotency_key`]), stored with it: the same however often the
/// delivery is retried.
fn enqueue(tx: &Connection, case_id: i64, event: Event, next_at_ms: i64) -> rusqlite::Result<()> {
    let seq: i64 = tx.query_row(
        "SELECT count(*) + 1 FROM deliveries WHERE case_id = ?1",
        [case_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO deliveries (case_id, event, idempotency_key, state, next_at_ms, created_ms)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
        params![
            case_id,
            event.as_str(),
            super::new_idempotency_key(case_id, seq),
            next_at_ms,
            now_ms()
        ],
    )?;
    Ok(())
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
            path,
            conn: Mutex::new(conn),
            dedup,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            store: self.path.display().to_string(),
            message: e.to_string(),
        }
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
    fn record(&self, v: &NewViolation) -> Result<(i64, Outcome), StoreError> {
        let mut conn = self.conn.lock().expect("store lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let window = self.dedup.window.as_millis() as i64;
        let cooldown = self.dedup.cooldown.as_millis() as i64;
        let active: Option<(i64, i64)> = tx
            .query_row(
                "SELECT id, last_seen_ms FROM cases WHERE kind = ?1 AND cell = ?2 AND status IN ('open', 'confirmed')",
                params![v.kind, v.cell],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let (case_id, outcome) = match active {
            Some((id, last)) if v.at_ms - last <= window => {
                tx.execute(
                    "UPDATE cases SET last_seen_ms = max(last_seen_ms, ?2), first_seen_ms = min(first_seen_ms, ?3),
                     count = count + 1 WHERE id = ?1",
                    params![id, v.at_ms, v.at_ms],
                )
                .map_err(|e| self.err(e))?;
                // one follow-up at a time, sent no sooner than the follow-up delay
                let waiting: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE case_id = ?1 AND state = 'pending' AND event = 'update')",
                        [id],
                        |r| r.get(0),
                    )
                    .map_err(|e| self.err(e))?;
                if !waiting {
                    let at = now_ms() + self.dedup.followup_delay.as_millis() as i64;
                    enqueue(&tx, id, Event::Update, at).map_err(|e| self.err(e))?;
                }
                (id, Outcome::Absorbed)
            }
            other => {
                if let Some((id, last)) = other {
                    // not seen for the whole window: the old case expires
                    tx.execute(
                        "UPDATE cases SET status = 'closed', closed_ms = ?2 WHERE id = ?1",
                        params![id, last + window],
                    )
                    .map_err(|e| self.err(e))?;
                }
                let cooling: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM cases WHERE kind = ?1 AND cell = ?2 AND status IN ('rejected', 'closed')
                         AND closed_ms IS NOT NULL AND ?3 - closed_ms < ?4
                         ORDER BY closed_ms DESC LIMIT 1",
                        params![v.kind, v.cell, v.at_ms, cooldown],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| self.err(e))?;
                match cooling {
                    Some(id) => (id, Outcome::Suppressed),
                    None => {
                        tx.execute(
                            "INSERT INTO cases (kind, cell, admin_path, status, first_seen_ms, last_seen_ms, count, lat, lon)
                             VALUES (?1, ?2, ?3, 'open', ?4, ?4, 1, ?5, ?6)",
                            params![v.kind, v.cell, v.admin_path, v.at_ms, v.lat, v.lon],
                        )
                        .map_err(|e| self.err(e))?;
                        let id = tx.last_insert_rowid();
                        enqueue(&tx, id, Event::Create, 0).map_err(|e| self.err(e))?;
                        (id, Outcome::Opened)
                    }
                }
            }
        };
        tx.execute(
            "INSERT INTO violations (case_id, outcome, camera, zone, lat, lon, at_ms, since_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                case_id,
                match outcome {
                    Outcome::Opened => "opened",
                    Outcome::Absorbed => "absorbed",
                    Outcome::Suppressed => "suppressed",
                },
                v.camera,
                v.zone,
                v.lat,
                v.lon,
                v.at_ms,
                v.since_ms
            ],
        )
        .map_err(|e| self.err(e))?;
        if outcome != Outcome::Suppressed {
            tx.execute(
                "INSERT OR IGNORE INTO case_cameras (case_id, camera) VALUES (?1, ?2)",
                params![case_id, v.camera],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok((case_id, outcome))
    }

    fn case(&self, id: i64) -> Result<Case, StoreError> {
        let conn = self.conn.lock().expect("store lock");
        self.read_case(&conn, id)
    }

    fn cases(&self, status: Option<CaseStatus>, limit: usize) -> Result<Vec<Case>, StoreError> {
        let conn = self.conn.lock().expect("store lock");
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

    fn set_status(&self, id: i64, status: CaseStatus, at_ms: i64) -> Result<(), StoreError> {
        let conn = self.conn.lock().expect("store lock");
        self.transition(&conn, id, status, at_ms)
    }

    fn case_counts(&self) -> Result<Vec<(String, CaseStatus, u64)>, StoreError> {
        let conn = self.conn.lock().expect("store lock");
        let mut st = conn
            .prepare_cached("SELECT kind, status, count(*) FROM cases GROUP BY kind, status ORDER BY kind, status")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    CaseStatus::parse(&r.get::<_, String>(1)?).unwrap_or(CaseStatus::Closed),
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn find(&self, q: &CaseQuery) -> Result<(Vec<Case>, u64), StoreError> {
        let conn = self.conn.lock().expect("store lock");
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

    fn add_evidence(
        &self,
        case_id: i64,
        camera: &str,
        at_ms: i64,
        jpeg: &[u8],
        limit: usize,
    ) -> Result<Option<Evidence>, StoreError> {
        let mut conn = self.conn.lock().expect("store lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        self.read_case(&tx, case_id)?;
        let have: i64 = tx
            .query_row(
                "SELECT count(*) FROM evidence WHERE case_id = ?1",
                [case_id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if have as usize >= limit {
            return Ok(None);
        }
        let sha256 = format!("{:x}", Sha256::digest(jpeg));
        tx.execute(
            "INSERT INTO evidence (case_id, file, sha256, camera, at_ms) VALUES (?1, '', ?2, ?3, ?4)",
            params![case_id, sha256, camera, at_ms],
        )
        .map_err(|e| self.err(e))?;
        let id = tx.last_insert_rowid();
        let file = format!("evidence/{case_id}/{id}.jpg");
        let path = self.dir.join(&file);
        super::write_evidence_file(&path, jpeg)
            .map_err(|e| self.err(format!("writing {}: {e}", path.display())))?;
        tx.execute(
            "UPDATE evidence SET file = ?2 WHERE id = ?1",
            params![id, file],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some(Evidence {
            id,
            case_id,
            file,
            sha256,
            camera: camera.to_string(),
            at_ms,
        }))
    }

    fn evidence(&self, case_id: i64) -> Result<Vec<Evidence>, StoreError> {
        let conn = self.conn.lock().expect("store lock");
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, case_id, file, sha256, camera, at_ms FROM evidence WHERE case_id = ?1 ORDER BY id",
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
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn review(&self, review: &Review) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().expect("store lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let status = match review.verdict {
            Verdict::Confirm => CaseStatus::Confirmed,
            Verdict::Reject => CaseStatus::Rejected,
        };
        self.transition(&tx, review.case_id, status, review.at_ms)?;
        tx.execute(
            "INSERT INTO reviews (case_id, verdict, reviewer, note, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                review.case_id,
                review.verdict.as_str(),
                review.reviewer,
                review.note,
                review.at_ms
            ],
        )
        .map_err(|e| self.err(e))?;
        // the decision goes out at once: bring a waiting follow-up forward or queue one
        let moved = tx
            .execute(
                "UPDATE deliveries SET next_at_ms = min(next_at_ms, ?2)
                 WHERE case_id = ?1 AND state = 'pending' AND event = 'update'",
                params![review.case_id, now_ms()],
            )
            .map_err(|e| self.err(e))?;
        if moved == 0 {
            enqueue(&tx, review.case_id, Event::Update, 0).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn reviews(&self, case_id: i64) -> Result<Vec<Review>, StoreError> {
        let conn = self.conn.lock().expect("store lock");
        let mut stmt = conn
            .prepare_cached(
                "SELECT case_id, verdict, reviewer, note, at_ms FROM reviews WHERE case_id = ?1 ORDER BY id",
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
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn.lock().expect("store lock");
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
        let conn = self.conn.lock().expect("store lock");
        conn.query_row(
            "SELECT min(next_at_ms) FROM deliveries WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| self.err(e))
    }

    fn finish(
        &self,
        delivery_id: i64,
        attempt: &Attempt,
        after: &AfterAttempt,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().expect("store lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let (case_id, event): (i64, String) = tx
            .query_row(
                "SELECT case_id, event FROM deliveries WHERE id = ?1",
                [delivery_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("no delivery {delivery_id}")))?;
        tx.execute(
            "INSERT INTO delivery_attempts (delivery_id, at_ms, result, http_status, detail)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                delivery_id,
                attempt.at_ms,
                attempt.result,
                attempt.http_status,
                attempt.detail
            ],
        )
        .map_err(|e| self.err(e))?;
        let at = attempt.at_ms;
        let (state, next, error) = match after {
            AfterAttempt::Delivered { remote_id, token } => {
                if remote_id.is_some() || token.is_some() {
                    tx.execute(
                        "UPDATE cases SET remote_id = coalesce(?2, remote_id), remote_token = coalesce(?3, remote_token)
                         WHERE id = ?1",
                        params![case_id, remote_id, token],
                    )
                    .map_err(|e| self.err(e))?;
                }
                if remote_id.is_none() && token.is_some() {
                    enqueue(&tx, case_id, Event::Resolve, at).map_err(|e| self.err(e))?;
                }
                (DeliveryState::Delivered, None, None)
            }
            AfterAttempt::Retry { at_ms, error } => {
                (DeliveryState::Pending, Some(*at_ms), Some(error.as_str()))
            }
            AfterAttempt::Failed(why) => (DeliveryState::Failed, None, Some(why.as_str())),
            AfterAttempt::Skipped(why) => (DeliveryState::Skipped, None, Some(why.as_str())),
        };
        tx.execute(
            "UPDATE deliveries SET state = ?2, attempts = attempts + 1, next_at_ms = coalesce(?3, next_at_ms),
             done_ms = ?4, last_error = coalesce(?5, last_error) WHERE id = ?1",
            params![
                delivery_id,
                state.as_str(),
                next,
                (state != DeliveryState::Pending).then_some(at),
                error
            ],
        )
        .map_err(|e| self.err(e))?;
        if state == DeliveryState::Failed && event != "update" {
            // the case was never filed: its follow-ups cannot go either
            tx.execute(
                "UPDATE deliveries SET state = 'failed', done_ms = ?2, last_error = ?3
                 WHERE case_id = ?1 AND state = 'pending'",
                params![
                    case_id,
                    at,
                    format!(
                        "the case was not filed ({event} failed: {})",
                        error.unwrap_or("")
                    )
                ],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn deliveries(&self, case_id: Option<i64>) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn.lock().expect("store lock");
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
        let conn = self.conn.lock().expect("store lock");
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
        let conn = self.conn.lock().expect("store lock");
        let mut stmt = conn
            .prepare_cached("SELECT state, count(*) FROM deliveries GROUP BY state")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut counts = DeliveryCounts::default();
        for row in rows {
            let (state, n) = row.map_err(|e| self.err(e))?;
            let n = n as u64;
            match DeliveryState::parse(&state) {
                DeliveryState::Pending => counts.pending = n,
                DeliveryState::Delivered => counts.delivered = n,
                DeliveryState::Failed => counts.failed = n,
                DeliveryState::Skipped => counts.skipped = n,
            }
        }
        Ok(counts)
    }

    fn remote(&self, case_id: i64) -> Result<(Option<String>, Option<String>), StoreError> {
        let conn = self.conn.lock().expect("store lock");
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

    fn prune_evidence(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn.lock().expect("store lock");
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

impl SqliteStore {
    fn transition(
        &self,
        conn: &Connection,
        id: i64,
        status: CaseStatus,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let current = self.read_case(conn, id)?.status;
        if !current.can_become(status) {
            return Err(StoreError::BadTransition {
                id,
                from: current.as_str(),
                to: status.as_str(),
            });
        }
        let closed = matches!(status, CaseStatus::Rejected | CaseStatus::Closed).then_some(at_ms);
        conn.execute(
            "UPDATE cases SET status = ?2, closed_ms = coalesce(?3, closed_ms) WHERE id = ?1",
            params![id, status.as_str(), closed],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}

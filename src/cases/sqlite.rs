//! The embedded case store: one SQLite file (WAL) in the data directory, versioned
//! migrations, dedup in one immediate transaction per violation. A partial unique
//! index allows one active (open or confirmed) case per key, so even a second writer
//! on the same file could not open a duplicate.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{Case, CaseStatus, CaseStore, DedupConfig, NewViolation, Outcome, StoreError};

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
];

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    dedup: DedupConfig,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir` (file `cases.sqlite`), running
    /// pending migrations.
    pub fn open(dir: &Path, dedup: DedupConfig) -> Result<Self, StoreError> {
        let path = dir.join("cases.sqlite");
        let err = |e: &dyn std::fmt::Display| StoreError::Db {
            store: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        let mut conn = Connection::open(&path).map_err(|e| err(&e))?;
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
        if version as usize > MIGRATIONS.len() {
            return Err(err(&format!(
                "schema version {version} is newer than this gridwatch knows ({}); upgrade gridwatch",
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(|e| err(&e))?;
            tx.execute_batch(m)
                .map_err(|e| err(&format!("migration {}: {e}", i + 1)))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| err(&e))?;
            tx.commit().map_err(|e| err(&e))?;
        }
        Ok(Self {
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
                        (tx.last_insert_rowid(), Outcome::Opened)
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
        let current = self.read_case(&conn, id)?.status;
        let allowed = matches!(
            (current, status),
            (
                CaseStatus::Open,
                CaseStatus::Confirmed | CaseStatus::Rejected | CaseStatus::Closed
            ) | (
                CaseStatus::Confirmed,
                CaseStatus::Rejected | CaseStatus::Closed
            )
        );
        if !allowed {
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

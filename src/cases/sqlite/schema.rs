//! The SQLite store's schema: versioned migrations, and how a file is opened.

use std::path::Path;

use rusqlite::Connection;

use crate::cases::StoreError;

/// An error of the SQLite file `store`: unavailable when the file is locked, busy,
/// full, or cannot be opened or read (worth trying again), else refused.
pub(crate) fn classify(store: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    let transient = matches!(
        e.sqlite_error_code(),
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | DiskFull | SystemIoFailure | OutOfMemory)
    );
    let (store, message) = (store.to_string(), e.to_string());
    if transient {
        StoreError::Unavailable { store, message }
    } else {
        StoreError::Refused { store, message }
    }
}

/// Schema migrations, applied in order; the store records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 3: the case list's order, as the PostgreSQL store has it
    "CREATE INDEX cases_by_last_seen ON cases (last_seen_ms DESC, id DESC);",
    // 4: the camera registry, API tokens and the audit log
    crate::cases::registry_tables::SQLITE_TABLES,
    // 5: zones as versioned resources
    crate::cases::registry_tables::ZONE_TABLES,
    // 6: calibrations as versioned resources; the zone version of each violation
    crate::cases::registry_tables::CALIBRATION_TABLES,
    // 7: the views' reference pictures captured through the API
    crate::cases::registry_tables::REFERENCE_TABLES,
    // 8: a drone finding's frame on the ground
    crate::cases::VIOLATION_FOOTPRINT,
    // 9: each evidence item chained to the one before it and the case
    crate::cases::EVIDENCE_CHAIN,
    // 10: each photo's place in its case's sequence
    crate::cases::EVIDENCE_ROLE,
    // 11: unblurred originals, for reviewers
    crate::cases::originals::SQLITE_TABLE,
    // 12: each violation's model and each review's reason, for the reviewers' ledger
    crate::cases::ledger::LEDGER_COLUMNS,
];

/// Opens (creating it and its folder) a SQLite file in WAL mode with foreign keys on,
/// and runs the migrations it has not had yet, each in its own transaction, recording
/// how many ran in `PRAGMA user_version`. A file from a newer gridwatch is refused, not
/// touched. Errors name the file.
pub(crate) fn open_migrated(path: &Path, migrations: &[&str]) -> Result<Connection, StoreError> {
    let store = path.display().to_string();
    let err = |e: &dyn std::fmt::Display| StoreError::Refused {
        store: store.clone(),
        message: e.to_string(),
    };
    let db = |e: rusqlite::Error| classify(&store, e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable {
            store: store.clone(),
            message: e.to_string(),
        })?;
    }
    let mut conn = Connection::open(path).map_err(db)?;
    conn.pragma_update(None, "journal_mode", "wal")
        .map_err(db)?;
    conn.pragma_update(None, "synchronous", "normal")
        .map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "on").map_err(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    if version as usize > migrations.len() {
        return Err(err(&format!(
            "schema version {version} is newer than this gridwatch knows ({}); upgrade gridwatch",
            migrations.len()
        )));
    }
    for (i, m) in migrations.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(m)
            .map_err(|e| err(&format!("migration {}: {e}", i + 1)))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(conn)
}

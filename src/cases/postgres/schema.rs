//! The PostgreSQL store's schema: versioned migrations, run under an advisory lock
//! so that one node migrates at a time; `gridwatch_schema` records how many ran.

use postgres::Client;

use crate::cases::StoreError;
use crate::pg::Describe;

/// Migrations, in order; `gridwatch_schema` records how many ran.
pub(super) const MIGRATIONS: &[&[&str]] = &[
    &[CASES_1],
    &[crate::cluster::TABLES, EVIDENCE_2],
    // 3: the camera registry, API tokens and the audit log
    &[crate::cases::registry_tables::PG_TABLES],
    // 4: zones as versioned resources
    &[crate::cases::registry_tables::ZONE_TABLES],
    // 5: calibrations as versioned resources; the zone version of each violation
    &[crate::cases::registry_tables::CALIBRATION_TABLES],
    // 6: the views' reference pictures captured through the API
    &[crate::cases::registry_tables::REFERENCE_TABLES],
    // 7: a drone finding's frame on the ground
    &[crate::cases::VIOLATION_FOOTPRINT],
    // 8: each evidence item chained to the one before it and the case
    &[crate::cases::EVIDENCE_CHAIN],
    // 9: each photo's place in its case's sequence
    &[crate::cases::EVIDENCE_ROLE],
    // 10: unblurred originals, for reviewers
    &[crate::cases::originals::POSTGRES_TABLE],
    // 11: each violation's model and each review's reason, for the reviewers' ledger
    &[crate::cases::ledger::LEDGER_COLUMNS],
];

/// 1: cases, the violations they absorbed, evidence, the outbox, reviews.
const CASES_1: &str = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     INSERT INTO meta (key, value) VALUES ('install_id', substr(md5(random()::text || clock_timestamp()::text), 1, 12));
     CREATE TABLE cases (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        cell TEXT NOT NULL,
        admin_path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'confirmed', 'rejected', 'closed')),
        first_seen_ms BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL,
        count BIGINT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        closed_ms BIGINT,
        remote_id TEXT,
        remote_token TEXT
     );
     CREATE UNIQUE INDEX one_active_case ON cases (kind, cell) WHERE status IN ('open', 'confirmed');
     CREATE INDEX cases_by_key ON cases (kind, cell, closed_ms);
     CREATE INDEX cases_by_last_seen ON cases (last_seen_ms DESC, id DESC);
     CREATE TABLE violations (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        outcome TEXT NOT NULL,
        camera TEXT NOT NULL,
        zone TEXT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        at_ms BIGINT NOT NULL,
        since_ms BIGINT NOT NULL
     );
     CREATE INDEX violations_by_case ON violations (case_id);
     CREATE TABLE case_cameras (
        case_id BIGINT NOT NULL REFERENCES cases (id),
        camera TEXT NOT NULL,
        PRIMARY KEY (case_id, camera)
     );
     CREATE TABLE evidence (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        camera TEXT NOT NULL,
        at_ms BIGINT NOT NULL
     );
     CREATE INDEX evidence_by_case ON evidence (case_id);
     CREATE TABLE deliveries (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        event TEXT NOT NULL CHECK (event IN ('create', 'update', 'resolve')),
        idempotency_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'skipped')),
        attempts BIGINT NOT NULL DEFAULT 0,
        next_at_ms BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        done_ms BIGINT,
        last_error TEXT,
        claimed_until BIGINT
     );
     CREATE INDEX deliveries_pending ON deliveries (next_at_ms) WHERE state = 'pending';
     CREATE INDEX deliveries_by_case ON deliveries (case_id, state);
     CREATE TABLE delivery_attempts (
        id BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
        at_ms BIGINT NOT NULL,
        result TEXT NOT NULL,
        http_status BIGINT,
        detail TEXT NOT NULL
     );
     CREATE INDEX attempts_by_delivery ON delivery_attempts (delivery_id);
     CREATE TABLE reviews (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        verdict TEXT NOT NULL CHECK (verdict IN ('confirm', 'reject')),
        reviewer TEXT NOT NULL,
        note TEXT NOT NULL,
        at_ms BIGINT NOT NULL
     );
     CREATE INDEX reviews_by_case ON reviews (case_id);";

/// 2 (after the cluster's tables, [`crate::cluster::TABLES`]): evidence kept in the
/// database, so that every node serves it.
const EVIDENCE_2: &str = "CREATE TABLE evidence_jpeg (
        evidence_id BIGINT PRIMARY KEY REFERENCES evidence (id) ON DELETE CASCADE,
        jpeg BYTEA NOT NULL
     );";

/// Runs the migrations the database has not had yet, in one transaction. A schema
/// from a newer gridwatch is refused, not touched.
pub(super) fn migrate(client: &mut Client, store: &str) -> Result<(), StoreError> {
    let err = |e: &dyn Describe| super::refused(store, e.describe());
    let db = |e: postgres::Error| super::error(store, &e);
    let mut tx = client.transaction().map_err(db)?;
    // one node migrates at a time
    tx.execute("SELECT pg_advisory_xact_lock(7310424)", &[])
        .map_err(db)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS gridwatch_schema (version BIGINT NOT NULL)")
        .map_err(db)?;
    let version: i64 = tx
        .query_opt("SELECT version FROM gridwatch_schema", &[])
        .map_err(db)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    if version as usize > MIGRATIONS.len() {
        return Err(err(&format!(
            "schema version {version} is newer than this gridwatch knows ({}); upgrade gridwatch",
            MIGRATIONS.len()
        )));
    }
    for (i, parts) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        for m in *parts {
            tx.batch_execute(m)
                .map_err(|e| err(&format!("migration {}: {}", i + 1, e.describe())))?;
        }
    }
    tx.execute("DELETE FROM gridwatch_schema", &[])
        .map_err(db)?;
    tx.execute(
        "INSERT INTO gridwatch_schema (version) VALUES ($1)",
        &[&(MIGRATIONS.len() as i64)],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}

//! The tables of the camera registry (the `registry` module): cameras, API tokens, the
//! audit log, zones and calibrations with their versions, the views' reference
//! pictures. The registry reads and writes them; the case store's migrations make
//! them, with the rest of the schema, so a store and its registry are always at one
//! version (and the registry depends on the case store, not the other way round).

/// The registry's tables, with the column type of an identity key filled in.
macro_rules! tables {
    ($identity:literal) => {
        concat!(
            "CREATE TABLE registry_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
             INSERT INTO registry_meta (key, value) VALUES ('revision', 0), ('seeded', 0);
             CREATE TABLE cameras (
                id TEXT PRIMARY KEY,
                doc TEXT NOT NULL,
                enabled BIGINT NOT NULL,
                deleted BIGINT NOT NULL,
                revision BIGINT NOT NULL,
                created_ms BIGINT NOT NULL,
                updated_ms BIGINT NOT NULL
             );
             CREATE INDEX cameras_by_revision ON cameras (revision);
             CREATE TABLE api_tokens (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                role TEXT NOT NULL,
                hash TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                created_by TEXT NOT NULL,
                revoked_ms BIGINT
             );
             CREATE TABLE audit_log (
                id ",
            $identity,
            ",
                at_ms BIGINT NOT NULL,
                actor TEXT NOT NULL,
                role TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                before_doc TEXT,
                after_doc TEXT
             );
             CREATE INDEX audit_by_target ON audit_log (target, id);"
        )
    };
}

/// The registry's tables in the SQLite store (its migration 4).
pub const SQLITE_TABLES: &str = tables!("INTEGER PRIMARY KEY");
/// The registry's tables in the PostgreSQL store (its migration 3).
pub const PG_TABLES: &str = tables!("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY");

/// Zones as resources: each a GeoJSON feature at a version, stamped with the registry
/// revision of its last change (a deleted zone stays as a tombstone), and every
/// version kept (`feature` NULL: deleted at that version).
pub const ZONE_TABLES: &str = "CREATE TABLE zones (
        id TEXT PRIMARY KEY,
        feature TEXT NOT NULL,
        version BIGINT NOT NULL,
        deleted BIGINT NOT NULL,
        revision BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        updated_by TEXT NOT NULL
     );
     CREATE INDEX zones_by_revision ON zones (revision);
     CREATE TABLE zone_versions (
        id TEXT NOT NULL,
        version BIGINT NOT NULL,
        feature TEXT,
        at_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (id, version)
     );
     INSERT INTO registry_meta (key, value) VALUES ('zones_seeded', 0);";

/// Calibrations as resources, kept as zones are (one per camera view: `camera` or
/// `camera@preset`), and the zone version each violation was found under.
pub const CALIBRATION_TABLES: &str = "CREATE TABLE calibrations (
        id TEXT PRIMARY KEY,
        doc TEXT NOT NULL,
        version BIGINT NOT NULL,
        deleted BIGINT NOT NULL,
        revision BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        updated_by TEXT NOT NULL
     );
     CREATE INDEX calibrations_by_revision ON calibrations (revision);
     CREATE TABLE calibration_versions (
        id TEXT NOT NULL,
        version BIGINT NOT NULL,
        doc TEXT,
        at_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (id, version)
     );
     ALTER TABLE violations ADD COLUMN zone_version BIGINT;";

/// The reference pictures of camera views (a PTZ preset's, `camera@preset`) captured
/// through the API: the JPEG as base64 text (the registry's values are text and
/// integers), its size and SHA-256, at a version that grows by one each capture; a
/// deleted one stays as a tombstone without its picture. Earlier pictures are not
/// kept: the audit log names each capture by its SHA-256.
pub const REFERENCE_TABLES: &str = "CREATE TABLE view_references (
        id TEXT PRIMARY KEY,
        jpeg TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        width BIGINT NOT NULL,
        height BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        version BIGINT NOT NULL,
        deleted BIGINT NOT NULL,
        revision BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        updated_by TEXT NOT NULL
     );";

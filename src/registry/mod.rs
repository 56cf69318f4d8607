//! The camera registry: the camera list in the case store (the SQLite file alone, or
//! the PostgreSQL database every node shares), API tokens with their roles, and the
//! audit log of every write.
//!
//! - **Cameras** ([`CameraEntry`] documents) change through the API, `gridwatch
//!   cameras` and catalogue imports ([`catalogue`]). Every write bumps the registry's
//!   revision (one counter row, locked by the write until it commits, so revisions
//!   commit in order) and stamps the cameras it touched with it; a deleted camera
//!   stays as a tombstone with its revision. A node asks for the changes since the
//!   revision it has ([`Registry::changes_since`]) every `registry.poll`, and brings
//!   its cameras in line ([`view`]).
//! - **Tokens** ([`access`]) are stored as SHA-256 digests of their secrets.
//! - **The audit log**: who (the token's name and role), what (action and target),
//!   when, and the document before and after, written in the same transaction as the
//!   camera and token writes it describes (reviews are written by the case store,
//!   their entry right after).
//!
//! The config's `[[camera]]` entries seed a registry that never had cameras
//! ([`Registry::seed`]); with `registry.cameras = "config"` they are the list itself,
//! and the registry's cameras are not used.

pub mod access;
pub mod audit;
pub mod calibrations;
pub mod catalogue;
pub mod references;
pub mod sql;
pub mod versioned;
pub mod view;
pub mod zones;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::cases::StoreError;
use crate::clock::{Clock, SystemClock};
pub use crate::config::CameraEntry;
pub use access::{Actor, Role};
pub(crate) use audit::audit;
pub use audit::AuditEntry;
use sql::{Backend, Row, Tx, Val};

/// A camera as the registry has it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraRecord {
    /// Its settings.
    #[serde(flatten)]
    pub camera: CameraEntry,
    /// The registry revision of its last change.
    pub revision: i64,
    /// When it was registered (ms since the epoch).
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
}

/// What went wrong with a registry write.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The camera (or token) is not there.
    #[error("no camera {0:?}")]
    NotFound(String),
    /// A camera of this id is registered already.
    #[error("camera {0:?} is registered already")]
    Exists(String),
    /// The document has problems (each starting with the field).
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The changes since a revision.
#[derive(Debug, Default)]
pub struct Changes {
    /// The revision now.
    pub revision: i64,
    /// Cameras created or changed since (with their settings now).
    pub changed: Vec<CameraRecord>,
    /// Cameras deleted since.
    pub deleted: Vec<String>,
}

/// What an import did.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ImportSummary {
    /// Cameras registered.
    pub created: usize,
    /// Cameras whose settings changed.
    pub updated: usize,
    /// Rows equal to the camera registered.
    pub unchanged: usize,
    /// The revision after the import.
    pub revision: i64,
}

/// The registry over the case store's database.
pub struct Registry {
    db: Backend,
    clock: Arc<dyn Clock>,
}

/// Most cameras one import may hold.
pub const MAX_IMPORT: usize = 100_000;

const CAMERA_COLUMNS: &str = "id, doc, enabled, deleted, revision, created_ms, updated_ms";

fn read_record(store: &str, r: &Row) -> Result<CameraRecord, StoreError> {
    let id = r.text(0);
    let mut camera: CameraEntry =
        serde_json::from_str(&r.text(1)).map_err(|e| StoreError::Refused {
            store: store.to_string(),
            message: format!("camera {id:?}: its stored settings cannot be read ({e})"),
        })?;
    let problems = camera.parse_fields();
    if !problems.is_empty() {
        return Err(StoreError::Refused {
            store: store.to_string(),
            message: format!("camera {id:?}: {}", problems.join("; ")),
        });
    }
    camera.enabled = r.int(2) != 0;
    Ok(CameraRecord {
        camera,
        revision: r.int(4),
        created_ms: r.int(5),
        updated_ms: r.int(6),
    })
}

fn doc(c: &CameraEntry) -> String {
    serde_json::to_string(c).expect("a camera serializes")
}

/// Bumps the revision; returns the new one (the counter row stays locked until the
/// transaction ends, so writes commit in revision order).
fn bump(tx: &mut dyn Tx) -> Result<i64, StoreError> {
    Ok(tx
        .rows(
            "UPDATE registry_meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
            &[],
        )?
        .first()
        .map_or(0, |r| r.int(0)))
}

/// A camera's document as the audit log keeps it: the password of an RTSP URL hidden.
fn audit_doc(c: &CameraEntry) -> serde_json::Value {
    c.redacted_json()
}

/// Checks a camera's settings for the registry: its id, its fields' parse, its values.
pub fn validate(c: &mut CameraEntry) -> Result<(), RegistryError> {
    let mut problems = Vec::new();
    if !CameraEntry::valid_id(&c.id) {
        problems.push(format!(
            "id: {:?} must be 1 to 64 letters, digits, - _ . and not start with a dot",
            c.id
        ));
    }
    problems.extend(c.parse_fields().into_iter().map(|m| m[1..].to_string()));
    problems.extend(c.check().into_iter().map(|m| {
        m.strip_prefix(": ")
            .or_else(|| m.strip_prefix('.'))
            .unwrap_or(&m)
            .to_string()
    }));
    if let Some(p) = c.calibration.as_ref().filter(|p| p.exists()) {
        if let Err(e) = crate::geo::calib::Calibration::load(p) {
            problems.push(format!("calibration: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Invalid(problems))
    }
}

impl Registry {
    /// The registry of the case store at `url` (PostgreSQL) or in `dir` (SQLite);
    /// open the case store first (its migrations make the tables).
    pub fn open(url: Option<&str>, dir: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            db: Backend::open(url, dir)?,
            clock: Arc::new(SystemClock),
        })
    }

    /// The registry reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The database, for messages.
    pub fn name(&self) -> &str {
        self.db.name()
    }

    pub(crate) fn tx<R>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.db.tx(f)
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The revision now.
    pub fn revision(&self) -> Result<i64, StoreError> {
        self.tx(current)
    }

    /// The changes after revision `since` (0: every camera there is).
    pub fn changes_since(&self, since: i64) -> Result<Changes, StoreError> {
        self.tx(|tx| {
            let revision = current(tx)?;
            let mut out = Changes {
                revision,
                ..Changes::default()
            };
            if revision == since {
                return Ok(out);
            }
            let rows = tx.rows(
                &format!("SELECT {CAMERA_COLUMNS} FROM cameras WHERE revision > $1 AND revision <= $2 ORDER BY id"),
                &[since.into(), revision.into()],
            )?;
            for r in &rows {
                if r.int(3) != 0 {
                    out.deleted.push(r.text(0));
                } else {
                    out.changed.push(read_record(self.name(), r)?);
                }
            }
            Ok(out)
        })
    }

    /// One camera (not a deleted one).
    pub fn get(&self, id: &str) -> Result<Option<CameraRecord>, StoreError> {
        self.tx(|tx| get(tx, self.name(), id))
    }

    /// Seeds a registry that never had cameras with `cameras` (the config's), once;
    /// returns how many went in (`None`: it had been seeded already).
    pub fn seed(&self, cameras: &[CameraEntry]) -> Result<Option<usize>, StoreError> {
        let now = self.now_ms();
        let actor = Actor::system("config");
        self.tx(|tx| {
            if !claim_seed(tx, "seeded")? {
                return Ok(None);
            }
            if cameras.is_empty() {
                return Ok(Some(0));
            }
            let rev = bump(tx)?;
            put_many(tx, &cameras.iter().collect::<Vec<_>>(), rev, now)?;
            for c in cameras {
                audit(
                    tx,
                    now,
                    &actor,
                    "camera.create",
                    &format!("camera/{}", c.id),
                    None,
                    Some(&audit_doc(c)),
                )?;
            }
            Ok(Some(cameras.len()))
        })
    }

    /// Registers a camera (checked with [`validate`]).
    pub fn create(&self, actor: &Actor, mut c: CameraEntry) -> Result<CameraRecord, RegistryError> {
        validate(&mut c)?;
        let now = self.now_ms();
        let out = self.tx(|tx| {
            if get(tx, self.name(), &c.id)?.is_some() {
                return Ok(None);
            }
            write_camera(tx, self.name(), now, actor, "camera.create", None, &c)
        })?;
        out.ok_or(RegistryError::Exists(c.id))
    }

    /// Changes a registered camera's settings; a source given with its password
    /// hidden (as the API shows it) keeps the password registered.
    pub fn update(&self, actor: &Actor, mut c: CameraEntry) -> Result<CameraRecord, RegistryError> {
        let now = self.now_ms();
        let id = c.id.clone();
        let mut invalid = None;
        let out = self.tx(|tx| {
            let Some(before) = get(tx, self.name(), &c.id)? else {
                return Ok(None);
            };
            if c.source == before.camera.source_redacted() {
                c.source = before.camera.source.clone();
            }
            if c.main_source.is_some() && c.main_source == before.camera.main_source_redacted() {
                c.main_source = before.camera.main_source.clone();
            }
            if let Err(e) = validate(&mut c) {
                invalid = Some(e);
                return Ok(None);
            }
            if c == before.camera {
                return Ok(Some(before));
            }
            let action = "camera.update";
            write_camera(
                tx,
                self.name(),
                now,
                actor,
                action,
                Some(&before.camera),
                &c,
            )
        })?;
        if let Some(e) = invalid {
            return Err(e);
        }
        out.ok_or(RegistryError::NotFound(id))
    }

    /// Enables or disables a camera.
    pub fn set_enabled(
        &self,
        actor: &Actor,
        id: &str,
        enabled: bool,
    ) -> Result<CameraRecord, RegistryError> {
        let now = self.now_ms();
        let action = if enabled {
            "camera.enable"
        } else {
            "camera.disable"
        };
        let out = self.tx(|tx| {
            let Some(before) = get(tx, self.name(), id)? else {
                return Ok(None);
            };
            if before.camera.enabled == enabled {
                return Ok(Some(before));
            }
            let mut after = before.camera.clone();
            after.enabled = enabled;
            write_camera(
                tx,
                self.name(),
                now,
                actor,
                action,
                Some(&before.camera),
                &after,
            )
        })?;
        out.ok_or_else(|| RegistryError::NotFound(id.to_string()))
    }

    /// Deletes a camera (its cases stay).
    pub fn delete(&self, actor: &Actor, id: &str) -> Result<(), RegistryError> {
        let now = self.now_ms();
        let found = self.tx(|tx| {
            let Some(before) = get(tx, self.name(), id)? else {
                return Ok(false);
            };
            let rev = bump(tx)?;
            tx.exec(
                "UPDATE cameras SET deleted = 1, revision = $2, updated_ms = $3 WHERE id = $1",
                &[id.into(), rev.into(), now.into()],
            )?;
            audit(
                tx,
                now,
                actor,
                "camera.delete",
                &format!("camera/{id}"),
                Some(&audit_doc(&before.camera)),
                None,
            )?;
            Ok(true)
        })?;
        if found {
            Ok(())
        } else {
            Err(RegistryError::NotFound(id.to_string()))
        }
    }

    /// Registers or updates every camera of a catalogue in one transaction: all of
    /// them, or (on an error) none. The rows must have been checked
    /// ([`catalogue::parse`] does).
    pub fn import(
        &self,
        actor: &Actor,
        cameras: &[CameraEntry],
    ) -> Result<ImportSummary, StoreError> {
        let now = self.now_ms();
        self.tx(|tx| {
            let existing: BTreeMap<String, CameraRecord> = tx
                .rows(
                    &format!("SELECT {CAMERA_COLUMNS} FROM cameras WHERE deleted = 0"),
                    &[],
                )?
                .iter()
                .map(|r| read_record(self.name(), r).map(|c| (c.camera.id.clone(), c)))
                .collect::<Result<_, _>>()?;
            let mut s = ImportSummary::default();
            let changed: Vec<&CameraEntry> = cameras
                .iter()
                .filter(|c| match existing.get(&c.id) {
                    Some(e) if e.camera == **c => {
                        s.unchanged += 1;
                        false
                    }
                    Some(_) => {
                        s.updated += 1;
                        true
                    }
                    None => {
                        s.created += 1;
                        true
                    }
                })
                .collect();
            s.revision = if changed.is_empty() {
                current(tx)?
            } else {
                bump(tx)?
            };
            put_many(tx, &changed, s.revision, now)?;
            audit(
                tx,
                now,
                actor,
                "camera.import",
                "cameras",
                None,
                Some(&serde_json::json!({
                    "created": s.created,
                    "updated": s.updated,
                    "unchanged": s.unchanged,
                    "cameras": changed.iter().map(|c| &c.id).collect::<Vec<_>>(),
                })),
            )?;
            Ok(s)
        })
    }
}

/// Whether this caller seeds what `key` marks (the first node to start does, once):
/// sets the mark in the caller's transaction.
fn claim_seed(tx: &mut dyn Tx, key: &str) -> Result<bool, StoreError> {
    Ok(tx.exec(
        "UPDATE registry_meta SET value = 1 WHERE key = $1 AND value = 0",
        &[key.into()],
    )? > 0)
}

fn current(tx: &mut dyn Tx) -> Result<i64, StoreError> {
    Ok(tx
        .rows(
            "SELECT value FROM registry_meta WHERE key = 'revision'",
            &[],
        )?
        .first()
        .map_or(0, |r| r.int(0)))
}

/// Writes a camera's settings at a new revision with the audit entry of `action`;
/// returns it as stored.
fn write_camera(
    tx: &mut dyn Tx,
    store: &str,
    now: i64,
    actor: &Actor,
    action: &str,
    before: Option<&CameraEntry>,
    after: &CameraEntry,
) -> Result<Option<CameraRecord>, StoreError> {
    let rev = bump(tx)?;
    put(tx, after, rev, now)?;
    let target = format!("camera/{}", after.id);
    let before = before.map(audit_doc);
    audit(
        tx,
        now,
        actor,
        action,
        &target,
        before.as_ref(),
        Some(&audit_doc(after)),
    )?;
    get(tx, store, &after.id)
}

fn get(tx: &mut dyn Tx, store: &str, id: &str) -> Result<Option<CameraRecord>, StoreError> {
    tx.rows(
        &format!("SELECT {CAMERA_COLUMNS} FROM cameras WHERE id = $1 AND deleted = 0"),
        &[id.into()],
    )?
    .first()
    .map(|r| read_record(store, r))
    .transpose()
}

/// Writes a camera's row at revision `rev` (over a tombstone of the same id).
fn put(tx: &mut dyn Tx, c: &CameraEntry, rev: i64, now: i64) -> Result<(), StoreError> {
    put_many(tx, &[c], rev, now)
}

/// Rows written per statement: one round trip per 500 cameras, not per camera.
const PUT_CHUNK: usize = 500;

/// Writes cameras' rows at revision `rev`, many a statement. A camera registered
/// again over its tombstone is created anew; a live one keeps its creation time.
fn put_many(tx: &mut dyn Tx, cams: &[&CameraEntry], rev: i64, now: i64) -> Result<(), StoreError> {
    for chunk in cams.chunks(PUT_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO cameras (id, doc, enabled, deleted, revision, created_ms, updated_ms) VALUES ",
        );
        let mut params: Vec<Val> = Vec::with_capacity(chunk.len() * 5);
        for (i, c) in chunk.iter().enumerate() {
            let n = i * 5;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, 0, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 5
            ));
            params.extend([
                c.id.as_str().into(),
                doc(c).into(),
                c.enabled.into(),
                rev.into(),
                now.into(),
            ]);
        }
        sql.push_str(
            " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, enabled = excluded.enabled, deleted = 0,
                revision = excluded.revision, updated_ms = excluded.updated_ms,
                created_ms = CASE WHEN cameras.deleted = 1 THEN excluded.created_ms ELSE cameras.created_ms END",
        );
        tx.exec(&sql, &params)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

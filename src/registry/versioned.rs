//! Resources kept in versions (zones, calibrations): each a JSON document under an
//! id, at a version that starts at 1 and grows by one each change; every version
//! kept with who made it and when (a deletion is a version with no document), and
//! the current one stamped with the registry revision of its last change (a deleted
//! one stays as a tombstone), so nodes see a change at their next poll. Every change
//! is in the audit log.

use serde::Serialize;

use super::{audit, bump, Actor, Registry, RegistryError, Row, Tx};
use crate::cases::StoreError;

/// Which resource: its tables and its name in the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    /// The table of current documents (`id, <doc>, version, deleted, revision,
    /// updated_ms, updated_by`).
    pub table: &'static str,
    /// The table of versions (`id, version, <doc>, at_ms, actor`).
    pub versions: &'static str,
    /// The document's column in both.
    pub column: &'static str,
    /// Its name in messages and the audit log (`zone` → `zone.create`, `zone/<id>`).
    pub what: &'static str,
}

/// A resource as the registry has it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    /// Its id.
    pub id: String,
    /// The document.
    pub doc: serde_json::Value,
    /// Its version: 1 when made, one more each change.
    pub version: i64,
    /// When it last changed (ms since the epoch).
    pub updated_ms: i64,
    /// Who changed it.
    pub updated_by: String,
}

/// One version of a resource.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Version {
    /// The version.
    pub version: i64,
    /// The document at that version (`None`: deleted).
    pub doc: Option<serde_json::Value>,
    /// When.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
}

impl Kind {
    fn read(&self, store: &str, r: &Row) -> Result<Record, StoreError> {
        let id = r.text(0);
        let doc = serde_json::from_str(&r.text(1)).map_err(|e| StoreError::Refused {
            store: store.to_string(),
            message: format!(
                "{} {id:?}: its stored document cannot be read ({e})",
                self.what
            ),
        })?;
        Ok(Record {
            id,
            doc,
            version: r.int(2),
            updated_ms: r.int(3),
            updated_by: r.text(4),
        })
    }

    fn select(&self) -> String {
        format!(
            "SELECT id, {}, version, updated_ms, updated_by FROM {} WHERE deleted = 0",
            self.column, self.table
        )
    }

    /// The current document of `id`.
    pub fn get(
        &self,
        tx: &mut dyn Tx,
        store: &str,
        id: &str,
    ) -> Result<Option<Record>, StoreError> {
        tx.rows(&format!("{} AND id = $1", self.select()), &[id.into()])?
            .first()
            .map(|r| self.read(store, r))
            .transpose()
    }

    /// Every current document, in id order.
    pub fn all(&self, tx: &mut dyn Tx, store: &str) -> Result<Vec<Record>, StoreError> {
        tx.rows(&format!("{} ORDER BY id", self.select()), &[])?
            .iter()
            .map(|r| self.read(store, r))
            .collect()
    }

    /// The registry revision of the last write (0: none).
    pub fn revision(&self, tx: &mut dyn Tx) -> Result<i64, StoreError> {
        Ok(tx
            .rows(&format!("SELECT MAX(revision) FROM {}", self.table), &[])?
            .first()
            .and_then(|r| r.opt_int(0))
            .unwrap_or(0))
    }

    /// Every version of `id`, oldest first (empty: never made).
    pub fn history(&self, tx: &mut dyn Tx, id: &str) -> Result<Vec<Version>, StoreError> {
        let rows = tx.rows(
            &format!(
                "SELECT version, {}, at_ms, actor FROM {} WHERE id = $1 ORDER BY version",
                self.column, self.versions
            ),
            &[id.into()],
        )?;
        Ok(rows
            .iter()
            .map(|r| Version {
                version: r.int(0),
                doc: r.opt_text(1).and_then(|t| serde_json::from_str(&t).ok()),
                at_ms: r.int(2),
                actor: r.text(3),
            })
            .collect())
    }

    /// Writes `doc` (`None`: deletes) as `id`'s next version (tombstones count: one
    /// deleted and made again goes on from its last version); returns it.
    pub fn write(
        &self,
        tx: &mut dyn Tx,
        now: i64,
        actor: &Actor,
        id: &str,
        doc: Option<&serde_json::Value>,
    ) -> Result<i64, StoreError> {
        let rev = bump(tx)?;
        let version = tx
            .rows(
                &format!("SELECT MAX(version) FROM {} WHERE id = $1", self.versions),
                &[id.into()],
            )?
            .first()
            .and_then(|r| r.opt_int(0))
            .unwrap_or(0)
            + 1;
        let text = doc.map(|f| f.to_string());
        let who = actor.name.as_str();
        tx.exec(
            &format!(
                "INSERT INTO {} (id, version, {}, at_ms, actor) VALUES ($1, $2, $3, $4, $5)",
                self.versions, self.column
            ),
            &[
                id.into(),
                version.into(),
                text.clone().into(),
                now.into(),
                who.into(),
            ],
        )?;
        let n = tx.exec(
            &format!(
                "UPDATE {} SET {c} = COALESCE($2, {c}), version = $3, deleted = $4, revision = $5, updated_ms = $6, updated_by = $7 WHERE id = $1",
                self.table,
                c = self.column
            ),
            &[
                id.into(),
                text.clone().into(),
                version.into(),
                doc.is_none().into(),
                rev.into(),
                now.into(),
                who.into(),
            ],
        )?;
        if n == 0 {
            tx.exec(
                &format!(
                    "INSERT INTO {} (id, {}, version, deleted, revision, updated_ms, updated_by) VALUES ($1, $2, $3, 0, $4, $5, $6)",
                    self.table, self.column
                ),
                &[id.into(), text.into(), version.into(), rev.into(), now.into(), who.into()],
            )?;
        }
        Ok(version)
    }

    /// Makes or changes `id` with `doc` (checked by the caller), audited; an
    /// unchanged document makes no new version. Returns it as stored.
    pub fn put(
        &self,
        reg: &Registry,
        actor: &Actor,
        id: &str,
        doc: &serde_json::Value,
    ) -> Result<Record, RegistryError> {
        let now = reg.now_ms();
        let target = format!("{}/{id}", self.what);
        Ok(reg.tx(|tx| {
            let before = self.get(tx, reg.name(), id)?;
            if let Some(b) = before.as_ref().filter(|b| b.doc == *doc) {
                return Ok(b.clone());
            }
            self.write(tx, now, actor, id, Some(doc))?;
            let action = format!(
                "{}.{}",
                self.what,
                if before.is_some() { "update" } else { "create" }
            );
            let b = before.map(|b| b.doc);
            audit(tx, now, actor, &action, &target, b.as_ref(), Some(doc))?;
            Ok(self.get(tx, reg.name(), id)?.expect("just written"))
        })?)
    }

    /// Deletes `id` (its versions stay), audited.
    pub fn delete(&self, reg: &Registry, actor: &Actor, id: &str) -> Result<(), RegistryError> {
        let now = reg.now_ms();
        let found = reg.tx(|tx| {
            let Some(before) = self.get(tx, reg.name(), id)? else {
                return Ok(false);
            };
            self.write(tx, now, actor, id, None)?;
            let (action, target) = (
                format!("{}.delete", self.what),
                format!("{}/{id}", self.what),
            );
            audit(tx, now, actor, &action, &target, Some(&before.doc), None)?;
            Ok(true)
        })?;
        if found {
            Ok(())
        } else {
            Err(RegistryError::NotFound(format!("{} {id}", self.what)))
        }
    }
}

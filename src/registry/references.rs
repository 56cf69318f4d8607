//! Reference pictures of camera views captured through the API: the picture a PTZ
//! preset (`camera@preset`) is recognised by. A view with one here uses it instead
//! of its preset's `reference` file; a preset with neither waits for one (its rules
//! do not run). Pictures are stored as JPEG; each capture is a new version, stamped
//! with the registry revision so nodes see it at their next poll, and audited by
//! its size and SHA-256 (the picture itself is not copied into the audit log).

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::zones::check_id;
use super::{audit, bump, get, validate, write_camera, Actor, CameraRecord, Registry};
use super::{RegistryError, Row};
use crate::cases::StoreError;

/// Most bytes of one reference picture.
pub const MAX_BYTES: usize = 8 << 20;

/// A reference picture as the registry has it (without the picture).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReferenceRecord {
    /// The view (`camera@preset`).
    pub id: String,
    /// Its size in pixels.
    pub width: u32,
    pub height: u32,
    /// The JPEG's bytes and SHA-256 (hex).
    pub bytes: usize,
    pub sha256: String,
    /// 1 at the first capture, one more at each.
    pub version: i64,
    /// When it was captured (ms since the epoch), and by whom.
    pub updated_ms: i64,
    pub updated_by: String,
}

impl ReferenceRecord {
    /// What the audit log keeps of it.
    fn audited(&self) -> serde_json::Value {
        serde_json::json!({
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "version": self.version,
        })
    }
}

const COLUMNS: &str = "id, width, height, bytes, sha256, version, updated_ms, updated_by";

fn read(r: &Row) -> ReferenceRecord {
    ReferenceRecord {
        id: r.text(0),
        width: r.int(1) as u32,
        height: r.int(2) as u32,
        bytes: r.int(3) as usize,
        sha256: r.text(4),
        version: r.int(5),
        updated_ms: r.int(6),
        updated_by: r.text(7),
    }
}

fn select(tx: &mut dyn super::Tx, id: &str) -> Result<Option<ReferenceRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM view_references WHERE deleted = 0 AND id = $1");
    Ok(tx.rows(&sql, &[id.into()])?.first().map(read))
}

impl Registry {
    /// Adds a preset named `preset` to camera `id`, with no picture yet (one is
    /// captured next), checked as every camera change is (a camera with presets has
    /// no calibration of its own), audited as `camera.update`; in one transaction, so
    /// that no change made meanwhile is lost.
    pub fn add_preset(
        &self,
        actor: &Actor,
        id: &str,
        preset: &str,
    ) -> Result<CameraRecord, RegistryError> {
        let now = self.now_ms();
        let mut problem = None;
        let out = self.tx(|tx| {
            let Some(before) = get(tx, self.name(), id)? else {
                return Ok(None);
            };
            let mut c = before.camera.clone();
            if c.presets.iter().any(|p| p.id == preset) {
                let e = format!("id: camera {id} has a preset {preset} already");
                problem = Some(RegistryError::Invalid(vec![e]));
                return Ok(None);
            }
            c.presets.push(crate::config::PresetEntry {
                id: preset.to_string(),
                reference: None,
                calibration: None,
                zones: Vec::new(),
            });
            if let Err(e) = validate(&mut c) {
                problem = Some(e);
                return Ok(None);
            }
            let camera = Some(&before.camera);
            write_camera(tx, self.name(), now, actor, "camera.update", camera, &c)
        })?;
        if let Some(e) = problem {
            return Err(e);
        }
        out.ok_or_else(|| RegistryError::NotFound(format!("camera {id}")))
    }

    /// Every reference picture's record, in view order.
    pub fn references(&self) -> Result<Vec<ReferenceRecord>, StoreError> {
        self.tx(|tx| {
            let sql =
                format!("SELECT {COLUMNS} FROM view_references WHERE deleted = 0 ORDER BY id");
            Ok(tx.rows(&sql, &[])?.iter().map(read).collect())
        })
    }

    /// The version of every view's reference picture (what a node compares to see
    /// which cameras to start again).
    pub fn reference_versions(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        self.tx(|tx| {
            let rows = tx.rows(
                "SELECT id, version FROM view_references WHERE deleted = 0",
                &[],
            )?;
            Ok(rows.iter().map(|r| (r.text(0), r.int(1))).collect())
        })
    }

    /// The registry revision of the last capture or deletion (0: none).
    pub fn references_revision(&self) -> Result<i64, StoreError> {
        self.tx(|tx| {
            Ok(tx
                .rows("SELECT MAX(revision) FROM view_references", &[])?
                .first()
                .and_then(|r| r.opt_int(0))
                .unwrap_or(0))
        })
    }

    /// View `id`'s reference picture (JPEG) with its record.
    pub fn reference(&self, id: &str) -> Result<Option<(ReferenceRecord, Vec<u8>)>, StoreError> {
        self.tx(|tx| {
            let sql = format!(
                "SELECT {COLUMNS}, jpeg FROM view_references WHERE deleted = 0 AND id = $1"
            );
            let Some(r) = tx.rows(&sql, &[id.into()])?.into_iter().next() else {
                return Ok(None);
            };
            let jpeg = base64::engine::general_purpose::STANDARD
                .decode(r.text(8))
                .map_err(|e| StoreError::Refused {
                    store: self.name().to_string(),
                    message: format!("reference {id:?}: its stored picture cannot be read ({e})"),
                })?;
            Ok(Some((read(&r), jpeg)))
        })
    }

    /// Stores `jpeg` (checked by the caller: a picture of `width` × `height` the view
    /// can be recognised by) as view `id`'s reference, audited as
    /// `reference.capture`. The same picture again changes nothing.
    pub fn put_reference(
        &self,
        actor: &Actor,
        id: &str,
        jpeg: &[u8],
        (width, height): (u32, u32),
    ) -> Result<ReferenceRecord, RegistryError> {
        check_id(id).map_err(|e| RegistryError::Invalid(vec![e]))?;
        if jpeg.len() > MAX_BYTES {
            return Err(RegistryError::Invalid(vec![format!(
                "picture: {} bytes; at most {MAX_BYTES}",
                jpeg.len()
            )]));
        }
        let sha = format!("{:x}", Sha256::digest(jpeg));
        let text = base64::engine::general_purpose::STANDARD.encode(jpeg);
        let now = self.now_ms();
        let who = actor.name.as_str();
        Ok(self.tx(|tx| {
            let before = select(tx, id)?;
            if let Some(b) = before.as_ref().filter(|b| b.sha256 == sha) {
                return Ok(b.clone());
            }
            let rev = bump(tx)?;
            let version = tx
                .rows("SELECT version FROM view_references WHERE id = $1", &[id.into()])?
                .first()
                .map_or(0, |r| r.int(0))
                + 1;
            let (w, h, n) = (width as i64, height as i64, jpeg.len() as i64);
            let values = [id.into(), text.into(), n.into(), w.into(), h.into(), sha.into(), version.into(), rev.into(), now.into(), who.into()];
            let changed = tx.exec(
                "UPDATE view_references SET jpeg = $2, bytes = $3, width = $4, height = $5, sha256 = $6, version = $7, deleted = 0, revision = $8, updated_ms = $9, updated_by = $10 WHERE id = $1",
                &values,
            )?;
            if changed == 0 {
                tx.exec(
                    "INSERT INTO view_references (id, jpeg, bytes, width, height, sha256, version, deleted, revision, updated_ms, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10)",
                    &values,
                )?;
            }
            let after = select(tx, id)?.expect("just written");
            let before = before.map(|b| b.audited());
            let target = format!("reference/{id}");
            audit(tx, now, actor, "reference.capture", &target, before.as_ref(), Some(&after.audited()))?;
            Ok(after)
        })?)
    }

    /// Deletes view `id`'s reference picture: the preset goes back to its
    /// `reference` file, if any. Audited as `reference.delete`.
    pub fn delete_reference(&self, actor: &Actor, id: &str) -> Result<(), RegistryError> {
        let now = self.now_ms();
        let found = self.tx(|tx| {
            let Some(before) = select(tx, id)? else {
                return Ok(false);
            };
            let rev = bump(tx)?;
            tx.exec(
                "UPDATE view_references SET jpeg = '', bytes = 0, deleted = 1, version = version + 1, revision = $2, updated_ms = $3, updated_by = $4 WHERE id = $1",
                &[id.into(), rev.into(), now.into(), actor.name.as_str().into()],
            )?;
            let target = format!("reference/{id}");
            audit(tx, now, actor, "reference.delete", &target, Some(&before.audited()), None)?;
            Ok(true)
        })?;
        if found {
            Ok(())
        } else {
            Err(RegistryError::NotFound(format!("reference {id}")))
        }
    }
}

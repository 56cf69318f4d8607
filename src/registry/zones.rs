//! Zones as resources: each zone is a GeoJSON feature, as a zones file has it. It is
//! written through the API (checked by the same rules as a file) at a new version,
//! and every version is kept: who changed what, when. A case records the version of
//! the zone it was found in. Every write bumps the registry revision like a camera
//! write, so every node sees the change at its next poll
//! ([`Registry::zones_revision`]). The config's `geo.zones` file seeds a registry
//! that never had zones, once.

use serde::Serialize;

use super::{audit, bump, Actor, Registry, RegistryError};
use crate::cases::StoreError;
use crate::geo::zones::{Zone, ZoneSet};

/// A zone as the registry has it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ZoneRecord {
    /// Its id.
    pub id: String,
    /// The GeoJSON feature (its `id` is the zone's).
    pub feature: serde_json::Value,
    /// Its version: 1 when made, one more each change.
    pub version: i64,
    /// When it last changed (ms since the epoch), and who changed it.
    pub updated_ms: i64,
    /// Who.
    pub updated_by: String,
}

/// One version of a zone.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ZoneVersion {
    /// The version.
    pub version: i64,
    /// The feature at that version (`None`: deleted).
    pub feature: Option<serde_json::Value>,
    /// When.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
}

/// Whether `id` can name a zone: 1 to 200 characters of printable text.
fn check_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("id: 1 to 200 characters".into());
    }
    crate::cases::text::check("id", id, 200, false)
}

fn read(store: &str, r: &super::Row) -> Result<ZoneRecord, StoreError> {
    let id = r.text(0);
    let feature = serde_json::from_str(&r.text(1)).map_err(|e| StoreError::Refused {
        store: store.to_string(),
        message: format!("zone {id:?}: its stored feature cannot be read ({e})"),
    })?;
    Ok(ZoneRecord {
        id,
        feature,
        version: r.int(2),
        updated_ms: r.int(3),
        updated_by: r.text(4),
    })
}

const COLUMNS: &str = "id, feature, version, updated_ms, updated_by";

fn get(tx: &mut dyn super::Tx, store: &str, id: &str) -> Result<Option<ZoneRecord>, StoreError> {
    tx.rows(
        &format!("SELECT {COLUMNS} FROM zones WHERE id = $1 AND deleted = 0"),
        &[id.into()],
    )?
    .first()
    .map(|r| read(store, r))
    .transpose()
}

/// The version a zone's next write gets (tombstones count: a zone deleted and made
/// again goes on from its last version).
fn next_version(tx: &mut dyn super::Tx, id: &str) -> Result<i64, StoreError> {
    Ok(tx
        .rows(
            "SELECT MAX(version) FROM zone_versions WHERE id = $1",
            &[id.into()],
        )?
        .first()
        .and_then(|r| r.opt_int(0))
        .unwrap_or(0)
        + 1)
}

/// Writes `feature` as zone `id`'s next version.
fn write(
    tx: &mut dyn super::Tx,
    now: i64,
    actor: &Actor,
    id: &str,
    feature: Option<&serde_json::Value>,
) -> Result<i64, StoreError> {
    let rev = bump(tx)?;
    let version = next_version(tx, id)?;
    let text = feature.map(|f| f.to_string());
    tx.exec(
        "INSERT INTO zone_versions (id, version, feature, at_ms, actor) VALUES ($1, $2, $3, $4, $5)",
        &[
            id.into(),
            version.into(),
            text.clone().into(),
            now.into(),
            actor.name.as_str().into(),
        ],
    )?;
    let n = tx.exec(
        "UPDATE zones SET feature = COALESCE($2, feature), version = $3, deleted = $4, revision = $5, updated_ms = $6, updated_by = $7 WHERE id = $1",
        &[
            id.into(),
            text.clone().into(),
            version.into(),
            feature.is_none().into(),
            rev.into(),
            now.into(),
            actor.name.as_str().into(),
        ],
    )?;
    if n == 0 {
        tx.exec(
            "INSERT INTO zones (id, feature, version, deleted, revision, updated_ms, updated_by) VALUES ($1, $2, $3, 0, $4, $5, $6)",
            &[
                id.into(),
                text.into(),
                version.into(),
                rev.into(),
                now.into(),
                actor.name.as_str().into(),
            ],
        )?;
    }
    Ok(version)
}

impl Registry {
    /// Every zone, in id order.
    pub fn zones(&self) -> Result<Vec<ZoneRecord>, StoreError> {
        self.tx(|tx| {
            tx.rows(
                &format!("SELECT {COLUMNS} FROM zones WHERE deleted = 0 ORDER BY id"),
                &[],
            )?
            .iter()
            .map(|r| read(self.name(), r))
            .collect()
        })
    }

    /// The registry revision of the last zone write (0: none): a node whose zones
    /// are older reads them again.
    pub fn zones_revision(&self) -> Result<i64, StoreError> {
        self.tx(|tx| {
            Ok(tx
                .rows("SELECT MAX(revision) FROM zones", &[])?
                .first()
                .and_then(|r| r.opt_int(0))
                .unwrap_or(0))
        })
    }

    /// One zone.
    pub fn zone(&self, id: &str) -> Result<Option<ZoneRecord>, StoreError> {
        self.tx(|tx| get(tx, self.name(), id))
    }

    /// The zones as a set the scenes use, in time zone `tz`.
    pub fn zone_set(&self, tz: chrono_tz::Tz) -> Result<ZoneSet, StoreError> {
        let mut zones = Vec::new();
        for r in self.zones()? {
            match Zone::from_feature(&r.feature, &r.id) {
                Ok(z) => zones.push(z),
                // written checked: only a feature of a newer or older gridwatch
                Err(e) => tracing::error!("zone {:?} (version {}): {e}; left out", r.id, r.version),
            }
        }
        Ok(ZoneSet::from_zones(zones, tz))
    }

    /// Makes or changes zone `id` with `feature` (a GeoJSON Feature, as a zones file
    /// has them; its `id`, if any, must be `id`), checked as a file's are and by
    /// `check` (the places it must fit in: frames, horizons); returns it as stored. An
    /// unchanged feature makes no new version.
    pub fn put_zone(
        &self,
        actor: &Actor,
        id: &str,
        mut feature: serde_json::Value,
        check: impl FnOnce(&Zone) -> Vec<String>,
    ) -> Result<ZoneRecord, RegistryError> {
        check_id(id).map_err(|e| RegistryError::Invalid(vec![e]))?;
        match feature.get("id") {
            None => {}
            Some(serde_json::Value::String(s)) if s == id => {}
            Some(other) => {
                return Err(RegistryError::Invalid(vec![format!(
                    "id: the feature's id {other} is not the zone's {id:?}"
                )]))
            }
        }
        if !feature.is_object() {
            return Err(RegistryError::Invalid(vec!["not a GeoJSON Feature".into()]));
        }
        feature["id"] = id.into();
        let zone = Zone::from_feature(&feature, id).map_err(|e| RegistryError::Invalid(vec![e]))?;
        let problems = check(&zone);
        if !problems.is_empty() {
            return Err(RegistryError::Invalid(problems));
        }
        let now = self.now_ms();
        let target = format!("zone/{id}");
        Ok(self.tx(|tx| {
            let before = get(tx, self.name(), id)?;
            if before.as_ref().is_some_and(|b| b.feature == feature) {
                return Ok(before.expect("checked"));
            }
            write(tx, now, actor, id, Some(&feature))?;
            let action = if before.is_some() {
                "zone.update"
            } else {
                "zone.create"
            };
            let b = before.map(|b| b.feature);
            audit(tx, now, actor, action, &target, b.as_ref(), Some(&feature))?;
            Ok(get(tx, self.name(), id)?.expect("just written"))
        })?)
    }

    /// Deletes zone `id` (its versions stay; cases found in it keep their zone).
    pub fn delete_zone(&self, actor: &Actor, id: &str) -> Result<(), RegistryError> {
        let now = self.now_ms();
        let found = self.tx(|tx| {
            let Some(before) = get(tx, self.name(), id)? else {
                return Ok(false);
            };
            write(tx, now, actor, id, None)?;
            let target = format!("zone/{id}");
            audit(
                tx,
                now,
                actor,
                "zone.delete",
                &target,
                Some(&before.feature),
                None,
            )?;
            Ok(true)
        })?;
        if found {
            Ok(())
        } else {
            Err(RegistryError::NotFound(format!("zone {id}")))
        }
    }

    /// Every version of zone `id`, oldest first (empty: never a zone).
    pub fn zone_versions(&self, id: &str) -> Result<Vec<ZoneVersion>, StoreError> {
        self.tx(|tx| {
            let rows = tx.rows(
                "SELECT version, feature, at_ms, actor FROM zone_versions WHERE id = $1 ORDER BY version",
                &[id.into()],
            )?;
            Ok(rows
                .iter()
                .map(|r| ZoneVersion {
                    version: r.int(0),
                    feature: r.opt_text(1).and_then(|t| serde_json::from_str(&t).ok()),
                    at_ms: r.int(2),
                    actor: r.text(3),
                })
                .collect())
        })
    }

    /// Seeds a registry that never had zones with `features` (the `geo.zones` file's,
    /// each with its id), once; returns how many went in (`None`: seeded already).
    pub fn seed_zones(
        &self,
        features: &[(String, serde_json::Value)],
    ) -> Result<Option<usize>, StoreError> {
        let now = self.now_ms();
        let actor = Actor::system("config");
        self.tx(|tx| {
            if !super::claim_seed(tx, "zones_seeded")? {
                return Ok(None);
            }
            for (id, f) in features {
                write(tx, now, &actor, id, Some(f))?;
                audit(
                    tx,
                    now,
                    &actor,
                    "zone.create",
                    &format!("zone/{id}"),
                    None,
                    Some(f),
                )?;
            }
            Ok(Some(features.len()))
        })
    }
}

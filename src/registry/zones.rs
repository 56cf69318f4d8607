//! Zones as resources: each zone is a GeoJSON feature, as a zones file has it. It is
//! written through the API (checked by the same rules as a file) at a new version,
//! and every version is kept: who changed what, when. A case records the version of
//! the zone it was found in. Every write bumps the registry revision like a camera
//! write, so every node sees the change at its next poll
//! ([`Registry::zones_revision`]). The config's `geo.zones` file seeds a registry
//! that never had zones, once.

use super::versioned::{Kind, Record, Version};
use super::{audit, Actor, Registry, RegistryError};
use crate::cases::StoreError;
use crate::geo::zones::{Zone, ZoneSet};

/// A zone as the registry has it: its document is the GeoJSON feature.
pub type ZoneRecord = Record;
/// One version of a zone.
pub type ZoneVersion = Version;

/// The zones' tables.
pub(crate) const ZONES: Kind = Kind {
    table: "zones",
    versions: "zone_versions",
    column: "feature",
    what: "zone",
};

/// Whether `id` can name a zone (or a calibration): 1 to 200 characters of
/// printable text.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("id: 1 to 200 characters".into());
    }
    crate::cases::text::check("id", id, 200, false)
}

impl Registry {
    /// Every zone, in id order.
    pub fn zones(&self) -> Result<Vec<ZoneRecord>, StoreError> {
        self.tx(|tx| ZONES.all(tx, self.name()))
    }

    /// The registry revision of the last zone write (0: none): a node whose zones
    /// are older reads them again.
    pub fn zones_revision(&self) -> Result<i64, StoreError> {
        self.tx(|tx| ZONES.revision(tx))
    }

    /// One zone.
    pub fn zone(&self, id: &str) -> Result<Option<ZoneRecord>, StoreError> {
        self.tx(|tx| ZONES.get(tx, self.name(), id))
    }

    /// The zones as a set the scenes use, in time zone `tz`.
    pub fn zone_set(&self, tz: chrono_tz::Tz) -> Result<ZoneSet, StoreError> {
        let mut zones = Vec::new();
        for r in self.zones()? {
            match Zone::from_feature(&r.doc, &r.id) {
                Ok(z) => zones.push(Zone {
                    version: Some(r.version),
                    ..z
                }),
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
        ZONES.put(self, actor, id, &feature)
    }

    /// Deletes zone `id` (its versions stay; cases found in it keep their zone).
    pub fn delete_zone(&self, actor: &Actor, id: &str) -> Result<(), RegistryError> {
        ZONES.delete(self, actor, id)
    }

    /// Every version of zone `id`, oldest first (empty: never a zone).
    pub fn zone_versions(&self, id: &str) -> Result<Vec<ZoneVersion>, StoreError> {
        self.tx(|tx| ZONES.history(tx, id))
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
                ZONES.write(tx, now, &actor, id, Some(f))?;
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

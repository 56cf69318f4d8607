//! Calibrations as resources: one per camera view (`camera`, or `camera@preset` for
//! a PTZ preset), each a [`CalibrationDoc`] as JSON, kept in versions as zones are.
//! A view with a calibration here uses it; one without uses its camera's
//! `calibration` file, if any. Saving one checks that it fits (as `gridwatch
//! calibrate` does) and that its RMS error is within the limit.

use std::collections::BTreeMap;

use super::versioned::{Kind, Record, Version};
use super::zones::check_id;
use super::{Actor, Registry, RegistryError};
use crate::cases::StoreError;
use crate::geo::calib::Calibration;

/// The calibrations' tables.
const CALIBRATIONS: Kind = Kind {
    table: "calibrations",
    versions: "calibration_versions",
    column: "doc",
    what: "calibration",
};

/// Most control points of one calibration.
pub const MAX_POINTS: usize = 200;

/// A calibration fitted from its document, with the version it is at.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// Its version.
    pub version: i64,
    /// The fit.
    pub calibration: Calibration,
}

/// Fits a stored document for view `id`.
pub fn fit(id: &str, doc: &serde_json::Value) -> Result<Calibration, String> {
    if doc["points"]
        .as_array()
        .is_some_and(|p| p.len() > MAX_POINTS)
    {
        return Err(format!("points: at most {MAX_POINTS} control points"));
    }
    Calibration::from_doc(&format!("calibration {id}"), id, doc).map_err(|e| e.to_string())
}

impl Registry {
    /// Every calibration, in id order.
    pub fn calibrations(&self) -> Result<Vec<Record>, StoreError> {
        self.tx(|tx| CALIBRATIONS.all(tx, self.name()))
    }

    /// Every calibration, fitted, by view (one that no longer fits is left out, logged).
    pub fn fitted_calibrations(&self) -> Result<BTreeMap<String, Fitted>, StoreError> {
        let mut out = BTreeMap::new();
        for r in self.calibrations()? {
            match fit(&r.id, &r.doc) {
                Ok(calibration) => {
                    out.insert(
                        r.id,
                        Fitted {
                            version: r.version,
                            calibration,
                        },
                    );
                }
                Err(e) => tracing::error!(
                    "calibration {} (version {}): {e}; left out",
                    r.id,
                    r.version
                ),
            }
        }
        Ok(out)
    }

    /// One view's calibration.
    pub fn calibration(&self, id: &str) -> Result<Option<Record>, StoreError> {
        self.tx(|tx| CALIBRATIONS.get(tx, self.name(), id))
    }

    /// The registry revision of the last calibration write (0: none).
    pub fn calibrations_revision(&self) -> Result<i64, StoreError> {
        self.tx(|tx| CALIBRATIONS.revision(tx))
    }

    /// Makes or changes view `id`'s calibration with `doc` when it fits and `check`
    /// (what the view must satisfy: that it exists, the RMS limit) finds nothing
    /// wrong with the fit; returns it as stored, with its fit.
    pub fn put_calibration(
        &self,
        actor: &Actor,
        id: &str,
        doc: serde_json::Value,
        check: impl FnOnce(&Calibration) -> Vec<String>,
    ) -> Result<(Record, Calibration), RegistryError> {
        check_id(id).map_err(|e| RegistryError::Invalid(vec![e]))?;
        let cal = fit(id, &doc).map_err(|e| RegistryError::Invalid(vec![e]))?;
        let problems = check(&cal);
        if !problems.is_empty() {
            return Err(RegistryError::Invalid(problems));
        }
        Ok((CALIBRATIONS.put(self, actor, id, &doc)?, cal))
    }

    /// Deletes view `id`'s calibration (its versions stay): the view goes back to its
    /// camera's calibration file, if any.
    pub fn delete_calibration(&self, actor: &Actor, id: &str) -> Result<(), RegistryError> {
        CALIBRATIONS.delete(self, actor, id)
    }

    /// Every version of view `id`'s calibration, oldest first.
    pub fn calibration_versions(&self, id: &str) -> Result<Vec<Version>, StoreError> {
        self.tx(|tx| CALIBRATIONS.history(tx, id))
    }
}

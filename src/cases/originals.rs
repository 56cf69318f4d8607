//! Unblurred originals of evidence photos, for reviewers only.
//!
//! What is stored as evidence is private (the privacy of evidence, `rules::privacy`): the people who are
//! not a case's subject are pixelated. An operator whose reviewers must see a scene as
//! it was (was the "bystander" the driver?) may keep the unblurred original of each
//! photo in which something was pixelated (`[cases.originals] keep = true`), in the
//! database beside its evidence item, for a shorter retention than the evidence
//! (`retention`, 7 days by default), readable only with a reviewer's (or an admin's)
//! token through `GET /api/cases/{id}/evidence/{item}/original`, each read logged with
//! who asked. Originals never leave the system otherwise: not in deliveries, exports or
//! the evidence chain (they are not the evidence; the chain is of what is).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::StoreError;

/// Where originals are kept: every case store ([`super::CaseStore`] requires it).
pub trait OriginalStore {
    /// Keeps the unblurred original of evidence item `evidence_id` of case `case_id`,
    /// taken at `at_ms`.
    fn add_original(
        &self,
        case_id: i64,
        evidence_id: i64,
        at_ms: i64,
        jpeg: &[u8],
    ) -> Result<(), StoreError>;
    /// The unblurred original of an evidence item; `None` when none is kept.
    fn original_jpeg(&self, case_id: i64, evidence_id: i64) -> Result<Option<Vec<u8>>, StoreError>;
    /// The evidence items of a case that have an original, in order.
    fn originals(&self, case_id: i64) -> Result<Vec<i64>, StoreError>;
    /// Retention: deletes the originals taken before `before_ms`; how many went.
    fn prune_originals(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// `[cases.originals]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OriginalsConfig {
    /// Keep the unblurred original of every photo in which something was pixelated.
    #[serde(default)]
    pub keep: bool,
    /// Originals older than this are deleted (checked hourly); at least `1h`.
    #[serde(default = "default_retention", deserialize_with = "duration")]
    pub retention: Duration,
}

fn default_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// A duration written as humantime text (`"7d"`, `"500ms"`), for the config tables
/// defined outside `config` (which its own parser cannot serve: `config` uses them).
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(serde::de::Error::custom)
}

impl Default for OriginalsConfig {
    fn default() -> Self {
        Self {
            keep: false,
            retention: default_retention(),
        }
    }
}

impl OriginalsConfig {
    /// What is wrong with it, as the fields that say so.
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.retention < Duration::from_secs(3600) {
            out.push(format!(
                "cases.originals.retention: {} is under 1h",
                humantime::format_duration(self.retention)
            ));
        }
        out
    }
}

/// The originals table (SQLite): one row per evidence item that has one, deleted with
/// its item.
pub(crate) const SQLITE_TABLE: &str = "CREATE TABLE evidence_original (
        evidence_id INTEGER PRIMARY KEY REFERENCES evidence (id) ON DELETE CASCADE,
        case_id INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        jpeg BLOB NOT NULL
    );
    CREATE INDEX evidence_original_by_time ON evidence_original (at_ms);";

/// The originals table (PostgreSQL).
pub(crate) const POSTGRES_TABLE: &str = "CREATE TABLE evidence_original (
        evidence_id BIGINT PRIMARY KEY REFERENCES evidence (id) ON DELETE CASCADE,
        case_id BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        jpeg BYTEA NOT NULL
    );
    CREATE INDEX evidence_original_by_time ON evidence_original (at_ms);";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_a_short_retention_is_refused() {
        let d: OriginalsConfig = toml::from_str("").unwrap();
        assert_eq!(d, OriginalsConfig::default());
        assert!(!d.keep && d.check().is_empty());
        let c: OriginalsConfig = toml::from_str("keep = true\nretention = \"30m\"").unwrap();
        assert_eq!(c.check(), ["cases.originals.retention: 30m is under 1h"]);
        assert!(toml::from_str::<OriginalsConfig>("kept = true").is_err());
    }
}

//! Cases: one problem on the street is one case. A violation gets the dedup key
//! (kind, grid cell); an open case with that key absorbs it (new evidence, last seen,
//! count, cameras) while it keeps being seen within the case window — across cameras
//! too. After a case is closed or rejected, a cool-down decides when the same key may
//! open a new case; violations within it are kept as suppressed, linked to that case.
//!
//! The store is behind [`CaseStore`]; [`sqlite::SqliteStore`] is the embedded default.

pub mod retry;
pub mod sqlite;

use std::time::Duration;

use serde::Serialize;

/// What a rule found, ready to be filed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewViolation {
    /// Violation kind (`illegal_parking`, `street_vending`, `dumping`,
    /// `illegal_construction`).
    pub kind: String,
    /// The grid cell (dedup key part).
    pub cell: String,
    /// The cell's admin path, for routing.
    pub admin_path: String,
    /// Where, WGS84.
    pub lat: f64,
    /// Where, WGS84.
    pub lon: f64,
    /// Which camera saw it.
    pub camera: String,
    /// The zone broken.
    pub zone: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Since when the condition held, ms since the Unix epoch.
    pub since_ms: i64,
}

/// A case's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Taking new violations.
    Open,
    /// A reviewer confirmed it.
    Confirmed,
    /// A reviewer rejected it.
    Rejected,
    /// Closed by the workflow, or expired (not seen for the case window).
    Closed,
}

impl CaseStatus {
    /// Its name in the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Closed => "closed",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "confirmed" => Self::Confirmed,
            "rejected" => Self::Rejected,
            "closed" => Self::Closed,
            _ => return None,
        })
    }
}

/// A stored case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// Id.
    pub id: i64,
    /// Violation kind.
    pub kind: String,
    /// Grid cell.
    pub cell: String,
    /// Admin path of the cell.
    pub admin_path: String,
    /// Status.
    pub status: CaseStatus,
    /// First violation, ms.
    pub first_seen_ms: i64,
    /// Latest violation, ms.
    pub last_seen_ms: i64,
    /// Violations absorbed (including the first).
    pub count: i64,
    /// Cameras that saw it, sorted.
    pub cameras: Vec<String>,
    /// Where (the first violation).
    pub lat: f64,
    /// Where (the first violation).
    pub lon: f64,
    /// When it left the open state, ms.
    pub closed_ms: Option<i64>,
}

/// What happened to a recorded violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It opened a new case.
    Opened,
    /// An open case absorbed it.
    Absorbed,
    /// Within the cool-down of a closed or rejected case: kept, no new case.
    Suppressed,
}

/// Dedup settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DedupConfig {
    /// An open case absorbs violations seen within this of its last one; past it the
    /// case expires (closed) and a new one opens.
    pub window: Duration,
    /// After a case is closed or rejected, the same key opens no new case for this long.
    pub cooldown: Duration,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(24 * 3600),
            cooldown: Duration::from_secs(2 * 3600),
        }
    }
}

/// Store errors, naming the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("case store {store}: {message}")]
    Db {
        /// The store (its file).
        store: String,
        /// What failed.
        message: String,
    },
    /// No such case.
    #[error("no case {0}")]
    NotFound(i64),
    /// A status change that is not allowed.
    #[error("case {id} is {from}, it cannot become {to}")]
    BadTransition {
        /// The case.
        id: i64,
        /// Its status.
        from: &'static str,
        /// The status asked for.
        to: &'static str,
    },
}

/// Where cases live. Every violation is stored before anything else happens to it.
pub trait CaseStore: Send + Sync {
    /// Records a violation: dedup and store in one atomic step. Returns the case it
    /// belongs to and what happened.
    fn record(&self, v: &NewViolation) -> Result<(i64, Outcome), StoreError>;
    /// One case.
    fn case(&self, id: i64) -> Result<Case, StoreError>;
    /// Cases of a status (all with `None`), newest first, at most `limit`.
    fn cases(&self, status: Option<CaseStatus>, limit: usize) -> Result<Vec<Case>, StoreError>;
    /// Moves an open case to confirmed, rejected or closed at `at_ms`.
    fn set_status(&self, id: i64, status: CaseStatus, at_ms: i64) -> Result<(), StoreError>;
}

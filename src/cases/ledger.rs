//! The reviewers' ledger: every confirm / reject counted by violation kind, camera,
//! zone, model (manifest name and SHA-256) and ISO week, with precision and its 95 %
//! Wilson interval, and the reasons of the rejections.
//!
//! A case counts once, by its latest review (a reviewer who changes their mind does
//! not count twice), under the camera, zone and model of the violation that opened
//! it. Precision is confirmed / (confirmed + rejected): of what gridwatch flagged and a
//! person looked at, how much was right. A row is flagged when it has at least
//! `min_reviews` verdicts and its precision lies below `below`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike};
use serde::Serialize;

use super::Verdict;

/// Why a reviewer rejected a case: a short list to pick from, so that rejections can
/// be counted (and exported as hard negatives) by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The detector took something else for the object (a shadow for a car).
    WrongObject,
    /// The object is right, but it breaks no rule (a delivery van loading).
    NotAViolation,
    /// Another case already has it.
    Duplicate,
    /// The camera points elsewhere than its zones were drawn for.
    CameraMoved,
    /// Anything else (say what in the note).
    Other,
}

impl RejectReason {
    /// Every reason, in the order the review page lists them.
    pub const ALL: [Self; 5] = [
        Self::WrongObject,
        Self::NotAViolation,
        Self::Duplicate,
        Self::CameraMoved,
        Self::Other,
    ];

    /// Its name in the store and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::WrongObject => "wrong_object",
            Self::NotAViolation => "not_a_violation",
            Self::Duplicate => "duplicate",
            Self::CameraMoved => "camera_moved",
            Self::Other => "other",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The names, for error messages.
    pub fn names() -> String {
        Self::ALL.map(|r| r.as_str()).join(", ")
    }
}

/// A review's reason as given (API body, CLI flag): a rejection may give one of
/// [`RejectReason::ALL`], a confirmation none.
pub fn reason_of(verdict: Verdict, reason: Option<&str>) -> Result<Option<RejectReason>, String> {
    let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if verdict == Verdict::Confirm {
        return Err(format!(
            "reason: {r:?} is a reason to reject; a confirmation has none"
        ));
    }
    RejectReason::parse(r)
        .map(Some)
        .ok_or_else(|| format!("reason: {r:?} is none of {}", RejectReason::names()))
}

/// Migration (both stores): the model of each violation and the reason of each review.
pub(crate) const LEDGER_COLUMNS: &str =
    "ALTER TABLE violations ADD COLUMN model TEXT NOT NULL DEFAULT '';
     ALTER TABLE violations ADD COLUMN model_sha256 TEXT NOT NULL DEFAULT '';
     ALTER TABLE reviews ADD COLUMN reason TEXT NOT NULL DEFAULT '';";

/// Every review since `?1` (ms) with its case's kind and the camera, zone and model of
/// the violation that opened the case, oldest first (both stores).
pub(crate) const VERDICTS: &str = "SELECT r.case_id, c.kind, v.camera, v.zone, v.model, v.model_sha256, r.verdict, r.reason, r.at_ms
     FROM reviews r JOIN cases c ON c.id = r.case_id
     JOIN violations v ON v.id = (SELECT min(id) FROM violations WHERE case_id = r.case_id)
     WHERE r.at_ms >= ?1 ORDER BY r.id";

/// One review as the ledger counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRow {
    /// The case.
    pub case_id: i64,
    /// Its kind.
    pub kind: String,
    /// The camera of the violation that opened it.
    pub camera: String,
    /// Its zone.
    pub zone: String,
    /// The model that found it (manifest name; empty for violations recorded before
    /// models were).
    pub model: String,
    /// The model file's SHA-256.
    pub model_sha256: String,
    /// The decision.
    pub verdict: Verdict,
    /// Why, for a rejection.
    pub reason: Option<RejectReason>,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
}

impl VerdictRow {
    /// From the stores' row: the verdict and reason as stored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn of(
        case_id: i64,
        kind: String,
        camera: String,
        zone: String,
        model: String,
        model_sha256: String,
        verdict: &str,
        reason: &str,
        at_ms: i64,
    ) -> Self {
        Self {
            case_id,
            kind,
            camera,
            zone,
            model,
            model_sha256,
            verdict: Verdict::parse(verdict).unwrap_or(Verdict::Reject),
            reason: RejectReason::parse(reason),
            at_ms,
        }
    }
}

/// What the ledger's rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Violation kind.
    Kind,
    /// Camera.
    Camera,
    /// Zone.
    Zone,
    /// Model name and SHA-256.
    Model,
    /// ISO week of the review (UTC), `2026-W49`.
    Week,
}

impl Dimension {
    /// All, in the order a row shows them.
    pub const ALL: [Self; 5] = [
        Self::Kind,
        Self::Camera,
        Self::Zone,
        Self::Model,
        Self::Week,
    ];

    /// Its name in `by=`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Kind => "kind",
            Self::Camera => "camera",
            Self::Zone => "zone",
            Self::Model => "model",
            Self::Week => "week",
        }
    }

    /// A comma-separated list of dimensions (`kind,camera`); empty: all of them.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        if s.trim().is_empty() {
            return Ok(Self::ALL.to_vec());
        }
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            let d = Self::ALL
                .into_iter()
                .find(|d| d.as_str() == part)
                .ok_or_else(|| {
                    format!(
                        "by: {part:?} is none of {}",
                        Self::ALL.map(|d| d.as_str()).join(", ")
                    )
                })?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// One row of the ledger: a group's counts. Fields of dimensions not grouped by are
/// absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub week: Option<String>,
    /// Cases confirmed.
    pub confirmed: u64,
    /// Cases rejected.
    pub rejected: u64,
    /// confirmed / (confirmed + rejected).
    pub precision: f64,
    /// The 95 % Wilson score interval of the precision.
    pub interval: [f64; 2],
    /// Rejections by reason (`unspecified` for those given none).
    pub reasons: BTreeMap<String, u64>,
    /// At least `min_reviews` verdicts and precision below `below`.
    pub flagged: bool,
}

/// When a row is flagged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alert {
    /// Precision below this...
    pub below: f64,
    /// ...over at least this many verdicts.
    pub min_reviews: u64,
}

impl Default for Alert {
    fn default() -> Self {
        Self {
            below: 0.7,
            min_reviews: 10,
        }
    }
}

/// The ISO week of a time, `2026-W49` (UTC).
pub fn iso_week(at_ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    let w = t.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// The 95 % Wilson score interval of `k` successes in `n` trials (`[0, 1]` for none).
pub fn wilson(k: u64, n: u64) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// The ledger of `rows` (oldest first) grouped by `by`, each case counted by its latest
/// review; rows sorted by precision, lowest first, then by their key.
pub fn ledger(rows: &[VerdictRow], by: &[Dimension], alert: Alert) -> Vec<LedgerRow> {
    let mut latest: HashMap<i64, &VerdictRow> = HashMap::new();
    for r in rows {
        latest.insert(r.case_id, r);
    }
    let has = |d| by.contains(&d);
    /// Confirmed, rejected, rejections by reason.
    type Counts = (u64, u64, BTreeMap<String, u64>);
    let mut groups: BTreeMap<[Option<String>; 6], Counts> = BTreeMap::new();
    for r in latest.values() {
        let key = [
            has(Dimension::Kind).then(|| r.kind.clone()),
            has(Dimension::Camera).then(|| r.camera.clone()),
            has(Dimension::Zone).then(|| r.zone.clone()),
            has(Dimension::Model).then(|| r.model.clone()),
            has(Dimension::Model).then(|| r.model_sha256.clone()),
            has(Dimension::Week).then(|| iso_week(r.at_ms)),
        ];
        let g = groups.entry(key).or_default();
        match r.verdict {
            Verdict::Confirm => g.0 += 1,
            Verdict::Reject => {
                g.1 += 1;
                let why = r.reason.map_or("unspecified", |x| x.as_str());
                *g.2.entry(why.to_string()).or_default() += 1;
            }
        }
    }
    let mut out: Vec<LedgerRow> = groups
        .into_iter()
        .map(|(key, (confirmed, rejected, reasons))| {
            let [kind, camera, zone, model, model_sha256, week] = key;
            let n = confirmed + rejected;
            let precision = confirmed as f64 / n as f64;
            LedgerRow {
                kind,
                camera,
                zone,
                model,
                model_sha256,
                week,
                confirmed,
                rejected,
                precision,
                interval: wilson(confirmed, n),
                reasons,
                flagged: n >= alert.min_reviews && precision < alert.below,
            }
        })
        .collect();
    out.sort_by(|a, b| a.precision.total_cmp(&b.precision));
    out
}

/// What `/metrics` shows of the ledger: per kind, and how many cameras and zones (of
/// a camera) are flagged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewTotals {
    /// Grouped by kind.
    pub by_kind: Vec<LedgerRow>,
    /// Cameras flagged.
    pub flagged_cameras: usize,
    /// Zones (camera and zone) flagged.
    pub flagged_zones: usize,
}

impl ReviewTotals {
    /// The totals of `rows` under the default [`Alert`].
    pub fn of(rows: &[VerdictRow]) -> Self {
        let flagged = |by: &[Dimension]| {
            ledger(rows, by, Alert::default())
                .iter()
                .filter(|r| r.flagged)
                .count()
        };
        Self {
            by_kind: ledger(rows, &[Dimension::Kind], Alert::default()),
            flagged_cameras: flagged(&[Dimension::Camera]),
            flagged_zones: flagged(&[Dimension::Camera, Dimension::Zone]),
        }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;

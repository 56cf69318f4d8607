//! Cases: one problem on the street is one case. A violation gets the dedup key
//! (kind, grid cell); an open case with that key absorbs it (new evidence, last seen,
//! count, cameras) while it keeps being seen within the case window — across cameras
//! too. After a case is closed or rejected, a cool-down decides when the same key may
//! open a new case; violations within it are kept as suppressed, linked to that case.
//!
//! The store is behind [`CaseStore`]; [`sqlite::SqliteStore`] is the embedded default.

pub mod config;
pub mod exchange;
pub mod export;
pub mod inbox;
pub mod integrity;
pub mod ledger;
pub mod multipart;
pub mod open311;
pub mod originals;
pub mod outbox;
pub mod photo;
pub mod policy;
pub mod postgres;
pub mod registry_tables;
pub mod retry;
pub mod sqlite;
pub mod text;
pub mod webhook;

use std::time::Duration;

use serde::Serialize;

/// What was broken: a case's kind, typed from the rule that found it to the store, the
/// API and the workflow. Its name ([`ViolationKind::as_str`]) is what it is stored and
/// serialized as; an unknown name is an error wherever one is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// A vehicle stayed in a no-parking zone past the dwell time.
    IllegalParking,
    /// People with stall props stayed in a no-vending zone.
    StreetVending,
    /// An object was left behind in a no-dumping zone.
    Dumping,
    /// A lasting change in a construction-watch zone.
    IllegalConstruction,
    /// A camera covered, defocused, frozen or knocked off its view for long: city
    /// equipment that needs attention (filed by the view check, not a rule).
    CameraFault,
}

impl ViolationKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::IllegalParking,
        Self::StreetVending,
        Self::Dumping,
        Self::IllegalConstruction,
        Self::CameraFault,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IllegalParking => "illegal_parking",
            Self::StreetVending => "street_vending",
            Self::Dumping => "dumping",
            Self::IllegalConstruction => "illegal_construction",
            Self::CameraFault => "camera_fault",
        }
    }

    /// From its name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<str> for ViolationKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ViolationKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::str::FromStr for ViolationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| {
            let all: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown kind {s:?} (known: {})", all.join(", "))
        })
    }
}

impl<'de> serde::Deserialize<'de> for ViolationKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl rusqlite::types::ToSql for ViolationKind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for ViolationKind {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        v.as_str()?
            .parse()
            .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

impl Serialize for ViolationKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a rule found, ready to be filed. Also the line format of
/// `gridwatch cases record` (JSON Lines).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewViolation {
    /// Violation kind (`illegal_parking`, `street_vending`, `dumping`,
    /// `illegal_construction`).
    pub kind: ViolationKind,
    /// The grid cell (dedup key part).
    pub cell: String,
    /// The cell's admin path, for routing.
    #[serde(default)]
    pub admin_path: String,
    /// Where, WGS84.
    pub lat: f64,
    /// Where, WGS84.
    pub lon: f64,
    /// Which camera saw it.
    pub camera: String,
    /// The zone broken.
    #[serde(default)]
    pub zone: String,
    /// The version of the zone it was found under, where the zones are the registry's
    /// (`None`: a zones file's, which has no versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_version: Option<i64>,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Since when the condition held, ms since the Unix epoch (defaults to `at_ms`).
    #[serde(default)]
    pub since_ms: i64,
    /// A drone's finding: its frame on the ground (`[lat, lon]`: top left, top right,
    /// bottom right, bottom left), drawn on the review page's map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footprint: Option<[[f64; 2]; 4]>,
    /// The model that found it: its manifest name (empty: not a model's finding, or
    /// not said), for the reviewers' ledger.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// The model file's SHA-256.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_sha256: String,
}

/// A zone a case was found under, at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseZone {
    /// The zone's id.
    pub zone: String,
    /// Its version then (`None`: a zones file's).
    pub version: Option<i64>,
    /// How many of the case's violations.
    pub violations: i64,
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

    /// Whether a case of this status may become `to`: open → confirmed, rejected or
    /// closed; confirmed → rejected or closed; rejected and closed are final.
    pub fn can_become(self, to: CaseStatus) -> bool {
        matches!(
            (self, to),
            (Self::Open, Self::Confirmed | Self::Rejected | Self::Closed)
                | (Self::Confirmed, Self::Rejected | Self::Closed)
        )
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
    pub kind: ViolationKind,
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

impl Outcome {
    /// Its name in the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Absorbed => "absorbed",
            Self::Suppressed => "suppressed",
        }
    }
}

/// Dedup settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DedupConfig {
    /// An open case absorbs violations seen within this of its last one; past it the
    /// case expires (closed) and a new one opens.
    pub window: Duration,
    /// After a case is closed or rejected, the same key opens no new case for this long.
    pub cooldown: Duration,
    /// New violations absorbed by a filed case are sent as one follow-up at most this
    /// often (a reviewer's decision goes at once).
    pub followup_delay: Duration,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(24 * 3600),
            cooldown: Duration::from_secs(2 * 3600),
            followup_delay: Duration::from_secs(60),
        }
    }
}

/// Store errors, naming the store. Only [`StoreError::Unavailable`] is worth trying
/// again as it is; the others need someone to change something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or could not take the statement just now (a
    /// lost connection, a server restarting, a locked or full file).
    #[error("case store {store}: {message}")]
    Unavailable {
        /// The store (its file, or its URL without the password).
        store: String,
        /// What failed.
        message: String,
    },
    /// The database refused the statement (a schema from a newer gridwatch, a broken
    /// file, a constraint).
    #[error("case store {store}: {message}")]
    Refused {
        /// The store.
        store: String,
        /// What it said.
        message: String,
    },
    /// No such case.
    #[error("no case {0}")]
    NotFound(i64),
    /// No such delivery.
    #[error("no delivery {0}")]
    NoDelivery(i64),
    /// A status change that is not allowed.
    #[error("case {id} is {from}, it cannot become {to}")]
    Conflict {
        /// The case.
        id: i64,
        /// Its status.
        from: &'static str,
        /// The status asked for.
        to: &'static str,
    },
    /// An evidence file could not be written or read.
    #[error("evidence {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

impl StoreError {
    /// Whether trying again later may succeed (the store was unavailable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A stored evidence file (an annotated JPEG), relative to the store's data directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Id.
    pub id: i64,
    /// The case.
    pub case_id: i64,
    /// Path under the data directory (`evidence/<case>/<id>.jpg`; a clip's `.mp4`).
    pub file: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The camera that took it.
    pub camera: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Its place in the case's sequence (`None`: stored before photos had roles).
    pub role: Option<photo::PhotoRole>,
    /// Its link in the case's evidence chain ([`integrity`]; `None`: stored before
    /// evidence was chained).
    pub chain: Option<String>,
}

impl Evidence {
    /// The media type of its file: `image/jpeg`, or `video/mp4` for a clip (an item
    /// stored before roles is a photo).
    pub fn content_type(&self) -> &'static str {
        self.role.map_or("image/jpeg", |r| r.content_type())
    }
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The violation is real: the case goes on to the workflow as confirmed.
    Confirm,
    /// A false alarm: the case is rejected and its key cools down.
    Reject,
}

impl Verdict {
    /// Its name in the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Reject => "reject",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confirm" => Some(Self::Confirm),
            "reject" => Some(Self::Reject),
            _ => None,
        }
    }
}

/// A stored review decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    /// The case.
    pub case_id: i64,
    /// Confirm or reject.
    pub verdict: Verdict,
    /// Who decided.
    pub reviewer: String,
    /// Why, free text.
    pub note: String,
    /// Why, from the short list, for a rejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<ledger::RejectReason>,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
}

/// What a delivery carries to the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// File the case.
    Create,
    /// A follow-up: new evidence, counts, a reviewer's decision.
    Update,
    /// Ask the receiver for the request id behind the token it answered with.
    Resolve,
}

impl Event {
    /// Its name in the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Resolve => "resolve",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "create" => Self::Create,
            "resolve" => Self::Resolve,
            _ => Self::Update,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver took it.
    Delivered,
    /// Given up, with the reason in `last_error`.
    Failed,
    /// Not sent: the receiver takes no follow-ups (`updates = false`).
    Skipped,
}

impl DeliveryState {
    /// Its name in the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            _ => Self::Pending,
        }
    }
}

/// A new delivery's idempotency key: `gw-CASE-SEQ-` and 128 random bits (hex). The
/// case and the delivery's number in it are for people reading a receiver's records;
/// the random part makes the key unguessable (a predictable key lets anyone who can
/// post to the receiver file a request under it first, and the receiver would then
/// answer gridwatch's request with theirs).
pub fn new_idempotency_key(case_id: i64, seq: i64) -> String {
    format!("gw-{case_id}-{seq}-{:032x}", rand::random::<u128>())
}

/// One entry of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Id (deliveries of a case go in id order).
    pub id: i64,
    /// The case.
    pub case_id: i64,
    /// What it carries.
    pub event: Event,
    /// Sent as the `Idempotency-Key` header and in the body; the same on every retry,
    /// also after a restart. Made by [`new_idempotency_key`]: unguessable, so nobody
    /// can file a request under it before gridwatch does.
    pub idempotency_key: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When it is due next, ms since the Unix epoch.
    pub next_at_ms: i64,
    /// When it was queued.
    pub created_ms: i64,
    /// When it was delivered, failed or skipped.
    pub done_ms: Option<i64>,
    /// The last failure, or why it gave up.
    pub last_error: Option<String>,
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// The delivery.
    pub delivery_id: i64,
    /// When it ended, ms since the Unix epoch.
    pub at_ms: i64,
    /// `delivered`, `timeout`, `connection`, `http`, or `skipped`.
    pub result: String,
    /// The HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// The error text or the receiver's answer.
    pub detail: String,
}

/// What an attempt leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterAttempt {
    /// Delivered; the receiver's request id and/or token when it gave them.
    Delivered {
        /// `service_request_id` (or the webhook's id).
        remote_id: Option<String>,
        /// The Open311 token, to resolve later.
        token: Option<String>,
    },
    /// Try again at this time (ms since the Unix epoch).
    Retry {
        /// When.
        at_ms: i64,
        /// What failed.
        error: String,
    },
    /// Given up.
    Failed(String),
    /// Not sent on purpose.
    Skipped(String),
}

/// Outbox totals by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCounts {
    /// Waiting.
    pub pending: u64,
    /// Taken by the receiver.
    pub delivered: u64,
    /// Given up.
    pub failed: u64,
    /// Not sent on purpose.
    pub skipped: u64,
}

impl DeliveryCounts {
    /// Counts `n` deliveries in `state` (its name in the store).
    pub fn set(&mut self, state: &str, n: u64) {
        match DeliveryState::parse(state) {
            DeliveryState::Pending => self.pending = n,
            DeliveryState::Delivered => self.delivered = n,
            DeliveryState::Failed => self.failed = n,
            DeliveryState::Skipped => self.skipped = n,
        }
    }
}

/// A case search: every filter optional, newest first, one page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseQuery {
    /// Violation kind.
    pub kind: Option<ViolationKind>,
    /// Grid cell.
    pub cell: Option<String>,
    /// Status.
    pub status: Option<CaseStatus>,
    /// Last seen at or after, ms.
    pub since_ms: Option<i64>,
    /// First seen at or before, ms.
    pub until_ms: Option<i64>,
    /// Page size.
    pub limit: usize,
    /// Cases skipped.
    pub offset: usize,
}

/// The evidence file `file` (as its record names it: `evidence/<case>/<id>.<ext>`)
/// under `dir`; `None` when absent, or when the name leads out of the evidence folder.
pub(crate) fn read_evidence_file(
    dir: &std::path::Path,
    file: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let inside = file.starts_with("evidence/")
        && std::path::Path::new(file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return Ok(None);
    }
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Removes evidence files (paths under `dir`) whose records are gone, and their case
/// folders once empty; a file already gone is no error.
pub(crate) fn remove_evidence_files(dir: &std::path::Path, files: &[String]) {
    for f in files.iter().filter(|f| !f.is_empty()) {
        let path = dir.join(f);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    // only succeeds once the folder is empty
                    let _ = std::fs::remove_dir(parent);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("removing evidence {}: {e}", path.display()),
        }
    }
}

/// The name an evidence item's file has under the data directory.
pub(crate) fn evidence_file(case_id: i64, id: i64, role: Option<photo::PhotoRole>) -> String {
    let ext = role.map_or("jpg", |r| r.extension());
    format!("evidence/{case_id}/{id}.{ext}")
}

/// Writes an evidence file under the data dir (via a temporary name, so a reader never
/// sees half a file); the store records it in the same transaction.
pub(crate) fn write_evidence_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

pub use crate::clock::now_ms;

/// The zones of a case's violations (both stores; `?1` the case id).
const CASE_ZONES: &str = "SELECT zone, zone_version, COUNT(*) FROM violations WHERE case_id = ?1 AND zone <> '' GROUP BY zone, zone_version ORDER BY MIN(id)";

/// The evidence chain column (both stores).
pub(crate) const EVIDENCE_CHAIN: &str = "ALTER TABLE evidence ADD COLUMN chain TEXT;";

/// The evidence role column (both stores): a photo's place in the sequence.
pub(crate) const EVIDENCE_ROLE: &str = "ALTER TABLE evidence ADD COLUMN role TEXT;";

/// A drone finding's footprint column (both stores).
pub(crate) const VIOLATION_FOOTPRINT: &str = "ALTER TABLE violations ADD COLUMN footprint TEXT;";

/// The most recent sightings of a case (both stores; `?1` the case id, `?2` how many).
const CASE_SIGHTINGS: &str = "SELECT camera, at_ms, lat, lon, footprint FROM violations WHERE case_id = ?1 ORDER BY id DESC LIMIT ?2";

/// A violation's footprint as the stores keep it (JSON).
pub(crate) fn footprint_text(v: &NewViolation) -> Option<String> {
    v.footprint.map(|f| serde_json::json!(f).to_string())
}

/// One violation a case absorbed, as its map draws it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sighting {
    /// The camera.
    pub camera: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Where, WGS84.
    pub lat: f64,
    /// Where, WGS84.
    pub lon: f64,
    /// A drone's frame on the ground, `[lat, lon]` corners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footprint: Option<[[f64; 2]; 4]>,
}

impl Sighting {
    fn of(camera: String, at_ms: i64, lat: f64, lon: f64, footprint: Option<String>) -> Self {
        Self {
            camera,
            at_ms,
            lat,
            lon,
            footprint: footprint.and_then(|f| serde_json::from_str(&f).ok()),
        }
    }
}

/// Where cases live. Every violation is stored before anything else happens to it, and
/// every case is queued for delivery in the same transaction that opens it (the outbox).
pub trait CaseStore: originals::OriginalStore + Send + Sync {
    /// Records a violation: dedup and store in one atomic step. Returns the case it
    /// belongs to and what happened.
    fn record(&self, v: &NewViolation) -> Result<(i64, Outcome), StoreError>;
    /// One case.
    fn case(&self, id: i64) -> Result<Case, StoreError>;
    /// Cases of a status (all with `None`), newest first, at most `limit`.
    fn cases(&self, status: Option<CaseStatus>, limit: usize) -> Result<Vec<Case>, StoreError>;
    /// Cases matching a query (one page, newest first) and how many match in all.
    fn find(&self, q: &CaseQuery) -> Result<(Vec<Case>, u64), StoreError>;
    /// Cases by (kind, status).
    fn case_counts(&self) -> Result<Vec<(ViolationKind, CaseStatus, u64)>, StoreError>;
    /// Moves an open case to confirmed, rejected or closed at `at_ms`.
    fn set_status(&self, id: i64, status: CaseStatus, at_ms: i64) -> Result<(), StoreError>;

    /// Keeps an evidence file (JPEG bytes) for a case; at most `limit` per case (the
    /// first ones). `None` when the case already has `limit`.
    fn add_evidence(
        &self,
        case_id: i64,
        camera: &str,
        at_ms: i64,
        jpeg: &[u8],
        limit: usize,
    ) -> Result<Option<Evidence>, StoreError> {
        self.add_photo(case_id, camera, at_ms, None, jpeg, limit)
    }
    /// [`Self::add_evidence`] with the photo's place in the case's sequence.
    fn add_photo(
        &self,
        case_id: i64,
        camera: &str,
        at_ms: i64,
        role: Option<photo::PhotoRole>,
        jpeg: &[u8],
        limit: usize,
    ) -> Result<Option<Evidence>, StoreError>;
    /// Keeps `photo` as `role` in the case's sequence ([`Self::add_photo`]) and, when it
    /// has one and was kept, its unblurred original beside it.
    fn add_photo_and_original(
        &self,
        case_id: i64,
        camera: &str,
        role: photo::PhotoRole,
        photo: &photo::Photo,
        limit: usize,
    ) -> Result<(), StoreError> {
        let kept = self.add_photo(case_id, camera, photo.at_ms, Some(role), &photo.jpeg, limit)?;
        match (kept, &photo.original) {
            (Some(e), Some(o)) => self.add_original(case_id, e.id, photo.at_ms, o),
            _ => Ok(()),
        }
    }
    /// A case's evidence files, oldest first.
    fn evidence(&self, case_id: i64) -> Result<Vec<Evidence>, StoreError>;
    /// The file of one evidence item of a case (a JPEG; the clip's MP4); `None` when
    /// there is none. The SQLite store reads it from the data directory, the PostgreSQL
    /// store from the database (for every node to serve).
    fn evidence_bytes(&self, case_id: i64, evidence_id: i64)
        -> Result<Option<Vec<u8>>, StoreError>;
    /// Retention: deletes the evidence (records and images) of every case last seen
    /// before `before_ms`; returns how many images went.
    fn prune_evidence(&self, before_ms: i64) -> Result<u64, StoreError>;
    /// Records a reviewer's decision: the case becomes confirmed or rejected and a
    /// follow-up is queued at once.
    fn review(&self, review: &Review) -> Result<(), StoreError>;
    /// A case's review decisions, oldest first.
    fn reviews(&self, case_id: i64) -> Result<Vec<Review>, StoreError>;
    /// Every review since `since_ms`, oldest first, with what the reviewers' ledger
    /// counts it by ([`ledger::VERDICTS`]).
    fn verdicts(&self, since_ms: i64) -> Result<Vec<ledger::VerdictRow>, StoreError>;
    /// The zones (and zone versions) a case's violations were found under, in the
    /// order first seen, with how many violations each.
    fn case_zones(&self, case_id: i64) -> Result<Vec<CaseZone>, StoreError>;
    /// A case's most recent sightings (at most `limit`), newest first.
    fn sightings(&self, case_id: i64, limit: usize) -> Result<Vec<Sighting>, StoreError>;

    /// Deliveries due at `now_ms`, at most `limit`: pending, their time come, and no
    /// earlier delivery of the same case still pending (a case's deliveries go in order;
    /// follow-ups also wait for a pending token to resolve).
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError>;
    /// When the next pending delivery is due, if any is pending.
    fn next_due_ms(&self) -> Result<Option<i64>, StoreError>;
    /// Logs an attempt and moves the delivery on. A create that fails for good takes
    /// the case's pending follow-ups with it.
    fn finish(
        &self,
        delivery_id: i64,
        attempt: &Attempt,
        after: &AfterAttempt,
    ) -> Result<(), StoreError>;
    /// Deliveries of one case (all with `None`), in id order.
    fn deliveries(&self, case_id: Option<i64>) -> Result<Vec<Delivery>, StoreError>;
    /// Attempts logged for one delivery.
    fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>, StoreError>;
    /// Outbox totals.
    fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError>;
    /// The receiver's request id and token for a case, when known.
    fn remote(&self, case_id: i64) -> Result<(Option<String>, Option<String>), StoreError>;
    /// The directory evidence paths are relative to.
    fn data_dir(&self) -> &std::path::Path;
    /// The store, for messages: its file, or its URL without the password.
    fn name(&self) -> &str;
}

/// Runs a call of a store (or of anything over one) on a blocking thread: the stores
/// block, and must never run on an async worker. A call that panics is an error.
pub async fn blocking<S, T>(
    s: std::sync::Arc<S>,
    f: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError>
where
    S: ?Sized + Send + Sync + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Refused {
                store: "case store".into(),
                message: format!("the call failed: {e}"),
            })
        })
}

/// Opens the case store: PostgreSQL at `url` when given (connecting and migrating: a
/// blocking call, never on an async worker thread), else the SQLite file in `dir`.
/// Evidence files go under `dir` either way.
pub fn open(
    url: Option<&str>,
    dir: &std::path::Path,
    dedup: DedupConfig,
) -> Result<std::sync::Arc<dyn CaseStore>, StoreError> {
    Ok(match url {
        Some(url) => std::sync::Arc::new(postgres::PgStore::open(url, dir, dedup)?),
        None => std::sync::Arc::new(sqlite::SqliteStore::open(dir, dedup)?),
    })
}

#[cfg(test)]
mod kind_tests {
    use super::ViolationKind;

    #[test]
    fn a_kind_has_one_name_everywhere() {
        for k in ViolationKind::ALL {
            assert_eq!(ViolationKind::parse(k.as_str()), Some(k));
            assert_eq!(k.as_str().parse::<ViolationKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            let back: ViolationKind = serde_json::from_value(k.as_str().into()).unwrap();
            assert_eq!(back, k);
            assert_eq!(format!("{k:>22}").trim_start(), k.as_str(), "Display pads");
        }
        let e = "graffiti".parse::<ViolationKind>().unwrap_err();
        assert!(
            e.contains("graffiti") && e.contains("illegal_parking"),
            "{e}"
        );
        assert!(serde_json::from_value::<ViolationKind>("graffiti".into()).is_err());
    }
}

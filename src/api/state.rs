//! The API's state.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::cases::CaseStore;
use crate::cluster;
use crate::ingest::Pool;
use crate::metrics::Metrics;
use crate::registry::view::View;
use crate::registry::Registry;

/// What the API reads of the running service: its parts, shared with the service
/// (which builds it), so that the API depends on the parts and not on the service.
pub struct ApiState {
    /// The case store.
    pub store: Arc<dyn CaseStore>,
    /// The camera pool.
    pub pool: Arc<Pool>,
    /// Loop metrics and last frames.
    pub metrics: Arc<Metrics>,
    /// Wakes the outbox (after a review).
    pub outbox_waker: Arc<Notify>,
    /// Set once the model is loaded and the cameras are started.
    pub ready: AtomicBool,
    /// Who may call what.
    pub access: super::auth::Access,
    /// Cameras, tokens and the audit log.
    pub registry: Arc<Registry>,
    /// This node's copy of the camera list.
    pub view: Arc<View>,
    /// Whether zones may be changed through the API (`registry.zones = "store"`).
    pub zones_writable: bool,
    /// The zones file's zones (what maps draw when the zones are not the registry's).
    pub file_zones: Arc<crate::geo::zones::ZoneSet>,
    /// The grid cells (drawn over a calibration in the editor).
    pub cells: Arc<crate::geo::grid::CellLocator>,
    /// The largest RMS error a calibration saved through the API may have, metres.
    pub max_rms_m: f64,
    /// Wakes the camera controller (after a camera or zone change).
    pub cameras_changed: Arc<Notify>,
    /// Where evidence files are.
    pub data_dir: std::path::PathBuf,
    /// This node's name.
    pub node: String,
    /// With a PostgreSQL store: the cameras shared among the nodes.
    pub cluster: Option<Arc<cluster::Membership>>,
    /// The hosts requests may be addressed to (`None`: any); see `api::guard`.
    pub allowed_hosts: Option<Vec<String>>,
}

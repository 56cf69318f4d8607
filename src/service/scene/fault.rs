//! A camera that stays covered, defocused, frozen or (a fixed camera) turned away is
//! city equipment that needs attention: after `fault_after` of it, one camera-fault
//! case goes to the workflow like any other case (its own kind and service code),
//! with a picture from when the fault began and the latest. It is filed once per
//! fault; a camera that recovers and faults again files again (the store's dedup
//! window keeps a flapping camera to one case).

use crate::cases::{NewViolation, ViolationKind};
use crate::decode::Frame;
use crate::geo::view::ViewState;

use super::position::Common;
use super::Found;

/// One camera's fault watch.
#[derive(Default)]
pub(super) struct FaultWatch {
    /// When the fault began and a JPEG of the frame then.
    since: Option<(i64, Vec<u8>)>,
    filed: bool,
}

/// Whether a view state is a fault of the camera (not of what it looks at). A PTZ
/// camera between presets is being steered, not broken.
fn is_fault(state: &ViewState, has_presets: bool) -> bool {
    match state {
        ViewState::Covered { .. } | ViewState::Defocused { .. } | ViewState::Frozen { .. } => true,
        ViewState::ViewMoved { .. } | ViewState::ViewChanged { .. } => !has_presets,
        ViewState::Learning
        | ViewState::NoReference
        | ViewState::Steady
        | ViewState::Shifted { .. } => false,
    }
}

impl FaultWatch {
    /// Takes one sample's view state; returns the camera-fault case when the fault
    /// has lasted `after` (placed where `place` says, asked only then, or not filed
    /// when the camera cannot be placed).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        common: &Common,
        after_ms: i64,
        t_ms: i64,
        state: &ViewState,
        has_presets: bool,
        frame: &Frame,
        place: impl FnOnce() -> Option<crate::geo::LatLon>,
    ) -> opencv::Result<Option<Found>> {
        if !is_fault(state, has_presets) {
            if self.since.take().is_some() && self.filed {
                tracing::info!(
                    camera = &*common.camera,
                    "the camera's fault is over ({})",
                    state.name()
                );
            }
            self.filed = false;
            return Ok(None);
        }
        let (since, first) = match &self.since {
            Some(s) => s,
            None => {
                let jpeg = crate::draw::encode_jpeg(frame, 85)?;
                self.since.insert((t_ms, jpeg))
            }
        };
        if self.filed || t_ms - *since < after_ms {
            return Ok(None);
        }
        self.filed = true;
        let Some(place) = place().or(common.location) else {
            tracing::warn!(
                camera = &*common.camera,
                "the camera is {} but cannot be placed for a fault case (no calibration, no location)",
                state.name()
            );
            return Ok(None);
        };
        let Some(cell) = common.cell(place) else {
            return Ok(None);
        };
        tracing::warn!(
            camera = &*common.camera,
            "camera fault: {} for {} s; filing a case",
            state.name(),
            (t_ms - since) / 1000
        );
        Ok(Some(Found {
            violation: NewViolation {
                kind: ViolationKind::CameraFault,
                cell: cell.id.clone(),
                admin_path: cell.admin.to_string(),
                lat: place.lat,
                lon: place.lon,
                camera: common.camera.to_string(),
                zone: state.name().to_string(),
                zone_version: None,
                at_ms: t_ms,
                since_ms: *since,
                footprint: None,
            },
            evidence: vec![first.clone(), crate::draw::encode_jpeg(frame, 85)?],
        }))
    }
}

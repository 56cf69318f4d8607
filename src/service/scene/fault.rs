//! A camera that stays covered, defocused, frozen or (a fixed camera) turned away is
//! city equipment that needs attention: after `fault_after` of it, one camera-fault
//! case goes to the workflow like any other case (its own kind and service code),
//! with a picture from when the fault began and the latest, the detector's boxes of
//! the classes `cases.privacy` blurs (for `camera_fault`: people, by default)
//! pixelated in both. It is filed once per
//! fault; a camera that recovers and faults again files again (the store's dedup
//! window keeps a flapping camera to one case).

use crate::cases::photo::{Photo, PhotoRole};
use crate::cases::{NewViolation, ViolationKind};
use crate::decode::Frame;
use crate::detect::postprocess::Detection;
use crate::geo::view::ViewState;
use crate::rules::privacy::pixelate;
use opencv::prelude::*;

use super::position::Common;
use super::Found;

/// One camera's fault watch.
#[derive(Default)]
pub(super) struct FaultWatch {
    /// When the fault began and a JPEG of the frame then.
    since: Option<(i64, Vec<u8>)>,
    filed: bool,
    /// The classes pixelated in its pictures.
    blur: Vec<String>,
}

/// The frame as JPEG with the detections of the `blur` classes pixelated.
fn private_jpeg(
    frame: &Frame,
    dets: &[Detection],
    classes: &[String],
    blur: &[String],
) -> opencv::Result<Vec<u8>> {
    let mut image = crate::draw::frame_mat(frame)?.try_clone()?;
    let boxes = dets
        .iter()
        .filter(|d| {
            classes
                .get(d.class_id as usize)
                .is_some_and(|c| blur.contains(c))
        })
        .map(|d| d.bbox);
    pixelate(&mut image, boxes)?;
    crate::draw::encode_mat(&image, 85)
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
    /// A watch whose pictures pixelate the detections of `blur` classes.
    pub fn new(blur: Vec<String>) -> Self {
        Self {
            blur,
            ..Self::default()
        }
    }

    /// Takes one sample's view state (`dets` the frame's detections, `classes` the
    /// model's); returns the camera-fault case when the fault
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
        (frame, dets, classes): (&Frame, &[Detection], &[String]),
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
                let jpeg = private_jpeg(frame, dets, classes, &self.blur)?;
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
                model: String::new(),
                model_sha256: String::new(),
            },
            evidence: vec![
                Photo {
                    role: PhotoRole::Fault,
                    at_ms: *since,
                    jpeg: first.clone(),
                    original: None,
                },
                Photo {
                    role: PhotoRole::Fault,
                    at_ms: t_ms,
                    jpeg: private_jpeg(frame, dets, classes, &self.blur)?,
                    original: None,
                },
            ],
            detail: None,
            clip: None,
            subject: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_in_a_fault_picture_are_pixelated_and_nothing_else() {
        // vertical stripes 3 px wide: JPEG keeps them, pixelation does not
        let mut f = Frame::filled(160, 120, [0, 0, 0]);
        for (i, px) in f.data.chunks_mut(3).enumerate() {
            let v = if (i % 160) / 3 % 2 == 0 { 230 } else { 30 };
            px.copy_from_slice(&[v, v, v]);
        }
        let classes = vec!["person".to_string(), "car".to_string()];
        let dets = [
            Detection {
                class_id: 0,
                score: 0.9,
                bbox: [20.0, 20.0, 60.0, 100.0],
            },
            Detection {
                class_id: 1,
                score: 0.9,
                bbox: [100.0, 20.0, 150.0, 100.0],
            },
        ];
        let grey = |j: &[u8]| {
            opencv::imgcodecs::imdecode(
                &opencv::core::Vector::from_slice(j),
                opencv::imgcodecs::IMREAD_GRAYSCALE,
            )
            .unwrap()
        };
        let blurred = grey(&private_jpeg(&f, &dets, &classes, &["person".into()]).unwrap());
        let plain = grey(&private_jpeg(&f, &dets, &classes, &[]).unwrap());
        let diff = |[x1, y1, x2, y2]: [i32; 4]| {
            let mut sum = 0.0;
            for y in y1..y2 {
                for x in x1..x2 {
                    let (a, b) = (
                        *blurred.at_2d::<u8>(y, x).unwrap() as f64,
                        *plain.at_2d::<u8>(y, x).unwrap() as f64,
                    );
                    sum += (a - b).abs();
                }
            }
            sum / ((x2 - x1) * (y2 - y1)) as f64
        };
        assert!(diff([24, 24, 56, 96]) > 40.0, "the person");
        assert!(
            diff([104, 24, 146, 96]) < 1.0,
            "the car is not a class blurred"
        );
        assert!(diff([70, 0, 90, 120]) < 1.0, "between them");
    }
}

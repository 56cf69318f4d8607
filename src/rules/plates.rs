//! Number plates of uninvolved vehicles, pixelated in evidence where the operator
//! configures a plate detector (`[cases.privacy.plates]`): any ONNX model with a
//! manifest, as for the main detector (no plate model is bundled).
//!
//! Every evidence image (the photos, the close-ups, each frame of the clip) is run
//! through it; the plates it finds are pixelated, except those whose centre lies in
//! the case's subject's box (a parked car's own plate is the evidence). It runs on CPU,
//! one thread, each image once: for the photos on the detection thread when the case
//! is made, for the clip on the clip worker.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;

use crate::decode::Frame;
use crate::detect::manifest::ModelManifest;
use crate::detect::{Detection, Detector, EngineOptions, Provider};

/// `[cases.privacy.plates]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlateConfig {
    /// The plate detector's model manifest (relative to the config file's folder).
    pub model: PathBuf,
    /// The class of its list that is a number plate.
    #[serde(default = "default_class")]
    pub class: String,
}

fn default_class() -> String {
    "plate".into()
}

/// A loaded plate detector.
pub struct Plates {
    detector: Mutex<Detector>,
    class: u32,
    out: Mutex<Vec<Vec<Detection>>>,
}

impl std::fmt::Debug for Plates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plates")
    }
}

/// Whether `plate`'s centre lies in `b`.
fn centre_in(plate: &[f32; 4], b: &[f32; 4]) -> bool {
    let (cx, cy) = ((plate[0] + plate[2]) / 2.0, (plate[1] + plate[3]) / 2.0);
    cx >= b[0] && cx <= b[2] && cy >= b[1] && cy <= b[3]
}

impl Plates {
    /// Loads the detector `cfg` names; errors name the field and the file.
    pub fn load(cfg: &PlateConfig) -> Result<Self, String> {
        let field = "cases.privacy.plates";
        let manifest =
            ModelManifest::load(&cfg.model).map_err(|e| format!("{field}.model: {e}"))?;
        let class = manifest
            .classes
            .iter()
            .position(|c| *c == cfg.class)
            .ok_or_else(|| {
                format!(
                    "{field}.class: {:?} is not a class of {} (it has: {})",
                    cfg.class,
                    cfg.model.display(),
                    manifest.classes.join(", ")
                )
            })? as u32;
        let opts = EngineOptions {
            provider: Provider::Cpu,
            intra_threads: Some(1),
            spin: false,
        };
        let mut detector =
            Detector::load(manifest, &opts).map_err(|e| format!("{field}.model: {e}"))?;
        detector.set_batch_size(1);
        Ok(Self {
            detector: Mutex::new(detector),
            class,
            out: Mutex::new(Vec::new()),
        })
    }

    /// The plates in `frame` to pixelate: all it finds but those whose centre lies in
    /// `keep` (the subject's box). A detector that fails finds none, logged.
    pub fn find(&self, frame: &Frame, keep: Option<[f32; 4]>) -> Vec<[f32; 4]> {
        let mut det = self.detector.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = det.detect(&[frame], &mut out) {
            tracing::error!("the plate detector: {e}; no plates pixelated in this image");
            return Vec::new();
        }
        out[0]
            .iter()
            .filter(|d| d.class_id == self.class)
            .map(|d| d.bbox)
            .filter(|b| keep.is_none_or(|k| !centre_in(b, &k)))
            .collect()
    }

    /// [`Self::find`] on an image (BGR) as OpenCV has it.
    pub fn find_in(&self, image: &opencv::core::Mat, keep: Option<[f32; 4]>) -> Vec<[f32; 4]> {
        match crate::draw::mat_frame(image) {
            Ok(f) => self.find(&f, keep),
            Err(e) => {
                tracing::error!("the plate detector's input: {e}");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled detector stands in for a plate model: its `truck` class plays the
    /// plate. On the sample photo it finds the truck; the truck as the subject keeps it.
    #[test]
    fn plates_are_found_but_the_subjects_own_is_kept() {
        let cfg = PlateConfig {
            model: crate::detect::default_model(),
            class: "truck".into(),
        };
        let plates = Plates::load(&cfg).unwrap();
        let mut frame = Frame::default();
        let dog = crate::source_dir().join("samples/dog.jpg");
        crate::decode::image::read_image(&dog, &mut frame).unwrap();
        let found = plates.find(&frame, None);
        assert!(!found.is_empty(), "the truck in the photo");
        let subject = found[0];
        let grown = [
            subject[0] - 4.0,
            subject[1] - 4.0,
            subject[2] + 4.0,
            subject[3] + 4.0,
        ];
        let kept = plates.find(&frame, Some(grown));
        assert_eq!(kept.len(), found.len() - 1, "{found:?} {kept:?}");
        let bad = PlateConfig {
            class: "plate".into(),
            ..cfg
        };
        let e = Plates::load(&bad).unwrap_err();
        assert!(
            e.starts_with("cases.privacy.plates.class: \"plate\""),
            "{e}"
        );
        let missing = PlateConfig {
            model: "/nowhere/plates.toml".into(),
            class: "plate".into(),
        };
        let e = Plates::load(&missing).unwrap_err();
        assert!(e.starts_with("cases.privacy.plates.model: "), "{e}");
    }
}

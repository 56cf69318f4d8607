//! Privacy of evidence: people (and whatever else the operator names) who are not the
//! subject of a case are pixelated in every evidence image before it is stored, so no
//! copy of their faces leaves the camera's scene.
//!
//! What is blurred is the detector's boxes of the blurred classes (`person` by default)
//! among the tracks seen in the frame, less the case's subject (the track that broke the
//! rule: a vendor stays visible in a vending case, the people about them do not). A
//! dumping case's related track (the person last seen beside the object) is blurred
//! too unless the kind's `show_related` says otherwise. Pixelation, not a light blur: blocks
//! of an eighth of the box's shorter side, at least 6 pixels, averaged, which leaves
//! nothing of a face to recognise.

use std::collections::HashMap;

use opencv::core::{Mat, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Deserialize;

use crate::cases::ViolationKind;
use crate::track::Track;

/// `[cases.privacy]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Classes (the model's names) pixelated in evidence when they are not the case's
    /// subject; `[]` blurs nothing.
    #[serde(default = "default_blur")]
    pub blur: Vec<String>,
    /// Per kind (`illegal_parking`, `street_vending`, …): its own settings.
    #[serde(default)]
    pub kinds: HashMap<ViolationKind, KindPrivacy>,
    /// `[cases.privacy.plates]`: a plate detector, whose plates of vehicles other than
    /// the subject are pixelated (none without it).
    #[serde(default)]
    pub plates: Option<super::plates::PlateConfig>,
}

/// `[cases.privacy.kinds.<kind>]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KindPrivacy {
    /// Classes blurred in this kind's evidence, instead of `cases.privacy.blur`.
    #[serde(default)]
    pub blur: Option<Vec<String>>,
    /// Leave the rule's related track (for dumping: who was last beside the object)
    /// unblurred.
    #[serde(default)]
    pub show_related: bool,
}

fn default_blur() -> Vec<String> {
    vec!["person".into()]
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            blur: default_blur(),
            kinds: HashMap::new(),
            plates: None,
        }
    }
}

/// A track seen in a frame that may have to be blurred.
#[derive(Debug, Clone, PartialEq)]
pub struct Bystander {
    /// The track.
    pub id: u64,
    /// Its class.
    pub class: String,
    /// Its box in that frame.
    pub bbox: [f32; 4],
}

impl PrivacyConfig {
    /// The classes blurred in evidence of `kind`.
    pub fn classes(&self, kind: ViolationKind) -> &[String] {
        self.kinds
            .get(&kind)
            .and_then(|k| k.blur.as_deref())
            .unwrap_or(&self.blur)
    }

    /// Every blurred class the model (whose class list is `classes`) does not have, as
    /// the field that names it: a misspelt `persn` would blur nobody.
    pub fn check(&self, classes: &[String]) -> Vec<String> {
        let mut kinds: Vec<_> = self.kinds.iter().collect();
        kinds.sort_by_key(|(k, _)| k.as_str());
        let fields = std::iter::once(("cases.privacy.blur".to_string(), &self.blur)).chain(
            kinds.into_iter().filter_map(|(k, p)| {
                Some((
                    format!("cases.privacy.kinds.{}.blur", k.as_str()),
                    p.blur.as_ref()?,
                ))
            }),
        );
        let mut out = Vec::new();
        for (field, blur) in fields {
            for c in blur.iter().filter(|c| !classes.contains(c)) {
                out.push(format!("{field}: the model has no class {c:?}"));
            }
        }
        out
    }

    fn any_blurred(&self, class: &str) -> bool {
        self.blur.iter().any(|c| c == class)
            || self
                .kinds
                .values()
                .filter_map(|k| k.blur.as_ref())
                .any(|b| b.iter().any(|c| c == class))
    }

    /// The tracks seen at `t` of a class blurred for some kind: what a frame kept now
    /// may have to blur later, whichever case it becomes evidence of. Appends to `out`.
    pub fn people(&self, t: i64, tracks: &[Track], out: &mut Vec<Bystander>) {
        out.extend(
            tracks
                .iter()
                .filter(|tr| tr.seen_at(t) && self.any_blurred(&tr.class))
                .map(|tr| Bystander {
                    id: tr.id,
                    class: tr.class.clone(),
                    bbox: tr.bbox,
                }),
        );
    }

    /// Of the people in a frame, the boxes to blur in evidence of a `kind` case whose
    /// subject is track `subject` (`None`: not a track, e.g. a dumped object) and whose
    /// rule related track `related`.
    pub fn to_blur<'a>(
        &'a self,
        kind: ViolationKind,
        subject: Option<u64>,
        related: Option<u64>,
        people: &'a [Bystander],
    ) -> impl Iterator<Item = [f32; 4]> + 'a {
        let classes = self.classes(kind);
        let show_related = self.kinds.get(&kind).is_some_and(|k| k.show_related);
        people
            .iter()
            .filter(move |p| Some(p.id) != subject)
            .filter(move |p| !(show_related && Some(p.id) == related))
            .filter(move |p| classes.contains(&p.class))
            .map(|p| p.bbox)
    }
}

/// Pixelates each box in `image` (BGR), clipped to the image.
pub fn pixelate(image: &mut Mat, boxes: impl Iterator<Item = [f32; 4]>) -> opencv::Result<()> {
    let (w, h) = (image.cols(), image.rows());
    let mut small = Mat::default();
    let mut big = Mat::default();
    for [x1, y1, x2, y2] in boxes {
        let x1 = (x1.floor() as i32).clamp(0, w);
        let y1 = (y1.floor() as i32).clamp(0, h);
        let x2 = (x2.ceil() as i32).clamp(0, w);
        let y2 = (y2.ceil() as i32).clamp(0, h);
        if x2 - x1 < 2 || y2 - y1 < 2 {
            continue;
        }
        let r = Rect::new(x1, y1, x2 - x1, y2 - y1);
        let block = ((r.width.min(r.height) / 8).max(6)) as f64;
        let s = Size::new(
            ((r.width as f64 / block).ceil() as i32).max(1),
            ((r.height as f64 / block).ceil() as i32).max(1),
        );
        let mut roi = Mat::roi_mut(image, r)?;
        imgproc::resize(&roi, &mut small, s, 0.0, 0.0, imgproc::INTER_AREA)?;
        imgproc::resize(
            &small,
            &mut big,
            Size::new(r.width, r.height),
            0.0,
            0.0,
            imgproc::INTER_NEAREST,
        )?;
        big.copy_to(&mut roi)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, Vec3b, CV_8UC3};

    fn person(id: u64, bbox: [f32; 4]) -> Bystander {
        Bystander {
            id,
            class: "person".into(),
            bbox,
        }
    }

    #[test]
    fn the_subject_stays_and_the_kinds_own_classes_count() {
        let mut p = PrivacyConfig::default();
        let people = [
            person(1, [0.0; 4]),
            person(2, [1.0; 4]),
            Bystander {
                id: 3,
                class: "car".into(),
                bbox: [2.0; 4],
            },
        ];
        let blurred = |p: &PrivacyConfig, k, s, r| p.to_blur(k, s, r, &people).count();
        assert_eq!(blurred(&p, ViolationKind::StreetVending, Some(1), None), 1);
        assert_eq!(blurred(&p, ViolationKind::IllegalParking, Some(3), None), 2);
        assert_eq!(blurred(&p, ViolationKind::Dumping, None, Some(2)), 2);
        p.kinds.insert(
            ViolationKind::Dumping,
            KindPrivacy {
                blur: Some(vec!["person".into(), "car".into()]),
                show_related: true,
            },
        );
        assert_eq!(
            blurred(&p, ViolationKind::Dumping, None, Some(2)),
            2,
            "1 and 3"
        );
        p.blur.clear();
        assert_eq!(blurred(&p, ViolationKind::StreetVending, Some(9), None), 0);
    }

    #[test]
    fn a_class_the_model_lacks_is_named_with_its_field() {
        let mut p = PrivacyConfig::default();
        let classes = ["person".to_string(), "car".to_string()];
        assert!(p.check(&classes).is_empty());
        p.blur.push("persn".into());
        p.kinds.insert(
            ViolationKind::Dumping,
            KindPrivacy {
                blur: Some(vec!["car".into(), "bicycle".into()]),
                show_related: false,
            },
        );
        assert_eq!(
            p.check(&classes),
            [
                r#"cases.privacy.blur: the model has no class "persn""#,
                r#"cases.privacy.kinds.dumping.blur: the model has no class "bicycle""#,
            ]
        );
    }

    #[test]
    fn pixels_change_inside_the_box_only() {
        // a pattern that any averaging changes: a checkerboard of 2-pixel squares
        let mut img = Mat::new_rows_cols_with_default(60, 80, CV_8UC3, Scalar::all(0.0)).unwrap();
        for y in 0..60 {
            for x in 0..80 {
                let v = if (x / 2 + y / 2) % 2 == 0 { 250 } else { 10 };
                *img.at_2d_mut::<Vec3b>(y, x).unwrap() = Vec3b::from([v, v, v]);
            }
        }
        let before = img.try_clone().unwrap();
        pixelate(
            &mut img,
            [[10.0, 12.0, 40.0, 50.0], [70.0, 50.0, 200.0, 90.0]].into_iter(),
        )
        .unwrap();
        let mut inside_changed = 0;
        for y in 0..60 {
            for x in 0..80 {
                let same =
                    img.at_2d::<Vec3b>(y, x).unwrap() == before.at_2d::<Vec3b>(y, x).unwrap();
                let inside = (10..40).contains(&x) && (12..50).contains(&y)
                    || (70..80).contains(&x) && (50..60).contains(&y);
                if inside {
                    inside_changed += usize::from(!same);
                } else {
                    assert!(same, "({x}, {y}) is outside every box");
                }
            }
        }
        assert!(inside_changed > 30 * 38 * 8 / 10, "{inside_changed}");
    }
}

//! Violation accuracy on clips: truth files, and the reports of a replay scored against
//! them per rule — true and false positives, misses, repeats (a second case for one
//! violation), report delay, precision, recall, F1.
//!
//! A truth file (`<camera>.toml`, times into the clip):
//!
//! ```toml
//! [[expect]]                 # a violation that must be reported
//! kind = "illegal_parking"
//! zone = "np-service-road"
//! from = "0s"                # when it starts to hold (the object arrives)
//! earliest = "30s"           # the earliest acceptable report (default: from)
//! latest = "75s"             # the latest (later: a miss, and a false positive)
//! box = [412, 170, 96, 60]   # optional: the object, frame pixels [x, y, w, h], as it
//!                            # stands when reported; a report on another object (box
//!                            # IoU under the file's `min_iou`, 0.3 by default) is a
//!                            # false positive, counted as a wrong object too
//! [[forbid]]                 # something that must not be reported (documents a
//! kind = "dumping"           # negative; any unexpected report is a false positive)
//! zone = "nd-grass"
//! note = "people crossing the lawn"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cases::ViolationKind;
use crate::service::replay::Reported;

/// A violation that must be reported.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Its kind.
    pub kind: ViolationKind,
    /// The zone it breaks.
    pub zone: String,
    /// When it starts to hold.
    #[serde(deserialize_with = "crate::cases::originals::duration")]
    pub from: Duration,
    /// The earliest acceptable report (default: `from`).
    #[serde(default, deserialize_with = "some_duration")]
    pub earliest: Option<Duration>,
    /// The latest acceptable report.
    #[serde(deserialize_with = "crate::cases::originals::duration")]
    pub latest: Duration,
    /// The object, frame pixels `[x, y, w, h]`, as it stands when reported.
    #[serde(default, rename = "box")]
    pub bbox: Option<[f64; 4]>,
}

fn some_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::cases::originals::duration(d).map(Some)
}

/// Something that must not be reported.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forbid {
    /// Its kind.
    pub kind: ViolationKind,
    /// The zone.
    pub zone: String,
    /// What it is.
    #[serde(default)]
    pub note: String,
}

/// One clip's truth.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truth {
    /// A description of the scene.
    #[serde(default)]
    pub description: String,
    /// What must be reported.
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// What must not.
    #[serde(default)]
    pub forbid: Vec<Forbid>,
    /// The box overlap (intersection over union) a report's object needs with an
    /// expected `box` to be that object.
    #[serde(default = "default_min_iou")]
    pub min_iou: f64,
}

fn default_min_iou() -> f64 {
    0.3
}

impl Truth {
    /// Reads a truth file; errors name it and the field.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let t: Self =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if !(0.0..=1.0).contains(&t.min_iou) {
            anyhow::bail!("{}: min_iou: want 0..1, got {}", path.display(), t.min_iou);
        }
        for (i, e) in t.expect.iter().enumerate() {
            if e.bbox.is_some_and(|b| !(b[2] > 0.0 && b[3] > 0.0)) {
                anyhow::bail!(
                    "{}: expect[{i}]: box: want [x, y, w, h] with w, h > 0",
                    path.display()
                );
            }
            let earliest = e.earliest.unwrap_or(e.from);
            if earliest < e.from || e.latest < earliest {
                anyhow::bail!(
                    "{}: expect[{i}]: want from ≤ earliest ≤ latest",
                    path.display()
                );
            }
        }
        Ok(t)
    }
}

/// What became of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The first case of an expected violation, in time.
    TruePositive,
    /// Another case for a violation already reported.
    Repeat,
    /// Nothing expected it (or it came too early or too late).
    FalsePositive,
    /// In time for an expected violation, on another object than its `box`: a false
    /// positive too.
    WrongObject,
}

/// One rule's figures (a kind's), or all rules'.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleFigures {
    /// Expected violations.
    pub expected: usize,
    /// Expected and reported in time.
    pub true_positives: usize,
    /// Reported and not expected, or out of time.
    pub false_positives: usize,
    /// Expected and not reported in time.
    pub misses: usize,
    /// Second and later cases of one violation.
    pub repeats: usize,
    /// Of the false positives, those in time for an expected violation but on another
    /// object than its box.
    pub wrong_object: usize,
    /// The mean box IoU of the true positives whose expectation has a box.
    pub mean_iou: Option<f64>,
    /// Report time after `from`, mean over the true positives, seconds.
    pub mean_delay_s: Option<f64>,
    /// The longest, seconds.
    pub max_delay_s: Option<f64>,
    /// TP / (TP + FP); `None` without reports.
    pub precision: Option<f64>,
    /// TP / expected; `None` when nothing is expected.
    pub recall: Option<f64>,
    /// Their harmonic mean.
    pub f1: Option<f64>,
    #[serde(skip)]
    delays_ms: Vec<i64>,
    #[serde(skip)]
    ious: Vec<f64>,
}

impl RuleFigures {
    fn finish(&mut self) {
        let (tp, fp) = (self.true_positives as f64, self.false_positives as f64);
        self.precision = (tp + fp > 0.0).then(|| tp / (tp + fp));
        self.recall = (self.expected > 0).then(|| tp / self.expected as f64);
        self.f1 = match (self.precision, self.recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        if !self.delays_ms.is_empty() {
            let n = self.delays_ms.len() as f64;
            self.mean_delay_s = Some(self.delays_ms.iter().sum::<i64>() as f64 / n / 1000.0);
            self.max_delay_s = self.delays_ms.iter().max().map(|m| *m as f64 / 1000.0);
        }
        if !self.ious.is_empty() {
            self.mean_iou = Some(self.ious.iter().sum::<f64>() / self.ious.len() as f64);
        }
    }

    fn add(&mut self, o: &Self) {
        self.expected += o.expected;
        self.true_positives += o.true_positives;
        self.false_positives += o.false_positives;
        self.misses += o.misses;
        self.repeats += o.repeats;
        self.wrong_object += o.wrong_object;
        self.delays_ms.extend_from_slice(&o.delays_ms);
        self.ious.extend_from_slice(&o.ious);
    }
}

/// One clip's reports judged: each case-opening report with its verdict, and the
/// figures per kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scored {
    /// (report, verdict), for the cases the replay opened.
    pub reports: Vec<(Reported, Verdict)>,
    /// Per kind.
    pub by_kind: BTreeMap<String, RuleFigures>,
}

/// Judges one clip's reports against its truth. Only reports that opened a case
/// count (an absorbed violation is the same case again). Each is matched to the
/// first expected violation of its kind and zone whose window holds it: the first
/// match is a true positive, later ones repeats; an unmatched report is a false
/// positive; an expectation never matched a miss.
pub fn score(truth: &Truth, reported: &[Reported]) -> Scored {
    let mut hit = vec![false; truth.expect.len()];
    let mut s = Scored::default();
    for e in &truth.expect {
        s.by_kind.entry(e.kind.to_string()).or_default().expected += 1;
    }
    for r in reported.iter().filter(|r| r.opened) {
        let in_time = |e: &Expect| {
            e.kind == r.kind
                && e.zone == r.zone
                && (e.earliest.unwrap_or(e.from).as_millis() as i64) <= r.at_ms
                && r.at_ms <= e.latest.as_millis() as i64
        };
        // the overlap with an expectation's box (1 where it has none)
        let overlap = |e: &Expect| match (e.bbox, &r.subject) {
            (None, _) => 1.0,
            (Some(b), Some(s)) => iou(b, s.bbox),
            (Some(_), None) => 0.0,
        };
        let fits = |e: &Expect| in_time(e) && overlap(e) >= truth.min_iou;
        let f = s.by_kind.entry(r.kind.to_string()).or_default();
        let verdict = match truth.expect.iter().position(fits) {
            Some(i) if !hit[i] => {
                hit[i] = true;
                let e = &truth.expect[i];
                f.true_positives += 1;
                f.delays_ms.push(r.at_ms - e.from.as_millis() as i64);
                if e.bbox.is_some() {
                    f.ious.push(overlap(e));
                }
                Verdict::TruePositive
            }
            Some(_) => {
                f.repeats += 1;
                Verdict::Repeat
            }
            None if truth.expect.iter().any(in_time) => {
                f.false_positives += 1;
                f.wrong_object += 1;
                Verdict::WrongObject
            }
            None => {
                f.false_positives += 1;
                Verdict::FalsePositive
            }
        };
        s.reports.push((r.clone(), verdict));
    }
    for (e, h) in truth.expect.iter().zip(&hit) {
        if !h {
            s.by_kind.entry(e.kind.to_string()).or_default().misses += 1;
        }
    }
    for f in s.by_kind.values_mut() {
        f.finish();
    }
    s
}

/// Intersection over union of a box `[x, y, w, h]` and corners `[x1, y1, x2, y2]`.
fn iou(b: [f64; 4], c: [f32; 4]) -> f64 {
    super::coco::iou(&[b[0], b[1], b[0] + b[2], b[1] + b[3]], &c.map(f64::from))
}

/// The figures of many clips together: per kind, and over all kinds (`"all"`).
pub fn total<'a>(clips: impl IntoIterator<Item = &'a Scored>) -> BTreeMap<String, RuleFigures> {
    let mut out: BTreeMap<String, RuleFigures> = BTreeMap::new();
    let mut all = RuleFigures::default();
    for s in clips {
        for (k, f) in &s.by_kind {
            out.entry(k.clone()).or_default().add(f);
            all.add(f);
        }
    }
    for f in out.values_mut() {
        f.finish();
    }
    all.finish();
    out.insert("all".into(), all);
    out
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;

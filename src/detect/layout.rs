//! Output layouts: how a detector's raw output tensors become candidate boxes.
//!
//! Each layout is data (the manifest's `[output]` table), and decoding is one function
//! per layout, so no index arithmetic leaks into the rest of the pipeline. Candidates
//! come out in model-input pixels; [`super::postprocess`] maps them back to the frame.

use serde::Deserialize;

/// A rectangle `[x1, y1, x2, y2]` in pixels.
pub type BBox = [f32; 4];

/// One scored box before non-maximum suppression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Box in model-input pixels.
    pub bbox: BBox,
    /// Confidence in 0..1.
    pub score: f32,
    /// Index into the manifest's class list.
    pub class_id: u32,
}

/// A borrowed output tensor of one model call.
#[derive(Debug, Clone, Copy)]
pub struct OutputView<'a> {
    /// Dimensions, batch first.
    pub shape: &'a [usize],
    /// Row-major data.
    pub data: &'a [f32],
}

/// Anything holding one output tensor: an engine's reused buffer or a borrowed view.
pub trait Tensor {
    /// Dimensions, batch first.
    fn shape(&self) -> &[usize];
    /// Row-major data.
    fn data(&self) -> &[f32];
    /// The slice of batch item `b` (everything after the batch dimension).
    fn item(&self, b: usize) -> &[f32] {
        let per: usize = self.shape()[1..].iter().product();
        &self.data()[b * per..(b + 1) * per]
    }
}

impl Tensor for OutputView<'_> {
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> &[f32] {
        self.data
    }
}

/// The layout of a model's outputs, as written in the manifest's `[output]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "layout", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutputLayout {
    /// NanoDet with generalised-focal-loss box distributions: per stride, a scores
    /// tensor `[B, N, C]` (sigmoid applied) and a boxes tensor `[B, N, 4 × (reg_max + 1)]`.
    /// Every (cell, class) pair over the threshold is a candidate.
    Nanodet {
        /// Feature-map strides in input pixels, e.g. `[8, 16, 32]`.
        strides: Vec<u32>,
        /// Largest bin index of the box distribution (bins = reg_max + 1).
        reg_max: u32,
        /// Score tensor names, one per stride.
        scores: Vec<String>,
        /// Box tensor names, one per stride.
        boxes: Vec<String>,
    },
    /// YOLOv5-style `[B, N, 5 + C]`: centre x, centre y, width, height, objectness,
    /// class scores. Score = objectness × best class score.
    Yolov5 {
        /// Output tensor name.
        output: String,
    },
    /// YOLOv8 / YOLO11-style `[B, 4 + C, N]`: centre x, centre y, width, height, class
    /// scores, one column per anchor. Score = best class score.
    Yolov8 {
        /// Output tensor name.
        output: String,
    },
    /// Already decoded `[B, N, 6]`: x1, y1, x2, y2, score, class id (end-to-end models).
    Decoded {
        /// Output tensor name.
        output: String,
    },
}

impl OutputLayout {
    /// Output tensor names in the order [`Self::decode`] expects them.
    pub fn output_names(&self) -> Vec<&str> {
        match self {
            Self::Nanodet { scores, boxes, .. } => scores
                .iter()
                .chain(boxes.iter())
                .map(String::as_str)
                .collect(),
            Self::Yolov5 { output } | Self::Yolov8 { output } | Self::Decoded { output } => {
                vec![output.as_str()]
            }
        }
    }

    /// Checks the layout is self-consistent; on failure returns (field, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Self::Nanodet {
            strides,
            reg_max,
            scores,
            boxes,
        } = self
        {
            if strides.is_empty() || strides.contains(&0) {
                return Err(("strides".into(), "give at least one non-zero stride".into()));
            }
            if scores.len() != strides.len() || boxes.len() != strides.len() {
                return Err((
                    "scores".into(),
                    format!(
                        "{} strides need {} score and {} box tensors, found {} and {}",
                        strides.len(),
                        strides.len(),
                        strides.len(),
                        scores.len(),
                        boxes.len()
                    ),
                ));
            }
            if *reg_max == 0 || *reg_max > 64 {
                return Err(("reg_max".into(), "must be between 1 and 64".into()));
            }
        }
        Ok(())
    }

    /// The shapes this layout needs, given the class count and input size: one entry
    /// per output name, `None` where a dimension may be anything. The batch dimension
    /// is always left open.
    pub fn expected_shapes(
        &self,
        num_classes: usize,
        input_w: u32,
        input_h: u32,
    ) -> Vec<[Option<usize>; 3]> {
        let c = num_classes;
        match self {
            Self::Nanodet {
                strides, reg_max, ..
            } => {
                let cells = |s: u32| (input_w.div_ceil(s) * input_h.div_ceil(s)) as usize;
                let mut v: Vec<_> = strides
                    .iter()
                    .map(|&s| [None, Some(cells(s)), Some(c)])
                    .collect();
                v.extend(
                    strides
                        .iter()
                        .map(|&s| [None, Some(cells(s)), Some(4 * (*reg_max as usize + 1))]),
                );
                v
            }
            Self::Yolov5 { .. } => vec![[None, None, Some(5 + c)]],
            Self::Yolov8 { .. } => vec![[None, Some(4 + c), None]],
            Self::Decoded { .. } => vec![[None, None, Some(6)]],
        }
    }

    /// Decodes batch item `b` of `outputs` (ordered as [`Self::output_names`]) into
    /// `out`, keeping candidates scoring at least `threshold`. `input_w`/`input_h` are
    /// the model's input size (NanoDet needs them for its grid).
    pub fn decode<T: Tensor>(
        &self,
        outputs: &[T],
        b: usize,
        num_classes: usize,
        threshold: f32,
        input_w: u32,
        out: &mut Vec<Candidate>,
    ) {
        match self {
            Self::Nanodet {
                strides, reg_max, ..
            } => {
                let k = strides.len();
                for (si, &s) in strides.iter().enumerate() {
                    decode_nanodet_level(
                        outputs[si].item(b),
                        outputs[k + si].item(b),
                        num_classes,
                        *reg_max as usize + 1,
                        s,
                        input_w.div_ceil(s) as usize,
                        threshold,
                        out,
                    );
                }
            }
            Self::Yolov5 { .. } => {
                let rows = outputs[0].item(b);
                let width = 5 + num_classes;
                for row in rows.chunks_exact(width) {
                    let (best, cls) = argmax(&row[5..]);
                    let score = row[4] * cls;
                    if score >= threshold {
                        out.push(Candidate {
                            bbox: cxcywh(row[0], row[1], row[2], row[3]),
                            score,
                            class_id: best as u32,
                        });
                    }
                }
            }
            Self::Yolov8 { .. } => {
                let data = outputs[0].item(b);
                let n = outputs[0].shape()[2];
                for j in 0..n {
                    let mut best = 0;
                    let mut score = f32::NEG_INFINITY;
                    for c in 0..num_classes {
                        let v = data[(4 + c) * n + j];
                        if v > score {
                            score = v;
                            best = c;
                        }
                    }
                    if score >= threshold {
                        out.push(Candidate {
                            bbox: cxcywh(data[j], data[n + j], data[2 * n + j], data[3 * n + j]),
                            score,
                            class_id: best as u32,
                        });
                    }
                }
            }
            Self::Decoded { .. } => {
                for row in outputs[0].item(b).chunks_exact(6) {
                    let class = row[5];
                    if row[4] >= threshold
                        && class >= 0.0
                        && (class as usize) < num_classes
                        && class.fract() == 0.0
                    {
                        out.push(Candidate {
                            bbox: [row[0], row[1], row[2], row[3]],
                            score: row[4],
                            class_id: class as u32,
                        });
                    }
                }
            }
        }
    }
}

fn cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> BBox {
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

fn argmax(v: &[f32]) -> (usize, f32) {
    let mut best = 0;
    let mut score = f32::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x > score {
            score = x;
            best = i;
        }
    }
    (best, score)
}

/// One NanoDet feature level: `scores` is `[N, C]`, `boxes` is `[N, 4 × bins]`.
#[allow(clippy::too_many_arguments)]
fn decode_nanodet_level(
    scores: &[f32],
    boxes: &[f32],
    num_classes: usize,
    bins: usize,
    stride: u32,
    cols: usize,
    threshold: f32,
    out: &mut Vec<Candidate>,
) {
    let s = stride as f32;
    for (i, row) in scores.chunks_exact(num_classes).enumerate() {
        let mut bbox: Option<BBox> = None;
        for (c, &score) in row.iter().enumerate() {
            if score < threshold {
                continue;
            }
            let bbox = *bbox.get_or_insert_with(|| {
                let cx = ((i % cols) as f32 + 0.5) * s;
                let cy = ((i / cols) as f32 + 0.5) * s;
                let d = &boxes[i * 4 * bins..(i + 1) * 4 * bins];
                let dist = |side: usize| distribution_mean(&d[side * bins..(side + 1) * bins]) * s;
                [cx - dist(0), cy - dist(1), cx + dist(2), cy + dist(3)]
            });
            out.push(Candidate {
                bbox,
                score,
                class_id: c as u32,
            });
        }
    }
}

/// Expected bin index under the softmax of `logits`.
fn distribution_mean(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    let mut weighted = 0.0;
    for (k, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * k as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(shape: &'a [usize], data: &'a [f32]) -> OutputView<'a> {
        OutputView { shape, data }
    }

    #[test]
    fn yolov5_rows_take_objectness_times_best_class() {
        // two rows, two classes
        let data = [
            10.0, 10.0, 4.0, 2.0, 0.9, 0.2, 0.8, //
            5.0, 5.0, 2.0, 2.0, 0.1, 0.9, 0.1,
        ];
        let layout = OutputLayout::Yolov5 { output: "o".into() };
        let mut out = Vec::new();
        layout.decode(&[view(&[1, 2, 7], &data)], 0, 2, 0.5, 32, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 1);
        assert!((out[0].score - 0.72).abs() < 1e-6);
        assert_eq!(out[0].bbox, [8.0, 9.0, 12.0, 11.0]);
    }

    #[test]
    fn yolov8_reads_columns_and_picks_the_batch_item() {
        // batch of 2, [4 + 2, 3]
        let mut data = vec![0.0f32; 2 * 6 * 3];
        // item 1, anchor 2: box (20, 20, 10, 10), class 0 score 0.7
        let base = 6 * 3;
        for (row, v) in [20.0, 20.0, 10.0, 10.0, 0.7, 0.1].iter().enumerate() {
            data[base + row * 3 + 2] = *v;
        }
        let layout = OutputLayout::Yolov8 { output: "o".into() };
        let mut out = Vec::new();
        layout.decode(&[view(&[2, 6, 3], &data)], 0, 2, 0.25, 32, &mut out);
        assert!(out.is_empty());
        layout.decode(&[view(&[2, 6, 3], &data)], 1, 2, 0.25, 32, &mut out);
        assert_eq!(
            out,
            [Candidate {
                bbox: [15.0, 15.0, 25.0, 25.0],
                score: 0.7,
                class_id: 0
            }]
        );
    }

    #[test]
    fn decoded_rows_skip_padding_and_bad_class_ids() {
        let data = [
            1.0, 2.0, 3.0, 4.0, 0.9, 1.0, //
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, //
            1.0, 2.0, 3.0, 4.0, 0.9, 7.0,
        ];
        let layout = OutputLayout::Decoded { output: "o".into() };
        let mut out = Vec::new();
        layout.decode(&[view(&[1, 3, 6], &data)], 0, 2, 0.3, 32, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 1);
    }

    #[test]
    fn nanodet_distribution_decodes_around_cell_centres() {
        // input 16x16, one stride of 8 → 2x2 cells, 1 class, reg_max 1 (2 bins)
        let scores = [0.1, 0.9, 0.1, 0.1];
        let mut boxes = vec![0.0f32; 4 * 4 * 2];
        // cell 1 (col 1, row 0): centre (12, 4); every side all mass on bin 1 → 8 px
        for side in 0..4 {
            boxes[8 + side * 2] = -100.0;
            boxes[8 + side * 2 + 1] = 100.0;
        }
        let layout = OutputLayout::Nanodet {
            strides: vec![8],
            reg_max: 1,
            scores: vec!["s".into()],
            boxes: vec!["b".into()],
        };
        let mut out = Vec::new();
        layout.decode(
            &[view(&[1, 4, 1], &scores), view(&[1, 4, 8], &boxes)],
            0,
            1,
            0.5,
            16,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bbox, [4.0, -4.0, 20.0, 12.0]);
        // even logits → mean bin 0.5 → 4 px each side
        assert!((distribution_mean(&[0.0, 0.0]) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn expected_shapes_follow_the_grid() {
        let layout = OutputLayout::Nanodet {
            strides: vec![8, 16, 32],
            reg_max: 10,
            scores: vec!["a".into(), "b".into(), "c".into()],
            boxes: vec!["d".into(), "e".into(), "f".into()],
        };
        let s = layout.expected_shapes(80, 416, 416);
        assert_eq!(s[0], [None, Some(2704), Some(80)]);
        assert_eq!(s[2], [None, Some(169), Some(80)]);
        assert_eq!(s[3], [None, Some(2704), Some(44)]);
    }
}

//! Object detection: model manifests, the ONNX Runtime engine, and the detector that
//! runs preprocess → inference → postprocess over batches of frames, timing each step.

pub mod engine;
pub mod layout;
pub mod manifest;
pub mod postprocess;
pub mod preprocess;
pub mod runtime;

use std::borrow::Borrow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use engine::{EngineOptions, InferenceEngine, OrtEngine, OutputBuf, Provider, TensorInfo};
pub use layout::{Candidate, OutputLayout, OutputView, Tensor};
pub use manifest::ModelManifest;
pub use postprocess::Detection;

/// The bundled model's manifest (under [`crate::source_dir`]): what every command and
/// the service use when no model is named.
pub fn default_model() -> std::path::PathBuf {
    crate::source_dir().join("models/nanodet-coco-416.toml")
}
pub use preprocess::{InputTransform, Preprocessor};

use crate::decode::Frame;
use manifest::TensorLayout;

/// What can go wrong loading or running a detector. Each names the file, field or
/// model concerned.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the file was supposed to be.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A manifest is malformed or inconsistent.
    #[error("{}: field `{field}`: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The field (or position) at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest is not valid TOML or has fields of the wrong type or name; the
    /// message shows the line.
    #[error("{}: {message}", path.display())]
    ManifestSyntax {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message, with line, column and the offending text.
        message: String,
    },
    /// ONNX Runtime itself could not be found or loaded.
    #[error("{0}")]
    Runtime(String),
    /// ONNX Runtime refused the model file.
    #[error("cannot load model {}: {message}", path.display())]
    ModelLoad {
        /// The ONNX file.
        path: PathBuf,
        /// ONNX Runtime's reason.
        message: String,
    },
    /// The model does not match what its manifest says.
    #[error("model {} does not match its manifest {}: field `{field}`: {message}", model.display(), manifest.display())]
    Mismatch {
        /// The ONNX file.
        model: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// The manifest field that disagrees.
        field: String,
        /// What the model has instead.
        message: String,
    },
    /// An execution provider was asked for and cannot be used.
    #[error("execution provider {provider} is not available: {message}")]
    Provider {
        /// The provider asked for.
        provider: String,
        /// Why it cannot be used.
        message: String,
    },
    /// A model call failed.
    #[error("inference with {model} failed: {message}")]
    Inference {
        /// The model file.
        model: String,
        /// ONNX Runtime's reason.
        message: String,
    },
    /// A frame could not be preprocessed.
    #[error("bad frame: {0}")]
    BadFrame(String),
}

/// Time spent in each step, summed over calls.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimes {
    /// Resizing and normalising frames into the input tensor.
    pub preprocess: Duration,
    /// Model calls.
    pub inference: Duration,
    /// Decoding outputs, NMS and mapping boxes back.
    pub postprocess: Duration,
    /// Frames detected on.
    pub frames: u64,
    /// Model calls made.
    pub calls: u64,
}

/// What a model was found to be, checked against its manifest.
#[derive(Debug, Clone)]
pub struct ModelReport {
    /// The model's inputs as declared.
    pub inputs: Vec<TensorInfo>,
    /// The model's outputs as declared.
    pub outputs: Vec<TensorInfo>,
    /// `None` when the batch dimension is dynamic, else its fixed size.
    pub fixed_batch: Option<usize>,
}

/// Checks an engine's inputs and outputs against the manifest. The first
/// disagreement is returned, naming the manifest field and what the model has.
pub fn check_model(
    manifest: &ModelManifest,
    engine: &dyn InferenceEngine,
) -> Result<ModelReport, DetectError> {
    let mismatch = |field: &str, message: String| DetectError::Mismatch {
        model: manifest.model_path.clone(),
        manifest: manifest.path.clone(),
        field: field.to_string(),
        message,
    };
    let list = |v: &[TensorInfo]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let inputs = engine.inputs();
    let input = inputs
        .iter()
        .find(|i| i.name == manifest.input.name)
        .ok_or_else(|| {
            mismatch(
                "input.name",
                format!(
                    "no input named `{}`; the model has {}",
                    manifest.input.name,
                    list(inputs)
                ),
            )
        })?;
    if inputs.len() != 1 {
        return Err(mismatch(
            "input.name",
            format!(
                "models with more than one input are not supported; the model has {}",
                list(inputs)
            ),
        ));
    }
    if !input.is_f32 {
        return Err(mismatch(
            "input.name",
            format!("input is {}, gridwatch feeds float32", input.type_name),
        ));
    }
    let spec = &manifest.input;
    let (w, h) = (spec.width as i64, spec.height as i64);
    let want: [(&str, i64); 3] = match spec.layout {
        TensorLayout::Nchw => [("channels", 3), ("input.height", h), ("input.width", w)],
        TensorLayout::Nhwc => [("input.height", h), ("input.width", w), ("channels", 3)],
    };
    if input.shape.len() != 4 {
        return Err(mismatch(
            "input.layout",
            format!("expected a 4-dimensional input, the model has {input}"),
        ));
    }
    for (i, (field, v)) in want.iter().enumerate() {
        let got = input.shape[i + 1];
        if got >= 0 && got != *v {
            let field = if *field == "channels" {
                "input.layout"
            } else {
                field
            };
            return Err(mismatch(
                field,
                format!(
                    "the manifest implies {v} at dimension {}, the model has {input}",
                    i + 1
                ),
            ));
        }
    }
    let fixed_batch = (input.shape[0] > 0).then_some(input.shape[0] as usize);
    let expected = manifest
        .output
        .expected_shapes(manifest.classes.len(), spec.width, spec.height);
    let outputs = engine.outputs();
    for (name, exp) in manifest.output.output_names().into_iter().zip(expected) {
        let out = outputs.iter().find(|o| o.name == name).ok_or_else(|| {
            mismatch(
                "output",
                format!("no output named `{name}`; the model has {}", list(outputs)),
            )
        })?;
        if !out.is_f32 || out.shape.len() != 3 {
            return Err(mismatch(
                "output.layout",
                format!("expected a 3-dimensional float32 output, the model has {out}"),
            ));
        }
        for (d, e) in exp.iter().enumerate() {
            if let (Some(e), got) = (e, out.shape[d]) {
                if got >= 0 && got as usize != *e {
                    return Err(mismatch(
                        "classes",
                        format!(
                            "with {} classes and layout {}, output `{name}` should have {e} at dimension {d}; the model has {out}",
                            manifest.classes.len(),
                            layout_name(&manifest.output),
                        ),
                    ));
                }
            }
        }
    }
    Ok(ModelReport {
        inputs: inputs.to_vec(),
        outputs: outputs.to_vec(),
        fixed_batch,
    })
}

/// The manifest name of a layout.
pub fn layout_name(l: &OutputLayout) -> &'static str {
    match l {
        OutputLayout::Nanodet { .. } => "nanodet",
        OutputLayout::Yolov5 { .. } => "yolov5",
        OutputLayout::Yolov8 { .. } => "yolov8",
        OutputLayout::Decoded { .. } => "decoded",
    }
}

/// A model ready to run on frames: manifest, engine, and the buffers each step reuses.
pub struct Detector {
    manifest: ModelManifest,
    engine: Box<dyn InferenceEngine>,
    report: ModelReport,
    pre: Preprocessor,
    /// One more preprocessor per further batch slot (each with its own buffers), so the
    /// frames of a batch are preprocessed in parallel.
    more_pre: Vec<Preprocessor>,
    batch: usize,
    input: Vec<f32>,
    outputs: Vec<OutputBuf>,
    transforms: Vec<InputTransform>,
    cands: Vec<Candidate>,
    kept: Vec<Candidate>,
    times: StageTimes,
}

/// Frames per call for models with a dynamic batch dimension, unless asked otherwise.
pub const DEFAULT_MAX_BATCH: usize = 8;

impl Detector {
    /// Loads the manifest's model into ONNX Runtime and checks it against the manifest.
    pub fn load(manifest: ModelManifest, opts: &EngineOptions) -> Result<Self, DetectError> {
        manifest.verify_file()?;
        let engine = OrtEngine::load(&manifest.model_path, opts).map_err(|e| match e {
            DetectError::ModelLoad { path, message } => DetectError::ModelLoad {
                path,
                message: format!(
                    "{message} (manifest {}, field `file`)",
                    manifest.path.display()
                ),
            },
            other => other,
        })?;
        Self::with_engine(manifest, Box::new(engine))
    }

    /// A detector over any engine (tests use this seam).
    pub fn with_engine(
        manifest: ModelManifest,
        engine: Box<dyn InferenceEngine>,
    ) -> Result<Self, DetectError> {
        let report = check_model(&manifest, engine.as_ref())?;
        let pre = Preprocessor::new(&manifest.input);
        let outputs = manifest
            .output
            .output_names()
            .into_iter()
            .map(|n| OutputBuf {
                name: n.to_string(),
                ..Default::default()
            })
            .collect();
        let batch = report.fixed_batch.unwrap_or(DEFAULT_MAX_BATCH);
        Ok(Self {
            manifest,
            engine,
            report,
            pre,
            more_pre: Vec::new(),
            batch,
            input: Vec::new(),
            outputs,
            transforms: Vec::new(),
            cands: Vec::new(),
            kept: Vec::new(),
            times: StageTimes::default(),
        })
    }

    /// The manifest this detector runs.
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// What the model declared.
    pub fn report(&self) -> &ModelReport {
        &self.report
    }

    /// The execution provider.
    pub fn provider(&self) -> &Provider {
        self.engine.provider()
    }

    /// Frames per model call.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Sets frames per call for a model with a dynamic batch dimension (a fixed batch
    /// stays as the model says).
    pub fn set_batch_size(&mut self, n: usize) {
        if self.report.fixed_batch.is_none() {
            self.batch = n.max(1);
        }
    }

    /// Time spent so far, by step.
    pub fn times(&self) -> StageTimes {
        self.times
    }

    /// Forgets the time spent so far.
    pub fn reset_times(&mut self) {
        self.times = StageTimes::default();
    }

    /// One call on a grey frame, so the first real frame is not slowed by ONNX
    /// Runtime's lazy initialisation. Not counted in the stage times.
    pub fn warm_up(&mut self) -> Result<(), DetectError> {
        let saved = self.times;
        let frame = Frame::filled(
            self.manifest.input.width,
            self.manifest.input.height,
            [114; 3],
        );
        let mut out = Vec::new();
        self.detect(&[&frame], &mut out)?;
        self.times = saved;
        Ok(())
    }

    /// Detects on `frames`, in calls of up to [`Self::batch_size`] frames; `out` gets
    /// one list per frame, in order (its inner vectors are reused).
    pub fn detect<F: Borrow<Frame> + Sync>(
        &mut self,
        frames: &[F],
        out: &mut Vec<Vec<Detection>>,
    ) -> Result<(), DetectError> {
        out.resize_with(frames.len(), Vec::new);
        for (chunk_i, chunk) in frames.chunks(self.batch).enumerate() {
            let base = chunk_i * self.batch;
            self.run_chunk(chunk, &mut out[base..base + chunk.len()])?;
        }
        Ok(())
    }

    fn run_chunk<F: Borrow<Frame> + Sync>(
        &mut self,
        frames: &[F],
        out: &mut [Vec<Detection>],
    ) -> Result<(), DetectError> {
        let item = self.pre.item_len();
        // a fixed batch larger than the chunk is padded with zeros
        let n = self
            .report
            .fixed_batch
            .unwrap_or(frames.len())
            .max(frames.len());
        let t0 = Instant::now();
        self.input.resize(n * item, 0.0);
        self.transforms.clear();
        if frames.len() == 1 {
            let t = self.pre.run(frames[0].borrow(), &mut self.input[..item])?;
            self.transforms.push(t);
        } else {
            use rayon::prelude::*;
            while self.more_pre.len() + 1 < frames.len() {
                self.more_pre.push(Preprocessor::new(&self.manifest.input));
            }
            let pres = std::iter::once(&mut self.pre).chain(self.more_pre.iter_mut());
            let results: Vec<Result<InputTransform, DetectError>> = self.input
                [..frames.len() * item]
                .par_chunks_mut(item)
                .zip(pres.collect::<Vec<_>>().into_par_iter())
                .zip(frames.par_iter())
                .map(|((slot, pre), f)| pre.run(f.borrow(), slot))
                .collect();
            for r in results {
                self.transforms.push(r?);
            }
        }
        self.input[frames.len() * item..].fill(0.0);
        let t1 = Instant::now();
        self.infer(n)?;
        let t2 = Instant::now();
        let post = &self.manifest.postprocess;
        for (b, dets) in out.iter_mut().enumerate() {
            self.cands.clear();
            self.manifest.output.decode(
                &self.outputs,
                b,
                self.manifest.classes.len(),
                post.score_threshold,
                self.manifest.input.width,
                &mut self.cands,
            );
            postprocess::nms(
                &mut self.cands,
                post.nms.then_some(post.nms_iou),
                post.max_detections,
                &mut self.kept,
            );
            dets.clear();
            postprocess::to_detections(&self.kept, &self.transforms[b], dets);
        }
        let t3 = Instant::now();
        self.times.preprocess += t1 - t0;
        self.times.inference += t2 - t1;
        self.times.postprocess += t3 - t2;
        self.times.frames += frames.len() as u64;
        self.times.calls += 1;
        Ok(())
    }

    /// One model call on the `n` items already in the input buffer, checking the
    /// output shapes the decoder relies on.
    fn infer(&mut self, n: usize) -> Result<(), DetectError> {
        let spec = &self.manifest.input;
        let (w, h) = (spec.width as usize, spec.height as usize);
        let shape = match spec.layout {
            TensorLayout::Nchw => [n, 3, h, w],
            TensorLayout::Nhwc => [n, h, w, 3],
        };
        self.engine.run(
            &spec.name,
            &self.input[..n * w * h * 3],
            &shape,
            &mut self.outputs,
        )?;
        let expected = self.manifest.output.expected_shapes(
            self.manifest.classes.len(),
            spec.width,
            spec.height,
        );
        for (o, exp) in self.outputs.iter().zip(expected) {
            let ok = o.shape.len() == 3
                && o.shape[0] == n
                && exp
                    .iter()
                    .zip(&o.shape)
                    .all(|(e, g)| e.is_none_or(|e| e == *g))
                && o.data.len() == o.shape.iter().product::<usize>();
            if !ok {
                return Err(DetectError::Inference {
                    model: self.manifest.model_path.display().to_string(),
                    message: format!(
                        "output `{}` came back with shape {:?}, which layout {} cannot read for a batch of {n}",
                        o.name,
                        o.shape,
                        layout_name(&self.manifest.output)
                    ),
                });
            }
        }
        Ok(())
    }

    /// Inference only, on whatever the input buffer holds (the last preprocessed
    /// batch): what the model alone sustains, for benchmarks. Returns the frames run.
    pub fn infer_only(&mut self) -> Result<usize, DetectError> {
        let item = self.pre.item_len();
        let n = self.report.fixed_batch.unwrap_or(self.batch);
        if self.input.len() < n * item {
            self.input.resize(n * item, 0.0);
        }
        self.infer(n)?;
        Ok(n)
    }
}

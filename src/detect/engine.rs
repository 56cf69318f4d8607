//! Inference engines: the trait the detector calls, and its ONNX Runtime
//! implementation with the CPU, CUDA and TensorRT execution providers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{runtime, DetectError};

/// Name, element type and declared shape of a model input or output; `-1` marks a
/// dynamic dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name in the graph.
    pub name: String,
    /// Whether the elements are 32-bit floats.
    pub is_f32: bool,
    /// Element type as ONNX Runtime names it, for messages.
    pub type_name: String,
    /// Declared dimensions, `-1` where dynamic.
    pub shape: Vec<i64>,
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
            .collect();
        write!(f, "{} {}[{}]", self.name, self.type_name, dims.join(","))
    }
}

/// An output tensor of the last call, its buffer reused across calls.
#[derive(Debug, Clone, Default)]
pub struct OutputBuf {
    /// Tensor name.
    pub name: String,
    /// Dimensions of the last result.
    pub shape: Vec<usize>,
    /// Data of the last result.
    pub data: Vec<f32>,
}

impl super::layout::Tensor for OutputBuf {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> &[f32] {
        &self.data
    }
}

/// What runs a model. The detector owns one; tests can supply their own.
pub trait InferenceEngine: Send {
    /// The model's inputs.
    fn inputs(&self) -> &[TensorInfo];
    /// The model's outputs.
    fn outputs(&self) -> &[TensorInfo];
    /// Runs one call: `input` laid out as `shape` goes to the input `input_name`; each
    /// buffer in `outputs` receives the output of the same name.
    fn run(
        &mut self,
        input_name: &str,
        input: &[f32],
        shape: &[usize],
        outputs: &mut [OutputBuf],
    ) -> Result<(), DetectError>;
    /// Which execution provider runs the model, for reports.
    fn provider(&self) -> &Provider;
}

/// Where inference runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA on the given device.
    Cuda {
        /// CUDA device index.
        device: i32,
    },
    /// NVIDIA TensorRT on the given device.
    TensorRt {
        /// CUDA device index.
        device: i32,
    },
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, dev) = match s.split_once(':') {
            Some((n, d)) => (
                n,
                d.parse::<i32>()
                    .map_err(|_| format!("bad device index `{d}` in provider `{s}`"))?,
            ),
            None => (s, 0),
        };
        match name.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda { device: dev }),
            "tensorrt" | "trt" => Ok(Self::TensorRt { device: dev }),
            _ => Err(format!(
                "unknown execution provider `{s}`: use cpu, cuda[:N] or tensorrt[:N]"
            )),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda { device } => write!(f, "cuda:{device}"),
            Self::TensorRt { device } => write!(f, "tensorrt:{device}"),
        }
    }
}

/// How to build an engine.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Execution provider; never silently replaced by another.
    pub provider: Provider,
    /// Threads for one operator (ONNX Runtime's intra-op pool); `None` lets ONNX
    /// Runtime choose (one per core).
    pub intra_threads: Option<usize>,
    /// Let ONNX Runtime's idle intra-op threads spin waiting for work. Off by
    /// default: in gridwatch the inference threads share the cores with decoders,
    /// and spinning threads take CPU time the decoders need (measured in
    /// docs/benchmarks.md). Worth turning on only when inference has its cores to
    /// itself.
    pub spin: bool,
}

/// An ONNX Runtime session.
pub struct OrtEngine {
    session: Session,
    model: PathBuf,
    provider: Provider,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
}

fn info(name: &str, dtype: &ValueType) -> TensorInfo {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => TensorInfo {
            name: name.to_string(),
            is_f32: *ty == TensorElementType::Float32,
            type_name: format!("{ty:?}").to_lowercase(),
            shape: shape.iter().copied().collect(),
        },
        other => TensorInfo {
            name: name.to_string(),
            is_f32: false,
            type_name: format!("{other:?}"),
            shape: Vec::new(),
        },
    }
}

impl OrtEngine {
    /// Loads `model` with the requested provider. Fails, naming the model file, when
    /// the file is not a model ONNX Runtime accepts or the provider cannot be
    /// registered.
    pub fn load(model: &Path, opts: &EngineOptions) -> Result<Self, DetectError> {
        let (env, _) = runtime::environment()?;
        let load_err = |e: ort::Error| DetectError::ModelLoad {
            path: model.to_path_buf(),
            message: e.to_string(),
        };
        let mut builder = Session::builder(&env).map_err(load_err)?;
        if let Some(n) = opts.intra_threads {
            builder = builder
                .with_intra_threads(n)
                .map_err(|e| load_err(e.into()))?;
        }
        builder = builder
            .with_intra_op_spinning(opts.spin)
            .map_err(|e| load_err(e.into()))?
            .with_inter_op_spinning(opts.spin)
            .map_err(|e| load_err(e.into()))?;
        builder = register_provider(builder, &opts.provider)?;
        let session = builder.commit_from_file(model).map_err(load_err)?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| info(o.name(), o.dtype()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| info(o.name(), o.dtype()))
            .collect();
        Ok(Self {
            session,
            model: model.to_path_buf(),
            provider: opts.provider.clone(),
            inputs,
            outputs,
        })
    }
}

fn register_provider(
    builder: ort::session::builder::SessionBuilder,
    provider: &Provider,
) -> Result<ort::session::builder::SessionBuilder, DetectError> {
    let unavailable = |message: String| DetectError::Provider {
        provider: provider.to_string(),
        message,
    };
    #[cfg(any(feature = "cuda", feature = "tensorrt"))]
    let gpu_hint = |e: ort::Error<ort::session::builder::SessionBuilder>| {
        let text = e.to_string();
        if text.contains("libcuda.so") {
            // everything of ONNX Runtime's and CUDA's was found but the driver's library
            return unavailable(format!(
                "{text} (the NVIDIA driver is not installed here, or not visible to this \
                 process: in a container the NVIDIA container toolkit provides libcuda.so.1)"
            ));
        }
        let lib = runtime::environment()
            .map(|(_, p)| p.display().to_string())
            .unwrap_or_default();
        unavailable(format!(
            "{text} (ONNX Runtime was loaded from {lib}; GPU providers need the onnxruntime-gpu==1.31.1 \
             build — ORT_DYLIB_PATH pointing at its libonnxruntime.so, or in gridwatch's lib/ — and \
             the CUDA 13 and cuDNN 9 libraries on LD_LIBRARY_PATH; scripts/gpu-check.sh sets both)"
        ))
    };
    match provider {
        Provider::Cpu => Ok(builder),
        #[cfg(feature = "cuda")]
        Provider::Cuda { device } => builder
            .with_execution_providers([ort::ep::CUDA::default()
                .with_device_id(*device)
                .build()
                .error_on_failure()])
            .map_err(gpu_hint),
        #[cfg(feature = "tensorrt")]
        Provider::TensorRt { device } => builder
            .with_execution_providers([ort::ep::TensorRT::default()
                .with_device_id(*device)
                .with_fp16(true)
                .build()
                .error_on_failure()])
            .map_err(gpu_hint),
        #[allow(unreachable_patterns)]
        other => Err(unavailable(format!(
            "this gridwatch was built without it; rebuild with `cargo build --release --features {}`",
            match other {
                Provider::TensorRt { .. } => "tensorrt",
                _ => "cuda",
            }
        ))),
    }
}

impl InferenceEngine for OrtEngine {
    fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    fn provider(&self) -> &Provider {
        &self.provider
    }

    fn run(
        &mut self,
        input_name: &str,
        input: &[f32],
        shape: &[usize],
        outputs: &mut [OutputBuf],
    ) -> Result<(), DetectError> {
        let fail = |message: String| DetectError::Inference {
            model: self.model.display().to_string(),
            message,
        };
        let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| fail(e.to_string()))?;
        let result = self
            .session
            .run(ort::inputs![input_name => tensor])
            .map_err(|e| fail(e.to_string()))?;
        for out in outputs.iter_mut() {
            let value = result
                .get(&out.name)
                .ok_or_else(|| fail(format!("the model returned no output `{}`", out.name)))?;
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| fail(format!("output `{}`: {e}", out.name)))?;
            out.shape.clear();
            out.shape.extend(shape.iter().map(|&d| d.max(0) as usize));
            out.data.clear();
            out.data.extend_from_slice(data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_with_device_indices() {
        assert_eq!("cpu".parse::<Provider>().unwrap(), Provider::Cpu);
        assert_eq!(
            "cuda:1".parse::<Provider>().unwrap(),
            Provider::Cuda { device: 1 }
        );
        assert_eq!(
            "TensorRT".parse::<Provider>().unwrap(),
            Provider::TensorRt { device: 0 }
        );
        assert!("cuda:x".parse::<Provider>().is_err());
        assert!("metal"
            .parse::<Provider>()
            .unwrap_err()
            .contains("cpu, cuda"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_an_error_not_a_cpu_fallback() {
        let (env, _) = runtime::environment().expect("scripts/setup.sh installs ONNX Runtime");
        let builder = Session::builder(&env).unwrap();
        let err = register_provider(builder, &Provider::Cuda { device: 0 })
            .err()
            .expect("must refuse")
            .to_string();
        assert!(err.contains("cuda"), "{err}");
        assert!(err.contains("--features cuda"), "{err}");
    }
}

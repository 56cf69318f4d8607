#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU: the detector benchmark on the GPU
# beside the same benchmark on the CPU, on the bundled clip and on the 1080p benchmark
# clip, every 2 s, with the Python baseline — one table per run.
#
#   scripts/gpu-check.sh                 # builds here; needs the driver, installs the rest
#   scripts/gpu-check.sh --bundle DIR    # a machine with no network, Rust or FFmpeg:
#                                        # runs the installed layout DIR (below)
#
# Built here, it installs into .venv-gpu/ (beside the CPU .venv/) onnxruntime-gpu==1.31.1
# with its `cuda` and `cudnn` extras, which pull the NVIDIA CUDA 13 runtime, cuBLAS,
# cuFFT, cuRAND and cuDNN wheels that build was made against, and builds with
# --features cuda,tensorrt.
#
# --bundle DIR: DIR is what `scripts/make-bundle.sh --features cuda,tensorrt
# --ort-wheel onnxruntime_gpu-1.31.1-….whl --fp16 --bench-clip` wrote on a machine
# that could build: the binary, every library it needs, the GPU build of ONNX Runtime,
# the models and the clips (docs/benchmarks.md says how to carry it). The NVIDIA libraries then come
# from the target's own Python (its nvidia-* wheels, e.g. PyTorch's), and the Python
# baseline runs under that Python when it has OpenCV and onnxruntime.
#
# The NVIDIA libraries are found through LD_LIBRARY_PATH. A provider that cannot be
# registered is an error, never a silent fall-back to the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=
case "${1:-}" in
  --bundle) bundle=$(cd "$2" && pwd) ;;
  "") ;;
  *) echo "gpu-check: unknown argument $1 (usage: scripts/gpu-check.sh [--bundle DIR])" >&2; exit 2 ;;
esac
command -v nvidia-smi >/dev/null || { echo "gpu-check: no nvidia-smi: this machine has no NVIDIA driver" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

# the folders of the NVIDIA wheels' shared libraries under a site-packages folder
nvidia_libs() {
  [ -d "$1/nvidia" ] || return 0
  find "$1/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | tr '\n' ':'
}

if [ -n "$bundle" ]; then
  g=$bundle/bin/gridwatch
  [ -x "$g" ] || { echo "gpu-check: $g is missing: make the bundle with scripts/make-bundle.sh" >&2; exit 1; }
  export GRIDWATCH_HOME=$bundle
  py=${GRIDWATCH_PYTHON:-$(command -v python3 || true)}
  site=$([ -n "$py" ] && "$py" -c "import site; print(site.getsitepackages()[0])" 2>/dev/null || true)
  export LD_LIBRARY_PATH="$(nvidia_libs "$site")${LD_LIBRARY_PATH:-}"
  if [ -n "$py" ] && "$py" -c "import cv2, onnxruntime" 2>/dev/null; then
    export GRIDWATCH_PYTHON=$py
    baseline=--compare-baseline
  else
    echo "gpu-check: no Python with cv2 and onnxruntime here: no Python baseline" >&2
    baseline=
  fi
  echo "libraries the binary cannot resolve here (none is right):"
  env LD_TRACE_LOADED_OBJECTS=1 "$g" | grep -E "not found" || echo "  none"
  fp16=$bundle/models/nanodet-coco-416-fp16.toml
else
  scripts/setup.sh
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  [ -x .venv-gpu/bin/python ] || python3 -m venv .venv-gpu
  .venv-gpu/bin/python -c "import onnxruntime" 2>/dev/null ||
    .venv-gpu/bin/pip install -q "onnxruntime-gpu[cuda,cudnn]==1.31.1" "numpy<2"
  site=$(.venv-gpu/bin/python -c "import site; print(site.getsitepackages()[0])")
  export ORT_DYLIB_PATH=$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* | head -1)
  export LD_LIBRARY_PATH="$(nvidia_libs "$site")${LD_LIBRARY_PATH:-}"
  cargo build --release --quiet --features cuda,tensorrt
  g=target/release/gridwatch
  # the fp16 copy of the bundled model, for the CUDA provider (TensorRT makes its own)
  .venv/bin/python scripts/make-fp16-model.py models/nanodet-coco-416.toml .cache/fp16 >/dev/null
  fp16=.cache/fp16/nanodet-coco-416-fp16.toml
  baseline=--compare-baseline
fi

for clip in samples/street.mp4 1080p; do
  echo "== $clip, every 2s, CPU"
  env -u ORT_DYLIB_PATH $g bench --clip "$clip" --every 2s $baseline
  for p in cuda tensorrt; do
    echo "== $clip, every 2s, $p"
    $g bench --clip "$clip" --every 2s --provider "$p" || echo "gpu-check: $p failed (above)"
  done
  if [ -f "$fp16" ]; then
    echo "== $clip, every 2s, cuda, fp16 model"
    $g bench --clip "$clip" --every 2s --provider cuda --model "$fp16" || echo "gpu-check: cuda fp16 failed (above)"
  fi
  echo "== $clip, every 2s, 8 frames per call (batching across cameras), cuda"
  $g bench --clip "$clip" --every 2s --provider cuda --model tests/fixtures/models/yolov8-test.toml --batch 8 || echo "gpu-check: batched cuda failed (above)"
done

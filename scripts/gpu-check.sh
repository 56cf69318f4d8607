#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU: builds gridwatch with the CUDA and
# TensorRT providers, points it at the GPU build of ONNX Runtime, and runs the detector
# benchmark on the GPU beside the same benchmark on the CPU, on the bundled clip and on
# the 1080p benchmark clip, every 2 s, with the Python baseline — one table.
#
#   scripts/gpu-check.sh            # needs the NVIDIA driver; installs the rest
#
# What it installs (into .venv-gpu/, beside the CPU .venv/):
#   onnxruntime-gpu==1.31.1 with its `cuda` and `cudnn` extras, which pull the NVIDIA
#   CUDA runtime, cuBLAS, cuFFT, cuRAND and cuDNN wheels that build was made against.
#   Set PIP_FIND_LINKS=/path/to/wheelhouse (and PIP_NO_INDEX=1) on a machine without
#   network access, with those wheels downloaded beforehand (`pip download`).
# gridwatch loads that library through ORT_DYLIB_PATH; the NVIDIA libraries are found
# through LD_LIBRARY_PATH, set here from the wheels' folders. A provider that cannot be
# registered is an error, never a silent fall-back to the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
command -v nvidia-smi >/dev/null || { echo "gpu-check: no nvidia-smi: this machine has no NVIDIA driver" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if [ ! -x .venv-gpu/bin/python ]; then
  python3 -m venv .venv-gpu
fi
.venv-gpu/bin/python -c "import onnxruntime" 2>/dev/null ||
  .venv-gpu/bin/pip install -q "onnxruntime-gpu[cuda,cudnn]==1.31.1" "numpy<2"
site=$(.venv-gpu/bin/python -c "import site; print(site.getsitepackages()[0])")
export ORT_DYLIB_PATH=$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* | head -1)
libs=$(find "$site/nvidia" -maxdepth 2 -name lib -type d 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"

cargo build --release --quiet --features cuda,tensorrt
g=target/release/gridwatch
# the fp16 copy of the bundled model, for the CUDA provider (TensorRT makes its own)
.venv/bin/python scripts/make-fp16-model.py models/nanodet-coco-416.toml .cache/fp16 >/dev/null
fp16=.cache/fp16/nanodet-coco-416-fp16.toml
for clip in samples/street.mp4 1080p; do
  echo "== $clip, every 2s, CPU"
  env -u ORT_DYLIB_PATH $g bench --clip "$clip" --every 2s --compare-baseline
  for p in cuda tensorrt; do
    echo "== $clip, every 2s, $p"
    $g bench --clip "$clip" --every 2s --provider "$p" || echo "gpu-check: $p failed (above)"
  done
  echo "== $clip, every 2s, cuda, fp16 model"
  $g bench --clip "$clip" --every 2s --provider cuda --model "$fp16" || echo "gpu-check: cuda fp16 failed (above)"
  echo "== $clip, every 2s, 8 frames per call (batching across cameras), cuda"
  $g bench --clip "$clip" --every 2s --provider cuda --model tests/fixtures/models/yolov8-test.toml --batch 8 || echo "gpu-check: batched cuda failed (above)"
done

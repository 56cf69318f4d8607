#!/usr/bin/env python3
"""Writes a float16 copy of a gridwatch model, for GPUs (half the weights' memory and
bandwidth; tensor cores on NVIDIA GPUs with the CUDA provider). The TensorRT provider
builds fp16 engines from the float32 model by itself; this is for the CUDA provider.

    scripts/make-fp16-model.py models/nanodet-coco-416.toml OUT_DIR

Converts every float32 weight and operator to float16 with onnxconverter-common
(which scripts/setup.sh installs into .venv), keeping the model's inputs and outputs
float32, so gridwatch's preprocessing and decoding stay as they are. Writes
OUT_DIR/<name>-fp16.onnx and OUT_DIR/<name>-fp16.toml: the same manifest with the new
file, its SHA-256, and `-fp16` on the name (the classes file is copied beside it).

Whether the model allows fp16 is measured, not assumed: `tests/fp16.rs` runs both
models on the sample photos and requires the same detections (class, box IoU, score)
within stated tolerances. Run with .venv/bin/python.
"""
import hashlib
import pathlib
import re
import shutil
import sys

import onnx
from onnxconverter_common import float16


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    manifest = pathlib.Path(sys.argv[1])
    out = pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    text = manifest.read_text()
    name = re.search(r'^name\s*=\s*"([^"]+)"', text, re.M)
    file = re.search(r'^file\s*=\s*"([^"]+)"', text, re.M)
    if not name or not file:
        print(f"{manifest}: no name or file", file=sys.stderr)
        return 1
    src = manifest.parent / file.group(1)
    model = onnx.load(str(src))
    half = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.checker.check_model(half)
    new_name = f"{name.group(1)}-fp16"
    dst = out / f"{new_name}.onnx"
    onnx.save(half, str(dst))
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    text = text.replace(name.group(0), f'name = "{new_name}"', 1)
    text = text.replace(file.group(0), f'file = "{dst.name}"', 1)
    text = re.sub(r'^sha256\s*=\s*"[0-9a-f]+"', f'sha256 = "{digest}"', text, count=1, flags=re.M)
    text = re.sub(
        r'^provenance\s*=\s*"(.*)"',
        lambda m: f'provenance = "{m.group(1)}; float16 by scripts/make-fp16-model.py (onnxconverter-common, float32 inputs and outputs)"',
        text,
        count=1,
        flags=re.M,
    )
    classes = re.search(r'^classes_file\s*=\s*"([^"]+)"', text, re.M)
    if classes:
        shutil.copyfile(manifest.parent / classes.group(1), out / classes.group(1))
    (out / f"{new_name}.toml").write_text(text)
    print(f"{dst} ({dst.stat().st_size} bytes, from {src.stat().st_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Installs what gridwatch needs to build, run and test on Debian 12, then returns.
# Safe to run again: it installs only what is missing and prints nothing when
# everything is already there.
#
#   Debian packages  FFmpeg 5.1 and OpenCV 4.6 development files, clang (bindings),
#                    Python 3 with venv, Debian's python3-opencv (the reference script
#                    uses the same OpenCV build gridwatch links), GStreamer's RTSP
#                    server with its parsers and payloaders (the tests' RTSP peer),
#                    the ffmpeg command (makes the ingest benchmark's 1080p clip),
#                    Chromium and chromedriver (the review page's browser tests),
#                    the PostgreSQL server (tests start throwaway clusters of their own),
#                    patchelf (scripts/make-bundle.sh points the binary at its lib/),
#                    OpenSSL (https delivery; the tests' private CA) and the CA store,
#                    WenQuanYi Micro Hei (the CJK font evidence captions are drawn in)
#   .venv/           ONNX Runtime 1.31.1 from the PyPI wheel (its libonnxruntime.so is
#                    what gridwatch loads), onnx (writes the small test models),
#                    pycocotools (the reference box accuracy is checked against)
#   Rust             cargo/rustc 1.92 or newer must be on PATH (rustup)
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
ONNX_VERSION=1.23.2
APT_PACKAGES=(
  pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libopencv-dev
  python3 python3-venv python3-numpy python3-opencv
  gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  ffmpeg
  chromium chromium-driver
  postgresql
  patchelf
  libssl-dev openssl ca-certificates
  fonts-wqy-microhei
)

say() { echo "setup: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; exit 1
  fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  say "Rust is not installed: install it with rustup (https://rustup.rs), version 1.92 or newer"
  exit 1
fi
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 92 ]; then
  say "rustc $(rustc --version) is too old: gridwatch needs 1.92 or newer (rustup update)"
  exit 1
fi

# The venv sees Debian's site-packages so that the reference script's cv2 is Debian's
# OpenCV 4.6, the same library gridwatch links (resize results are bit-identical).
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python - "$ORT_VERSION" "$ONNX_VERSION" >/dev/null 2>&1 <<'PY'
import sys, onnxruntime, onnx, numpy, cv2
assert onnxruntime.__version__ == sys.argv[1], onnxruntime.__version__
assert onnx.__version__ == sys.argv[2], onnx.__version__
assert numpy.__version__.startswith("1."), numpy.__version__
PY
then
  say "installing onnxruntime==$ORT_VERSION and onnx==$ONNX_VERSION into .venv"
  # numpy stays Debian's 1.x: python3-opencv is built against it
  .venv/bin/pip install -q --disable-pip-version-check \
    "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION" "numpy<2" >/dev/null
fi
# fp16 copies of models (scripts/make-fp16-model.py, tests/fp16.rs)
if ! .venv/bin/python -c "import onnxconverter_common" >/dev/null 2>&1; then
  say "installing onnxconverter-common==1.16.0 into .venv (fp16 models)"
  .venv/bin/pip install -q --disable-pip-version-check "onnxconverter-common==1.16.0" "numpy<2" >/dev/null
fi
# the Kubernetes manifests under deploy/ are checked against the API's schemas
if [ ! -x .venv/bin/kubernetes-validate ]; then
  say "installing kubernetes-validate==1.37.0 into .venv (schema checks of deploy/)"
  .venv/bin/pip install -q --disable-pip-version-check "kubernetes-validate==1.37.0" >/dev/null
fi
# the reference the box evaluator (src/eval/coco.rs) is checked against
if ! .venv/bin/python -c "import pycocotools" >/dev/null 2>&1; then
  say "installing pycocotools==2.0.10 into .venv (the reference for box accuracy)"
  .venv/bin/pip install -q --disable-pip-version-check "pycocotools==2.0.10" "numpy<2" >/dev/null
fi

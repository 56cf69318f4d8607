#!/usr/bin/env bash
# Makes gridwatch's installed layout: one folder that runs on another x86-64 Linux
# machine with no Rust, no FFmpeg, no OpenCV and no network — what a container image
# copies in, and what a GPU check carries to a machine that cannot install anything.
#
#   scripts/make-bundle.sh [--out DIR] [--features cuda,tensorrt | --binary FILE]
#                          [--ort-wheel WHEEL] [--fp16] [--bench-clip] [--parts MIB]
#
#   DIR (default dist/gridwatch)
#     bin/gridwatch      the release binary (built here with --features, or FILE);
#                        its RPATH is $ORIGIN/../lib
#     lib/               every shared library it needs (FFmpeg, OpenCV and theirs), but
#                        glibc's and the C++ runtime, which every target system has;
#                        ONNX Runtime 1.31.1: libonnxruntime.so from .venv, or with
#                        --ort-wheel the GPU build's library and its CUDA/TensorRT
#                        providers from an onnxruntime-gpu wheel
#     models/            the bundled model, its class list and notes; with --fp16 also
#                        its float16 copy (scripts/make-fp16-model.py), for GPUs
#     samples/           the sample clip, photos and zones (the built-in demo's camera),
#                        and the labelled stills of `gridwatch eval detect`
#     calibration/       the sample camera's calibration
#     share/fonts/       WenQuanYi Micro Hei, the CJK font of evidence captions
#     tests/fixtures/clips/street-dumping.mp4   the built-in demo's second camera
#     scripts/           the Python baseline and reference detector (bench)
#     .cache/bench/      with --bench-clip, the 1080p benchmark clip (`bench --clip
#                        1080p`; made here with ffmpeg if missing)
#     licences/          the Debian copyright file of each package a library came from
#   --parts MIB: also DIR.tar.xz split into DIR.parts/part-NN of at most MIB MiB,
#     joined again with `cat DIR.parts/part-* | tar -xJ` (or Python's tarfile).
#
# gridwatch finds its home from the executable (bin/..): no variables needed. Needs:
# glibc 2.36 or newer and libstdc++ from GCC 12 or newer on the target.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist/gridwatch
features=
wheel=
parts=
fp16=
binary=
bench_clip=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --features) features=$2; shift 2 ;;
    --ort-wheel) wheel=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    --fp16) fp16=1; shift ;;
    --binary) binary=$2; shift 2 ;;
    --bench-clip) bench_clip=1; shift ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-bundle: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { echo "make-bundle: $*" >&2; }

scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
command -v patchelf >/dev/null || { say "patchelf is missing (scripts/setup.sh installs it)"; exit 1; }

if [ -n "$binary" ]; then
  exe=$binary
elif [ -n "$features" ]; then
  cargo build --release --quiet --features "$features"
  exe=target/release/gridwatch
else
  cargo build --release --quiet
  exe=target/release/gridwatch
fi

rm -rf "$out"
mkdir -p "$out"/{bin,lib,models,samples,scripts,calibration,licences}
cp "$exe" "$out/bin/gridwatch"
patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$out/bin/gridwatch"

# the libraries the loader resolves for the binary, but the C library's and the C++
# runtime's (the target's own must be used: they talk to its kernel and loader)
system='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so'
ldd "$exe" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
  if [[ "$name" =~ $system ]]; then continue; fi
  cp -L "$path" "$out/lib/$name"
  pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1 || true)
  [ -z "$pkg" ] && pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1 || true)
  if [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ] && [ ! -f "$out/licences/$pkg" ]; then
    cp "/usr/share/doc/$pkg/copyright" "$out/licences/$pkg"
  fi
done
missing=$(ldd "$exe" | grep "not found" || true)
[ -z "$missing" ] || { say "the binary has unresolved libraries here: $missing"; exit 1; }

if [ -n "$wheel" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 - "$wheel" "$tmp" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/lib") and ".so" in n]
    if not any("libonnxruntime.so.1.31" in n for n in names):
        sys.exit(f"{wheel} holds no libonnxruntime.so.1.31.*")
    for n in names:
        z.extract(n, dest)
PY
  cp "$tmp"/onnxruntime/capi/lib*.so* "$out/lib/"
  unzip -p "$wheel" 'onnxruntime/ThirdPartyNotices.txt' > "$out/licences/onnxruntime-ThirdPartyNotices.txt" || true
  unzip -p "$wheel" '*.dist-info/licenses/LICENSE' '*.dist-info/LICENSE' > "$out/licences/onnxruntime" 2>/dev/null || true
else
  ort=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.* | head -1)
  cp "$ort" "$out/lib/"
  cp .venv/lib/python3*/site-packages/onnxruntime-1.31.*.dist-info/licenses/LICENSE "$out/licences/onnxruntime" 2>/dev/null ||
    cp .venv/lib/python3*/site-packages/onnxruntime-1.31.*.dist-info/LICENSE "$out/licences/onnxruntime" 2>/dev/null || true
fi

cp models/nanodet-coco-416.toml models/nanodet-coco-416.onnx models/coco80.txt "$out/models/"
cp models/*.md "$out/models/" 2>/dev/null || true
if [ -n "$fp16" ]; then
  .venv/bin/python scripts/make-fp16-model.py models/nanodet-coco-416.toml "$out/models" >/dev/null
fi
cp -r samples/street.mp4 samples/*.jpg samples/*.md samples/geo samples/frames samples/labels samples/truth "$out/samples/"
cp calibration/*.toml "$out/calibration/"
# the CJK font evidence captions are drawn in (found there when the system has none)
mkdir -p "$out/share/fonts"
cp /usr/share/fonts/truetype/wqy/wqy-microhei.ttc "$out/share/fonts/"
cp /usr/share/doc/fonts-wqy-microhei/copyright "$out/licences/fonts-wqy-microhei"
# the built-in demo's second camera (a bag left on the lawn; scripts/make-test-clips.sh)
mkdir -p "$out/tests/fixtures/clips"
cp tests/fixtures/clips/street-dumping.mp4 "$out/tests/fixtures/clips/"
cp scripts/bench-python-baseline.py scripts/reference_detect.py "$out/scripts/"
if [ -n "$bench_clip" ]; then
  if [ ! -f .cache/bench/street-1080p25-2mbps-bframes.mp4 ]; then
    # gridwatch makes it once with ffmpeg; a short bench run is enough
    "$exe" bench --clip 1080p --every 60s --json >/dev/null
  fi
  mkdir -p "$out/.cache/bench"
  cp .cache/bench/street-1080p25-2mbps-bframes.mp4 "$out/.cache/bench/"
fi

# it must run from there: the bundled libraries, the bundled model, no checkout
env -i PATH=/usr/bin:/bin "$out/bin/gridwatch" models check "$out/models/nanodet-coco-416.toml" >/dev/null ||
  { say "the bundle's binary does not run (above)"; exit 1; }
say "$out: $(du -sh "$out" | cut -f1)"

if [ -n "$parts" ]; then
  rm -rf "$out.parts"
  mkdir -p "$out.parts"
  tar -C "$(dirname "$out")" -cf - "$(basename "$out")" | xz -6 -T0 |
    split -b "${parts}M" -d -a 2 - "$out.parts/part-"
  say "$out.parts: $(ls "$out.parts" | wc -l) parts of at most $parts MiB ($(du -sh "$out.parts" | cut -f1))"
fi

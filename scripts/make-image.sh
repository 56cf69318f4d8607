#!/usr/bin/env bash
# Makes gridwatch's container image from the bundle (scripts/make-bundle.sh): no base
# image, nothing pulled from a registry — the bundle under /opt/gridwatch, the C library
# and C++ runtime of this machine that the bundle leaves out, the CA store, a non-root
# user. The image deploy/kubernetes/statefulset.yaml names.
#
#   scripts/make-image.sh [--tag NAME] [--features cuda,tensorrt] [--ort-wheel WHEEL]
#                         [--cuda]
#
#   --cuda    also the NVIDIA CUDA 13 / cuDNN 9 libraries onnxruntime-gpu 1.31.1 needs
#             (the PyPI wheels its `cuda` and `cudnn` extras name, unpacked under
#             /opt/gridwatch/lib/cuda); the driver's libcuda comes from the node at run
#             time (the NVIDIA container toolkit). Use with --features and --ort-wheel.
#
# Writes the build context to dist/image/ (root/ and Containerfile: any builder takes
# it) and, with podman (installed from Debian when missing and run as root), builds
# NAME (default gridwatch:0.1.0) and saves it as dist/gridwatch-image.tar (OCI
# archive: `podman load`, `skopeo copy oci-archive:dist/gridwatch-image.tar
# docker://registry/…`).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=gridwatch:0.1.0
bundle_args=()
cuda=
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --features|--ort-wheel) bundle_args+=("$1" "$2"); shift 2 ;;
    --cuda) cuda=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { echo "make-image: $*" >&2; }

ctx=dist/image
root=$ctx/root
rm -rf "$ctx"
mkdir -p "$root"/{opt,etc/ssl/certs,tmp,lib64,lib/x86_64-linux-gnu} "$ctx/data"
chmod 1777 "$root/tmp"
scripts/make-bundle.sh --out "$root/opt/gridwatch" "${bundle_args[@]}"
g=$root/opt/gridwatch

if [ -n "$cuda" ]; then
  [ -f "$g/lib/libonnxruntime_providers_cuda.so" ] ||
    { say "--cuda needs the GPU build: --features cuda,tensorrt --ort-wheel onnxruntime_gpu-1.31.1-….whl"; exit 2; }
  wheels=.cache/cuda-wheels
  mkdir -p "$wheels"
  # what onnxruntime-gpu 1.31.1's cuda and cudnn extras name (its METADATA)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$wheels" \
    "nvidia-cuda-runtime~=13.0" "nvidia-cuda-nvrtc~=13.0" "nvidia-cufft~=12.0" \
    "nvidia-curand~=10.0" "nvidia-cudnn-cu13~=9.0" "nvidia-cublas~=13.0"
  mkdir -p "$g/lib/cuda"
  for w in "$wheels"/*.whl; do
    python3 - "$w" "$g/lib/cuda" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if "/lib/" in n and ".so" in base:
            with z.open(n) as src, open(os.path.join(dest, base), "wb") as dst:
                dst.write(src.read())
PY
  done
fi

# the system libraries the binary and the bundled ones need that the bundle leaves out
# (by name: ldd of a bundled library alone resolves its needs to this machine's copies)
for f in "$g/bin/gridwatch" "$g"/lib/*.so*; do
  ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name lib; do
  [ -e "$g/lib/$name" ] || [ -e "$g/lib/cuda/$name" ] || cp -L "$lib" "$root/lib/x86_64-linux-gnu/$name"
done
[ -f "$root/lib64/ld-linux-x86-64.so.2" ] || cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
mkdir -p "$root/licences"
for p in libc6 libstdc++6 libgcc-s1 ca-certificates; do
  [ -f "/usr/share/doc/$p/copyright" ] && cp "/usr/share/doc/$p/copyright" "$root/licences/$p"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/sbin/nologin\ngridwatch:x:65532:65532:gridwatch:/data:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\ngridwatch:x:65532:\n' > "$root/etc/group"

ldpath=/opt/gridwatch/lib
[ -n "$cuda" ] && ldpath=/opt/gridwatch/lib/cuda:$ldpath
cat > "$ctx/Containerfile" <<EOF
FROM scratch
COPY root/ /
COPY --chown=65532:65532 data/ /data/
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    LD_LIBRARY_PATH=$ldpath \\
    GRIDWATCH_HOME=/opt/gridwatch \\
    HOME=/data
USER 65532:65532
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["/opt/gridwatch/bin/gridwatch"]
CMD ["--help"]
EOF
say "$ctx: build context ($(du -sh "$root" | cut -f1))"

if ! command -v podman >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  say "installing podman (Debian) to build the image"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc >/dev/null ||
    say "could not install podman"
fi
if command -v podman >/dev/null; then
  podman build -q -t "$tag" "$ctx" >/dev/null
  rm -f dist/gridwatch-image.tar
  podman save -q --format oci-archive -o dist/gridwatch-image.tar "$tag"
  say "$tag: dist/gridwatch-image.tar ($(du -sh dist/gridwatch-image.tar | cut -f1))"
else
  say "no podman here: build $ctx with any OCI builder (podman/docker/buildah build $ctx)"
fi

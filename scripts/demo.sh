#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), builds gridwatch, and runs the main job
# on the built-in defaults: the bundled NanoDet model over the bundled street clip,
# one frame a second, writing detections and annotated frames to out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
exec target/release/gridwatch detect samples/street.mp4 --every 1s --out out/demo "$@"

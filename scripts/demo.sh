#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), builds gridwatch, and runs the main job
# on the built-in defaults: the service (`gridwatch run`) with the bundled street clip
# as a looping camera, the bundled NanoDet model, the sample scene's calibration, zones
# and grid, the embedded case store (data/) and the built-in Open311 inbox. It prints
# the review page's address; Ctrl-C stops it. Extra arguments go to `gridwatch run`,
# e.g. `scripts/demo.sh --listen 0.0.0.0:8080`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
echo "demo: starting gridwatch; the first case (the van parked on the service road) shows up about 30 s after start" >&2
exec target/release/gridwatch run "$@"

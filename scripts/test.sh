#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then runs every test: unit and
# integration tests (cargo test), and a check that the Python reference still
# reproduces the committed golden detections the parity test compares against.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

.venv/bin/python scripts/reference_detect.py --manifest models/nanodet-coco-416.toml \
  --images samples/dog.jpg samples/person.jpg samples/kite.jpg \
  --clip samples/street.mp4 --every-ms 8500 --check tests/golden/nanodet-coco-416.jsonl

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --quiet "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# one closing line for the whole run (cargo prints one per test binary)
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"

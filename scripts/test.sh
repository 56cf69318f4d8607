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

cargo test --release --quiet "$@"

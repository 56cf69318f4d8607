#!/usr/bin/env bash
# A soak run: `gridwatch run` with good cameras and bad ones side by side for a while,
# sampling the process's resident memory, threads and open files, to show that what
# a bad stream does stays bounded and the good cameras keep going. Not part of CI (it
# takes minutes); docs/ingest.md shows a run.
#
#   scripts/soak.sh [--good-only | --config FILE] [MINUTES] [OUT.csv]
#                                               (default: 10 minutes, target/soak.csv)
#
# With --good-only the bad cameras are left out: run both side by side to see what the
# bad ones cost. With --config FILE it soaks that config instead (the built-in demo:
# `target/release/gridwatch config default > demo.toml` in the checkout, then
# `scripts/soak.sh --config demo.toml 240`); its api.listen is replaced by a free port.
#
# Cameras (files from the conformance corpus, played in real time, looping):
#   good-street     samples/street.mp4 every 1s (the demo's clip, B-frames)
#   good-dumping    tests/fixtures/clips/street-dumping.mp4 every 1s
#   good-cam        h264-cam-25fps.mp4 every 500ms
#   bad-corrupt     h264-corrupt.ts every 1s (noise over 40 transport packets)
#   bad-garbage     tests/fixtures/clips/garbage.h264 (slice data all noise): no picture
#   bad-noindex     h264-cut-noindex.mp4: cannot be opened, retried with backoff
#   bad-fifo        a FIFO whose writer stops after 60 kB: every read wedges
# Needs a release build (cargo build --release) and scripts/setup.sh's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
good_only=
given=
if [ "${1:-}" = "--good-only" ]; then good_only=1; shift; fi
if [ "${1:-}" = "--config" ]; then given=$(realpath "$2"); shift 2; fi
minutes=${1:-10}
out=${2:-target/soak.csv}
exe=target/release/gridwatch
[ -x "$exe" ] || { echo "soak: build first: cargo build --release" >&2; exit 1; }
scripts/make-corpus.sh target/corpus
work=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  [ -n "${writer:-}" ] && kill "$writer" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkfifo "$work/stuck.ts"
# the writer sends the head of a clip, then holds the FIFO open without writing
/usr/bin/python3 - "$work/stuck.ts" target/corpus/h264-bframes.ts <<'PY' &
import sys, time
data = open(sys.argv[2], "rb").read()[:60000]
with open(sys.argv[1], "wb") as w:
    w.write(data); w.flush()
    time.sleep(1e9)
PY
writer=$!
c=target/corpus
cat >"$work/gridwatch.toml" <<EOF
data_dir = "$work/data"
[api]
listen = "127.0.0.1:0"
open_writes = true
[geo]
zones = "$PWD/samples/geo/zones.geojson"
grid = "$PWD/samples/geo/grid.geojson"
$(for cam in "good-street|$PWD/samples/street.mp4|1s" "good-dumping|$PWD/tests/fixtures/clips/street-dumping.mp4|1s" \
             "good-cam|$PWD/$c/h264-cam-25fps.mp4|500ms" "bad-corrupt|$PWD/$c/h264-corrupt.ts|1s" \
             "bad-garbage|$PWD/tests/fixtures/clips/garbage.h264|1s" "bad-noindex|$PWD/$c/h264-cut-noindex.mp4|1s" \
             "bad-fifo|$work/stuck.ts|1s"; do
  IFS='|' read -r id src every <<<"$cam"
  [ -n "$good_only" ] && [ "${id#bad}" != "$id" ] && continue
  printf '[[camera]]\nid = "%s"\nsource = "%s"\nevery = "%s"\ncalibration = "%s"\n' \
    "$id" "$src" "$every" "$PWD/calibration/street.toml"
done)
EOF
if [ -n "$given" ]; then
  # the given config, on a free port, its data in the work folder
  (cd "$(dirname "$given")" && exec "$OLDPWD/$exe" run --config "$given" --listen 127.0.0.1:0 --data "$work/data") \
    >"$work/stdout" 2>"$work/log" &
else
  "$exe" run --config "$work/gridwatch.toml" >"$work/stdout" 2>"$work/log" &
fi
pid=$!
for _ in $(seq 50); do grep -q http "$work/stdout" && break; sleep 0.2; done
url=$(grep -o 'http://[0-9.:]*' "$work/stdout" | head -1)
[ -n "$url" ] || { cat "$work/log" >&2; exit 1; }
echo "soak: gridwatch run (pid $pid) at $url for $minutes min; samples every 30 s into $out" >&2
mkdir -p "$(dirname "$out")"
echo "seconds,rss_mb,threads,open_files,good_frames,bad_faults,states" >"$out"
start=$(date +%s)
end=$((start + minutes * 60))
while [ "$(date +%s)" -le "$end" ]; do
  t=$(($(date +%s) - start))
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  threads=$(awk '/Threads/ {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  cams=$(curl -s "$url/api/cameras")
  line=$(echo "$cams" | /usr/bin/python3 -c '
import json, sys
cams = json.load(sys.stdin)
good = sum(c.get("handed_on", 0) for c in cams if c["id"].startswith("good"))
faults = sum(c.get("decoder_faults", 0) for c in cams if c["id"].startswith("bad"))
states = " ".join(c["id"] + "=" + c["state"] for c in cams)
print(f"{good},{faults},{states}")')
  echo "$t,$rss,$threads,$fds,$line" | tee -a "$out"
  sleep 30
done
kill -TERM "$pid"
t0=$(date +%s.%N)
wait "$pid" || true
echo "soak: exited $(echo "$(date +%s.%N) - $t0" | bc) s after SIGTERM" >&2

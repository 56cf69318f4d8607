#!/usr/bin/env bash
# Writes the small clips the ingest tests serve over RTSP (committed under
# tests/fixtures/clips/), from samples/street.mp4:
#   street-h265.mp4  H.265, 384x288, 10 fps, 60 s, keyframe every 2 s, closed GOPs
#                    (retina counts only IDR frames as keyframes: open GOPs would
#                    show few), no B-frames
#   garbage.h264     raw Annex-B H.264 whose parameter sets are intact but whose slice
#                    data is overwritten with noise, some NAL units cut short
#   street-dumping.mp4  the first 60 s of the street clip where, from 20 s on, an object
#                    cut from a photo (the bicycle of samples/dog.jpg, 110 px wide) lies
#                    on the lawn at (120, 420) and stays: the dumping test's input and
#                    the demo's second camera; x264 defaults (B-frames), keyframe every 2 s
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fixtures/clips
mkdir -p "$out"
ffmpeg -hide_banner -loglevel error -y -i samples/street.mp4 -t 60 -an -vf scale=384:288 \
  -c:v libx265 -preset fast -crf 30 -pix_fmt yuv420p -tag:v hvc1 \
  -x265-params "keyint=20:min-keyint=20:scenecut=0:open-gop=0:bframes=0:log-level=error" \
  "$out/street-h265.mp4"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ffmpeg -hide_banner -loglevel error -y -i samples/street.mp4 -t 30 -an -c:v copy \
  -bsf:v h264_mp4toannexb -f h264 "$tmp/clean.h264"
/usr/bin/python3 - "$tmp/clean.h264" "$out/garbage.h264" <<'PY'
import random, re, sys
data = open(sys.argv[1], "rb").read()
starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
rng = random.Random(7)
out = bytearray()
for i, s in enumerate(starts):
    end = starts[i + 1] if i + 1 < len(starts) else len(data)
    nal = bytearray(data[s:end])
    kind = nal[3] & 0x1F
    if kind in (1, 5) and len(nal) > 12:
        body = len(nal) - 8
        nal[8:] = bytes(rng.randrange(1, 256) for _ in range(body))  # noise, no start codes
        if rng.random() < 0.3:
            nal = nal[: max(9, len(nal) // 3)]  # truncated
    out += nal
open(sys.argv[2], "wb").write(bytes(out))
PY
ffmpeg -hide_banner -loglevel error -y -i samples/street.mp4 -i samples/dog.jpg -t 60 -an \
  -filter_complex "[1]crop=450:310:120:120,scale=110:-2[obj];[0][obj]overlay=120:420:enable='gte(t,20)'" \
  -c:v libx264 -preset medium -crf 27 -profile:v high -pix_fmt yuv420p \
  -g 20 -threads 1 "$out/street-dumping.mp4"
ls -la "$out"

#!/usr/bin/env bash
# Builds the video conformance corpus: short clips encoded the way cameras, recorders
# and exporters write them, from samples/street.mp4, with Debian's ffmpeg (libx264,
# libx265, FFmpeg's own MPEG-4 Part 2, MJPEG and AAC encoders) and nothing else.
#
#   scripts/make-corpus.sh [DIR]      (default: target/corpus)
#
# Safe to run again and from several test processes at once: it takes a lock, and
# does nothing when DIR holds a corpus made by this very script (its checksum is
# kept in DIR/STAMP). docs/ingest.md has the support table; tests/conformance.rs
# checks every clip against FFmpeg's own decode.
#
# The clips (384x288 unless said, 10 fps, 8 s unless said):
#   h264-medium.mp4        x264 preset medium defaults: 3 B-frames, b-pyramid, keyint 250
#                          with scene cuts (what `ffmpeg -i in -c:v libx264 out.mp4` makes)
#   h264-slow.mp4          x264 preset slow: b-adapt 2, 5 reference frames
#   h264-cam-25fps.mp4     25 fps, keyframe every 1 s, B-frames (an IP camera's main stream)
#   h264-baseline.mp4      Constrained Baseline, no B-frames (cheap cameras, phones)
#   h264-longgop.mkv       Matroska, keyframe every 10 s (100 frames), B-frames, 14 s
#   h264-opengop.mp4       x264 open GOP (non-IDR I-frames with recovery points)
#   hevc-opengop.mp4       x265 defaults: 4 B-frames, open GOP (CRA keyframes), keyint 20
#   hevc-10bit.mkv         x265 Main 10 (yuv420p10le), closed GOP, B-frames
#   h264-pal-interlaced.ts PAL D1 720x576 25i, top field first, interlaced coding, MPEG-TS
#   h264-vfr.mp4           variable frame rate: frames left out irregularly
#   h264-bframes.ts        the 25 fps camera clip in MPEG-TS (no index: not seekable)
#   h264-audio.mp4         with an AAC audio track (a recorder's export)
#   mjpeg.avi              Motion JPEG in AVI (older IP cameras)
#   mpeg4-asp.avi          MPEG-4 Part 2 with B-frames in AVI (DVR exports)
#   h264-size-change.ts    384x288 for 4 s, then 640x480 (a camera reconfigured), one timeline
#   h264-ts-discont.ts     two MPEG-TS segments that both start at time 0, concatenated
#   h264-cut.mp4           an MP4 with its index first, cut off at 60 % (a recording
#                          interrupted mid-write)
#   h264-cut-noindex.mp4   an MP4 with its index last, cut off at 60 %: unreadable
#   h264-corrupt.ts        MPEG-TS with 40 transport packets overwritten with noise mid-file
#   h264-corrupt.mp4       MP4 whose picture data has noise written over it mid-file
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/corpus}
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
stamp=$(sha256sum "$0" samples/street.mp4 | sha256sum | cut -c1-16)
if [ -f "$out/STAMP" ] && [ "$(cat "$out/STAMP")" = "$stamp" ]; then
  exit 0
fi
command -v ffmpeg >/dev/null || { echo "make-corpus: ffmpeg is missing (apt-get install ffmpeg)" >&2; exit 1; }
rm -f "$out"/*.mp4 "$out"/*.mkv "$out"/*.ts "$out"/*.avi "$out/STAMP"
src=samples/street.mp4
ff() { ffmpeg -hide_banner -loglevel error -nostdin -y "$@"; }
small=(-vf scale=384:288)
x264() { ff -i "$src" -t "${T:-8}" -an "${small[@]}" -c:v libx264 -threads 1 -pix_fmt yuv420p "$@"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

x264 -preset medium -crf 26 "$out/h264-medium.mp4"
x264 -preset slow -crf 26 "$out/h264-slow.mp4"
ff -i "$src" -t 8 -an -vf scale=384:288,fps=25 -c:v libx264 -threads 1 -pix_fmt yuv420p \
  -preset veryfast -crf 26 -g 25 -keyint_min 25 -sc_threshold 0 "$out/h264-cam-25fps.mp4"
x264 -profile:v baseline -preset fast -crf 26 "$out/h264-baseline.mp4"
T=14 x264 -preset fast -crf 26 -g 100 -keyint_min 100 -sc_threshold 0 "$out/h264-longgop.mkv"
x264 -preset fast -crf 26 -g 20 -x264-params open-gop=1 "$out/h264-opengop.mp4"
ff -i "$src" -t 8 -an "${small[@]}" -c:v libx265 -preset fast -crf 30 -tag:v hvc1 \
  -x265-params "keyint=20:min-keyint=20:log-level=error:pools=1:frame-threads=1" "$out/hevc-opengop.mp4"
ff -i "$src" -t 8 -an "${small[@]}" -c:v libx265 -preset fast -crf 30 -pix_fmt yuv420p10le \
  -x265-params "keyint=20:open-gop=0:log-level=error:pools=1:frame-threads=1" "$out/hevc-10bit.mkv"
ff -i "$src" -t 8 -an -vf "scale=720:576,fps=50,tinterlace=mode=interleave_top,setfield=tff" \
  -c:v libx264 -threads 1 -preset veryfast -crf 26 -pix_fmt yuv420p -g 50 \
  -flags +ildct+ilme -x264-params tff=1 "$out/h264-pal-interlaced.ts"
ff -i "$src" -t 8 -an -vf "scale=384:288,select='not(eq(mod(n\,7)\,3))*not(eq(mod(n\,11)\,5))*not(between(n\,40\,44))'" \
  -fps_mode vfr -c:v libx264 -threads 1 -preset fast -crf 26 -pix_fmt yuv420p "$out/h264-vfr.mp4"
ff -i "$out/h264-cam-25fps.mp4" -c copy -f mpegts "$out/h264-bframes.ts"
ff -i "$src" -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 8 "${small[@]}" \
  -c:v libx264 -threads 1 -preset fast -crf 26 -pix_fmt yuv420p -c:a aac -b:a 64k -shortest \
  "$out/h264-audio.mp4"
ff -i "$src" -t 8 -an "${small[@]}" -c:v mjpeg -q:v 5 -pix_fmt yuvj420p "$out/mjpeg.avi"
ff -i "$src" -t 8 -an "${small[@]}" -c:v mpeg4 -q:v 5 -bf 2 -g 20 -vtag XVID "$out/mpeg4-asp.avi"

# a camera reconfigured: same timeline, a new size (and new parameter sets) at 4 s
ff -i "$src" -t 4 -an "${small[@]}" -c:v libx264 -threads 1 -preset fast -crf 26 -pix_fmt yuv420p \
  -g 20 -f mpegts "$tmp/a.ts"
ff -ss 4 -i "$src" -t 4 -an -vf scale=640:480 -c:v libx264 -threads 1 -preset fast -crf 26 \
  -pix_fmt yuv420p -g 20 -output_ts_offset 4 -f mpegts "$tmp/b.ts"
cat "$tmp/a.ts" "$tmp/b.ts" >"$out/h264-size-change.ts"
# two recordings that each start at 0, joined by `cat`
ff -ss 4 -i "$src" -t 4 -an "${small[@]}" -c:v libx264 -threads 1 -preset fast -crf 26 \
  -pix_fmt yuv420p -g 20 -f mpegts "$tmp/c.ts"
cat "$tmp/a.ts" "$tmp/c.ts" >"$out/h264-ts-discont.ts"

cut_at() { head -c "$(($(stat -c %s "$1") * 60 / 100))" "$1" >"$2"; }
x264 -preset fast -crf 26 -g 20 -movflags +faststart "$tmp/indexed.mp4"
cut_at "$tmp/indexed.mp4" "$out/h264-cut.mp4"
x264 -preset fast -crf 26 -g 20 "$tmp/plain.mp4"
cut_at "$tmp/plain.mp4" "$out/h264-cut-noindex.mp4"

/usr/bin/python3 - "$out/h264-bframes.ts" "$out/h264-corrupt.ts" "$tmp/indexed.mp4" "$out/h264-corrupt.mp4" <<'PY'
import random, sys
rng = random.Random(15)
ts = bytearray(open(sys.argv[1], "rb").read())
n = len(ts) // 188
for k in rng.sample(range(n * 2 // 5, n * 3 // 5), 40):
    # keep the sync byte and header; noise over the payload
    ts[k * 188 + 4:(k + 1) * 188] = bytes(rng.randrange(256) for _ in range(184))
open(sys.argv[2], "wb").write(ts)
mp4 = bytearray(open(sys.argv[3], "rb").read())
mdat = mp4.find(b"mdat")
body = len(mp4) - mdat
for _ in range(12):
    at = mdat + rng.randrange(body * 2 // 5, body * 3 // 5)
    mp4[at:at + 64] = bytes(rng.randrange(256) for _ in range(64))
open(sys.argv[4], "wb").write(mp4)
PY
echo "$stamp" >"$out/STAMP"

#!/usr/bin/env bash
# Reproduces samples/ from the Debian packages the media come from:
#   samples/street.mp4  vtest.avi from opencv-doc 4.6.0 (Apache-2.0 AND BSD-3-Clause),
#                       re-encoded as H.264 with x264's defaults (preset medium: three
#                       B-frames, b-pyramid, scene cuts, closed GOPs) and a keyframe
#                       every 2 s (10 fps: -g 20), as camera recordings and exports are
#   samples/*.jpg       dog, person, kite from darknet's data (GPL-3.0+ or MIT or WTFPL)
#   samples/frames/     four stills of street.mp4 (10 s, 30 s, 50 s, 70 s) for the
#                       hand-labelled set samples/labels/coco.json; labels are for the
#                       committed stills, so a rebuild keeps existing stills unless
#                       REFRAME=1 (a new x264 build can move a box by a pixel)
# x264 output can differ in bytes between builds; frame count, GOP and size do not.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in ffmpeg; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
work=.cache/samples
mkdir -p "$work" samples
(cd "$work" && [ -f opencv-doc.deb ] || { apt-get download -qq -o APT::Sandbox::User=root opencv-doc && mv opencv-doc_*.deb opencv-doc.deb; })
(cd "$work" && [ -f darknet.deb ] || { apt-get download -qq -o APT::Sandbox::User=root darknet && mv darknet_*.deb darknet.deb; })
dpkg-deb -x "$work/opencv-doc.deb" "$work/opencv-doc"
dpkg-deb -x "$work/darknet.deb" "$work/darknet"

vtest="$work/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi"
[ -f "$vtest" ] || vtest=$(find "$work/opencv-doc" -name 'vtest.avi*' | head -1)
case "$vtest" in *.gz) gunzip -kf "$vtest"; vtest="${vtest%.gz}";; esac
ffmpeg -hide_banner -loglevel error -y -i "$vtest" -an \
  -c:v libx264 -preset medium -crf 27 -profile:v high -pix_fmt yuv420p \
  -g 20 -threads 1 -movflags +faststart samples/street.mp4
mkdir -p samples/frames
for t in 10 30 50 70; do
  still="samples/frames/street-0${t}s.jpg"
  if [ ! -f "$still" ] || [ "${REFRAME:-0}" = 1 ]; then
    ffmpeg -hide_banner -loglevel error -y -ss "$t" -i samples/street.mp4 -frames:v 1 -q:v 2 "$still"
  fi
done
for f in dog person kite; do
  cp "$work/darknet/usr/share/darknet/data/$f.jpg" samples/
done
ffprobe -v error -select_streams v -show_entries stream=codec_name,width,height,r_frame_rate,nb_frames \
  -of compact samples/street.mp4
echo "samples written: samples/street.mp4 samples/{dog,person,kite}.jpg samples/frames/"

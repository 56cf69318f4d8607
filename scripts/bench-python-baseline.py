#!/usr/bin/env python3
"""The baseline gridwatch is measured against: what a user would write instead.

OpenCV's VideoCapture reads the clip; frames between samples are skipped with grab()
(which still decodes them: a video decoder needs every frame of a GOP), the sampled
ones are retrieve()d (colour conversion); each is preprocessed with cv2.resize and
numpy, run through onnxruntime (CPU, default threads), decoded and NMS'd in numpy —
the same steps as scripts/reference_detect.py, whose functions it uses, with the same
model manifest.

    .venv/bin/python scripts/bench-python-baseline.py --manifest models/nanodet-coco-416.toml \
        --clip samples/street.mp4 --every-ms 2000

Prints one JSON object: frames detected, frames read, wall seconds, frames per second.
`gridwatch bench --compare-baseline` runs it on the same clip, model and sampling, in the
same run, and reports the ratio.
"""

import argparse
import json
import os
import sys
import time

import cv2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_detect as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--every-ms", type=float, default=0.0, help="one frame per interval; 0: every frame")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after this many detected frames")
    args = ap.parse_args()

    det = ref.Reference(args.manifest)

    cap = cv2.VideoCapture(args.clip)
    if not cap.isOpened():
        sys.exit(f"cannot open {args.clip}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    # warm-up outside the timing, as gridwatch does
    ok, img = cap.read()
    if not ok:
        sys.exit(f"no frame in {args.clip}")
    det.detect(img)
    cap.release()
    cap = cv2.VideoCapture(args.clip)

    detected = read = 0
    next_ms = 0.0
    start = time.perf_counter()
    while True:
        if not cap.grab():
            break
        t_ms = read * 1000.0 / fps
        read += 1
        if args.every_ms > 0 and t_ms + 1e-6 < next_ms:
            continue
        ok, img = cap.retrieve()
        if not ok:
            break
        next_ms = t_ms + args.every_ms
        det.detect(img)
        detected += 1
        if args.max_frames and detected >= args.max_frames:
            break
    wall = time.perf_counter() - start
    print(json.dumps({
        "frames": detected,
        "read": read,
        "wall_s": wall,
        "fps": detected / wall if wall > 0 else 0.0,
    }))


if __name__ == "__main__":
    main()

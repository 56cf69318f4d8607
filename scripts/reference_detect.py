#!/usr/bin/env python3
"""Independent reference detector: Python + OpenCV + onnxruntime + numpy.

It reads the same model manifest as gridwatch and does what a Python user would:
cv2.imread / cv2.VideoCapture, cv2.resize(INTER_LINEAR), numpy normalisation,
onnxruntime inference, numpy decoding of the output layout, greedy class-aware NMS.
gridwatch's parity test compares its own detections with what this script wrote to
tests/golden/ (same classes, boxes within 1 px, scores within 1e-3).

    .venv/bin/python scripts/reference_detect.py --manifest models/nanodet-coco-416.toml \
        --images samples/dog.jpg samples/person.jpg samples/kite.jpg \
        --clip samples/street.mp4 --every-ms 8500 --out tests/golden/nanodet-coco-416.jsonl

With --check FILE it compares its fresh output with FILE instead of writing, and exits
non-zero on any difference beyond the tolerances.
"""

import argparse
import json
import math
import os
import sys
import tomllib

import cv2
import numpy as np
import onnxruntime as ort


def load_manifest(path):
    with open(path, "rb") as f:
        m = tomllib.load(f)
    base = os.path.dirname(path)
    if "classes" in m:
        classes = m["classes"]
    else:
        with open(os.path.join(base, m["classes_file"])) as f:
            classes = [l.strip() for l in f if l.strip()]
    inp = m["input"]
    inp.setdefault("layout", "nchw")
    inp.setdefault("channels", "rgb")
    inp.setdefault("mean", [0.0, 0.0, 0.0])
    inp.setdefault("std", [255.0, 255.0, 255.0])
    inp.setdefault("resize", "stretch")
    inp.setdefault("pad", 114)
    post = {"score_threshold": 0.35, "nms_iou": 0.5, "nms": True, "max_detections": 100}
    post.update(m.get("postprocess", {}))
    return {
        "file": os.path.join(base, m["file"]),
        "classes": classes,
        "input": inp,
        "output": m["output"],
        "post": post,
    }


def preprocess(img, inp):
    """BGR uint8 image -> (1, tensor) and the mapping back to image pixels."""
    h, w = img.shape[:2]
    W, H = inp["width"], inp["height"]
    if inp["resize"] == "letterbox":
        r = min(W / w, H / h)
        nw = min(max(int(round(w * r)), 1), W)
        nh = min(max(int(round(h * r)), 1), H)
        left = max(int(round((W - nw) / 2 - 0.1)), 0)
        top = max(int(round((H - nh) / 2 - 0.1)), 0)
    else:
        nw, nh, left, top = W, H, 0, 0
    resized = img if (nw, nh) == (w, h) else cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((H, W, 3), inp["pad"], dtype=np.uint8)
    canvas[top:top + nh, left:left + nw] = resized
    if inp["channels"] == "rgb":
        canvas = canvas[:, :, ::-1]
    x = (canvas.astype(np.float32) - np.array(inp["mean"], np.float32)) / np.array(inp["std"], np.float32)
    if inp["layout"] == "nchw":
        x = x.transpose(2, 0, 1)
    transform = (nw / w, nh / h, left, top, w, h)
    return np.ascontiguousarray(x[None]), transform


def decode(outputs, spec, num_classes, thr, in_w):
    """Candidates (boxes [K,4] in input pixels, scores [K], classes [K]) for item 0."""
    layout = spec["layout"]
    if layout == "nanodet":
        boxes_all, scores_all, classes_all = [], [], []
        k = len(spec["strides"])
        bins = spec["reg_max"] + 1
        for si, s in enumerate(spec["strides"]):
            scores = outputs[si][0]
            dist = outputs[k + si][0].reshape(-1, 4, bins)
            e = np.exp(dist - dist.max(axis=2, keepdims=True))
            p = e / e.sum(axis=2, keepdims=True)
            d = (p * np.arange(bins, dtype=np.float32)).sum(axis=2) * s
            n = math.ceil(in_w / s)
            idx, cls = np.nonzero(scores >= thr)
            cx = ((idx % n) + 0.5) * s
            cy = ((idx // n) + 0.5) * s
            b = np.stack([cx - d[idx, 0], cy - d[idx, 1], cx + d[idx, 2], cy + d[idx, 3]], axis=1)
            boxes_all.append(b)
            scores_all.append(scores[idx, cls])
            classes_all.append(cls)
        return (np.concatenate(boxes_all).astype(np.float32), np.concatenate(scores_all),
                np.concatenate(classes_all))
    out = outputs[0][0]
    if layout in ("yolov5", "yolov8"):
        if layout == "yolov8":
            out = out.T  # [N, 4 + C]
            cls_scores = out[:, 4:4 + num_classes]
            obj = np.ones(len(out), np.float32)
        else:
            cls_scores = out[:, 5:5 + num_classes]
            obj = out[:, 4]
        cls = cls_scores.argmax(axis=1)
        score = obj * cls_scores[np.arange(len(out)), cls]
        keep = score >= thr
        cx, cy, w, h = out[keep, 0], out[keep, 1], out[keep, 2], out[keep, 3]
        b = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return b, score[keep], cls[keep]
    if layout == "decoded":
        cls = out[:, 5]
        keep = (out[:, 4] >= thr) & (cls >= 0) & (cls < num_classes) & (cls == np.floor(cls))
        return out[keep, :4], out[keep, 4], out[keep, 5].astype(np.int64)
    raise SystemExit(f"unknown layout {layout}")


def iou(a, b):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = max(a[2] - a[0], 0) * max(a[3] - a[1], 0) + max(b[2] - b[0], 0) * max(b[3] - b[1], 0) - inter
    return 0.0 if union <= 0 else inter / union


def nms(boxes, scores, classes, thr, max_det):
    order = np.argsort(-scores, kind="stable")
    kept = []
    for i in order:
        if len(kept) >= max_det:
            break
        if thr is not None and any(classes[j] == classes[i] and iou(boxes[j], boxes[i]) > thr for j in kept):
            continue
        kept.append(i)
    return kept


class Reference:
    def __init__(self, manifest_path):
        self.m = load_manifest(manifest_path)
        opts = ort.SessionOptions()
        self.sess = ort.InferenceSession(self.m["file"], opts, providers=["CPUExecutionProvider"])
        spec = self.m["output"]
        if spec["layout"] == "nanodet":
            self.names = spec["scores"] + spec["boxes"]
        else:
            self.names = [spec["output"]]

    def detect(self, img):
        inp, post = self.m["input"], self.m["post"]
        x, (sx, sy, left, top, w, h) = preprocess(img, inp)
        outputs = self.sess.run(self.names, {inp["name"]: x})
        boxes, scores, classes = decode(outputs, self.m["output"], len(self.m["classes"]),
                                        post["score_threshold"], inp["width"])
        kept = nms(boxes, scores, classes, post["nms_iou"] if post["nms"] else None, post["max_detections"])
        dets = []
        for i in kept:
            b = boxes[i]
            box = [float(np.clip((b[0] - left) / sx, 0, w)), float(np.clip((b[1] - top) / sy, 0, h)),
                   float(np.clip((b[2] - left) / sx, 0, w)), float(np.clip((b[3] - top) / sy, 0, h))]
            c = int(classes[i])
            dets.append({"class": self.m["classes"][c], "class_id": c, "score": float(scores[i]), "box": box})
        return dets


def clip_frames(path, every_ms):
    """Sequentially decoded frames of a clip, sampled on gridwatch's grid rule."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    due = None
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = int(round(i * 1000.0 / fps))
        take = every_ms is None
        if not take:
            if due is None:
                due = t
            if t >= due:
                take = True
                due += ((t - due) // every_ms + 1) * every_ms
        if take:
            yield i, t, frame
        i += 1


def run(args):
    ref = Reference(args.manifest)
    lines = []
    for p in args.images or []:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {p}")
        for d in ref.detect(img):
            lines.append({"source": p, "frame": 0, "pts_ms": None, **d})
    if args.clip:
        for i, t, frame in clip_frames(args.clip, args.every_ms):
            for d in ref.detect(frame):
                lines.append({"source": args.clip, "frame": i, "pts_ms": t, **d})
    return lines


def compare(fresh, golden, thr):
    """Differences beyond 1 px / 1e-3 between two detection lists, as messages."""
    def key(d):
        return (os.path.basename(d["source"]), d["frame"])
    problems = []
    groups = {}
    for d in golden:
        groups.setdefault(key(d), ([], []))[0].append(d)
    for d in fresh:
        groups.setdefault(key(d), ([], []))[1].append(d)
    for k, (a, b) in sorted(groups.items()):
        unmatched = list(b)
        for d in a:
            match = None
            for e in unmatched:
                if e["class_id"] == d["class_id"] and all(abs(x - y) <= 1.0 for x, y in zip(d["box"], e["box"])):
                    match = e
                    break
            if match is None:
                if abs(d["score"] - thr) > 1e-3:
                    problems.append(f"{k}: {d} missing")
                continue
            unmatched.remove(match)
            if abs(match["score"] - d["score"]) > 1e-3:
                problems.append(f"{k}: score {match['score']} vs {d['score']}")
        problems += [f"{k}: extra {e}" for e in unmatched if abs(e["score"] - thr) > 1e-3]
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--images", nargs="*")
    ap.add_argument("--clip")
    ap.add_argument("--every-ms", type=int)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--out")
    group.add_argument("--check")
    args = ap.parse_args()
    lines = run(args)
    if args.out:
        with open(args.out, "w") as f:
            for l in lines:
                f.write(json.dumps(l) + "\n")
        print(f"{len(lines)} detections -> {args.out}")
        return
    with open(args.check) as f:
        golden = [json.loads(l) for l in f if l.strip()]
    thr = load_manifest(args.manifest)["post"]["score_threshold"]
    problems = compare(lines, golden, thr)
    if problems:
        print("\n".join(problems[:20]), file=sys.stderr)
        raise SystemExit(f"reference output differs from {args.check} in {len(problems)} place(s)")
    print(f"reference matches {args.check} ({len(lines)} detections)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Composites the scenes `gridwatch eval rules` is scored on, with their truth files.

    scripts/make-eval-scenes.py [DIR]        (default: target/eval-scenes)

Each scene is 60 s of samples/street.mp4 (from 0, 10 or 19 s in: the van stands on the
service road throughout) with objects cut from the sample photos (the bicycle and the
dog of samples/dog.jpg, boxes from samples/labels/coco.json) or a dark bag-sized patch
pasted on the lawn: left there and staying; taken away before the dwell or after it;
moved; put outside the zone; under a light change; hidden for a while. It is encoded
as a recorder exports (x264 defaults: B-frames; keyframe every 2 s). Beside the clips:
truth/<scene>.toml (what must and must not be reported, from the same parameters,
with each object's box: the pasted one's, the van's from the labelled stills),
zones.geojson (the sample zones, and each scene's own lawn zone) and gridwatch.toml
(a config with one camera per scene, the demo's dwell times: parking and dumping 30 s).

Safe to run again and from several test processes at once: it takes a lock and does
nothing when DIR holds scenes made by this very script from the same clip.
"""
import fcntl
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/eval-scenes"))
CLIP = os.path.join(ROOT, "samples/street.mp4")
DWELL = 30  # the config's dumping and parking dwell, s
LENGTH = 60  # each scene, s

# (name, patch, events, light change at, occluded span) — an event is
# (x, y, from_s, to_s or None); to None: stays to the end
SCENES = [
    ("stays-bicycle-a", "bicycle", [(120, 420, 5, None)], None, None),
    ("stays-bag-a", "bag", [(60, 470, 8, None)], None, None),
    ("stays-dog-a", "dog", [(250, 400, 4, None)], None, None),
    ("stays-bag-b", "bag", [(300, 480, 12, None)], None, None),
    ("stays-bicycle-b", "bicycle", [(40, 360, 15, None)], None, None),
    ("stays-dog-b", "dog", [(150, 430, 10, None)], None, None),
    ("stays-bag-c", "bag", [(200, 380, 6, None)], None, None),
    ("stays-bicycle-c", "bicycle", [(260, 440, 3, None)], None, None),
    ("gone-early-bag", "bag", [(100, 450, 8, 16)], None, None),
    ("gone-early-bicycle", "bicycle", [(150, 420, 5, 20)], None, None),
    ("gone-early-dog", "dog", [(220, 420, 6, 26)], None, None),
    ("gone-before-dwell-bag", "bag", [(280, 470, 10, 35)], None, None),
    ("gone-after-dwell-bicycle", "bicycle", [(120, 400, 4, 42)], None, None),
    ("gone-after-dwell-bag", "bag", [(70, 440, 8, 46)], None, None),
    ("gone-after-dwell-dog", "dog", [(300, 410, 5, 44)], None, None),
    ("outside-road-bag", "bag", [(520, 430, 6, None)], None, None),
    ("outside-road-bicycle", "bicycle", [(560, 470, 5, None)], None, None),
    ("outside-plaza-dog", "dog", [(460, 380, 8, None)], None, None),
    ("moved-bicycle", "bicycle", [(60, 380, 4, 12), (230, 460, 12, None)], None, None),
    ("moved-bag", "bag", [(320, 470, 3, 10), (120, 400, 10, None)], None, None),
    ("light-bag", "bag", [(180, 450, 6, None)], 24, None),
    ("light-bicycle", "bicycle", [(90, 410, 5, None)], 30, None),
    ("occluded-bicycle", "bicycle", [(200, 430, 5, None)], None, (18, 24)),
    ("occluded-dog", "dog", [(110, 400, 6, None)], None, (20, 23)),
]
OFFSETS = [0, 10, 19]


def patch_filter(kind, label, dog_boxes):
    """The filter making `label` from input 1 (dog.jpg), or a colour source for the bag."""
    if kind == "bag":
        return f"color=c=0x1e1e22:s=44x30:r=10[{label}]"
    x, y, w, h = dog_boxes["bicycle" if kind == "bicycle" else "dog"]
    width = 110 if kind == "bicycle" else 56
    return f"[1]crop={w}:{h}:{x}:{y},scale={width}:-2[{label}]"


def patch_size(kind, dog_boxes):
    if kind == "bag":
        return 44, 30
    x, y, w, h = dog_boxes["bicycle" if kind == "bicycle" else "dog"]
    width = 110 if kind == "bicycle" else 56
    return width, round(h * width / w / 2) * 2


def in_lawn(fx, fy):
    """Whether a foot point lies in the lawn zone (0,300) (420,330) (420,576) (0,576)."""
    if not 0 <= fx <= 420 or fy > 576:
        return False
    return fy >= 300 + 30 * fx / 420


def main():
    os.makedirs(OUT, exist_ok=True)
    lock = open(os.path.join(OUT, ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    h = hashlib.sha256()
    for p in (__file__, CLIP):
        h.update(open(p, "rb").read())
    stamp = h.hexdigest()[:16]
    stamp_file = os.path.join(OUT, "STAMP")
    if os.path.exists(stamp_file) and open(stamp_file).read().strip() == stamp:
        return
    if os.path.exists(stamp_file):
        os.remove(stamp_file)
    labels = json.load(open(os.path.join(ROOT, "samples/labels/coco.json")))
    dog_id = next(i["id"] for i in labels["images"] if i["file_name"] == "dog.jpg")
    names = {c["id"]: c["name"] for c in labels["categories"]}
    dog_boxes = {names[a["category_id"]]: a["bbox"] for a in labels["annotations"] if a["image_id"] == dog_id}
    # the van: the largest car of the labelled still at 10 s (it does not move)
    still = next(i["id"] for i in labels["images"] if i["file_name"] == "frames/street-010s.jpg")
    van_box = max((a["bbox"] for a in labels["annotations"]
                   if a["image_id"] == still and names[a["category_id"]] == "car"), key=lambda b: b[2] * b[3])
    for d in ("clips", "truth"):
        os.makedirs(os.path.join(OUT, d), exist_ok=True)
    zones = json.load(open(os.path.join(ROOT, "samples/geo/zones.geojson")))
    lawn = next(f for f in zones["features"] if f.get("id") == "nd-grass")
    features = [f for f in zones["features"] if f["properties"]["kind"] != "no_dumping"]
    config = [
        "# made by scripts/make-eval-scenes.py: one camera per composited scene",
        "[geo]",
        'zones = "zones.geojson"',
        f'grid = "{ROOT}/samples/geo/grid.geojson"',
        "[rules]",
        "override_zone_dwell = true",
        f'parking = {{ dwell = "{DWELL}s" }}',
        'vending = { dwell = "60s" }',
        f'dumping = {{ dwell = "{DWELL}s" }}',
    ]
    for n, (name, kind, events, light, hidden) in enumerate(SCENES):
        cam = f"scene-{n + 1:02d}-{name}"
        offset = OFFSETS[n % len(OFFSETS)]
        zone = f"nd-{cam}"
        f = json.loads(json.dumps(lawn))
        f["id"] = zone
        f["properties"]["camera"] = cam
        features.append(f)
        w, h = patch_size(kind, dog_boxes)
        graph, last = [], "0:v"
        for i, (x, y, a, b) in enumerate(events):
            graph.append(patch_filter(kind, f"p{i}", dog_boxes))
            until = b if b is not None else LENGTH + 1
            graph.append(f"[{last}][p{i}]overlay={x}:{y}:enable='between(t,{a},{until})'[v{i}]")
            last = f"v{i}"
        if hidden:
            x, y = events[-1][0], events[-1][1]
            graph.append(
                f"[{last}]drawbox=x={x - 10}:y={y - 10}:w={w + 20}:h={h + 20}:color=0x6b705c@1:t=fill:"
                f"enable='between(t,{hidden[0]},{hidden[1]})'[vh]"
            )
            last = "vh"
        if light:
            graph.append(f"[{last}]eq=brightness=0.12:enable='gte(t,{light})'[vl]")
            last = "vl"
        graph.append(f"[{last}]null[out]")
        clip = os.path.join(OUT, "clips", cam + ".mp4")
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
             "-ss", str(offset), "-t", str(LENGTH), "-i", CLIP,
             "-loop", "1", "-framerate", "10", "-i", os.path.join(ROOT, "samples/dog.jpg"),
             "-filter_complex", ";".join(graph), "-map", "[out]", "-t", str(LENGTH), "-an",
             "-c:v", "libx264", "-preset", "medium", "-crf", "27", "-profile:v", "high",
             "-pix_fmt", "yuv420p", "-g", "20", "-threads", "2", clip],
            check=True,
        )
        # the truth, from the same parameters
        truth = [f'description = "{name}: {kind} {events}, light {light}, hidden {hidden}, from {offset} s of the street clip"',
                 "", "# the van on the service road, throughout",
                 "[[expect]]", 'kind = "illegal_parking"', 'zone = "np-service-road"',
                 'from = "0s"', f'earliest = "{DWELL}s"', f'latest = "{DWELL + 15}s"',
                 f"box = {json.dumps(van_box)}"]
        x, y, a, b = events[-1]
        foot = (x + w / 2, y + h)
        stays = b is None or b - a >= DWELL
        if in_lawn(*foot) and stays:
            # the last position is the one that can stay for the dwell
            latest = min(a + DWELL + 12, b + 3 if b is not None else LENGTH)
            truth += ["", "[[expect]]", 'kind = "dumping"', f'zone = "{zone}"', f'from = "{a}s"',
                      f'earliest = "{a + DWELL}s"', f'latest = "{latest}s"', f"box = [{x}, {y}, {w}, {h}]"]
        else:
            why = "outside the lawn" if not in_lawn(*foot) else f"taken away after {b - a} s"
            truth += ["", "[[forbid]]", 'kind = "dumping"', f'zone = "{zone}"', f'note = "the {kind}: {why}"']
        open(os.path.join(OUT, "truth", cam + ".toml"), "w").write("\n".join(truth) + "\n")
        config += ["", "[[camera]]", f'id = "{cam}"', f'source = "clips/{cam}.mp4"', 'every = "1s"',
                   f'calibration = "{ROOT}/calibration/street.toml"']
    zones["features"] = features
    json.dump(zones, open(os.path.join(OUT, "zones.geojson"), "w"), indent=1)
    open(os.path.join(OUT, "gridwatch.toml"), "w").write("\n".join(config) + "\n")
    open(stamp_file, "w").write(stamp + "\n")
    print(f"{len(SCENES)} scenes in {OUT}")


main()

#!/usr/bin/env python3
"""Writes the example geo data for the sample street scene:

  calibration/street.toml      control points for samples/street.mp4 (768x576)
  samples/geo/zones.geojson    zones over the scene (WGS84, plus one pixel zone)
  samples/geo/grid.geojson     a small management grid covering it

The clip comes from a campus whose real coordinates are unknown, so the example is
placed at an illustrative spot (31.2304 N, 121.4737 E) with a plausible camera: 8 m up,
looking 35 degrees down, 60 degrees horizontal field of view, facing north-east. Ground
positions of chosen image points follow from that camera (a flat-ground pinhole, the same
model as src/geo/drone.rs), so the calibration is self-consistent; it is an example of
the format and of the pipeline, not a survey.

Run: python3 scripts/make-example-geo.py
"""

import json
import math
import os

ROOT = os.path.join(os.path.dirname(__file__), "..")
ORIGIN = (31.2304, 121.4737)  # lat, lon of the camera's foot
W, H, HFOV = 768, 576, 60.0
ALT, PITCH, HEADING = 8.0, -35.0, 30.0


def m_per_deg(lat):
    phi = math.radians(lat)
    mlat = 111132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi) - 0.0023 * math.cos(6 * phi)
    mlon = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    return mlat, mlon


def pixel_to_ground(x, y):
    f = (W / 2) / math.tan(math.radians(HFOV) / 2)
    u, v = (x - W / 2) / f, (y - H / 2) / f
    h, p = math.radians(HEADING), math.radians(PITCH)
    fwd = (math.sin(h) * math.cos(p), math.cos(h) * math.cos(p), math.sin(p))
    right = (math.cos(h), -math.sin(h), 0.0)
    up = (-math.sin(h) * math.sin(p), -math.cos(h) * math.sin(p), math.cos(p))
    ray = [fwd[i] + right[i] * u - up[i] * v for i in range(3)]
    assert ray[2] < 0, (x, y)
    t = ALT / -ray[2]
    east, north = ray[0] * t, ray[1] * t
    mlat, mlon = m_per_deg(ORIGIN[0])
    return ORIGIN[0] + north / mlat, ORIGIN[1] + east / mlon


def ring(pixels):
    pts = [pixel_to_ground(x, y) for x, y in pixels]
    coords = [[round(lon, 8), round(lat, 8)] for lat, lon in pts]
    return coords + [coords[0]]


def main():
    # ground points visible in the clip: cone bases, the van's rear wheels, kerb corners
    chosen = [(40, 190), (298, 207), (446, 198), (690, 97), (505, 470), (740, 470), (60, 530), (330, 300)]
    lines = [
        "# Example calibration for samples/street.mp4 (written by scripts/make-example-geo.py).",
        "# Illustrative coordinates: see that script. Pixel x, y on the ground <-> lat, lon.",
        'camera = "street"',
        f"image_width = {W}",
        f"image_height = {H}",
        "points = [",
    ]
    for x, y in chosen:
        lat, lon = pixel_to_ground(x, y)
        lines.append(f"  {{ x = {x:.1f}, y = {y:.1f}, lat = {lat:.8f}, lon = {lon:.8f} }},")
    lines.append("]")
    os.makedirs(os.path.join(ROOT, "calibration"), exist_ok=True)
    with open(os.path.join(ROOT, "calibration", "street.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")

    zones = {
        "type": "FeatureCollection",
        "timezone": "Asia/Shanghai",
        "features": [
            {
                "type": "Feature",
                "id": "np-service-road",
                "properties": {"kind": "no_parking", "name": "service road by the entrance", "params": {"dwell": "5m"}},
                "geometry": {"type": "Polygon", "coordinates": [ring([(600, 58), (730, 50), (730, 128), (600, 125)])]},
            },
            {
                "type": "Feature",
                "id": "nv-plaza",
                "properties": {
                    "kind": "no_vending",
                    "name": "plaza and crossing",
                    "windows": ["Mon-Fri 07:00-20:00", "Sat,Sun 09:00-22:00"],
                    "params": {"dwell": "3m"},
                },
                # the sign post's base is a hole: not part of the plaza
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        ring([(0, 200), (600, 175), (768, 330), (768, 470), (330, 300), (0, 240)]),
                        ring([(418, 228), (440, 228), (440, 244), (418, 244)]),
                    ],
                },
            },
            {
                "type": "Feature",
                "id": "cw-gravel",
                "properties": {"kind": "construction_watch", "name": "gravel bed", "params": {"min_change_hours": 12}},
                "geometry": {"type": "Polygon", "coordinates": [ring([(320, 170), (460, 165), (470, 205), (330, 210)])]},
            },
            {
                "type": "Feature",
                "id": "nd-grass",
                "properties": {"kind": "no_dumping", "name": "lawn", "camera": "street"},
                "geometry": {"type": "Polygon", "coordinates": [[[0, 300], [420, 330], [420, 576], [0, 576], [0, 300]]]},
            },
            {
                # the demo's second camera (the dumping clip: the same view) watches the
                # lawn too; pixel zones belong to one camera each
                "type": "Feature",
                "id": "nd-grass-east",
                "properties": {"kind": "no_dumping", "name": "lawn", "camera": "street-east"},
                "geometry": {"type": "Polygon", "coordinates": [[[0, 300], [420, 330], [420, 576], [0, 576], [0, 300]]]},
            },
        ],
    }
    os.makedirs(os.path.join(ROOT, "samples", "geo"), exist_ok=True)
    with open(os.path.join(ROOT, "samples", "geo", "zones.geojson"), "w") as f:
        json.dump(zones, f, indent=1)

    # a 6 x 6 grid of 15 m cells around the scene, south-west corner 5 m south-west of
    # the camera
    mlat, mlon = m_per_deg(ORIGIN[0])
    cells = []
    for row in range(6):
        for col in range(6):
            e0, n0 = -5 + col * 15, -5 + row * 15
            corners = [(e0, n0), (e0 + 15, n0), (e0 + 15, n0 + 15), (e0, n0 + 15), (e0, n0)]
            coords = [[round(ORIGIN[1] + e / mlon, 8), round(ORIGIN[0] + n / mlat, 8)] for e, n in corners]
            community = "Riverside" if col < 3 else "Parkview"
            cells.append({
                "type": "Feature",
                "properties": {
                    "grid_code": f"310101-007-{row:02d}{col:02d}",
                    "community": community,
                    "street": "Nanjing East Road Subdistrict",
                    "district": "Huangpu District",
                },
                "geometry": {"type": "Polygon", "coordinates": [coords]},
            })
    with open(os.path.join(ROOT, "samples", "geo", "grid.geojson"), "w") as f:
        json.dump({"type": "FeatureCollection", "features": cells}, f, indent=1)
    print("wrote calibration/street.toml, samples/geo/zones.geojson, samples/geo/grid.geojson")


if __name__ == "__main__":
    main()

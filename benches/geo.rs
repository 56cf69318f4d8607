//! Geo lookups: grid cell of a point over 10 000 cells (R-tree + exact test), zone
//! tests (which active zones contain a point) over the sample zones and over 1 000
//! zones, and a homography ground projection.

use std::path::Path;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use geo::{polygon, MultiPolygon};
use gridwatch::geo::calib::Calibration;
use gridwatch::geo::grid::{AdminPath, Grid};
use gridwatch::geo::zones::ZoneSet;
use gridwatch::geo::LatLon;

const LAT0: f64 = 31.2304;
const LON0: f64 = 121.4737;

/// Points spread over `span` degrees from the origin, deterministic.
fn points(n: usize, span: f64) -> Vec<LatLon> {
    let mut s = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| LatLon {
            lat: LAT0 + next() * span,
            lon: LON0 + next() * span,
        })
        .collect()
}

fn square(x: f64, y: f64, s: f64) -> MultiPolygon<f64> {
    MultiPolygon(vec![
        polygon![(x: x, y: y), (x: x + s, y: y), (x: x + s, y: y + s), (x: x, y: y + s), (x: x, y: y)],
    ])
}

fn bench(c: &mut Criterion) {
    let step = 0.0005;
    let grid = Grid::from_parts(
        (0..100)
            .flat_map(|r| (0..100).map(move |col| (r, col)))
            .map(|(r, col)| {
                (
                    AdminPath {
                        grid: format!("g{r:03}{col:03}"),
                        ..Default::default()
                    },
                    square(LON0 + col as f64 * step, LAT0 + r as f64 * step, step),
                )
            })
            .collect(),
    );
    let pts = points(4096, 100.0 * step);
    let mut i = 0;
    c.bench_function("grid/lookup/10000-cells", |b| {
        b.iter(|| {
            i = (i + 1) % pts.len();
            grid.lookup(pts[i]).is_some()
        })
    });

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let zones = ZoneSet::load(&root.join("samples/geo/zones.geojson"), None).unwrap();
    let cal = Calibration::load(&root.join("calibration/street.toml")).unwrap();
    let scene: Vec<LatLon> = (0..1024)
        .map(|k| {
            cal.image_to_ground((k % 32) as f64 * 24.0, 100.0 + (k / 32) as f64 * 14.0)
                .unwrap()
        })
        .collect();
    let t = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let mut out = Vec::new();
    c.bench_function("zones/test/sample-scene", |b| {
        b.iter(|| {
            i = (i + 1) % scene.len();
            out.clear();
            zones.at(scene[i], t, &mut out);
            out.len()
        })
    });

    // 1 000 zones (with a weekday window) spread over the city
    let tmp = std::env::temp_dir().join(format!(
        "gridwatch-bench-zones-{}.geojson",
        std::process::id()
    ));
    let features: Vec<serde_json::Value> = (0..1000)
        .map(|k| {
            let (x, y) = (LON0 + (k % 40) as f64 * 0.002, LAT0 + (k / 40) as f64 * 0.002);
            serde_json::json!({"type": "Feature", "id": format!("z{k}"),
                "properties": {"kind": "no_parking", "windows": ["Mon-Fri 07:00-20:00"]},
                "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]]}})
        })
        .collect();
    std::fs::write(
        &tmp,
        serde_json::json!({"type": "FeatureCollection", "features": features}).to_string(),
    )
    .unwrap();
    let many = ZoneSet::load(&tmp, Some(chrono_tz::Asia::Shanghai)).unwrap();
    let _ = std::fs::remove_file(&tmp);
    let city = points(4096, 0.08);
    c.bench_function("zones/test/1000-zones", |b| {
        b.iter(|| {
            i = (i + 1) % city.len();
            out.clear();
            many.at(city[i], t, &mut out);
            out.len()
        })
    });

    c.bench_function("calibration/image-to-ground", |b| {
        b.iter(|| {
            i = (i + 1) % 1024;
            cal.image_to_ground((i % 32) as f64 * 24.0, 100.0 + (i / 32) as f64 * 14.0)
                .is_ok()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

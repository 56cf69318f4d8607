//! A registry-backed API on the real SQLite store, through `router(state)`: cases,
//! evidence, one camera, tokens of every role, and calls with any headers.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gridwatch::api::auth::Access;
use gridwatch::api::ApiState;
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{CaseStore, DedupConfig};
use gridwatch::ingest::{Pool, PoolOptions};
use gridwatch::metrics::Metrics;
use gridwatch::registry::access::Tokens;
use gridwatch::registry::view::View;
use gridwatch::registry::{Actor, CameraEntry, Registry, Role};
use tower::ServiceExt;

pub const ROOT: &str = "config-root-token";

pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub state: Arc<ApiState>,
    /// viewer, reviewer, admin, revoked — and the viewer token's id.
    pub tokens: [String; 4],
    pub viewer_id: String,
}

pub fn camera(id: &str) -> CameraEntry {
    let mut c = CameraEntry::new(id, &format!("rtsp://10.1.0.1/{id}"));
    c.location = Some([31.23, 121.47]);
    c
}

/// Registers camera `ptz` with presets `p1` and `p2` (no reference files), gives
/// this node a last frame of it (the 768×576 dog photo), and `p1` a captured
/// reference (the kite photo); returns the frame's JPEG.
#[allow(dead_code)]
pub fn ptz_camera(f: &Fixture) -> Vec<u8> {
    let sys = Actor::system("test");
    let mut c = camera("ptz");
    c.presets = ["p1", "p2"]
        .iter()
        .map(|p| gridwatch::config::PresetEntry {
            id: p.to_string(),
            reference: None,
            calibration: None,
            zones: Vec::new(),
        })
        .collect();
    f.state.registry.create(&sys, c).unwrap();
    f.state.view.sync(&f.state.registry).unwrap();
    let kite = std::fs::read(super::path("samples/kite.jpg")).unwrap();
    f.state
        .registry
        .put_reference(&sys, "ptz@p1", &kite, (1352, 900))
        .unwrap();
    let live = std::fs::read(super::path("samples/dog.jpg")).unwrap();
    f.state.metrics.set_last_frame("ptz", live.clone());
    live
}

/// A no-parking pixel zone of cam-a, 50 px square at `x`.
pub fn zone_feature(x: f64) -> serde_json::Value {
    serde_json::json!({
        "type": "Feature",
        "properties": {"kind": "no_parking", "camera": "cam-a"},
        "geometry": {"type": "Polygon", "coordinates": [[[x, 10.0], [x + 50.0, 10.0], [x + 50.0, 60.0], [x, 60.0], [x, 10.0]]]}
    })
}

/// A calibration document of a camera looking straight down on a 768×576 frame
/// (5 cm a pixel, north up), its control points at the corners and the centre, the
/// centre `off` metres off where the fit puts it.
pub fn flat_calibration(off: f64) -> serde_json::Value {
    let (lat, lon) = (31.23, 121.47);
    let point = |x: f64, y: f64, err: f64| {
        let (east, north) = (x * 0.05 + err, -y * 0.05);
        serde_json::json!({"x": x, "y": y, "lat": lat + north / 110_900.0, "lon": lon + east / 95_300.0})
    };
    serde_json::json!({
        "image_width": 768, "image_height": 576,
        "points": [point(0.0, 0.0, 0.0), point(768.0, 0.0, 0.0), point(768.0, 576.0, 0.0),
                   point(0.0, 576.0, 0.0), point(384.0, 288.0, off)],
    })
}

pub fn fixture(open_reads: bool, open_writes: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(tmp.path(), DedupConfig::default()).unwrap());
    for i in 0..3 {
        store
            .record(&super::cases::violation(
                "illegal_parking",
                &format!("cell-{i}"),
                "cam-a",
                1_795_000_000_000 + i,
            ))
            .unwrap();
    }
    let jpeg = std::fs::read(super::path("samples/dog.jpg")).unwrap();
    let e = store
        .add_evidence(1, "cam-a", 1, &jpeg, 3)
        .unwrap()
        .unwrap();
    // its unblurred original, for reviewers only
    let original = std::fs::read(super::path("samples/person.jpg")).unwrap();
    gridwatch::cases::originals::OriginalStore::add_original(&*store, 1, e.id, 1, &original)
        .unwrap();
    let registry = Arc::new(Registry::open(None, tmp.path()).unwrap());
    let sys = Actor::system("test");
    registry.create(&sys, camera("cam-a")).unwrap();
    registry
        .put_zone(&sys, "z1", zone_feature(0.0), |_| Vec::new())
        .unwrap();
    registry
        .put_calibration(&sys, "cam-a", flat_calibration(0.0), |_| Vec::new())
        .unwrap();
    let make = |role| registry.create_token(&sys, "someone", role).unwrap();
    let (viewer, vi) = make(Role::Viewer);
    let (reviewer, _) = make(Role::Reviewer);
    let (admin, _) = make(Role::Admin);
    let (revoked, ri) = make(Role::Admin);
    registry.revoke_token(&sys, &ri.id).unwrap();
    let tokens = Arc::new(Tokens::new(Some(ROOT)));
    tokens.refresh(&registry).unwrap();
    let view = Arc::new(View::of_registry());
    view.sync(&registry).unwrap();
    let metrics = Arc::new(Metrics::default());
    metrics.set_last_frame("cam-a", jpeg);
    let state = Arc::new(ApiState {
        store,
        pool: Arc::new(Pool::new(PoolOptions::default())),
        metrics,
        outbox_waker: Arc::new(tokio::sync::Notify::new()),
        ready: AtomicBool::new(true),
        access: Access {
            tokens,
            open_reads,
            open_writes,
        },
        registry,
        view,
        zones_writable: true,
        file_zones: Arc::new(gridwatch::geo::zones::ZoneSet::empty(None)),
        cells: Arc::new(gridwatch::geo::grid::CellLocator::H3(
            h3o::Resolution::try_from(10).unwrap(),
        )),
        max_rms_m: 1.0,
        cameras_changed: Arc::new(tokio::sync::Notify::new()),
        data_dir: tmp.path().to_path_buf(),
        node: "test-node".into(),
        cluster: None,
        allowed_hosts: gridwatch::api::allowed_hosts("127.0.0.1:8080", &[]),
    });
    Fixture {
        _tmp: tmp,
        state,
        tokens: [viewer, reviewer, admin, revoked],
        viewer_id: vi.id,
    }
}

pub async fn call(
    f: &Fixture,
    method: &str,
    uri: &str,
    token: Option<&str>,
    ctype: &str,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![];
    if !ctype.is_empty() {
        headers.push(("content-type", ctype));
    }
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let (s, _, b) = call_with(f, method, uri, &headers, body).await;
    (s, String::from_utf8_lossy(&b).into_owned())
}

/// A request with these headers (and `Host: 127.0.0.1:8080`): status, headers, body.
pub async fn call_with(
    f: &Fixture,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut all = vec![("host", "127.0.0.1:8080")];
    all.extend_from_slice(headers);
    send(&f.state, method, uri, &all, body).await
}

/// A request with exactly these headers through `router(state)`: status, headers,
/// body.
pub async fn send(
    state: &Arc<ApiState>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = gridwatch::api::router(state.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let s = resp.status();
    let h = resp.headers().clone();
    let b = axum::body::to_bytes(resp.into_body(), 1 << 26)
        .await
        .unwrap();
    (s, h, b.to_vec())
}

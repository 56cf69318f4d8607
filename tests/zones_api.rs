//! Zones through the API, as an operator's editor and a careless one send them: made,
//! changed, versioned and deleted by an admin; refused with the reason when the
//! polygon crosses itself, names a camera or preset that is not there, or lies
//! outside a calibrated camera's frame or above its horizon; read-only when the zones
//! are the config file's.

use axum::http::StatusCode;
use serde_json::{json, Value};

mod common;

use common::api::{call, camera, fixture, zone_feature, Fixture};

async fn put(f: &Fixture, id: &str, feature: &Value) -> (StatusCode, String) {
    let admin = f.tokens[2].clone();
    call(
        f,
        "PUT",
        &format!("/api/zones/{id}"),
        Some(&admin),
        "application/geo+json",
        feature.to_string().into_bytes(),
    )
    .await
}

fn pixel_zone(camera: &str, ring: &[[f64; 2]]) -> Value {
    json!({
        "type": "Feature",
        "properties": {"kind": "no_parking", "camera": camera, "params": {"dwell": "1m"}},
        "geometry": {"type": "Polygon", "coordinates": [ring]}
    })
}

#[tokio::test]
async fn zones_are_saved_in_versions_and_bad_ones_refused_with_the_reason() {
    let f = fixture(false, false);
    let sys = gridwatch::registry::Actor::system("test");
    let mut street = camera("street");
    street.calibration = Some(common::path("calibration/street.toml"));
    f.state.registry.create(&sys, street).unwrap();
    // a camera looking along a road: its horizon is the row y = 250 of its 800×600 frame
    let tmp = tempfile::tempdir().unwrap();
    let (lat, lon) = (31.23, 121.47);
    let at = |east: f64, north: f64| (lat + north / 111_320.0, lon + east / 95_200.0);
    let mut text =
        String::from("camera = \"road\"\nimage_width = 800\nimage_height = 600\npoints = [\n");
    for (x, y, e, n) in [
        (100, 500, -5.0, 10.0),
        (700, 500, 5.0, 10.0),
        (100, 300, -25.0, 50.0),
        (700, 300, 25.0, 50.0),
    ] {
        let (la, lo) = at(e, n);
        text.push_str(&format!(
            "  {{ x = {x}.0, y = {y}.0, lat = {la}, lon = {lo} }},\n"
        ));
    }
    text.push_str("]\n");
    let cal = tmp.path().join("road.toml");
    std::fs::write(&cal, text).unwrap();
    let mut road_cam = camera("road");
    road_cam.calibration = Some(cal);
    f.state.registry.create(&sys, road_cam).unwrap();
    f.state.view.sync(&f.state.registry).unwrap();
    let viewer = f.tokens[0].clone();
    // made, changed, unchanged
    let road = [
        [600.0, 80.0],
        [760.0, 80.0],
        [760.0, 130.0],
        [600.0, 130.0],
        [600.0, 80.0],
    ];
    let (s, body) = put(&f, "np-road", &pixel_zone("street", &road)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["version"].as_i64()),
        (Some("np-road"), Some(1))
    );
    let mut wider = road;
    wider[1][0] = 768.0;
    wider[2][0] = 768.0;
    let (s, body) = put(&f, "np-road", &pixel_zone("street", &wider)).await;
    assert_eq!(
        (
            s,
            serde_json::from_str::<Value>(&body).unwrap()["version"].as_i64()
        ),
        (StatusCode::OK, Some(2))
    );
    let (s, body) = put(&f, "np-road", &pixel_zone("street", &wider)).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["version"],
        2,
        "{s}: unchanged"
    );
    // refused, each with its reason, nothing written
    let refusals: Vec<(Value, &str)> = vec![
        (
            pixel_zone(
                "street",
                &[
                    [0.0, 200.0],
                    [100.0, 300.0],
                    [100.0, 200.0],
                    [0.0, 300.0],
                    [0.0, 200.0],
                ],
            ),
            "invalid polygon",
        ),
        (pixel_zone("nowhere", &road), "no camera \\\"nowhere"),
        (pixel_zone("street@north", &road), "has no preset \\\"north"),
        (
            pixel_zone(
                "street",
                &[[600.0, 80.0], [900.0, 80.0], [900.0, 130.0], [600.0, 80.0]],
            ),
            "outside the 768×576 frame",
        ),
        (
            pixel_zone(
                "road",
                &[
                    [300.0, 100.0],
                    [400.0, 100.0],
                    [400.0, 400.0],
                    [300.0, 100.0],
                ],
            ),
            "above the horizon",
        ),
        (
            json!({"type": "Feature", "id": "other", "properties": {"kind": "no_parking"}, "geometry": null}),
            "is not the zone's",
        ),
        (
            json!({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[121.47, 31.23], [121.48, 31.23], [121.48, 31.24], [121.47, 31.23]]]}}),
            "kind",
        ),
        (json!([1, 2]), "not a GeoJSON Feature"),
    ];
    for (feature, reason) in refusals {
        let (s, body) = put(&f, "np-road", &feature).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{feature}: {body}");
        assert!(body.contains(reason), "{reason}: {body}");
    }
    let (_, body) = call(&f, "GET", "/api/zones/np-road", Some(&viewer), "", vec![]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["version"],
        2,
        "nothing written"
    );
    // only admins write
    let (s, _) = call(
        &f,
        "PUT",
        "/api/zones/np-x",
        Some(&viewer),
        "application/json",
        zone_feature(0.0).to_string().into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // deleted: its versions stay
    let admin = f.tokens[2].clone();
    let (s, _) = call(&f, "DELETE", "/api/zones/np-road", Some(&admin), "", vec![]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&f, "GET", "/api/zones/np-road", Some(&viewer), "", vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, body) = call(
        &f,
        "GET",
        "/api/zones/np-road/versions",
        Some(&viewer),
        "",
        vec![],
    )
    .await;
    let versions: Vec<Value> = serde_json::from_str(&body).unwrap();
    let shown: Vec<(i64, bool)> = versions
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["feature"].is_object()))
        .collect();
    assert_eq!(shown, [(1, true), (2, true), (3, false)]);
    let (_, body) = call(&f, "GET", "/api/zones", Some(&viewer), "", vec![]).await;
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["type"], "FeatureCollection");
    let ids: Vec<&str> = all["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["z1"]);
}

#[tokio::test]
async fn file_zones_are_read_only() {
    let mut f = fixture(false, false);
    std::sync::Arc::get_mut(&mut f.state)
        .unwrap()
        .zones_writable = false;
    let (s, body) = put(&f, "z9", &zone_feature(0.0)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("registry.zones"), "{body}");
}

#[tokio::test]
async fn a_pixel_zone_on_a_drone_is_refused_for_a_ground_zone() {
    let f = fixture(false, false);
    let sys = gridwatch::registry::Actor::system("test");
    let mut drone = common::api::camera("drone-1");
    drone.location = None;
    drone.drone = Some(
        serde_json::from_value(json!({"telemetry": "udp://127.0.0.1:14550", "hfov_deg": 84}))
            .unwrap(),
    );
    f.state.registry.create(&sys, drone).unwrap();
    f.state.view.sync(&f.state.registry).unwrap();
    let mut zone = common::api::zone_feature(10.0);
    zone["properties"]["camera"] = json!("drone-1");
    let (s, body) = put(&f, "np-drone", &zone).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("drone-1 is a drone"), "{body}");
}

//! Calibrations through the API, per camera view: a view calibrated by its file shows
//! that file's points and fit; one saved through the API is used instead, in
//! versions, with each control point's error in metres; one whose RMS error is over
//! `geo.max_rms_m`, or that does not fit, or names a view that is not there, is
//! refused with the reason and nothing is saved; a saved calibration decides where
//! a pixel zone's horizon is.

use axum::http::StatusCode;
use serde_json::{json, Value};

mod common;

use common::api::{call, camera, fixture, flat_calibration, Fixture};

async fn send(f: &Fixture, method: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let admin = f.tokens[2].clone();
    let (s, b) = call(
        f,
        method,
        path,
        Some(&admin),
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

#[tokio::test]
async fn calibrations_are_checked_saved_in_versions_and_used_instead_of_the_file() {
    let f = fixture(false, false);
    let sys = gridwatch::registry::Actor::system("test");
    let mut street = camera("street");
    street.calibration = Some(common::path("calibration/street.toml"));
    f.state.registry.create(&sys, street).unwrap();
    f.state.view.sync(&f.state.registry).unwrap();
    // the file's calibration, as the editor first shows it
    let (s, v) = send(&f, "GET", "/api/calibrations/street", &Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["source"], "file");
    assert_eq!(v["calibration"]["points"].as_array().unwrap().len(), 8);
    assert_eq!(v["fit"]["points"].as_array().unwrap().len(), 8);
    assert!(v["fit"]["rms_m"].as_f64().unwrap() < 0.05, "{v}");
    // a check answers each point's error without saving: the centre point 3 m off
    let off = flat_calibration(3.0);
    let (s, v) = send(&f, "POST", "/api/calibrations/street/check", &off).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let errors: Vec<f64> = v["fit"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["error_m"].as_f64().unwrap())
        .collect();
    assert_eq!(errors.len(), 5);
    let worst = errors.iter().cloned().fold(0.0, f64::max);
    assert!(worst > 1.0, "{errors:?}");
    assert_eq!(v["fit"]["points"][4]["inlier"], false, "{v}");
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("point 5 (384, 288) is 3.00 m off"),
        "{v}"
    );
    // … and refuses to save it, with the reason
    let (s, v) = send(&f, "PUT", "/api/calibrations/street", &off).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("point 5"), "{v}");
    assert!(f.state.registry.calibration("street").unwrap().is_none());
    // other refusals, each with its reason
    let three = json!({"image_width": 768, "image_height": 576, "points": [
        {"x": 0, "y": 0, "lat": 31.2, "lon": 121.4}, {"x": 10, "y": 0, "lat": 31.2, "lon": 121.41},
        {"x": 0, "y": 10, "lat": 31.21, "lon": 121.4}]});
    let (s, v) = send(&f, "PUT", "/api/calibrations/street", &three).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("at least 4"), "{v}");
    let (s, v) = send(&f, "PUT", "/api/calibrations/street", &json!({"points": 1})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not a calibration"),
        "{v}"
    );
    let (s, v) = send(
        &f,
        "PUT",
        "/api/calibrations/nowhere",
        &flat_calibration(0.0),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].as_str().unwrap().contains("nowhere"), "{v}");
    // a good one is saved, and used instead of the file
    let good = flat_calibration(0.2);
    let (s, v) = send(&f, "PUT", "/api/calibrations/street", &good).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["source"].as_str(), v["version"].as_i64()),
        (Some("registry"), Some(1))
    );
    let (_, v) = send(&f, "GET", "/api/calibrations/street", &Value::Null).await;
    assert_eq!(
        (v["source"].as_str(), v["version"].as_i64()),
        (Some("registry"), Some(1))
    );
    assert_eq!(v["fit"]["points"].as_array().unwrap().len(), 5);
    // looking straight down: no horizon, so a pixel zone at the top of the frame is
    // on the ground now (the file's calibration had that row above its horizon)
    let top = json!({"type": "Feature", "properties": {"kind": "no_parking", "camera": "street"},
        "geometry": {"type": "Polygon", "coordinates": [[[10.0, 2.0], [60.0, 2.0], [60.0, 20.0], [10.0, 20.0], [10.0, 2.0]]]}});
    let (s, v) = send(&f, "PUT", "/api/zones/top", &top).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // changed: a second version; deleted: back to the file, the versions kept
    let (_, v) = send(
        &f,
        "PUT",
        "/api/calibrations/street",
        &flat_calibration(0.0),
    )
    .await;
    assert_eq!(v["version"], 2, "{v}");
    let (s, _) = send(&f, "DELETE", "/api/calibrations/street", &Value::Null).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = send(&f, "GET", "/api/calibrations/street", &Value::Null).await;
    assert_eq!(v["source"], "file", "{v}");
    let (_, v) = send(&f, "GET", "/api/calibrations/street/versions", &Value::Null).await;
    let shown: Vec<(i64, bool)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["calibration"].is_object()))
        .collect();
    assert_eq!(shown, vec![(1, true), (2, true), (3, false)]);
    let audit = f.state.registry.audit_log(None, 50, 0).unwrap().0;
    let actions: Vec<&str> = audit
        .iter()
        .filter(|a| a.target == "calibration/street")
        .map(|a| a.action.as_str())
        .collect();
    assert_eq!(
        actions.len(),
        3,
        "every change in the audit log: {actions:?}"
    );
}

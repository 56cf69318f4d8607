//! The reference pictures of PTZ presets through the API: a preset without one is
//! 404 with the reason; a capture takes the node's live frame of the camera (or the
//! picture sent) and is refused, with the reason and nothing saved, when there is no
//! frame yet, the picture is not the frame's size, does not decode or has too few
//! features to be recognised, or the view is not a preset of a camera in the list;
//! each capture is a version, audited by its SHA-256; a deletion sends the preset
//! back to its file.

use axum::http::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

mod common;

use common::api::{call, call_with, fixture, ptz_camera, Fixture};

async fn post(f: &Fixture, path: &str, ctype: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let admin = f.tokens[2].clone();
    let (s, b) = call(f, "POST", path, Some(&admin), ctype, body).await;
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

/// The error of a refused call.
fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_preset_reference_is_captured_from_the_live_frame_checked_and_audited() {
    let f = fixture(false, false);
    let live = ptz_camera(&f);
    let admin = f.tokens[2].clone();
    let get = |path: &'static str| {
        let h = [("authorization", format!("Bearer {admin}"))];
        let f = &f;
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            call_with(f, "GET", path, &h, vec![]).await
        }
    };
    // p2 has no picture yet; p1's was captured
    let (s, _, b) = get("/api/references/ptz@p2").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&b).contains("preset p2 of camera ptz"));
    let (s, h, _) = get("/api/references/ptz@p1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-reference-source"], "registry");
    assert_eq!(h["content-type"], "image/jpeg");

    // refusals: each with its reason, nothing saved
    let revision = f.state.registry.revision().unwrap();
    let grey = {
        let mut fr = gridwatch::decode::Frame::default();
        fr.reshape(768, 576);
        fr.data.fill(120);
        gridwatch::draw::encode_jpeg(&fr, 90).unwrap()
    };
    let kite = std::fs::read(common::path("samples/kite.jpg")).unwrap();
    for (path, ctype, body, status, reason) in [
        (
            "/api/references/ptz@p2",
            "image/jpeg",
            grey,
            StatusCode::BAD_REQUEST,
            "picture: it has 0 features",
        ),
        (
            "/api/references/ptz@p2",
            "image/jpeg",
            kite.clone(),
            StatusCode::BAD_REQUEST,
            "1352×900, the camera's frames are 768×576",
        ),
        (
            "/api/references/ptz@p2",
            "image/jpeg",
            kite[..kite.len() / 3].iter().rev().copied().collect(),
            StatusCode::BAD_REQUEST,
            "picture: not an image",
        ),
        (
            "/api/references/ptz@p2",
            "text/plain",
            b"x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "image/jpeg or image/png",
        ),
        (
            "/api/references/ptz",
            "",
            vec![],
            StatusCode::BAD_REQUEST,
            "is not a preset",
        ),
        (
            "/api/references/ptz@p9",
            "",
            vec![],
            StatusCode::NOT_FOUND,
            "preset \"p9\" of camera ptz",
        ),
        (
            "/api/references/cam-z@p1",
            "",
            vec![],
            StatusCode::NOT_FOUND,
            "camera \"cam-z\"",
        ),
    ] {
        let (s, v) = post(&f, path, ctype, body).await;
        assert_eq!(s, status, "{path} {ctype}: {v}");
        assert!(error(&v).contains(reason), "{path} {ctype}: {v}");
    }
    // from another site
    let (s, _, _) = call_with(
        &f,
        "POST",
        "/api/references/ptz@p2",
        &[
            ("authorization", &format!("Bearer {admin}")),
            ("origin", "https://elsewhere.example"),
        ],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(f.state.registry.revision().unwrap(), revision);

    // the live frame, captured: stored as it is, version 1, audited by its SHA-256
    let (s, v) = post(&f, "/api/references/ptz@p2", "", vec![]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["id"], &v["version"], &v["width"], &v["height"]),
        (
            &Value::from("ptz@p2"),
            &Value::from(1),
            &Value::from(768),
            &Value::from(576)
        )
    );
    let sha = format!("{:x}", Sha256::digest(&live));
    assert_eq!(v["sha256"], sha.as_str());
    let (s, h, b) = get("/api/references/ptz@p2").await;
    assert_eq!(
        (s, &h["x-reference-source"]),
        (StatusCode::OK, &"registry".parse().unwrap())
    );
    assert_eq!(b, live, "the picture as the node had it");
    // the same picture again is no new version; a PNG upload of it is one (kept as JPEG)
    let (_, v) = post(&f, "/api/references/ptz@p2", "", vec![]).await;
    assert_eq!(v["version"], 1, "{v}");
    let mut dog = gridwatch::decode::Frame::default();
    gridwatch::decode::image::decode_image(&live, &mut dog).unwrap();
    let png = {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dog.png");
        gridwatch::draw::write_png(&p, &dog).unwrap();
        std::fs::read(p).unwrap()
    };
    let (s, v) = post(&f, "/api/references/ptz@p2", "image/png", png).await;
    assert_eq!((s, &v["version"]), (StatusCode::OK, &Value::from(2)), "{v}");
    let (_, h, b) = get("/api/references/ptz@p2").await;
    assert_eq!(h["content-type"], "image/jpeg");
    assert!(b.starts_with(&[0xFF, 0xD8]) && b != live);

    let (entries, _) = f
        .state
        .registry
        .audit_log(Some("reference/ptz@p2"), 10, 0)
        .unwrap();
    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["reference.capture", "reference.capture"]);
    let first = &entries[1];
    assert_eq!(first.after.as_ref().unwrap()["sha256"], sha.as_str());
    assert!(first.before.is_none());
    assert_eq!(entries[0].before.as_ref().unwrap()["sha256"], sha.as_str());
    assert!(
        !serde_json::to_string(&entries).unwrap().contains("/9j/"),
        "the audit log names the picture, it does not copy it"
    );

    // the listing, and a deletion back to no picture
    let (s, _, b) = get("/api/references").await;
    assert_eq!(s, StatusCode::OK);
    let list: Value = serde_json::from_slice(&b).unwrap();
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, ["ptz@p1", "ptz@p2"]);
    let delete = || {
        call(
            &f,
            "DELETE",
            "/api/references/ptz@p2",
            Some(&admin),
            "",
            vec![],
        )
    };
    assert_eq!(delete().await.0, StatusCode::NO_CONTENT);
    let (s, _, _) = get("/api/references/ptz@p2").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(delete().await.0, StatusCode::NOT_FOUND, "deleted already");
    assert_eq!(f.state.registry.reference_versions().unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_live_frame_there_is_nothing_to_capture() {
    let f = fixture(false, false);
    ptz_camera(&f);
    let sys = gridwatch::registry::Actor::system("test");
    let mut other = common::api::camera("ptz2");
    other.presets = vec![gridwatch::config::PresetEntry {
        id: "road".into(),
        reference: None,
        calibration: None,
        zones: Vec::new(),
    }];
    f.state.registry.create(&sys, other).unwrap();
    f.state.view.sync(&f.state.registry).unwrap();
    let (s, v) = post(&f, "/api/references/ptz2@road", "", vec![]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        error(&v).contains("no frame from camera ptz2 on this node yet"),
        "{v}"
    );
}

#[tokio::test]
async fn a_preset_is_added_to_a_camera_with_no_picture_yet_or_refused_with_the_reason() {
    let f = fixture(false, false);
    ptz_camera(&f);
    let add = |cam: &str, body: &str| {
        let path = format!("/api/cameras/{cam}/presets");
        let body = body.as_bytes().to_vec();
        let f = &f;
        async move { post(f, &path, "application/json", body).await }
    };
    let (s, v) = add("ptz", r#"{"id":"p3"}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["view"], "ptz@p3");
    let presets: Vec<_> = f
        .state
        .view
        .get("ptz")
        .unwrap()
        .camera
        .presets
        .iter()
        .map(|p| (p.id.clone(), p.reference.clone()))
        .collect();
    assert_eq!(
        presets.last(),
        Some(&("p3".to_string(), None)),
        "{presets:?}"
    );
    let (log, _) = f
        .state
        .registry
        .audit_log(Some("camera/ptz"), 1, 0)
        .unwrap();
    assert_eq!(log[0].action, "camera.update");
    // refused, each with its reason
    let revision = f.state.registry.revision().unwrap();
    for (cam, body, status, reason) in [
        (
            "ptz",
            r#"{"id":"p3"}"#,
            StatusCode::BAD_REQUEST,
            "has a preset p3 already",
        ),
        (
            "ptz",
            r#"{"id":"a b"}"#,
            StatusCode::BAD_REQUEST,
            "is not a name",
        ),
        (
            "ptz",
            r#"{"name":"p4"}"#,
            StatusCode::BAD_REQUEST,
            "id: the preset's name",
        ),
        // cam-a is calibrated: a camera with presets calibrates each preset instead
        (
            "cam-a",
            r#"{"id":"p1"}"#,
            StatusCode::BAD_REQUEST,
            "a camera with presets",
        ),
        (
            "cam-z",
            r#"{"id":"p1"}"#,
            StatusCode::NOT_FOUND,
            "camera cam-z",
        ),
    ] {
        let (s, v) = add(cam, body).await;
        assert_eq!(s, status, "{cam} {body}: {v}");
        assert!(error(&v).contains(reason), "{cam} {body}: {v}");
    }
    assert_eq!(f.state.registry.revision().unwrap(), revision);
}

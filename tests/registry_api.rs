//! The camera registry's API with what an operator's tools and an attacker send:
//! catalogues with bad rows, headers and bytes (nothing half-imported), unknown
//! cameras, oversized and cross-site bodies, ids that disagree, a read-only list;
//! and 10 000 cameras imported and paged through with `Link` headers.

use axum::http::StatusCode;
use gridwatch::registry::view::View;
use serde_json::Value;

mod common;

use common::api::{call, call_with, fixture, Fixture};

fn admin(f: &Fixture) -> String {
    f.tokens[2].clone()
}

async fn revision(f: &Fixture) -> i64 {
    f.state.registry.revision().unwrap()
}

#[tokio::test]
async fn a_catalogue_with_any_bad_row_imports_nothing_and_names_every_bad_row() {
    let f = fixture(false, false);
    let a = admin(&f);
    let before = revision(&f).await;
    let cases: Vec<(&str, &[u8], &str)> = vec![
        (
            "text/csv",
            b"id,source,lat,lon\ngood-1,rtsp://10.0.0.1/a,31,121\nbad id,rtsp://10.0.0.2/a,31,121\ngood-2,rtsp://10.0.0.3/a,95,121\n",
            "row 3",
        ),
        ("text/csv", b"camera,url\nx,y\n", "is not one of"),
        ("text/csv", b"id,source,lat,lon\nshort,rtsp://x/a\n", "row 2"),
        ("text/csv", b"id,source,lat,lon\nx,\xff\xfe,31,121\n", "row 2"),
        ("text/csv", b"", "the header has no"),
        ("application/json", b"{\"cameras\": 3}", "array"),
        ("application/json", b"[{\"id\": 1}]", "row 1"),
        ("application/json", b"[", "not JSON"),
    ];
    for (ctype, body, needle) in cases {
        let (s, b) = call(
            &f,
            "POST",
            "/api/cameras/import",
            Some(&a),
            ctype,
            body.to_vec(),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{ctype} {body:?}: {b}");
        assert!(b.contains(needle), "{needle} not in {b}");
        assert_eq!(revision(&f).await, before, "nothing imported");
    }
    // every bad row is listed, with its line and id
    let (_, b) = call(
        &f,
        "POST",
        "/api/cameras/import",
        Some(&a),
        "text/csv",
        b"id,source,lat,lon\nbad id,rtsp://a/b,31,121\nok,rtsp://a/c,31,121\nno-place,rtsp://a/d,,\n".to_vec(),
    )
    .await;
    let v: Value = serde_json::from_str(&b).unwrap();
    let rows: Vec<(i64, String)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rows, vec![(2, "bad id".into()), (4, "no-place".into())]);
    // a wrong content type, and a body from another site
    let (s, _) = call(
        &f,
        "POST",
        "/api/cameras/import",
        Some(&a),
        "text/plain",
        b"id,source\n".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bearer = format!("Bearer {a}");
    let (s, _, _) = call_with(
        &f,
        "POST",
        "/api/cameras/import",
        &[
            ("authorization", &bearer),
            ("content-type", "text/csv"),
            ("origin", "https://evil.example"),
        ],
        b"id,source,lat,lon\nx,rtsp://a/b,31,121\n".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(revision(&f).await, before);
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_read_whole() {
    let f = fixture(false, false);
    let a = admin(&f);
    let big = format!(
        "{{\"id\":\"x\",\"source\":\"rtsp://a/b\",\"location\":[1,2],\"labels\":{{\"k\":\"{}\"}}}}",
        "a".repeat(70 * 1024)
    );
    let (s, b) = call(
        &f,
        "POST",
        "/api/cameras",
        Some(&a),
        "application/json",
        big.into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    let huge = vec![b'x'; gridwatch::api::MAX_CATALOGUE_BODY + 1];
    let (s, _) = call(
        &f,
        "POST",
        "/api/cameras/import",
        Some(&a),
        "text/csv",
        huge,
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, _) = call(
        &f,
        "POST",
        "/api/tokens",
        Some(&a),
        "application/json",
        vec![b' '; 5000],
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_cameras_bad_documents_and_ids_that_disagree() {
    let f = fixture(false, false);
    let a = admin(&f);
    let json = "application/json";
    let doc = r#"{"source":"rtsp://10.0.0.9/x","location":[31.2,121.4]}"#;
    for (m, p, ct, b) in [
        ("GET", "/api/cameras/nope", "", ""),
        ("PUT", "/api/cameras/nope", json, doc),
        ("DELETE", "/api/cameras/nope", "", ""),
        ("POST", "/api/cameras/nope/enable", "", ""),
        ("GET", "/api/cameras/nope/frame.jpg", "", ""),
        ("DELETE", "/api/tokens/00000000", "", ""),
    ] {
        let (s, body) = call(&f, m, p, Some(&a), ct, b.into()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p}: {body}");
    }
    let before = revision(&f).await;
    for (m, p, b, needle) in [
        (
            "POST",
            "/api/cameras",
            r#"{"id":"cam-a","source":"rtsp://a/b","location":[1,2]}"#,
            "already",
        ),
        (
            "POST",
            "/api/cameras",
            r#"{"id":"n","source":"rtsp://a/b","location":[1,2],"every":"often"}"#,
            "every",
        ),
        (
            "POST",
            "/api/cameras",
            r#"{"id":"n","source":"rtsp://a/b"}"#,
            "calibration or location",
        ),
        (
            "POST",
            "/api/cameras",
            r#"{"id":"n","source":"rtsp://a/b","location":[1,2],"zones":[""]}"#,
            "zones",
        ),
        (
            "POST",
            "/api/cameras",
            r#"{"id":"n","source":"/etc/shadow-nope","location":[1,2]}"#,
            "does not exist",
        ),
        (
            "POST",
            "/api/cameras",
            r#"{"id":"n","source":"rtsp://a/b","location":[1,2],"colour":"red"}"#,
            "colour",
        ),
        ("POST", "/api/cameras", r#"[]"#, "cannot be read"),
        (
            "PUT",
            "/api/cameras/cam-a",
            r#"{"id":"other","source":"rtsp://a/b","location":[1,2]}"#,
            "not the path",
        ),
        (
            "POST",
            "/api/tokens",
            r#"{"name":"x","role":"root"}"#,
            "role",
        ),
        (
            "POST",
            "/api/tokens",
            r#"{"name":"","role":"viewer"}"#,
            "name",
        ),
    ] {
        let (s, body) = call(&f, m, p, Some(&a), json, b.into()).await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::CONFLICT,
            "{m} {p} {b}: {s} {body}"
        );
        assert!(body.contains(needle), "{needle} not in {body}");
    }
    assert_eq!(revision(&f).await, before, "nothing written");
    let (s, _) = call(&f, "GET", "/api/cameras/%ff", Some(&a), "", vec![]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for q in ["limit=5000", "enabled=maybe", "label=district", "offset=-1"] {
        let (s, body) = call(
            &f,
            "GET",
            &format!("/api/cameras?{q}"),
            Some(&a),
            "",
            vec![],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {body}");
    }
}

#[tokio::test]
async fn a_config_list_is_read_only() {
    let mut f = fixture(false, false);
    let cam = common::api::camera("from-file");
    std::sync::Arc::get_mut(&mut f.state).unwrap().view =
        std::sync::Arc::new(View::from_config(&[cam]));
    let a = admin(&f);
    let (s, b) = call(&f, "GET", "/api/cameras", Some(&a), "", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("from-file"), "{b}");
    let (s, b) = call(&f, "DELETE", "/api/cameras/from-file", Some(&a), "", vec![]).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(b.contains("registry.cameras"), "{b}");
}

#[tokio::test]
async fn ten_thousand_cameras_are_imported_whole_and_paged_through_once_each() {
    let f = fixture(false, false);
    let a = admin(&f);
    let mut csv = String::from("id,source,lat,lon,label.district,enabled\n");
    for i in 0..10_000 {
        csv.push_str(&format!(
            "cam-{i:05},rtsp://10.{}.{}.{}:554/live,31.{i:05},121.{i:05},d{},{}\n",
            i / 65536,
            (i / 256) % 256,
            i % 256,
            i % 16,
            i % 10 != 0
        ));
    }
    let (s, b) = call(
        &f,
        "POST",
        "/api/cameras/import",
        Some(&a),
        "text/csv",
        csv.clone().into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let sum: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(sum["created"], 10_000);
    // again: nothing changes
    let (_, b) = call(
        &f,
        "POST",
        "/api/cameras/import",
        Some(&a),
        "text/csv",
        csv.into_bytes(),
    )
    .await;
    let again: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        (again["unchanged"].as_i64(), again["created"].as_i64()),
        (Some(10_000), Some(0))
    );
    // every page through the Link headers, each camera once (cam-a is there too)
    let bearer = format!("Bearer {a}");
    let mut next = Some("/api/cameras?limit=1000".to_string());
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        let (s, h, body) = call_with(&f, "GET", &url, &[("authorization", &bearer)], vec![]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["x-total-count"], "10001");
        let page: Vec<Value> = serde_json::from_slice(&body).unwrap();
        for c in &page {
            assert!(
                seen.insert(c["id"].as_str().unwrap().to_string()),
                "{} twice",
                c["id"]
            );
        }
        next = h.get("link").map(|l| {
            let l = l.to_str().unwrap();
            l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_string()
        });
        pages += 1;
    }
    assert_eq!((seen.len(), pages), (10_001, 11));
    // filters: a district, the disabled ones
    let (_, h, body) = call_with(
        &f,
        "GET",
        "/api/cameras?label=district:d3&enabled=false&limit=1000",
        &[("authorization", &bearer)],
        vec![],
    )
    .await;
    let page: Vec<Value> = serde_json::from_slice(&body).unwrap();
    let want = (0..10_000).filter(|i| i % 16 == 3 && i % 10 == 0).count();
    assert_eq!(page.len(), want);
    assert_eq!(h["x-total-count"], want.to_string().as_str());
    assert!(page
        .iter()
        .all(|c| c["state"] == "disabled" && c["labels"]["district"] == "d3"));
}

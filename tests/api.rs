//! The HTTP API through `router(state)` with `oneshot`: health and readiness, case
//! search with filters and paging, one case with its evidence, reviews (authorisation,
//! transitions, bad and oversized bodies), evidence paths that cannot leave the data
//! dir, metrics. The store is the real SQLite store.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::http::StatusCode;
use gridwatch::api::ApiState;
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{CaseStore, DedupConfig, NewViolation};
use gridwatch::ingest::{Pool, PoolOptions};
use gridwatch::metrics::Metrics;

mod common;

const T0: i64 = 1_795_000_000_000;

struct Fixture {
    _tmp: tempfile::TempDir,
    state: Arc<ApiState>,
    store: Arc<SqliteStore>,
}

fn fixture(token: Option<&str>, open_writes: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(tmp.path(), DedupConfig::default()).unwrap());
    // 3 kinds × 4 cells, two sightings each from two cameras
    for i in 0..24i64 {
        let kind = ["illegal_parking", "dumping", "street_vending"][(i % 3) as usize];
        store
            .record(&NewViolation {
                kind: kind.parse().unwrap(),
                cell: format!("cell-{}", i % 4),
                admin_path: "Huangpu / Riverside".into(),
                lat: 31.23,
                lon: 121.47,
                camera: format!("cam{}", i % 2),
                zone: "z".into(),
                zone_version: None,
                at_ms: T0 + i * 60_000,
                since_ms: T0 + i * 60_000,
                footprint: None,
                model: String::new(),
                model_sha256: String::new(),
            })
            .unwrap();
    }
    let jpeg = std::fs::read(common::path("samples/dog.jpg")).unwrap();
    store
        .add_evidence(1, "cam0", T0, &jpeg, 3)
        .unwrap()
        .unwrap();
    let state = Arc::new(ApiState {
        store: store.clone(),
        pool: Arc::new(Pool::new(PoolOptions::default())),
        metrics: Arc::new(Metrics::default()),
        outbox_waker: Arc::new(tokio::sync::Notify::new()),
        ready: AtomicBool::new(true),
        access: gridwatch::api::auth::Access {
            tokens: Arc::new(gridwatch::registry::access::Tokens::new(token)),
            open_reads: true,
            open_writes,
        },
        registry: Arc::new(gridwatch::registry::Registry::open(None, tmp.path()).unwrap()),
        view: Arc::new(gridwatch::registry::view::View::of_registry()),
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
        store,
    }
}

async fn call(
    f: &Fixture,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let bearer = auth.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    let (s, _, b) = call_with(f, method, uri, &headers, body).await;
    (s, b)
}

/// A request with exactly these headers: status, response headers, body.
async fn call_with(
    f: &Fixture,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    common::api::send(&f.state, method, uri, headers, body).await
}

async fn get_json(f: &Fixture, uri: &str) -> (StatusCode, serde_json::Value) {
    let (s, b) = call(f, "GET", uri, None, vec![]).await;
    (s, serde_json::from_slice(&b).unwrap_or_default())
}

#[tokio::test]
async fn health_and_readiness() {
    let f = fixture(None, false);
    assert_eq!(
        call(&f, "GET", "/healthz", None, vec![]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&f, "GET", "/readyz", None, vec![]).await.0,
        StatusCode::OK
    );
    f.state
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        call(&f, "GET", "/readyz", None, vec![]).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (s, page) = call(&f, "GET", "/", None, vec![]).await;
    assert_eq!(s, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("gridwatch review"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads nothing from elsewhere"
    );
}

#[tokio::test]
async fn cases_are_filtered_and_paged() {
    let f = fixture(None, false);
    let (s, all) = get_json(&f, "/api/cases?limit=5").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(all["total"], 12, "3 kinds × 4 cells");
    assert_eq!(all["cases"].as_array().unwrap().len(), 5);
    let (_, page3) = get_json(&f, "/api/cases?limit=5&offset=10").await;
    assert_eq!(page3["cases"].as_array().unwrap().len(), 2);
    let mut seen: Vec<i64> = Vec::new();
    for off in [0, 5, 10] {
        let (_, p) = get_json(&f, &format!("/api/cases?limit=5&offset={off}")).await;
        seen.extend(
            p["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap()),
        );
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12, "pages do not overlap");
    let (_, dumping) = get_json(&f, "/api/cases?kind=dumping").await;
    assert_eq!(dumping["total"], 4);
    assert!(dumping["cases"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["kind"] == "dumping"));
    let (_, cell) = get_json(&f, "/api/cases?cell=cell-1&kind=dumping").await;
    assert_eq!(cell["total"], 1);
    let (_, late) = get_json(&f, &format!("/api/cases?since={}", T0 + 20 * 60_000)).await;
    assert_eq!(late["total"], 4, "last seen in the final 4 minutes");
    let (_, rfc) = get_json(&f, "/api/cases?until=2020-01-01T00:00:00Z").await;
    assert_eq!(rfc["total"], 0);
    let (_, open) = get_json(&f, "/api/cases?status=open").await;
    assert_eq!(open["total"], 12);
    for bad in [
        "/api/cases?status=maybe",
        "/api/cases?limit=100000",
        "/api/cases?limit=-1",
        "/api/cases?since=yesterday",
        "/api/cases?kind=graffiti",
    ] {
        let (s, doc) = get_json(&f, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert!(doc["error"].is_string(), "{bad}: {doc}");
    }
    let (s, one) = get_json(&f, "/api/cases/1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["case"]["count"], 2);
    assert_eq!(one["evidence"][0]["url"], "/evidence/1/1.jpg");
    assert_eq!(one["deliveries"][0]["event"], "create");
    assert_eq!(
        get_json(&f, "/api/cases/999").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_json(&f, "/api/cases/abc").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn evidence_is_served_and_paths_cannot_leave_the_data_dir() {
    let f = fixture(None, false);
    let (s, bytes) = call(&f, "GET", "/evidence/1/1.jpg", None, vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        bytes,
        std::fs::read(common::path("samples/dog.jpg")).unwrap()
    );
    for bad in [
        "/evidence/1/2.jpg",
        "/evidence/1/1.png",
        "/evidence/1/..%2F..%2Fcases.sqlite",
        "/evidence/..%2F..%2F/cases.sqlite",
        "/evidence/%2E%2E/1.jpg",
        "/evidence/1/%2Fetc%2Fpasswd.jpg",
        "/evidence/1/..",
    ] {
        let (s, body) = call(&f, "GET", bad, None, vec![]).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{bad}");
        assert!(!String::from_utf8_lossy(&body).contains("SQLite"), "{bad}");
    }
}

fn review(verdict: &str, note: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"verdict": verdict, "note": note, "reviewer": "ana"}))
        .unwrap()
}

#[tokio::test]
async fn reviews_need_the_token_and_follow_the_case_rules() {
    let f = fixture(Some("s3cret-token"), false);
    let uri = "/api/cases/1/review";
    for auth in [None, Some("wrong"), Some("s3cret-token-and-more")] {
        let (s, _) = call(&f, "POST", uri, auth, review("confirm", "")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert_eq!(
        f.store.case(1).unwrap().status,
        gridwatch::cases::CaseStatus::Open,
        "refused writes change nothing"
    );
    let tok = Some("s3cret-token");
    let (s, b) = call(&f, "POST", uri, tok, review("confirm", "van on the kerb")).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(f.store.case(1).unwrap().status.as_str(), "confirmed");
    let r = &f.store.reviews(1).unwrap()[0];
    assert_eq!(
        (r.reviewer.as_str(), r.note.as_str()),
        ("ana", "van on the kerb")
    );
    let (s, _) = call(&f, "POST", uri, tok, review("reject", "")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call(&f, "POST", uri, tok, review("confirm", "")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{}", String::from_utf8_lossy(&b));
    for (body, code) in [
        (b"not json".to_vec(), StatusCode::BAD_REQUEST),
        (review("maybe", ""), StatusCode::BAD_REQUEST),
        (
            br#"{"verdict":"confirm","extra":1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            review("confirm", &"x".repeat(2001)),
            StatusCode::BAD_REQUEST,
        ),
        (
            review("confirm", &"x".repeat(20_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let (s, out) = call(&f, "POST", "/api/cases/2/review", tok, body).await;
        assert_eq!(s, code, "{}", String::from_utf8_lossy(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(doc["error"].is_string());
    }
    assert_eq!(f.store.case(2).unwrap().status.as_str(), "open");
    let (s, _) = call(
        &f,
        "POST",
        "/api/cases/999/review",
        tok,
        review("confirm", ""),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // the decision is queued for the workflow as a follow-up
    let ds = f.store.deliveries(Some(1)).unwrap();
    assert!(ds.iter().any(|d| d.event.as_str() == "update"), "{ds:?}");

    // no token configured and writes not opened: a reviewer's token is needed
    let closed = fixture(None, false);
    let (s, b) = call(&closed, "POST", uri, None, review("confirm", "")).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&b)
    );
    let open = fixture(None, true);
    assert_eq!(
        call(&open, "POST", uri, None, review("confirm", ""))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_count_cases_and_deliveries() {
    let f = fixture(None, false);
    let (s, body) = call(&f, "GET", "/metrics", None, vec![]).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("gridwatch_cases{kind=\"dumping\",status=\"open\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("gridwatch_deliveries{state=\"pending\"} 24"),
        "12 creates + 12 follow-ups: {text}"
    );
    assert!(text.contains("gridwatch_stage_seconds_bucket{le=\"+Inf\",stage=\"inference\"} 0"));
}

/// The findings of a review as an attacker and a careless operator: each reproduced, each
/// refused now, and refused writes change nothing.
#[tokio::test]
async fn what_an_attacker_tried_is_refused() {
    // an empty token: no write at all, with or without an Authorization header (it
    // is no token: one in force is asked for)
    let empty = fixture(Some(""), false);
    for headers in [
        vec![("content-type", "application/json")],
        vec![
            ("content-type", "application/json"),
            ("authorization", "Bearer "),
        ],
    ] {
        let (s, _, b) = call_with(
            &empty,
            "POST",
            "/api/cases/1/review",
            &headers,
            review("confirm", ""),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{}",
            String::from_utf8_lossy(&b)
        );
    }
    // with open writes: a cross-site form post (text/plain) and a foreign Origin
    let open = fixture(None, true);
    let uri = "/api/cases/1/review";
    let body = review("reject", "");
    for (what, headers, code) in [
        (
            "text/plain",
            vec![
                ("content-type", "text/plain"),
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            vec![("host", "127.0.0.1:8080")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "foreign origin",
            vec![
                ("content-type", "application/json"),
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "null origin",
            vec![
                ("content-type", "application/json"),
                ("host", "127.0.0.1:8080"),
                ("origin", "null"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "rebinding host",
            vec![
                ("content-type", "application/json"),
                ("host", "attacker.example:8080"),
            ],
            StatusCode::MISDIRECTED_REQUEST,
        ),
    ] {
        let (s, _, b) = call_with(&open, "POST", uri, &headers, body.clone()).await;
        assert_eq!(s, code, "{what}: {}", String::from_utf8_lossy(&b));
        let doc: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert!(doc["error"].is_string(), "{what}: JSON errors");
    }
    assert_eq!(
        open.store.case(1).unwrap().status.as_str(),
        "open",
        "nothing changed"
    );
    // the page's own origin is fine
    let same = [
        ("content-type", "application/json; charset=utf-8"),
        ("host", "127.0.0.1:8080"),
        ("origin", "http://127.0.0.1:8080"),
    ];
    let (s, _, b) = call_with(&open, "POST", uri, &same, review("confirm", "ok")).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    // reads through a rebound name are refused too: the cases are not for that page
    let (s, _, _) = call_with(
        &open,
        "GET",
        "/api/cases",
        &[("host", "attacker.example")],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::MISDIRECTED_REQUEST);
    let (s, _, _) = call_with(
        &open,
        "GET",
        "/api/cases",
        &[("host", "localhost:8080")],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // a NUL or a bidi override in a name or note: refused, nothing stored
    let f = fixture(Some("tok"), false);
    for body in [
        serde_json::json!({"verdict": "reject", "reviewer": "a\u{0}b\u{202e}<script>"}),
        serde_json::json!({"verdict": "reject", "reviewer": "ana", "note": "x\u{202e}y"}),
        serde_json::json!({"verdict": "reject", "reviewer": "ana", "note": "bell\u{7}"}),
    ] {
        let (s, b) = call(
            &f,
            "POST",
            "/api/cases/2/review",
            Some("tok"),
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            String::from_utf8_lossy(&b).contains("U+"),
            "names the character"
        );
    }
    assert!(f.store.reviews(2).unwrap().is_empty());
    // paths that cannot be read and unknown paths: JSON like every other error
    for (uri, code) in [
        ("/api/cases/%ff", StatusCode::BAD_REQUEST),
        ("/api/nothing", StatusCode::NOT_FOUND),
        ("/open311/v2/x", StatusCode::NOT_FOUND),
    ] {
        let (s, h, b) = call_with(&f, "GET", uri, &[], vec![]).await;
        assert_eq!(s, code, "{uri}");
        assert_eq!(h["content-type"], "application/json", "{uri}");
        let doc: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert!(
            doc["error"].is_string(),
            "{uri}: the API's error shape, not Open311's"
        );
    }
}

#[tokio::test]
async fn the_review_page_cannot_be_framed_and_runs_only_its_own_script() {
    let f = fixture(None, false);
    let (s, h, page) = call_with(&f, "GET", "/", &[], vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    // the hash in the policy is the page's script's
    use base64::Engine;
    use sha2::Digest;
    let page = String::from_utf8(page).unwrap();
    let script = page
        .split("<script>")
        .nth(1)
        .unwrap()
        .split("</script>")
        .next()
        .unwrap();
    let want =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
    assert!(csp.contains(&want), "{csp}");
    let (_, h, _) = call_with(&f, "GET", "/api/cases", &[], vec![]).await;
    assert_eq!(h["x-frame-options"], "DENY", "on API answers too");
}

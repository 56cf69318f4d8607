//! Evidence carried with deliveries (`[delivery] media = "attach"`), over real HTTP on
//! loopback: an Open311 create as `multipart/form-data` read back by Python's MIME
//! parser, the violation photo its `media` part byte for byte; a webhook create that
//! waits for the case's clip and carries every item's bytes within the size limit.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gridwatch::cases::config::{DeliveryConfig, MediaMode, TargetKind};
use gridwatch::cases::outbox::{Client, Outbox};
use gridwatch::cases::photo::PhotoRole;
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{CaseStore, DeliveryState};
use sha2::Digest;

const T0: i64 = 1_795_000_000_000;

/// What a receiver got: each request's content type and body.
#[derive(Clone, Default)]
struct Got(Arc<Mutex<Vec<(String, Bytes)>>>);

async fn receive(
    axum::extract::State(g): axum::extract::State<Got>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    g.0.lock().unwrap().push((ctype, body));
    axum::Json(serde_json::json!([{"service_request_id": "A-1"}])).into_response()
}

async fn receiver(path: &str) -> (String, Got) {
    let got = Got::default();
    let app = axum::Router::new()
        .route(path, axum::routing::post(receive))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn sha(b: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(b))
}

/// A case with a first sight and a violation photo (real JPEGs), its id and the photos.
fn case_with_photos(store: &SqliteStore) -> (i64, Vec<Vec<u8>>) {
    let (id, _) = store
        .record(&common::cases::violation(
            "illegal_parking",
            "media-cell",
            "street",
            T0,
        ))
        .unwrap();
    let photos: Vec<Vec<u8>> = ["samples/person.jpg", "samples/dog.jpg"]
        .iter()
        .map(|p| std::fs::read(common::path(p)).unwrap())
        .collect();
    for (i, (role, bytes)) in [PhotoRole::FirstSight, PhotoRole::Violation]
        .into_iter()
        .zip(&photos)
        .enumerate()
    {
        store
            .add_photo(id, "street", T0 + i as i64, Some(role), bytes, 10)
            .unwrap();
    }
    (id, photos)
}

fn attach(url: &str, target: TargetKind) -> DeliveryConfig {
    let mut cfg = DeliveryConfig::open311(url);
    cfg.target = target;
    cfg.secret = Some("s3cret".into());
    cfg.media = MediaMode::Attach;
    cfg.public_url = Some("https://gridwatch.example".into());
    cfg.retry_initial = Duration::from_millis(50);
    cfg.retry_max = Duration::from_millis(200);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open311_create_uploads_the_violation_photo_as_its_media_part() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(tmp.path(), Default::default()).unwrap());
    let (id, photos) = case_with_photos(&store);
    let (url, got) = receiver("/requests.json").await;
    let cfg = attach(&url, TargetKind::Open311);
    let ob = Outbox::new(
        store.clone(),
        Client::from_config(&cfg).unwrap(),
        cfg.retry(),
        1,
    );
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(10)))
        .await
        .unwrap());
    assert_eq!(
        store.deliveries(Some(id)).unwrap()[0].state,
        DeliveryState::Delivered
    );
    let (ctype, body) = got.0.lock().unwrap()[0].clone();
    assert!(
        ctype.starts_with("multipart/form-data; boundary="),
        "{ctype}"
    );
    let file = tmp.path().join("body");
    std::fs::write(&file, &body).unwrap();
    let parsed = std::process::Command::new("/usr/bin/python3")
        .arg(common::path("tests/fixtures/parse_multipart.py"))
        .arg(&file)
        .arg(&ctype)
        .output()
        .unwrap();
    assert!(parsed.status.success(), "{parsed:?}");
    let parts: Vec<serde_json::Value> = serde_json::from_slice(&parsed.stdout).unwrap();
    let field = |n: &str| {
        parts
            .iter()
            .find(|p| p["name"] == n)
            .and_then(|p| p["text"].as_str())
            .map(str::to_string)
    };
    // the fields a form create has, and the photo
    assert_eq!(field("service_code").as_deref(), Some("0505"));
    let lat = format!("{:.7}", store.case(id).unwrap().lat);
    assert_eq!(field("lat"), Some(lat));
    assert_eq!(
        field("attribute[gridwatch_case_id]").as_deref(),
        Some(id.to_string().as_str())
    );
    let violation = &store.evidence(id).unwrap()[1];
    assert_eq!(
        field("media_url").unwrap(),
        format!("https://gridwatch.example/{}", violation.file)
    );
    let media: Vec<&serde_json::Value> = parts.iter().filter(|p| p["name"] == "media").collect();
    assert_eq!(media.len(), 1, "GeoReport has one media: {parts:?}");
    assert_eq!(media[0]["type"], "image/jpeg");
    assert_eq!(media[0]["sha256"], sha(&photos[1]), "the violation photo");
    assert_eq!(media[0]["sha256"], violation.sha256.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_create_waits_for_the_clip_and_carries_each_item_that_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(tmp.path(), Default::default()).unwrap());
    let (id, photos) = case_with_photos(&store);
    let (url, got) = receiver("/hook").await;
    let mut cfg = attach(&format!("{url}/hook"), TargetKind::Webhook);
    // room for the clip and the smaller photo, not for all three
    let clip = {
        let m =
            opencv::imgcodecs::imread_def(common::path("samples/dog.jpg").display().to_string())
                .unwrap();
        gridwatch::draw::mp4::encode_mp4(&[m.clone(), m], Default::default()).unwrap()
    };
    let small = photos.iter().map(Vec::len).min().unwrap();
    let big = photos.iter().map(Vec::len).max().unwrap();
    cfg.media_max_bytes = clip.len() + small + big / 2;
    let ob = Arc::new(
        Outbox::new(
            store.clone(),
            Client::from_config(&cfg).unwrap(),
            cfg.retry(),
            1,
        )
        .expecting_clips(Duration::from_secs(10)),
    );
    let draining = {
        let ob = ob.clone();
        tokio::spawn(async move {
            ob.drain(Some(Instant::now() + Duration::from_secs(20)))
                .await
                .unwrap()
        })
    };
    // the clip comes a moment after the case opened, as from the clip worker
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        got.0.lock().unwrap().is_empty(),
        "the create waits for the clip"
    );
    store
        .add_photo(id, "street", T0 + 1, Some(PhotoRole::Clip), &clip, 10)
        .unwrap()
        .unwrap();
    assert!(draining.await.unwrap());
    let (ctype, body) = got.0.lock().unwrap()[0].clone();
    assert_eq!(ctype, "application/json");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = doc["evidence"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let data = |i: usize| {
        items[i]["data"]
            .as_str()
            .map(|d| base64::engine::general_purpose::STANDARD.decode(d).unwrap())
    };
    assert_eq!(items[2]["role"], "clip");
    assert_eq!(items[2]["content_type"], "video/mp4");
    for (i, item) in items.iter().enumerate() {
        match data(i) {
            Some(b) => assert_eq!(sha(&b), item["sha256"].as_str().unwrap(), "item {i}"),
            None => assert!(
                item["url"].as_str().unwrap().starts_with("https://"),
                "{item}"
            ),
        }
    }
    let carried: Vec<usize> = (0..3).filter(|&i| data(i).is_some()).collect();
    let bigger = if photos[0].len() > photos[1].len() {
        0
    } else {
        1
    };
    assert!(
        carried.contains(&2) && !carried.contains(&bigger) && carried.len() == 2,
        "within {} bytes: items {carried:?} carried",
        cfg.media_max_bytes
    );
    let attempts = store
        .attempts(store.deliveries(Some(id)).unwrap()[0].id)
        .unwrap();
    assert!(
        attempts.iter().any(|a| a.result == "not_yet"),
        "{attempts:?}"
    );
}

//! Delivery over real HTTP on loopback: the outbox against the built-in Open311 inbox
//! and against scripted receivers (500s, timeouts, 429, 400), a webhook that checks
//! signatures, the receiver down then back, gridwatch killed with SIGKILL mid-delivery,
//! 1 000 violations from 10 cameras on 10 threads, and malformed requests to the inbox.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gridwatch::cases::config::{DeliveryConfig, TargetKind};
use gridwatch::cases::inbox::{Inbox, InboxConfig, InboxStore, StoredRequest};
use gridwatch::cases::outbox::{Client, Outbox};
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{
    CaseStatus, CaseStore, DedupConfig, DeliveryState, NewViolation, Outcome, Review, Verdict,
};
use gridwatch::clock::ManualClock;

const T0: i64 = 1_795_000_000_000;

fn violation(kind: &str, cell: &str, camera: &str, at_ms: i64) -> NewViolation {
    NewViolation {
        kind: kind.parse().unwrap(),
        cell: cell.into(),
        admin_path: format!("Huangpu / Nanjing East Road / {cell}"),
        lat: 31.2304,
        lon: 121.4737,
        camera: camera.into(),
        zone: "no-parking".into(),
        zone_version: None,
        at_ms,
        since_ms: at_ms - 300_000,
        footprint: None,
        model: String::new(),
        model_sha256: String::new(),
    }
}

fn store(dir: &std::path::Path, followup: Duration) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(
            dir,
            DedupConfig {
                followup_delay: followup,
                ..DedupConfig::default()
            },
        )
        .unwrap(),
    )
}

fn config(url: &str) -> DeliveryConfig {
    let mut cfg = DeliveryConfig::open311(url);
    cfg.api_key = Some(common::cases::INBOX_KEY.into());
    cfg.retry_initial = Duration::from_millis(50);
    cfg.retry_max = Duration::from_millis(400);
    cfg.timeout = Duration::from_secs(5);
    cfg
}

fn outbox(store: &Arc<SqliteStore>, cfg: &DeliveryConfig) -> Outbox {
    Outbox::new(
        store.clone(),
        Client::from_config(cfg).unwrap(),
        cfg.retry(),
        cfg.concurrency,
    )
}

/// Starts the built-in inbox in this process on `addr` (port 0: any).
async fn start_inbox(
    dir: &std::path::Path,
    cfg: InboxConfig,
    addr: SocketAddr,
) -> (String, Arc<Inbox>, tokio::sync::oneshot::Sender<()>) {
    let inbox = Arc::new(Inbox {
        store: InboxStore::open(dir).unwrap(),
        cfg,
    });
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let url = format!("http://{}/open311/v2", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let served = inbox.clone();
    tokio::spawn(async move {
        gridwatch::cases::inbox::serve(listener, served, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (url, inbox, tx)
}

/// The inbox with its default settings on any free port.
async fn start_default_inbox(
    dir: &std::path::Path,
) -> (String, Arc<Inbox>, tokio::sync::oneshot::Sender<()>) {
    start_inbox(
        dir,
        common::cases::inbox_config(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
}

fn all_requests(inbox: &Inbox) -> Vec<StoredRequest> {
    inbox
        .store
        .requests(&gridwatch::cases::inbox::RequestFilter {
            limit: Some(100_000),
            ..Default::default()
        })
        .unwrap()
}

/// Every case delivered once: one request per case, keyed by the create's idempotency
/// key, and the case knows the request's id.
fn assert_each_case_filed_once(store: &SqliteStore, requests: &[StoredRequest]) {
    let cases = store.cases(None, 100_000).unwrap();
    assert_eq!(requests.len(), cases.len(), "one request per case");
    let by_key: HashMap<_, _> = requests
        .iter()
        .map(|r| (r.idempotency_key.clone().unwrap(), r))
        .collect();
    assert_eq!(by_key.len(), requests.len(), "no key stored twice");
    for c in &cases {
        let create = &store.deliveries(Some(c.id)).unwrap()[0];
        assert_eq!(create.state, DeliveryState::Delivered, "case {}", c.id);
        let r = by_key
            .get(&create.idempotency_key)
            .unwrap_or_else(|| panic!("case {} never reached the receiver", c.id));
        assert_eq!(
            store.remote(c.id).unwrap().0.as_deref(),
            Some(r.service_request_id.as_str())
        );
        assert_eq!(r.attributes["gridwatch_case_id"], c.id.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_back_delivers_each_case_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(&tmp.path().join("gw"), Duration::from_secs(3600));
    for i in 0..12 {
        store
            .record(&violation(
                "illegal_parking",
                &format!("C{i}"),
                "cam1",
                T0 + i,
            ))
            .unwrap();
    }
    // a port nobody listens on yet
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg = config(&format!("http://{addr}/open311/v2"));
    let ob = outbox(&store, &cfg);
    let r = ob.round().await.unwrap();
    assert_eq!((r.attempted, r.delivered), (12, 0));
    let counts = store.delivery_counts().unwrap();
    assert_eq!(counts.pending, 12, "{counts:?}");
    let d = &store.deliveries(Some(1)).unwrap()[0];
    let attempts = store.attempts(d.id).unwrap();
    assert_eq!(attempts[0].result, "connection", "{attempts:?}");
    assert!(
        d.last_error.as_deref().unwrap().contains("connection"),
        "{d:?}"
    );
    // still down a while: more failed attempts, nothing lost
    tokio::time::sleep(Duration::from_millis(120)).await;
    ob.round().await.unwrap();
    assert_eq!(store.delivery_counts().unwrap().pending, 12);

    let (_url, inbox, stop) = start_inbox(
        &tmp.path().join("inbox"),
        common::cases::inbox_config(),
        addr,
    )
    .await;
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(20)))
        .await
        .unwrap());
    let reqs = all_requests(&inbox);
    assert_each_case_filed_once(&store, &reqs);
    assert!(reqs.iter().all(|r| r.received == 1));
    assert!(store.attempts(d.id).unwrap().len() >= 3);
    let _ = stop.send(());
}

/// A scripted receiver: answers each attempt of a key by the script, then files it.
#[derive(Clone)]
struct Scripted {
    seen: Arc<Mutex<HashMap<String, u32>>>,
    script: Arc<dyn Fn(u32) -> Option<Response> + Send + Sync>,
    delay_first: Option<Duration>,
}

async fn scripted_handler(
    axum::extract::State(s): axum::extract::State<Scripted>,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let n = {
        let mut seen = s.seen.lock().unwrap();
        let n = seen.entry(key.clone()).or_default();
        *n += 1;
        *n
    };
    if n == 1 {
        if let Some(d) = s.delay_first {
            tokio::time::sleep(d).await;
        }
    }
    if let Some(r) = (s.script)(n) {
        return r;
    }
    // gw-CASE-SEQ-RANDOM
    let id = key.split('-').nth(1).unwrap_or("0").to_string();
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!([{ "service_request_id": format!("R{id}") }])),
    )
        .into_response()
}

async fn start_scripted(s: Scripted) -> String {
    let app = axum::Router::new()
        .route("/v2/requests.json", axum::routing::post(scripted_handler))
        .with_state(s);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v2", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_timeouts_are_retried_until_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path(), Duration::from_secs(3600));
    for i in 0..4 {
        store
            .record(&violation("dumping", &format!("D{i}"), "cam2", T0))
            .unwrap();
    }
    let seen = Arc::new(Mutex::new(HashMap::new()));
    // attempts 1-2: 500 and 503; attempt 3: timeout (first only is slow... see below)
    let url = start_scripted(Scripted {
        seen: seen.clone(),
        script: Arc::new(|n| match n {
            2 => Some((StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response()),
            3 => Some(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(serde_json::json!([{"code": 503, "description": "maintenance"}])),
                )
                    .into_response(),
            ),
            _ => None,
        }),
        delay_first: Some(Duration::from_millis(1500)),
    })
    .await;
    let mut cfg = config(&url);
    cfg.timeout = Duration::from_millis(400);
    let ob = outbox(&store, &cfg);
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(30)))
        .await
        .unwrap());
    for c in store.cases(None, 10).unwrap() {
        let d = &store.deliveries(Some(c.id)).unwrap()[0];
        assert_eq!(d.state, DeliveryState::Delivered);
        let a: Vec<_> = store
            .attempts(d.id)
            .unwrap()
            .into_iter()
            .map(|a| (a.result, a.http_status))
            .collect();
        assert_eq!(
            a,
            vec![
                ("timeout".to_string(), None),
                ("http".to_string(), Some(500)),
                ("http".to_string(), Some(503)),
                ("delivered".to_string(), None)
            ]
        );
        assert_eq!(store.remote(c.id).unwrap().0, Some(format!("R{}", c.id)));
    }
    assert!(seen.lock().unwrap().values().all(|&n| n == 4));
}

/// On a clock the test moves: a receiver's `Retry-After: 1` makes the retry due exactly
/// 1 s after the attempt, not a moment sooner, and it goes once that second passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_for_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(T0 + 60_000));
    let store = Arc::new(
        SqliteStore::open(tmp.path(), DedupConfig::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    store
        .record(&violation("dumping", "D1", "cam2", T0))
        .unwrap();
    let url = start_scripted(Scripted {
        seen: Arc::new(Mutex::new(HashMap::new())),
        script: Arc::new(|n| {
            (n == 1).then(|| {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "slow down",
                )
                    .into_response()
            })
        }),
        delay_first: None,
    })
    .await;
    let mut cfg = config(&url);
    cfg.retry_max = Duration::from_secs(5);
    let ob = outbox(&store, &cfg).with_clock(clock.clone());
    ob.round().await.unwrap();
    let d = &store.deliveries(Some(1)).unwrap()[0];
    assert_eq!(d.state, DeliveryState::Pending);
    let a = &store.attempts(d.id).unwrap()[0];
    assert_eq!(a.at_ms, T0 + 60_000, "the attempt at the clock's time");
    assert_eq!(d.next_at_ms - a.at_ms, 1000, "the 1 s asked for");
    clock.advance(Duration::from_millis(999));
    assert_eq!(ob.round().await.unwrap().attempted, 0, "not before it");
    clock.advance(Duration::from_millis(1));
    let r = ob.round().await.unwrap();
    assert_eq!((r.attempted, r.delivered), (1, 1));
    assert_eq!(
        store.deliveries(Some(1)).unwrap()[0].state,
        DeliveryState::Delivered
    );
}

/// On a clock the test moves: sightings absorbed by a filed case go as one follow-up,
/// due the follow-up delay after the first of them, however many come meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absorbed_sightings_go_as_one_follow_up_after_the_delay() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(T0 + 60_000));
    let dedup = DedupConfig {
        followup_delay: Duration::from_secs(60),
        ..DedupConfig::default()
    };
    let store = Arc::new(
        SqliteStore::open(&tmp.path().join("gw"), dedup)
            .unwrap()
            .with_clock(clock.clone()),
    );
    let (url, inbox, stop) = start_default_inbox(&tmp.path().join("inbox")).await;
    let ob = outbox(&store, &config(&url)).with_clock(clock.clone());
    store
        .record(&violation("illegal_parking", "P1", "cam1", T0))
        .unwrap();
    assert_eq!(ob.round().await.unwrap().delivered, 1, "the case is filed");
    for i in 1..=5 {
        store
            .record(&violation("illegal_parking", "P1", "cam1", T0 + i * 1000))
            .unwrap();
        clock.advance(Duration::from_secs(10));
    }
    let pending: Vec<_> = store
        .deliveries(Some(1))
        .unwrap()
        .into_iter()
        .filter(|d| d.state == DeliveryState::Pending)
        .collect();
    assert_eq!(pending.len(), 1, "one follow-up for five sightings");
    assert_eq!(pending[0].next_at_ms, T0 + 60_000 + 60_000);
    // 50 s on: not yet
    assert_eq!(ob.round().await.unwrap().attempted, 0);
    clock.advance(Duration::from_secs(10));
    assert_eq!(ob.round().await.unwrap().delivered, 1);
    let reqs = all_requests(&inbox);
    assert_eq!(reqs.len(), 1);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_fails_for_good_with_the_receivers_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path(), Duration::ZERO);
    // a service code the inbox does not offer
    let mut v = violation("street_vending", "G1", "cam3", T0);
    store.record(&v).unwrap();
    v.at_ms += 1000;
    v.camera = "cam4".into();
    assert_eq!(store.record(&v).unwrap().1, Outcome::Absorbed);
    let (url, inbox, stop) = start_default_inbox(&tmp.path().join("inbox")).await;
    let mut cfg = config(&url);
    cfg.service_codes
        .insert("street_vending".into(), "graffiti".into());
    let ob = outbox(&store, &cfg);
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(10)))
        .await
        .unwrap());
    let ds = store.deliveries(Some(1)).unwrap();
    assert_eq!(ds.len(), 2, "{ds:?}");
    assert_eq!(ds[0].state, DeliveryState::Failed);
    assert_eq!(ds[0].attempts, 1, "a 400 is not retried");
    let why = ds[0].last_error.as_deref().unwrap();
    assert!(
        why.contains("HTTP 400") && why.contains("service_code graffiti not found"),
        "{why}"
    );
    assert_eq!(
        ds[1].state,
        DeliveryState::Failed,
        "the follow-up goes with it"
    );
    assert!(ds[1].last_error.as_deref().unwrap().contains("not filed"));
    assert_eq!(store.delivery_counts().unwrap().failed, 2);
    assert!(all_requests(&inbox).is_empty());
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_resolved_and_follow_ups_reach_the_request() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path(), Duration::ZERO);
    let (url, inbox, stop) = start_inbox(
        &tmp.path().join("inbox"),
        InboxConfig {
            answer_with_token: true,
            ..common::cases::inbox_config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let (id, _) = store
        .record(&violation("street_vending", "V1", "cam1", T0))
        .unwrap();
    let jpeg = std::fs::read(common::path("samples/person.jpg")).unwrap();
    store
        .add_evidence(id, "cam1", T0, &jpeg, 3)
        .unwrap()
        .unwrap();
    store
        .record(&violation("street_vending", "V1", "cam2", T0 + 5000))
        .unwrap();
    store
        .review(&Review {
            case_id: id,
            verdict: Verdict::Confirm,
            reviewer: "analyst-7".into(),
            note: "two stalls on the pavement".into(),
            at_ms: T0 + 60_000,
            reason: None,
        })
        .unwrap();
    let mut cfg = config(&url);
    cfg.public_url = Some("http://gridwatch.example:8080".into());
    let ob = outbox(&store, &cfg);
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(10)))
        .await
        .unwrap());
    let events: Vec<_> = store
        .deliveries(Some(id))
        .unwrap()
        .iter()
        .map(|d| (d.event.as_str(), d.state))
        .collect();
    assert_eq!(
        events,
        vec![
            ("create", DeliveryState::Delivered),
            ("update", DeliveryState::Delivered),
            ("resolve", DeliveryState::Delivered)
        ],
        "the absorbed violation and the review share one follow-up, sent after the token resolved"
    );
    let (remote, token) = store.remote(id).unwrap();
    assert!(token.is_some());
    let reqs = all_requests(&inbox);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(remote.as_deref(), Some(r.service_request_id.as_str()));
    assert_eq!(r.service_code, "0501");
    assert_eq!(r.updates, 1);
    assert_eq!(r.attributes["gridwatch_status"], "confirmed");
    assert_eq!(r.attributes["gridwatch_count"], "2");
    assert!(r.description.contains("analyst-7"), "{}", r.description);
    assert_eq!(
        r.media_url.as_deref(),
        Some(format!("http://gridwatch.example:8080/evidence/{id}/1.jpg").as_str())
    );
    assert_eq!(store.case(id).unwrap().status, CaseStatus::Confirmed);
    let ev = &store.evidence(id).unwrap()[0];
    assert_eq!(std::fs::read(tmp.path().join(&ev.file)).unwrap(), jpeg);
    let _ = stop.send(());
}

/// A webhook receiver that checks the signature and keeps bodies by idempotency key.
#[derive(Clone, Default)]
struct Hook {
    got: Arc<Mutex<Vec<(String, serde_json::Value, bool)>>>,
}

async fn hook_handler(
    axum::extract::State(h): axum::extract::State<Hook>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sig = headers
        .get("x-gridwatch-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = gridwatch::cases::webhook::verify(b"s3cret", &body, sig);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    h.got.lock().unwrap().push((key, doc, ok));
    if !ok {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    axum::Json(serde_json::json!({"id": "W-1"})).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_is_signed_and_follow_ups_carry_the_review() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path(), Duration::from_secs(3600));
    let hook = Hook::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook_handler))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (id, _) = store
        .record(&violation("illegal_construction", "K9", "drone-1", T0))
        .unwrap();
    let mut cfg = config(&url);
    cfg.target = TargetKind::Webhook;
    cfg.secret = Some("s3cret".into());
    let ob = outbox(&store, &cfg);
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(10)))
        .await
        .unwrap());
    store
        .review(&Review {
            case_id: id,
            verdict: Verdict::Reject,
            reviewer: "analyst-2".into(),
            note: "scaffolding has a permit".into(),
            at_ms: T0 + 1000,
            reason: None,
        })
        .unwrap();
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(10)))
        .await
        .unwrap());
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|g| g.2),
        "every body is signed with the secret"
    );
    let (k1, opened, _) = &got[0];
    assert_eq!(opened["event"], "case.opened");
    assert_eq!(opened["idempotency_key"], k1.as_str());
    assert_eq!(opened["case"]["service_code"], "0101");
    assert_eq!(opened["case"]["cameras"], serde_json::json!(["drone-1"]));
    let (k2, updated, _) = &got[1];
    assert_ne!(k1, k2);
    assert_eq!(updated["event"], "case.updated");
    assert_eq!(updated["case"]["status"], "rejected");
    assert_eq!(updated["reviews"][0]["note"], "scaffolding has a permit");
    assert_eq!(store.remote(id).unwrap().0.as_deref(), Some("W-1"));

    // a receiver with another secret refuses: a permanent failure, with its reason
    let (id2, _) = store
        .record(&violation("dumping", "K10", "cam1", T0))
        .unwrap();
    cfg.secret = Some("wrong".into());
    let ob = outbox(&store, &cfg);
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(10)))
        .await
        .unwrap());
    let d = &store.deliveries(Some(id2)).unwrap()[0];
    assert_eq!(d.state, DeliveryState::Failed);
    assert!(d.last_error.as_deref().unwrap().contains("401"), "{d:?}");
}

#[test]
fn thousand_violations_from_ten_cameras_make_fifty_cases_delivered_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(&tmp.path().join("gw"), Duration::ZERO);
    std::thread::scope(|s| {
        for cam in 0..10 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..100i64 {
                    let cell = (i + cam * 7) % 50;
                    let kind = if cell % 2 == 0 {
                        "illegal_parking"
                    } else {
                        "dumping"
                    };
                    store
                        .record(&violation(
                            kind,
                            &format!("310101-{cell:03}"),
                            &format!("cam{cam}"),
                            T0 + i * 1000,
                        ))
                        .unwrap();
                }
            });
        }
    });
    let cases = store.cases(None, 1000).unwrap();
    assert_eq!(cases.len(), 50);
    assert_eq!(cases.iter().map(|c| c.count).sum::<i64>(), 1000);
    for c in &cases {
        assert_eq!(c.count, 20, "case {c:?}");
        assert_eq!(c.cameras.len(), 10, "case {c:?}");
        let cell: i64 = c.cell[7..].parse().unwrap();
        let kind = if cell % 2 == 0 {
            "illegal_parking"
        } else {
            "dumping"
        };
        assert_eq!(c.kind, kind);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (url, inbox, stop) = start_default_inbox(&tmp.path().join("inbox")).await;
        let ob = outbox(&store, &config(&url));
        assert!(ob
            .drain(Some(Instant::now() + Duration::from_secs(60)))
            .await
            .unwrap());
        let reqs = all_requests(&inbox);
        assert_each_case_filed_once(&store, &reqs);
        // one follow-up per case (pending while the case was still taking violations)
        assert!(reqs.iter().all(|r| r.updates == 1 && r.received == 1));
        assert!(reqs.iter().all(|r| r.attributes["gridwatch_count"] == "20"));
        let _ = stop.send(());
    });
}

fn form_post(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-api-key", common::cases::INBOX_KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (
            code,
            serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default(),
        )
    })
}

#[test]
fn malformed_inbox_requests_get_open311_errors_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, inbox, stop) = rt.block_on(start_default_inbox(tmp.path()));
    let post = format!("{url}/requests.json");
    let ok = "service_code=0505&lat=31.23&long=121.47";
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "no service_code",
            b"lat=31.23&long=121.47".to_vec(),
            400,
            "service_code is required",
        ),
        (
            "unknown service",
            b"service_code=9999&lat=31.23&long=121.47".to_vec(),
            400,
            "not found",
        ),
        (
            "lat not a number",
            b"service_code=0505&lat=north&long=121.47".to_vec(),
            400,
            "lat",
        ),
        (
            "lat out of range",
            b"service_code=0505&lat=123&long=121.47".to_vec(),
            400,
            "lat",
        ),
        (
            "long out of range",
            b"service_code=0505&lat=31&long=-181".to_vec(),
            400,
            "long",
        ),
        (
            "no location",
            b"service_code=0505".to_vec(),
            400,
            "location",
        ),
        (
            "description too long",
            format!("{ok}&description={}", "%E8%BF%9D".repeat(4001)).into_bytes(),
            400,
            "4001 characters",
        ),
        (
            "invalid UTF-8 body",
            [ok.as_bytes(), b"&description=\xff\xfe"].concat(),
            400,
            "UTF-8",
        ),
        (
            "invalid UTF-8 escape",
            format!("{ok}&description=%C3%28").into_bytes(),
            400,
            "UTF-8",
        ),
        (
            "bad media_url",
            format!("{ok}&media_url=file%3A%2F%2F%2Fetc%2Fpasswd").into_bytes(),
            400,
            "media_url",
        ),
    ];
    for (what, body, code, needle) in cases {
        let (got, doc) = form_post(&post, body);
        assert_eq!(got, code, "{what}: {doc}");
        let desc = doc[0]["description"].as_str().unwrap_or_default();
        assert_eq!(doc[0]["code"], code, "{what}: {doc}");
        assert!(desc.contains(needle), "{what}: {desc}");
    }
    // a huge body: refused from its Content-Length, before it is read
    {
        use std::io::{Read, Write};
        let addr = url.trim_start_matches("http://").split('/').next().unwrap();
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "POST /open311/v2/requests.json HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{ok}",
            2 << 20
        )
        .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("}]") {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.contains(r#""code":413"#) && answer.contains("too large"),
            "{answer}"
        );
    }
    // wrong content type, unknown ids and formats
    let rt2 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt2.block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .post(&post)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        for (path, code) in [
            ("requests/999.json", 404),
            ("requests/abc.json", 404),
            ("requests/1.xml", 400),
            ("tokens/nope.json", 404),
            ("nowhere", 404),
        ] {
            let r = c.get(format!("{url}/{path}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), code, "{path}");
            let doc: serde_json::Value =
                serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default();
            assert_eq!(doc[0]["code"], code, "{path}: {doc}");
        }
        let r = c
            .get(format!("{url}/requests.json?start_date=yesterday"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
    });
    assert!(all_requests(&inbox).is_empty(), "nothing stored");
    // and a good one is stored, once, however often it is sent
    for _ in 0..3 {
        let r = rt2.block_on(async {
            reqwest::Client::new()
                .post(&post)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-api-key", common::cases::INBOX_KEY)
                .header("idempotency-key", "k-1")
                .body(format!("{ok}&description=%E8%BF%9D%E5%81%9C"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
        assert!(r == 201 || r == 200);
    }
    let reqs = all_requests(&inbox);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].received, reqs[0].description.as_str()),
        (3, "违停")
    );
    let _ = stop.send(());
}

fn read_url(child: &mut std::process::Child) -> String {
    let (line, url) = common::first_url(child);
    assert!(line.starts_with("inbox: "), "{line}");
    url.expect("inbox prints its URL")
}

fn get_requests(url: &str) -> Vec<StoredRequest> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/requests.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap()
    })
}

#[test]
fn sigkill_mid_delivery_then_restart_files_every_case_exactly_once() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gw");
    let data_s = data.to_str().unwrap();
    let mut inbox = common::gridwatch(&[
        "inbox",
        "--data",
        tmp.path().join("inbox").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--response-delay",
        "400ms",
        "--client-env",
        &format!("gridwatch={}", common::cases::INBOX_KEY_ENV),
    ])
    .env(common::cases::INBOX_KEY_ENV, common::cases::INBOX_KEY)
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let url = read_url(&mut inbox);

    let lines: String = (0..40)
        .map(|i| {
            serde_json::to_string(&violation(
                "illegal_parking",
                &format!("P{i}"),
                "cam1",
                T0 + i,
            ))
            .unwrap()
                + "\n"
        })
        .collect();
    let input = tmp.path().join("v.jsonl");
    std::fs::write(&input, lines).unwrap();
    let (out, stdout, stderr) = common::run(&mut common::gridwatch(&[
        "cases",
        "record",
        "--data",
        data_s,
        input.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("40 opened"), "{stdout}");

    let deliver = |until_idle: bool| {
        let mut args = vec![
            "cases",
            "deliver",
            "--data",
            data_s,
            "--open311",
            &url,
            "--api-key-env",
            common::cases::INBOX_KEY_ENV,
            "--retry-initial",
            "50ms",
        ];
        if until_idle {
            args.extend(["--until-idle", "--for", "60s"]);
        }
        common::gridwatch(&args)
            .env(common::cases::INBOX_KEY_ENV, common::cases::INBOX_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // kill while requests are stored at the receiver but not yet answered
    let mut killed_mid_delivery = 0;
    for _round in 0..3 {
        let mut child = deliver(false);
        let t = Instant::now();
        while get_requests(&url).is_empty() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(150));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = SqliteStore::open(&data, DedupConfig::default()).unwrap();
        let recorded = store.delivery_counts().unwrap().delivered as usize;
        let received = get_requests(&url).len();
        assert!(
            recorded <= received,
            "recorded {recorded} > received {received}"
        );
        if received > recorded {
            killed_mid_delivery += 1;
        }
    }
    assert!(killed_mid_delivery > 0, "no kill landed mid-delivery");
    let mut child = deliver(true);
    assert!(child.wait().unwrap().success());

    let reqs = get_requests(&url);
    let store = SqliteStore::open(&data, DedupConfig::default()).unwrap();
    assert_each_case_filed_once(&store, &reqs);
    assert!(
        reqs.iter().any(|r| r.received > 1),
        "some case was sent again after a kill and answered from the receiver's record"
    );
    inbox.kill().unwrap();
    inbox.wait().unwrap();
}

#[test]
fn the_cli_records_lists_reviews_and_reports_the_outbox() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let input = tmp.path().join("v.jsonl");
    std::fs::write(
        &input,
        "{\"kind\":\"dumping\",\"cell\":\"A1\",\"lat\":31.2,\"lon\":121.4,\"camera\":\"c1\",\"at_ms\":1795000000000}\n\
         {\"kind\":\"dumping\",\"cell\":\"A1\",\"lat\":31.2,\"lon\":121.4,\"camera\":\"c2\",\"at_ms\":1795000001000}\n",
    )
    .unwrap();
    let (out, stdout, stderr) = common::run(&mut common::gridwatch(&[
        "cases",
        "record",
        "--data",
        data,
        input.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("2 violations: 1 opened a case, 1 absorbed"),
        "{stdout}"
    );
    let (_, stdout, _) = common::run(&mut common::gridwatch(&[
        "cases", "list", "--data", data, "--json",
    ]));
    let c: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (c["count"].as_i64(), c["cameras"].clone()),
        (Some(2), serde_json::json!(["c1", "c2"]))
    );
    let (out, _, stderr) = common::run(&mut common::gridwatch(&[
        "cases", "review", "1", "reject", "--data", data, "--by", "ana",
    ]));
    assert!(out.status.success(), "{stderr}");
    common::expect_clean_failure(
        &mut common::gridwatch(&["cases", "review", "1", "confirm", "--data", data]),
        &["case 1 is rejected"],
    );
    let (_, stdout, _) = common::run(&mut common::gridwatch(&["cases", "outbox", "--data", data]));
    assert!(stdout.contains("2 pending"), "{stdout}");
    // a bad line is named
    std::fs::write(&input, "{\"kind\":\"dumping\"}\n").unwrap();
    common::expect_clean_failure(
        &mut common::gridwatch(&["cases", "record", "--data", data, input.to_str().unwrap()]),
        &["v.jsonl line 1", "cell"],
    );
    // delivering to nowhere within a deadline: pending, exit 1, nothing lost
    common::expect_clean_failure(
        &mut common::gridwatch(&[
            "cases",
            "deliver",
            "--data",
            data,
            "--open311",
            "http://127.0.0.1:9/v2",
            "--until-idle",
            "--for",
            "1s",
        ]),
        &["still pending"],
    );
    common::expect_clean_failure(
        &mut common::gridwatch(&["cases", "deliver", "--data", data, "--open311", "ftp://x"]),
        &["only http and https"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_outlives_a_failing_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(&tmp.path().join("gw"), Duration::from_secs(3600));
    let (url, inbox, stop) = start_default_inbox(&tmp.path().join("inbox")).await;
    // the outbox table disappears under the running outbox (another process's doing)
    let db = rusqlite::Connection::open(store.path()).unwrap();
    db.execute_batch("ALTER TABLE deliveries RENAME TO deliveries_away")
        .unwrap();
    let ob = Arc::new(outbox(&store, &config(&url)));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let runner = {
        let ob = ob.clone();
        tokio::spawn(async move { ob.run(rx).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !runner.is_finished(),
        "a store error does not end the outbox"
    );
    db.execute_batch("ALTER TABLE deliveries_away RENAME TO deliveries")
        .unwrap();
    store
        .record(&violation("dumping", "F1", "cam1", T0))
        .unwrap();
    let t = Instant::now();
    while all_requests(&inbox).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(20), "never delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tx.send(true);
    runner.await.unwrap().unwrap();
    assert_eq!(all_requests(&inbox).len(), 1);
    let _ = stop.send(());
}

/// A TLS front for a plain HTTP server (what a city's API gateway does): accepts TLS
/// on a free port with the given certificate and passes the bytes to `backend`.
async fn tls_front(cert: &[u8], key: &[u8], backend: SocketAddr) -> SocketAddr {
    let identity = native_tls::Identity::from_pkcs8(cert, key).unwrap();
    let acceptor =
        tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::new(identity).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // a client that refuses the certificate ends the handshake: not an error here
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_are_verified_against_the_system_and_the_configured_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = common::tls::private_ca(&tmp.path().join("pki"), "IP:127.0.0.1, DNS:localhost");
    let (ca, cert, key) = (
        pki.ca.clone(),
        std::fs::read(&pki.cert).unwrap(),
        std::fs::read(&pki.key).unwrap(),
    );
    let (url, inbox, stop) = start_default_inbox(&tmp.path().join("inbox")).await;
    let backend: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/open311/v2")
        .parse()
        .unwrap();
    let front = tls_front(&cert, &key, backend).await;
    let https = format!("https://127.0.0.1:{}/open311/v2", front.port());

    let store = store(&tmp.path().join("gw"), Duration::from_secs(3600));
    for i in 0..3 {
        store
            .record(&violation("dumping", &format!("C{i}"), "cam1", T0 + i))
            .unwrap();
    }

    // without the city's CA the certificate is refused: nothing sent, nothing lost
    let ob = outbox(&store, &config(&https));
    let r = ob.round().await.unwrap();
    assert_eq!((r.attempted, r.delivered), (3, 0));
    assert_eq!(store.delivery_counts().unwrap().pending, 3);
    let d = &store.deliveries(Some(1)).unwrap()[0];
    let err = d.last_error.as_deref().unwrap();
    assert!(err.contains("certificate"), "{err}");
    assert!(all_requests(&inbox).is_empty());

    // a config naming the CA file, relative to the config's folder
    let conf = tmp.path().join("pki/delivery.toml");
    std::fs::write(
        &conf,
        format!(
            "[delivery]\ntarget = \"open311\"\nurl = \"{https}\"\nca_file = \"ca.pem\"\nretry_initial = \"50ms\"\napi_key = \"{}\"\n",
            common::cases::INBOX_KEY
        ),
    )
    .unwrap();
    let cfg = DeliveryConfig::load(&conf).unwrap();
    assert_eq!(cfg.ca_file.as_deref(), Some(ca.as_path()));
    let ob = outbox(&store, &cfg);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(ob
        .drain(Some(Instant::now() + Duration::from_secs(20)))
        .await
        .unwrap());
    let reqs = all_requests(&inbox);
    assert_each_case_filed_once(&store, &reqs);

    // a CA file that is missing or not PEM is a config error naming it
    std::fs::write(tmp.path().join("pki/bad.pem"), "not a certificate").unwrap();
    for (file, needle) in [("missing.pem", "missing.pem"), ("bad.pem", "bad.pem")] {
        std::fs::write(
            &conf,
            format!("[delivery]\ntarget = \"open311\"\nurl = \"{https}\"\nca_file = \"{file}\"\n"),
        )
        .unwrap();
        let e = DeliveryConfig::load(&conf).unwrap_err().to_string();
        assert!(e.contains("ca_file") && e.contains(needle), "{e}");
    }
    let _ = stop.send(());
}

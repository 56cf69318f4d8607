//! Who may write to the built-in Open311 inbox, and idempotency keys nobody can squat:
//! anonymous and unknown writers are refused (and logged), keys are scoped to the
//! client that sent them, a client updates only its own requests, gridwatch's keys are
//! unguessable, and a receiver that answers gridwatch's request with a forged one is
//! caught instead of counted as a delivery.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::cases::{inbox_config, violation, INBOX_KEY, MIN};
use gridwatch::cases::config::DeliveryConfig;
use gridwatch::cases::inbox::{Inbox, InboxStore, RequestFilter};
use gridwatch::cases::outbox::{Client, Outbox};
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{CaseStore, DedupConfig, DeliveryState};

const T0: i64 = 1_795_000_000_000;

/// A form POST: status and body.
async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.body(body.to_string()).send().await.unwrap();
    let code = r.status().as_u16();
    (
        code,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default(),
    )
}

const FORM: &str = "service_code=0505&lat=31.23&long=121.47&description=van";

#[test]
fn anonymous_and_unknown_writers_are_refused_and_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let mut inbox = common::gridwatch(&[
        "inbox",
        "--data",
        tmp.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--client-env",
        "gridwatch=GW_TEST_INBOX_KEY",
    ])
    .env("GW_TEST_INBOX_KEY", INBOX_KEY)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (line, _) = common::first_url(&mut inbox);
    let base = line.trim().trim_start_matches("inbox: ").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let create = format!("{base}/requests.json");
        // the findings: anonymous creates and closes were 201
        for (what, body, headers) in [
            ("no key", FORM.to_string(), vec![]),
            ("a wrong key", format!("{FORM}&api_key=guess"), vec![]),
            (
                "a wrong header key",
                FORM.to_string(),
                vec![("x-api-key", "guess")],
            ),
            (
                "an empty bearer",
                FORM.to_string(),
                vec![("authorization", "Bearer ")],
            ),
        ] {
            let (code, doc) = post(&create, &body, &headers).await;
            assert_eq!(code, 401, "{what}: {doc}");
            assert!(
                doc[0]["description"].as_str().unwrap().contains("api_key"),
                "{doc}"
            );
        }
        let (code, _) = post(
            &format!("{base}/requests/1/updates.json"),
            "status=closed",
            &[],
        )
        .await;
        assert_eq!(code, 401, "an anonymous close");
        // the client's key works, in the form, as X-Api-Key and as a bearer token
        let (code, doc) = post(&create, &format!("{FORM}&api_key={INBOX_KEY}"), &[]).await;
        assert_eq!(code, 201, "{doc}");
        let (code, _) = post(&create, FORM, &[("x-api-key", INBOX_KEY)]).await;
        assert_eq!(code, 201);
        let bearer = format!("Bearer {INBOX_KEY}");
        let (code, _) = post(&create, FORM, &[("authorization", bearer.as_str())]).await;
        assert_eq!(code, 201);
        let body = reqwest::get(&create).await.unwrap().bytes().await.unwrap();
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            list.as_array().unwrap().len(),
            3,
            "only the three with the key"
        );
        assert!(list
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["client"] == "gridwatch"));
    });
    // SAFETY: signalling our own child
    unsafe { libc::kill(inbox.id() as i32, libc::SIGTERM) };
    let stderr = BufReader::new(inbox.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>()
        .join("\n");
    let _ = inbox.wait();
    assert!(
        stderr.contains("refused a request from 127.0.0.1") && stderr.contains("no api_key"),
        "refused writes are logged with the peer: {stderr}"
    );
    assert!(
        !stderr.contains("guess"),
        "a wrong key is not logged: {stderr}"
    );
}

/// An inbox in this process with two clients.
async fn two_client_inbox(dir: &std::path::Path) -> (String, Arc<Inbox>) {
    let inbox = Arc::new(Inbox {
        store: InboxStore::open(dir).unwrap(),
        cfg: inbox_config().with_client("mallory", "mallorys-key"),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/open311/v2", listener.local_addr().unwrap());
    tokio::spawn(gridwatch::cases::inbox::serve(
        listener,
        inbox.clone(),
        std::future::pending(),
    ));
    (url, inbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_scoped_to_the_client_and_updates_to_the_filer() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, inbox) = two_client_inbox(tmp.path()).await;
    let create = format!("{url}/requests.json");
    let key = [("idempotency-key", "gw-2-1")];
    // mallory files first under the key gridwatch will use, at 0, 0
    let (code, forged) = post(
        &create,
        "service_code=0505&lat=0&long=0&api_key=mallorys-key",
        &key,
    )
    .await;
    assert_eq!(code, 201);
    // gridwatch's request under the same key is its own, not mallory's
    let (code, ours) = post(&create, &format!("{FORM}&api_key={INBOX_KEY}"), &key).await;
    assert_eq!(code, 201, "a new request: {ours}");
    assert_ne!(
        ours[0]["service_request_id"],
        forged[0]["service_request_id"]
    );
    // and a repeat of it is answered with it
    let (code, again) = post(&create, &format!("{FORM}&api_key={INBOX_KEY}"), &key).await;
    assert_eq!(
        (code, &again[0]["service_request_id"]),
        (200, &ours[0]["service_request_id"])
    );
    // mallory cannot close gridwatch's request
    let id = ours[0]["service_request_id"].as_str().unwrap();
    let (code, doc) = post(
        &format!("{url}/requests/{id}/updates.json"),
        "status=closed&api_key=mallorys-key",
        &[],
    )
    .await;
    assert_eq!(code, 403, "{doc}");
    let stored = inbox.store.requests(&RequestFilter::default()).unwrap();
    let mine = stored.iter().find(|r| r.service_request_id == id).unwrap();
    assert_eq!(
        (mine.status.as_str(), mine.client.as_str()),
        ("open", "gridwatch")
    );
    assert_eq!(mine.lat, Some(31.23));
}

fn store(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(dir, DedupConfig::default()).unwrap())
}

#[test]
fn gridwatchs_idempotency_keys_are_unguessable() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (store(&tmp.path().join("a")), store(&tmp.path().join("b")));
    let mut keys = Vec::new();
    for s in [&a, &b] {
        for i in 0..3 {
            s.record(&violation(
                "illegal_parking",
                &format!("c{i}"),
                "cam",
                T0 + i * MIN,
            ))
            .unwrap();
        }
        keys.extend(
            s.deliveries(None)
                .unwrap()
                .into_iter()
                .map(|d| d.idempotency_key),
        );
    }
    for k in &keys {
        let parts: Vec<&str> = k.split('-').collect();
        assert_eq!(parts.len(), 4, "{k}");
        assert_eq!(parts[0], "gw");
        assert!(
            parts[3].len() == 32 && parts[3].bytes().all(|c| c.is_ascii_hexdigit()),
            "{k}"
        );
    }
    let mut uniq = keys.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(
        uniq.len(),
        keys.len(),
        "the same case and number in two stores: other keys"
    );
    // the predictable part alone (case 2, delivery 1) is not the key
    assert!(keys.iter().all(|k| !k.ends_with("-2-1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_answer_to_gridwatchs_request_is_not_counted_as_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, inbox) = two_client_inbox(&tmp.path().join("inbox")).await;
    let store = store(&tmp.path().join("gw"));
    let (honest, _) = store
        .record(&violation("illegal_parking", "c1", "cam", T0))
        .unwrap();
    let (forged_case, _) = store
        .record(&violation("illegal_parking", "c2", "cam", T0 + MIN))
        .unwrap();
    // someone holding gridwatch's own key (a receiver that does not scope keys acts the
    // same) files a request at 0, 0 under the second case's key before gridwatch does
    let key = store.deliveries(Some(forged_case)).unwrap()[0]
        .idempotency_key
        .clone();
    let (code, forged) = post(
        &format!("{url}/requests.json"),
        &format!("service_code=0505&lat=0&long=0&api_key={INBOX_KEY}"),
        &[("idempotency-key", key.as_str())],
    )
    .await;
    assert_eq!(code, 201);
    let mut cfg = DeliveryConfig::open311(&url);
    cfg.api_key = Some(INBOX_KEY.into());
    cfg.retry_initial = Duration::from_millis(50);
    let outbox = Outbox::new(
        store.clone(),
        Client::from_config(&cfg).unwrap(),
        cfg.retry(),
        2,
    );
    for _ in 0..5 {
        outbox.round().await.unwrap();
    }
    let ok = &store.deliveries(Some(honest)).unwrap()[0];
    assert_eq!(
        ok.state,
        DeliveryState::Delivered,
        "the honest case is filed: {ok:?}"
    );
    let bad = &store.deliveries(Some(forged_case)).unwrap()[0];
    assert_eq!(bad.state, DeliveryState::Failed, "{bad:?}");
    let why = bad.last_error.as_deref().unwrap_or_default();
    assert!(
        why.contains("not this case's") && why.contains("0.000000"),
        "the reason names the forgery: {why}"
    );
    assert_eq!(
        store.remote(forged_case).unwrap().0,
        None,
        "the forgery's id {} is not taken as the case's",
        forged[0]["service_request_id"]
    );
    drop(inbox);
}

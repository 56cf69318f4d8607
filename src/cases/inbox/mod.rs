//! The built-in inbox: gridwatch serves Open311 GeoReport v2 itself, from its own SQLite
//! file (`inbox.sqlite`), so the embedded default and the tests have a real HTTP peer.
//!
//! Under `/open311/v2`: `GET services.json`, `POST requests.json`, `GET requests.json`,
//! `GET requests/{id}.json`, `GET tokens/{token}.json`, and the follow-up extension
//! `POST requests/{id}/updates.json`. JSON only.
//!
//! Writes need the API key of a configured client ([`clients`]); without one they are
//! refused (401) and logged, and an inbox with no clients takes no writes at all. A
//! follow-up is taken only from the client that filed the request (403 otherwise).
//! Requests are idempotent by the `Idempotency-Key` header (or
//! `attribute[gridwatch_idempotency_key]`) *of that client*: a repeat is answered with
//! the request already stored and counted, never stored twice, and a key another client
//! sent first answers nothing for this one. Reads are open, as a city's public Open311
//! endpoint is.
//!
//! Bad requests get the GeoReport error list `[{"code": 400, "description": ...}]` with
//! status 400 (413 for bodies over the limit, 404 for unknown ids) and store nothing.

pub mod clients;
mod form;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

pub use clients::InboxClient;
use form::{idempotency_key, parse_form};
use store::Updated;
pub use store::{InboxStore, RequestFilter, StoredRequest};

use super::config::DEFAULT_SERVICE_CODES;
use super::StoreError;

/// Inbox settings.
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// Services offered: code, name, description.
    pub services: Vec<(String, String, String)>,
    /// Answer POSTs with a `token` instead of a `service_request_id` (as servers that
    /// file requests asynchronously do).
    pub answer_with_token: bool,
    /// Wait this long after storing a POST before answering (drills: exercises the
    /// sender's timeout and crash handling).
    pub response_delay: Duration,
    /// The clients whose API keys may write (none: no writes at all).
    pub clients: Vec<InboxClient>,
    /// Largest request body, bytes.
    pub max_body: usize,
}

impl Default for InboxConfig {
    fn default() -> Self {
        Self {
            services: DEFAULT_SERVICE_CODES
                .iter()
                .map(|(_, c, n)| (c.to_string(), n.to_string(), n.to_string()))
                .collect(),
            answer_with_token: false,
            response_delay: Duration::ZERO,
            clients: Vec::new(),
            max_body: 64 * 1024,
        }
    }
}

impl InboxConfig {
    /// These settings with one more client, whose key is `key`.
    pub fn with_client(mut self, name: &str, key: &str) -> Self {
        self.clients.push(InboxClient::with_key(name, key));
        self
    }
}

/// The inbox: its store and settings.
pub struct Inbox {
    /// The store.
    pub store: InboxStore,
    /// The settings.
    pub cfg: InboxConfig,
}

/// An Open311 error answer.
fn error(status: StatusCode, description: impl Into<String>) -> Response {
    let body = json!([{ "code": status.as_u16(), "description": description.into() }]);
    (status, axum::Json(body)).into_response()
}

/// An Open311 error not yet turned into its answer (small to pass around).
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn store_error(e: StoreError) -> Response {
    tracing::error!("inbox: {e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "the inbox store failed")
}

/// The client a write comes from: its API key from the form's `api_key`, an `X-Api-Key`
/// header or `Authorization: Bearer`. A refusal is logged with the peer's address.
fn client_of<'a>(
    inbox: &'a Inbox,
    headers: &HeaderMap,
    body: &[u8],
    ext: &Extensions,
    what: &str,
) -> Result<&'a InboxClient, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let in_form = form::api_key_in(body);
    let key = in_form
        .as_deref()
        .or_else(|| header("x-api-key"))
        .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")));
    let peer = crate::serve::peer(ext);
    match key.and_then(|k| clients::authenticate(&inbox.cfg.clients, k.trim())) {
        Some(c) => Ok(c),
        None => {
            let why = if key.is_some() {
                "an api_key no client of this inbox has"
            } else {
                "no api_key"
            };
            tracing::warn!("inbox: refused {what} from {peer}: {why}");
            Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "an api_key of a client of this inbox is required to file or update requests"
                    .into(),
            ))
        }
    }
}

/// Reads a form body of at most `limit` bytes: a declared Content-Length over it is
/// refused before anything is read, a longer body as soon as it passes the limit.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is too large (limit {limit} bytes)"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = s.source();
        }
        error(
            StatusCode::BAD_REQUEST,
            format!("the request body could not be read: {e}"),
        )
    })?;
    let ctype = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "requests must be application/x-www-form-urlencoded (this inbox takes no uploads: deliver to it with [delivery] media = \"url\")",
        ));
    }
    Ok(body)
}

async fn blocking<T: Send + 'static>(
    inbox: &Arc<Inbox>,
    f: impl FnOnce(&Inbox) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    crate::cases::blocking(inbox.clone(), f)
        .await
        .map_err(store_error)
}

fn json_suffix(file: &str) -> Result<&str, Refusal> {
    file.strip_suffix(".json").ok_or_else(|| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "only the json format is served (…/{id}.json)".into(),
        )
    })
}

async fn services(State(inbox): State<Arc<Inbox>>) -> Response {
    let list: Vec<_> = inbox
        .cfg
        .services
        .iter()
        .map(|(code, name, description)| {
            json!({
                "service_code": code,
                "service_name": name,
                "description": description,
                "metadata": false,
                "type": "realtime",
                "keywords": "",
                "group": "city management",
            })
        })
        .collect();
    axum::Json(list).into_response()
}

async fn post_request(
    State(inbox): State<Arc<Inbox>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&headers, body, inbox.cfg.max_body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let client = match client_of(&inbox, &headers, &body, &ext, "a request") {
        Ok(c) => c.name.clone(),
        Err(r) => return r.into_response(),
    };
    let form = match parse_form(&body, &inbox.cfg, false) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let key = match idempotency_key(&headers, &form) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (id, token, new) = match blocking(&inbox, move |i| {
        i.store.create(&form, &client, key.as_deref())
    })
    .await
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !inbox.cfg.response_delay.is_zero() {
        tokio::time::sleep(inbox.cfg.response_delay).await;
    }
    let notice = if new {
        "filed"
    } else {
        "already filed under this idempotency key"
    };
    let answer = if inbox.cfg.answer_with_token {
        json!([{ "token": token, "service_notice": notice }])
    } else {
        json!([{ "service_request_id": id.to_string(), "service_notice": notice, "account_id": null }])
    };
    (
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        axum::Json(answer),
    )
        .into_response()
}

async fn post_update(
    State(inbox): State<Arc<Inbox>>,
    UrlPath(id): UrlPath<String>,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::NOT_FOUND, format!("no request {id}"));
    };
    let body = match read_body(&headers, body, inbox.cfg.max_body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let client = match client_of(&inbox, &headers, &body, &ext, "a follow-up") {
        Ok(c) => c.name.clone(),
        Err(r) => return r.into_response(),
    };
    let form = match parse_form(&body, &inbox.cfg, true) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let key = match idempotency_key(&headers, &form) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let who = client.clone();
    let answer = |status| {
        (
            status,
            axum::Json(json!([{ "service_request_id": id.to_string() }])),
        )
            .into_response()
    };
    match blocking(&inbox, move |i| {
        i.store.update(id, &form, &client, key.as_deref())
    })
    .await
    {
        Ok(Updated::NoRequest) => error(StatusCode::NOT_FOUND, format!("no request {id}")),
        Ok(Updated::NotYours) => {
            tracing::warn!("inbox: refused a follow-up of request {id} from client {who}, which did not file it");
            error(
                StatusCode::FORBIDDEN,
                format!("request {id} was filed by another client"),
            )
        }
        Ok(Updated::Stored) => answer(StatusCode::CREATED),
        Ok(Updated::Repeat) => answer(StatusCode::OK),
        Err(r) => r,
    }
}

fn date_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Refusal> {
    match q.get(name) {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| {
                Refusal(
                    StatusCode::BAD_REQUEST,
                    format!("{name} {s:?} is not an RFC 3339 date"),
                )
            }),
    }
}

fn with_names(inbox: &Inbox, mut list: Vec<StoredRequest>) -> Vec<StoredRequest> {
    for r in &mut list {
        if let Some((_, name, _)) = inbox
            .cfg
            .services
            .iter()
            .find(|(c, _, _)| *c == r.service_code)
        {
            r.service_name = name.clone();
        }
    }
    list
}

async fn get_requests(
    State(inbox): State<Arc<Inbox>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "the query string could not be read",
        );
    };
    let split = |name: &str| -> Vec<String> {
        q.get(name)
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let filter = RequestFilter {
        ids: split("service_request_id"),
        service_codes: split("service_code"),
        status: q.get("status").cloned(),
        start_ms: match date_param(&q, "start_date") {
            Ok(v) => v,
            Err(r) => return r.into_response(),
        },
        end_ms: match date_param(&q, "end_date") {
            Ok(v) => v,
            Err(r) => return r.into_response(),
        },
        idempotency_key: q.get("idempotency_key").cloned(),
        limit: None,
    };
    match blocking(&inbox, move |i| i.store.requests(&filter)).await {
        Ok(list) => axum::Json(with_names(&inbox, list)).into_response(),
        Err(r) => r,
    }
}

async fn get_request(State(inbox): State<Arc<Inbox>>, UrlPath(file): UrlPath<String>) -> Response {
    let id = match json_suffix(&file) {
        Ok(id) => id.to_string(),
        Err(r) => return r.into_response(),
    };
    if id.parse::<i64>().is_err() {
        return error(StatusCode::NOT_FOUND, format!("no request {id}"));
    }
    let filter = RequestFilter {
        ids: vec![id.clone()],
        ..RequestFilter::default()
    };
    match blocking(&inbox, move |i| i.store.requests(&filter)).await {
        Ok(list) if list.is_empty() => error(StatusCode::NOT_FOUND, format!("no request {id}")),
        Ok(list) => axum::Json(with_names(&inbox, list)).into_response(),
        Err(r) => r,
    }
}

async fn get_token(State(inbox): State<Arc<Inbox>>, UrlPath(file): UrlPath<String>) -> Response {
    let token = match json_suffix(&file) {
        Ok(t) => t.to_string(),
        Err(r) => return r.into_response(),
    };
    let t = token.clone();
    match blocking(&inbox, move |i| i.store.token(&t)).await {
        Ok(Some(id)) => {
            axum::Json(json!([{ "service_request_id": id.to_string(), "token": token }]))
                .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no token {token}")),
        Err(r) => r,
    }
}

/// The inbox's routes, under `/open311/v2` (its error shape answers unknown paths under
/// that prefix only).
pub fn router(inbox: Arc<Inbox>) -> Router {
    let open311 = Router::new()
        .route("/services.json", get(services))
        .route("/requests.json", post(post_request).get(get_requests))
        .route("/requests/{file}", get(get_request))
        .route("/requests/{id}/updates.json", post(post_update))
        .route("/tokens/{file}", get(get_token))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such Open311 resource") })
        .with_state(inbox);
    Router::new().nest("/open311/v2", open311)
}

/// Serves the inbox on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    inbox: Arc<Inbox>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::serve::serve(
        listener,
        router(inbox),
        crate::serve::Limits::default(),
        shutdown,
    )
    .await
}

//! The built-in inbox: gridwatch serves Open311 GeoReport v2 itself, from its own SQLite
//! file (`inbox.sqlite`), so the embedded default and the tests have a real HTTP peer.
//!
//! Under `/open311/v2`: `GET services.json`, `POST requests.json`, `GET requests.json`,
//! `GET requests/{id}.json`, `GET tokens/{token}.json`, and the follow-up extension
//! `POST requests/{id}/updates.json`. JSON only. Requests are idempotent by the
//! `Idempotency-Key` header (or `attribute[gridwatch_idempotency_key]`): a repeat is
//! answered with the request already stored and counted, never stored twice.
//! Bad requests get the GeoReport error list `[{"code": 400, "description": ...}]` with
//! status 400 (413 for bodies over the limit, 404 for unknown ids) and store nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use serde_json::json;

use super::config::DEFAULT_SERVICE_CODES;
use super::open311::MAX_DESCRIPTION;
use super::{now_ms, StoreError};

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
    /// Required `api_key`, if any.
    pub api_key: Option<String>,
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
            api_key: None,
            max_body: 64 * 1024,
        }
    }
}

const SCHEMA: &[&str] = &["CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        idempotency_key TEXT UNIQUE,
        token TEXT NOT NULL UNIQUE,
        service_code TEXT NOT NULL,
        lat REAL,
        long REAL,
        address_string TEXT,
        description TEXT NOT NULL,
        media_url TEXT,
        attributes TEXT NOT NULL,
        status TEXT NOT NULL,
        requested_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 1
     );
     CREATE TABLE updates (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL REFERENCES requests (id),
        idempotency_key TEXT UNIQUE,
        status TEXT,
        description TEXT NOT NULL,
        attributes TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 1
     );
     CREATE INDEX updates_by_request ON updates (request_id);"];

/// A stored request, as `GET requests` shows it (GeoReport v2 fields, plus
/// `attributes`, `idempotency_key`, `received` and `updates`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StoredRequest {
    /// Id.
    pub service_request_id: String,
    /// `open` or `closed`.
    pub status: String,
    /// Service code.
    pub service_code: String,
    /// Service name.
    pub service_name: String,
    /// Description.
    pub description: String,
    /// RFC 3339.
    pub requested_datetime: String,
    /// RFC 3339.
    pub updated_datetime: String,
    /// `address_string` as sent.
    pub address: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub long: Option<f64>,
    /// Media URL.
    pub media_url: Option<String>,
    /// `attribute[...]` values.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The sender's idempotency key.
    pub idempotency_key: Option<String>,
    /// Times this request was received (retries of the same key included).
    pub received: i64,
    /// Follow-ups stored.
    pub updates: i64,
}

/// The inbox's store.
pub struct InboxStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// A request that passed validation.
#[derive(Debug, Clone, Default)]
struct Form {
    service_code: String,
    lat: Option<f64>,
    long: Option<f64>,
    address_string: Option<String>,
    description: String,
    media_url: Option<String>,
    status: Option<String>,
    api_key: Option<String>,
    attributes: serde_json::Map<String, serde_json::Value>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl InboxStore {
    /// Opens (creating) `inbox.sqlite` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("inbox.sqlite");
        let conn = super::sqlite::open_migrated(&path, SCHEMA)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            store: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Stores a request unless its key is known; returns (id, token, was it new).
    fn create(&self, f: &Form, key: Option<&str>) -> Result<(i64, String, bool), StoreError> {
        let mut conn = self.conn.lock().expect("inbox lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        if let Some(key) = key {
            let known: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, token FROM requests WHERE idempotency_key = ?1",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some((id, token)) = known {
                tx.execute(
                    "UPDATE requests SET received = received + 1 WHERE id = ?1",
                    [id],
                )
                .map_err(|e| self.err(e))?;
                tx.commit().map_err(|e| self.err(e))?;
                return Ok((id, token, false));
            }
        }
        let token = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let now = now_ms();
        tx.execute(
            "INSERT INTO requests (idempotency_key, token, service_code, lat, long, address_string, description,
             media_url, attributes, status, requested_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10, ?10)",
            params![
                key,
                token,
                f.service_code,
                f.lat,
                f.long,
                f.address_string,
                f.description,
                f.media_url,
                serde_json::Value::Object(f.attributes.clone()).to_string(),
                now
            ],
        )
        .map_err(|e| self.err(e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.err(e))?;
        Ok((id, token, true))
    }

    /// Stores a follow-up of request `id`; `None` when there is no such request.
    fn update(&self, id: i64, f: &Form, key: Option<&str>) -> Result<Option<bool>, StoreError> {
        let mut conn = self.conn.lock().expect("inbox lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM requests WHERE id = ?1)",
                [id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !exists {
            return Ok(None);
        }
        if let Some(key) = key {
            let n = tx
                .execute(
                    "UPDATE updates SET received = received + 1 WHERE idempotency_key = ?1",
                    [key],
                )
                .map_err(|e| self.err(e))?;
            if n > 0 {
                tx.commit().map_err(|e| self.err(e))?;
                return Ok(Some(false));
            }
        }
        let now = now_ms();
        let attributes = serde_json::Value::Object(f.attributes.clone()).to_string();
        tx.execute(
            "INSERT INTO updates (request_id, idempotency_key, status, description, attributes, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, key, f.status, f.description, attributes, now],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE requests SET status = coalesce(?2, status), description = ?3, attributes = ?4,
             media_url = coalesce(?5, media_url), updated_ms = ?6 WHERE id = ?1",
            params![id, f.status, f.description, attributes, f.media_url, now],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some(true))
    }

    /// The request id behind a token.
    fn token(&self, token: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.conn.lock().expect("inbox lock");
        conn.query_row("SELECT id FROM requests WHERE token = ?1", [token], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Requests matching a filter, newest first, at most 1000.
    pub fn requests(&self, filter: &RequestFilter) -> Result<Vec<StoredRequest>, StoreError> {
        let conn = self.conn.lock().expect("inbox lock");
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, status, service_code, description, requested_ms, updated_ms, address_string, lat, long,
                 media_url, attributes, idempotency_key, received,
                 (SELECT count(*) FROM updates u WHERE u.request_id = requests.id)
                 FROM requests
                 WHERE (?1 IS NULL OR requested_ms >= ?1) AND (?2 IS NULL OR requested_ms <= ?2)
                   AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR idempotency_key = ?4)
                 ORDER BY id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![
                    filter.start_ms,
                    filter.end_ms,
                    filter.status,
                    filter.idempotency_key
                ],
                |r| {
                    let attributes: String = r.get(10)?;
                    Ok(StoredRequest {
                        service_request_id: r.get::<_, i64>(0)?.to_string(),
                        status: r.get(1)?,
                        service_code: r.get(2)?,
                        service_name: String::new(),
                        description: r.get(3)?,
                        requested_datetime: rfc3339(r.get(4)?),
                        updated_datetime: rfc3339(r.get(5)?),
                        address: r.get(6)?,
                        lat: r.get(7)?,
                        long: r.get(8)?,
                        media_url: r.get(9)?,
                        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                        idempotency_key: r.get(11)?,
                        received: r.get(12)?,
                        updates: r.get(13)?,
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let req = row.map_err(|e| self.err(e))?;
            if !filter.ids.is_empty() && !filter.ids.contains(&req.service_request_id) {
                continue;
            }
            if !filter.service_codes.is_empty() && !filter.service_codes.contains(&req.service_code)
            {
                continue;
            }
            out.push(req);
            if out.len() >= filter.limit.unwrap_or(1000) {
                break;
            }
        }
        Ok(out)
    }
}

/// `GET requests.json` filters.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// `service_request_id`, comma-separated.
    pub ids: Vec<String>,
    /// `service_code`, comma-separated.
    pub service_codes: Vec<String>,
    /// `status`.
    pub status: Option<String>,
    /// `start_date`.
    pub start_ms: Option<i64>,
    /// `end_date`.
    pub end_ms: Option<i64>,
    /// `idempotency_key` (extension).
    pub idempotency_key: Option<String>,
    /// At most this many (default 1000).
    pub limit: Option<usize>,
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

/// Decodes one form component strictly: `+` is a space, percent escapes must give UTF-8.
fn decode(part: &[u8], what: &str) -> Result<String, String> {
    let spaced: Vec<u8> = part
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{what} is not valid UTF-8"))
}

/// Parses and checks a form body against the services offered.
fn parse_form(body: &[u8], cfg: &InboxConfig, update: bool) -> Result<Form, String> {
    if std::str::from_utf8(body).is_err() {
        return Err("the request body is not valid UTF-8".into());
    }
    let mut f = Form::default();
    let mut code = None;
    let (mut lat, mut long) = (None, None);
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode(k, "a field name")?;
        let value = decode(v, &format!("field {key}"))?;
        if value.contains('\0') {
            return Err(format!("field {key} contains a NUL character"));
        }
        match key.as_str() {
            "service_code" => code = Some(value),
            "lat" => lat = Some(value),
            "long" => long = Some(value),
            "address_string" => f.address_string = Some(value).filter(|v| !v.is_empty()),
            "description" => f.description = value,
            "media_url" => f.media_url = Some(value).filter(|v| !v.is_empty()),
            "api_key" => f.api_key = Some(value),
            "status" => f.status = Some(value),
            _ => {
                if let Some(name) = key
                    .strip_prefix("attribute[")
                    .and_then(|k| k.strip_suffix(']'))
                {
                    if name.is_empty() || name.len() > 100 {
                        return Err(format!("attribute name {name:?} is empty or too long"));
                    }
                    if f.attributes.len() >= 100 {
                        return Err("more than 100 attributes".into());
                    }
                    f.attributes
                        .insert(name.to_string(), serde_json::Value::String(value));
                }
                // other GeoReport fields (email, first_name, device_id, ...) are not kept
            }
        }
    }
    if let Some(want) = &cfg.api_key {
        if f.api_key.as_deref() != Some(want) {
            return Err("api_key is missing or wrong".into());
        }
    }
    let coord = |v: Option<String>, name: &str, limit: f64| -> Result<Option<f64>, String> {
        match v {
            None => Ok(None),
            Some(s) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x.abs() <= limit => Ok(Some(x)),
                _ => Err(format!("{name} {s:?} is not a number within ±{limit}")),
            },
        }
    };
    f.lat = coord(lat, "lat", 90.0)?;
    f.long = coord(long, "long", 180.0)?;
    if f.lat.is_some() != f.long.is_some() {
        return Err("lat and long must be given together".into());
    }
    if !update {
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or("service_code is required")?;
        if !cfg.services.iter().any(|(c, _, _)| *c == code) {
            return Err(format!("service_code {code} not found"));
        }
        f.service_code = code;
        if f.lat.is_none() && f.address_string.is_none() {
            return Err("a location is required: lat and long, or address_string".into());
        }
    }
    if let Some(s) = &f.status {
        if s != "open" && s != "closed" {
            return Err(format!("status {s:?} is neither open nor closed"));
        }
    }
    let n = f.description.chars().count();
    if n > MAX_DESCRIPTION {
        return Err(format!(
            "description is {n} characters, more than {MAX_DESCRIPTION}"
        ));
    }
    if let Some(m) = &f.media_url {
        match url::Url::parse(m) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(format!("media_url {m:?} is not an http(s) URL")),
        }
    }
    Ok(f)
}

fn idempotency_key(headers: &HeaderMap, f: &Form) -> Result<Option<String>, String> {
    let header = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| "the Idempotency-Key header is not text")?
                .to_string(),
        ),
        None => None,
    };
    let key = header.or_else(|| {
        f.attributes
            .get("gridwatch_idempotency_key")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    });
    match key {
        Some(k) if k.is_empty() || k.len() > 200 => {
            Err("the idempotency key must be 1 to 200 characters".into())
        }
        k => Ok(k),
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
            "requests must be application/x-www-form-urlencoded",
        ));
    }
    Ok(body)
}

async fn blocking<T: Send + 'static>(
    inbox: &Arc<Inbox>,
    f: impl FnOnce(&Inbox) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let inbox = inbox.clone();
    tokio::task::spawn_blocking(move || f(&inbox))
        .await
        .expect("inbox task panicked")
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

async fn post_request(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&headers, body, inbox.cfg.max_body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = match parse_form(&body, &inbox.cfg, false) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let key = match idempotency_key(&headers, &form) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (id, token, new) =
        match blocking(&inbox, move |i| i.store.create(&form, key.as_deref())).await {
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
    let form = match parse_form(&body, &inbox.cfg, true) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let key = match idempotency_key(&headers, &form) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match blocking(&inbox, move |i| i.store.update(id, &form, key.as_deref())).await {
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no request {id}")),
        Ok(Some(new)) => (
            if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            axum::Json(json!([{ "service_request_id": id.to_string() }])),
        )
            .into_response(),
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

/// The inbox's routes, under `/open311/v2`.
pub fn router(inbox: Arc<Inbox>) -> Router {
    Router::new()
        .route("/open311/v2/services.json", get(services))
        .route(
            "/open311/v2/requests.json",
            post(post_request).get(get_requests),
        )
        .route("/open311/v2/requests/{file}", get(get_request))
        .route("/open311/v2/requests/{id}/updates.json", post(post_update))
        .route("/open311/v2/tokens/{file}", get(get_token))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such Open311 resource") })
        .with_state(inbox)
}

/// Serves the inbox on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    inbox: Arc<Inbox>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(inbox))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_checked() {
        let cfg = InboxConfig::default();
        let ok = parse_form(
            b"service_code=0505&lat=31.23&long=121.47&description=van+on+the+kerb%21&attribute[gridwatch_case_id]=7",
            &cfg,
            false,
        )
        .unwrap();
        assert_eq!(ok.description, "van on the kerb!");
        assert_eq!(ok.attributes["gridwatch_case_id"], "7");
        for (body, want) in [
            (&b"lat=1&long=2"[..], "service_code is required"),
            (b"service_code=9999&lat=1&long=2", "not found"),
            (b"service_code=0505&lat=91&long=2", "lat"),
            (b"service_code=0505&lat=NaN&long=2", "lat"),
            (b"service_code=0505&lat=1", "together"),
            (b"service_code=0505", "location"),
            (
                b"service_code=0505&lat=1&long=2&description=%FF%FE",
                "UTF-8",
            ),
            (
                b"service_code=0505&lat=1&long=2&media_url=javascript:alert(1)",
                "media_url",
            ),
        ] {
            let e = parse_form(body, &cfg, false).unwrap_err();
            assert!(e.contains(want), "{e} should say {want}");
        }
        let long = format!(
            "service_code=0505&lat=1&long=2&description={}",
            "x".repeat(4001)
        );
        assert!(parse_form(long.as_bytes(), &cfg, false)
            .unwrap_err()
            .contains("4001"));
        assert!(parse_form(b"\xff\xfe", &cfg, false)
            .unwrap_err()
            .contains("UTF-8"));
    }
}

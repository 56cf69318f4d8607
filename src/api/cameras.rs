//! The camera registry's API: list (paged, filtered) and get, with each camera's
//! state on this node or the node that holds it; create, update, delete, enable,
//! disable and catalogue import (admins); a camera's last frame (viewers).
//!
//! A change goes to the registry, then into this node's copy of the list at once
//! (so the answer and the next read show it), and wakes the camera controller: a new
//! camera starts within seconds on the node that leases it, a changed one restarts
//! with its new settings, a deleted one stops (its cases stay). Sources are shown
//! with their RTSP passwords hidden; an update that sends the hidden form back keeps
//! the password.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{json_body, read_body, same_site, Admin, Viewer};
use super::{bad, ApiError, ApiState, Seg, St};
use crate::cluster::Holder;
use crate::ingest::CameraStatus;
use crate::registry::catalogue::{self, Format};
use crate::registry::view::CameraQuery;
use crate::registry::{CameraEntry, CameraRecord, RegistryError};

/// Largest camera document.
const MAX_CAMERA_BODY: usize = 64 * 1024;
/// Largest catalogue.
pub const MAX_CATALOGUE_BODY: usize = 32 * 1024 * 1024;

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(id) => ApiError(StatusCode::NOT_FOUND, format!("no {id}")),
            RegistryError::Exists(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
            RegistryError::Invalid(p) => bad(p.join("; ")),
            RegistryError::Store(s) => s.into(),
        }
    }
}

/// Runs a registry call on a blocking thread.
pub(super) async fn registry_call<T: Send + 'static>(
    s: &Arc<ApiState>,
    f: impl FnOnce(&ApiState) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))?
        .map_err(ApiError::from)
}

/// How long a listing waits for the lease table before answering from the last
/// reading.
const HOLDERS_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Every camera's holder (with several nodes): read on demand; a database that stops
/// answering while it is asked must not take the API with it, so after HOLDERS_WAIT
/// the last reading answers.
async fn holders(s: &ApiState) -> std::collections::BTreeMap<String, Holder> {
    let Some(c) = s.cluster.clone() else {
        return Default::default();
    };
    let asked = c.clone();
    let read = tokio::task::spawn_blocking(move || asked.holders());
    match tokio::time::timeout(HOLDERS_WAIT, read).await {
        Ok(Ok(Ok(h))) => h,
        Ok(Ok(Err(e))) => {
            tracing::warn!("api: camera holders: {e}");
            c.last_holders()
        }
        Ok(Err(_)) => c.last_holders(),
        Err(_) => {
            tracing::warn!(
                "api: camera holders: the store did not answer within {HOLDERS_WAIT:?}; showing the last reading"
            );
            c.last_holders()
        }
    }
}

/// A camera as the API shows it: its settings (password hidden), and its state —
/// running here (with its counters and last frame), `elsewhere` (with the node that
/// holds it), `unassigned`, `disabled`, or `error` (with why it could not start).
fn item(
    s: &ApiState,
    r: &CameraRecord,
    status: Option<&CameraStatus>,
    holder: Option<&Holder>,
) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    r.camera.hide_passwords(&mut v);
    let id = &r.camera.id;
    match status {
        Some(st) => {
            if let Value::Object(live) = serde_json::to_value(st).unwrap_or_default() {
                for (k, x) in live {
                    v[k] = x;
                }
            }
            v["node"] = json!(s.node);
            if let Some(view) = s.metrics.view(id) {
                v["view"] = json!(view);
            }
            if let Some(d) = s.metrics.drone(id) {
                v["drone_frames"] = json!(d);
            }
            v["last_frame"] = if s.metrics.last_frame(id).is_some() {
                json!(format!("/api/cameras/{id}/frame.jpg"))
            } else {
                Value::Null
            };
        }
        None if !r.camera.enabled => {
            v["state"] = json!("disabled");
            v["node"] = Value::Null;
        }
        None => match (holder, s.view.problem(id)) {
            (Some(h), _) if h.node != s.node => {
                v["state"] = json!("elsewhere");
                v["node"] = json!(h.node);
                v["node_url"] = json!(h.node_url);
            }
            (_, Some(p)) => {
                v["state"] = json!("error");
                v["error"] = json!(p);
                v["node"] = json!(s.node);
            }
            _ if s.cluster.is_some() => {
                v["state"] = json!("unassigned");
                v["node"] = Value::Null;
            }
            _ => {
                v["state"] = json!("starting");
                v["node"] = json!(s.node);
            }
        },
    }
    if let Some(h) = holder {
        v["lease_expires_in_ms"] = json!(h.expires_in_ms);
    }
    v
}

async fn items(s: &ApiState, page: &[CameraRecord]) -> Vec<Value> {
    let holders = holders(s).await;
    page.iter()
        .map(|r| {
            let id = &r.camera.id;
            item(s, r, s.pool.camera(id).as_ref(), holders.get(id))
        })
        .collect()
}

/// `GET /api/cameras?enabled=&label=key:value,…&q=&limit=&offset=`: a JSON array of
/// one page, in id order; `X-Total-Count` says how many match, `Link` the next page.
pub(super) async fn list(
    State(s): St,
    Viewer(_): Viewer,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|_| bad("the query string could not be read"))?;
    let num = |name: &str, default: usize, max: usize| super::num_param(&q, name, default, max);
    let enabled = match q.get("enabled").map(String::as_str) {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(v) => return Err(bad(format!("enabled: {v:?} is neither true nor false"))),
    };
    let mut labels = Vec::new();
    for pair in q.get("label").into_iter().flat_map(|v| v.split(',')) {
        let (k, v) = pair
            .split_once(':')
            .ok_or_else(|| bad(format!("label: {pair:?} is not key:value")))?;
        labels.push((k.to_string(), v.to_string()));
    }
    let query = CameraQuery {
        enabled,
        labels,
        search: q.get("q").filter(|v| !v.is_empty()).cloned(),
        limit: num("limit", 100, 1000)?,
        offset: num("offset", 0, 10_000_000)?,
    };
    let (page, total) = s.view.list(&query);
    let body = items(&s, &page).await;
    let mut resp = Json(body).into_response();
    let h = resp.headers_mut();
    h.insert("x-total-count", HeaderValue::from(total));
    h.insert("x-registry-revision", HeaderValue::from(s.view.revision()));
    if query.offset + page.len() < total {
        let mut next: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "offset")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        next.push(("offset".into(), (query.offset + page.len()).to_string()));
        next.sort();
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        if let Ok(v) = HeaderValue::from_str(&format!("</api/cameras?{qs}>; rel=\"next\"")) {
            h.insert(header::LINK, v);
        }
    }
    Ok(resp)
}

fn no_camera(id: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no camera {id:?}"))
}

/// `GET /api/cameras/{id}`.
pub(super) async fn get_one(
    State(s): St,
    Viewer(_): Viewer,
    Seg(id): Seg<String>,
) -> Result<Json<Value>, ApiError> {
    let r = s.view.get(&id).ok_or_else(|| no_camera(&id))?;
    Ok(Json(items(&s, &[r]).await.remove(0)))
}

/// `GET /api/cameras/{id}/frame.jpg`: the last frame this node decoded.
pub(super) async fn frame(
    State(s): St,
    Viewer(_): Viewer,
    Seg(id): Seg<String>,
) -> Result<Response, ApiError> {
    let jpeg = s.metrics.last_frame(&id).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no frame from camera {id} yet"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response())
}

fn writable(s: &ApiState) -> Result<(), ApiError> {
    list_writable(s, "change it there")
}

/// 409 when the camera list is the config file's (its cameras and their
/// calibrations are changed there: `hint` says what to change).
pub(super) fn list_writable(s: &ApiState, hint: &str) -> Result<(), ApiError> {
    if s.view.writable() {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::CONFLICT,
            format!("the camera list is the config file's (registry.cameras = \"config\"): {hint}"),
        ))
    }
}

/// A camera write (its handler has checked [`writable`], before reading the body) on
/// a blocking thread; after it, this node's copy follows at once
/// and the controller is woken.
pub(super) async fn write<T: Send + 'static>(
    s: &Arc<ApiState>,
    f: impl FnOnce(&ApiState) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    registry_call(s, move |s| {
        let r = f(s)?;
        if let Err(e) = s.view.sync(&s.registry) {
            tracing::warn!("api: reading the camera changes back: {e}");
        }
        s.cameras_changed.notify_one();
        Ok(r)
    })
    .await
}

async fn camera_body(
    headers: &HeaderMap,
    body: Body,
    id: Option<&str>,
) -> Result<CameraEntry, ApiError> {
    same_site(headers, &["application/json"])?;
    let bytes = read_body(body, MAX_CAMERA_BODY).await?;
    let mut v: Value = json_body(&bytes, "a camera, as JSON")?;
    if let (Some(id), Value::Object(o)) = (id, &mut v) {
        match o.get("id") {
            None => {
                o.insert("id".into(), json!(id));
            }
            Some(x) if x == id => {}
            Some(x) => return Err(bad(format!("id: the body's {x} is not the path's {id:?}"))),
        }
    }
    serde_json::from_value(v).map_err(|e| bad(format!("the camera cannot be read: {e}")))
}

/// `POST /api/cameras`: registers a camera (201).
pub(super) async fn create(
    State(s): St,
    Admin(actor): Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    writable(&s)?;
    let c = camera_body(&headers, body, None).await?;
    let r = write(&s, move |s| s.registry.create(&actor, c)).await?;
    tracing::info!(camera = r.camera.id.as_str(), "api: camera registered");
    let v = items(&s, &[r]).await.remove(0);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `PUT /api/cameras/{id}`: replaces a camera's settings; it restarts with them.
pub(super) async fn update(
    State(s): St,
    Admin(actor): Admin,
    Seg(id): Seg<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    writable(&s)?;
    let c = camera_body(&headers, body, Some(&id)).await?;
    let r = write(&s, move |s| s.registry.update(&actor, c)).await?;
    Ok(Json(items(&s, &[r]).await.remove(0)))
}

/// `DELETE /api/cameras/{id}`: the camera stops; its cases stay (204).
pub(super) async fn delete(
    State(s): St,
    Admin(actor): Admin,
    Seg(id): Seg<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    writable(&s)?;
    same_site(&headers, &[])?;
    write(&s, move |s| s.registry.delete(&actor, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    s: Arc<ApiState>,
    actor: crate::registry::Actor,
    id: String,
    headers: &HeaderMap,
    on: bool,
) -> Result<Json<Value>, ApiError> {
    writable(&s)?;
    same_site(headers, &[])?;
    let r = write(&s, move |s| s.registry.set_enabled(&actor, &id, on)).await?;
    Ok(Json(items(&s, &[r]).await.remove(0)))
}

/// `POST /api/cameras/{id}/enable`.
pub(super) async fn enable(
    State(s): St,
    Admin(actor): Admin,
    Seg(id): Seg<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_enabled(s, actor, id, &headers, true).await
}

/// `POST /api/cameras/{id}/disable`.
pub(super) async fn disable(
    State(s): St,
    Admin(actor): Admin,
    Seg(id): Seg<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_enabled(s, actor, id, &headers, false).await
}

/// `POST /api/cameras/import` (`text/csv` or `application/json`): every row checked
/// first; any bad row → 422 with every bad row, and nothing stored.
pub(super) async fn import(
    State(s): St,
    Admin(actor): Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    writable(&s)?;
    same_site(&headers, &["text/csv", "application/json"])?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = read_body(body, MAX_CATALOGUE_BODY).await?;
    let parsed = tokio::task::spawn_blocking(move || {
        catalogue::parse(&bytes, Format::guess(&ctype, &bytes))
    })
    .await
    .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))?;
    let cameras = match parsed {
        Ok(c) => c,
        Err(e) => {
            let body = json!({ "error": e.to_string(), "rows": e.rows });
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
        }
    };
    let n = cameras.len();
    let sum = write(&s, move |s| Ok(s.registry.import(&actor, &cameras)?)).await?;
    tracing::info!(
        "api: catalogue of {n} cameras imported: {} new, {} changed, {} unchanged",
        sum.created,
        sum.updated,
        sum.unchanged
    );
    Ok(Json(json!(sum)).into_response())
}

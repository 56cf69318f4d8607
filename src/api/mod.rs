//! The HTTP API and the analyst review page: health, readiness, Prometheus metrics,
//! the camera registry ([`cameras`]), cases (search, one case with its evidence),
//! evidence files, reviews (confirm / reject), tokens and the audit log ([`admin`]).
//! `router(state)` is the whole surface; who may call what is [`auth`]'s; errors are
//! mapped to statuses in one place ([`ApiError`]) and never show internals.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

mod admin;
pub mod auth;
mod calibrations;
mod cameras;
mod evidence;
mod export;
mod guard;
mod ledger;
mod map;
mod originals;
mod references;
mod review;
mod state;
mod zones;

use crate::cases::{CaseQuery, CaseStatus, StoreError};
use auth::Viewer;
pub use cameras::MAX_CATALOGUE_BODY;
pub use state::ApiState;

/// The review page: one self-contained file, nothing from elsewhere.
pub(crate) const REVIEW_PAGE: &str = include_str!("review.html");
/// The zone and calibration editor (`/editor`), one self-contained HTML file.
pub(crate) const EDITOR_PAGE: &str = include_str!("editor.html");

/// An API error: a status and a message fit for the caller.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => Self(StatusCode::NOT_FOUND, format!("no case {id}")),
            StoreError::Conflict { .. } => Self(StatusCode::CONFLICT, e.to_string()),
            StoreError::NoDelivery(_) => Self(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Unavailable { .. } => {
                tracing::error!("api: {e}");
                Self(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the case store is unavailable".into(),
                )
            }
            StoreError::Refused { .. } | StoreError::Io { .. } => {
                tracing::error!("api: {e}");
                Self(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        }
    }
}

pub(crate) type St = State<Arc<ApiState>>;

/// Path parameters, with a path that cannot be read (`/api/cases/%ff`: not UTF-8)
/// answered as every other API error is, in JSON.
pub(crate) struct Seg<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Seg<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("the path cannot be read: {}", e.body_text()),
            )),
        }
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<ApiState>,
    f: impl FnOnce(&ApiState) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::cases::blocking(state.clone(), f)
        .await
        .map_err(ApiError::from)
}

/// Every route.
pub fn router(state: Arc<ApiState>) -> Router {
    let routes = Router::new()
        .route("/", get(|| async { Html(REVIEW_PAGE) }))
        .route("/editor", get(|| async { Html(EDITOR_PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/whoami", get(admin::whoami))
        .route("/api/cameras", get(cameras::list).post(cameras::create))
        .route("/api/cameras/import", post(cameras::import))
        .route(
            "/api/cameras/{id}",
            get(cameras::get_one)
                .put(cameras::update)
                .delete(cameras::delete),
        )
        .route("/api/cameras/{id}/enable", post(cameras::enable))
        .route("/api/cameras/{id}/disable", post(cameras::disable))
        .route("/api/cameras/{id}/frame.jpg", get(cameras::frame))
        .route("/api/cameras/{id}/presets", post(references::add_preset))
        .route("/api/zones", get(zones::list))
        .route(
            "/api/zones/{id}",
            get(zones::get).put(zones::put).delete(zones::delete),
        )
        .route("/api/zones/{id}/versions", get(zones::versions))
        .route("/api/calibrations", get(calibrations::list))
        .route(
            "/api/calibrations/{id}",
            get(calibrations::get)
                .put(calibrations::put)
                .delete(calibrations::delete),
        )
        .route("/api/calibrations/{id}/check", post(calibrations::check))
        .route(
            "/api/calibrations/{id}/versions",
            get(calibrations::versions),
        )
        .route("/api/references", get(references::list))
        .route(
            "/api/references/{id}",
            get(references::get)
                .post(references::capture)
                .delete(references::delete),
        )
        .route("/api/tokens", get(admin::tokens).post(admin::create_token))
        .route("/api/tokens/{id}", delete(admin::revoke_token))
        .route("/api/audit", get(admin::audit))
        .route("/api/map", get(map::map))
        .route("/api/cases", get(cases))
        .route("/api/cases/{id}", get(case))
        .route("/api/cases/{id}/review", post(review::review))
        .route("/api/ledger", get(ledger::ledger))
        .route("/api/cases/{id}/export", get(export::export))
        .route(
            "/api/cases/{id}/evidence/{item}/original",
            get(originals::original),
        )
        .route("/evidence/{case}/{file}", get(evidence::evidence))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such resource".into()) });
    guard::protect(routes, state.clone()).with_state(state)
}

/// Ready once started and until stopping; with several nodes, also only while the
/// shared store answers this node's heartbeats (so a load balancer sends the review
/// page's traffic to nodes that can serve it; liveness, /healthz, stays up).
async fn readyz(State(s): St) -> Response {
    if !s.ready.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping\n").into_response()
    } else if s.cluster.as_ref().is_some_and(|c| !c.healthy()) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the shared case store does not answer\n",
        )
            .into_response()
    } else {
        "ready\n".into_response()
    }
}

/// The service's metrics ([`crate::metrics::Scrape`]).
async fn metrics(State(s): St) -> Response {
    // the store's totals, unless the store does not answer in time (a scrape must not
    // hang on a database that does not answer; one question to it at a time)
    let store = if s.metrics.store_query.swap(true, Ordering::AcqRel) {
        None
    } else {
        /// Lets the next scrape ask once this question ended, however it ended.
        struct Asked<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Asked<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let task = crate::cases::blocking(s.clone(), |st: &ApiState| {
            let _asked = Asked(&st.metrics.store_query);
            let since = crate::cases::now_ms() - ledger::DEFAULT_DAYS * 86_400_000;
            let reviews = crate::cases::ledger::ReviewTotals::of(&st.store.verdicts(since)?);
            Ok((
                st.store.case_counts()?,
                st.store.delivery_counts()?,
                reviews,
            ))
        });
        // the blocking call runs on after a timeout, and ends the question when done
        match tokio::time::timeout(STORE_WAIT, task).await {
            Ok(Ok(t)) => Some(t),
            Ok(Err(e)) => {
                tracing::warn!("metrics: {e}");
                None
            }
            Err(_) => None,
        }
    };
    let scrape = crate::metrics::Scrape {
        cameras: s.pool.status(),
        metrics: s.metrics.clone(),
        store,
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        scrape.render(),
    )
        .into_response()
}

/// How long `/metrics` waits for the store's totals before answering without them.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// A number parameter of a query string, `default` when absent, at most `max`.
pub(crate) fn num_param(
    q: &HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match q.get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| bad(format!("{name}: {v:?} is not a number up to {max}"))),
    }
}

fn time_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = q.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|_| {
            bad(format!(
                "{name}: {v:?} is neither ms since the epoch nor RFC 3339"
            ))
        })
}

async fn cases(
    State(s): St,
    Viewer(_): Viewer,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q.map_err(|_| bad("the query string could not be read"))?;
    let status = match q.get("status").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(CaseStatus::parse(v).ok_or_else(|| {
            bad(format!(
                "status: {v:?} is not open, confirmed, rejected or closed"
            ))
        })?),
    };
    let num = |name: &str, default: usize, max: usize| num_param(&q, name, default, max);
    let query = CaseQuery {
        kind: q
            .get("kind")
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|e| bad(format!("kind: {e}"))))
            .transpose()?,
        cell: q.get("cell").filter(|v| !v.is_empty()).cloned(),
        status,
        since_ms: time_param(&q, "since")?,
        until_ms: time_param(&q, "until")?,
        limit: num("limit", 50, 500)?,
        offset: num("offset", 0, 10_000_000)?,
    };
    let (limit, offset) = (query.limit, query.offset);
    let (list, total) = blocking(&s, move |s| {
        let (cases, total) = s.store.find(&query)?;
        let mut out = Vec::with_capacity(cases.len());
        for c in cases {
            let evidence = s.store.evidence(c.id)?;
            let mut v = serde_json::to_value(&c).unwrap_or_default();
            v["evidence"] = json!(evidence
                .iter()
                .map(|e| format!("/{}", e.file))
                .collect::<Vec<_>>());
            out.push(v);
        }
        Ok((out, total))
    })
    .await?;
    Ok(Json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "cases": list,
    })))
}

pub(crate) fn case_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("no case {id:?}")))
}

async fn case(
    State(s): St,
    Viewer(_): Viewer,
    Seg(id): Seg<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = case_id(&id)?;
    let doc = blocking(&s, move |s| {
        let c = s.store.case(id)?;
        let (remote_id, _) = s.store.remote(id)?;
        let originals = crate::cases::originals::OriginalStore::originals(&*s.store, id)?;
        let evidence: Vec<_> = s
            .store
            .evidence(id)?
            .into_iter()
            .map(|e| {
                json!({
                    "url": format!("/{}", e.file),
                    "sha256": e.sha256,
                    "camera": e.camera,
                    "at_ms": e.at_ms,
                    "role": e.role,
                    "content_type": e.content_type(),
                    "id": e.id,
                    "original": originals.contains(&e.id),
                })
            })
            .collect();
        Ok(json!({
            "case": c,
            "remote_id": remote_id,
            "evidence": evidence,
            "reviews": s.store.reviews(id)?,
            "zones": s.store.case_zones(id)?,
            "sightings": s.store.sightings(id, 50)?,
            "deliveries": s.store.deliveries(Some(id))?,
        }))
    })
    .await?;
    Ok(Json(doc))
}

pub use guard::{allowed_hosts, protect};

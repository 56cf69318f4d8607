//! Tokens and the audit log (admins), and `whoami` (anyone: what the page may show).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{json_body, read_body, same_site, Admin};
use super::cameras::registry_call;
use super::{bad, ApiError, Seg, St};
use crate::registry::Role;

/// `GET /api/whoami`: the caller's name and role (`null` without a token), and what
/// the config allows without one. A token that is not in force is refused (401).
pub(super) async fn whoami(State(s): St, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let anonymous = s.access.anonymous();
    let open = json!({
        "open_reads": anonymous.is_some(),
        "open_writes": anonymous == Some(Role::Reviewer),
    });
    if headers.get(header::AUTHORIZATION).is_none() {
        let role = json!(anonymous);
        return Ok(Json(
            json!({ "name": null, "role": role, "token": false, "open": open }),
        ));
    }
    let a = super::auth::authorise(&s, &headers, Role::Viewer).await?;
    Ok(Json(
        json!({ "name": a.name, "role": a.role, "token": true, "open": open }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: Role,
}

/// `GET /api/tokens`: every token, without secrets.
pub(super) async fn tokens(State(s): St, Admin(_): Admin) -> Result<Json<Value>, ApiError> {
    let list = registry_call(&s, |s| Ok(s.registry.tokens()?)).await?;
    Ok(Json(json!(list)))
}

/// `POST /api/tokens` `{"name": "…", "role": "viewer" | "reviewer" | "admin"}`: the
/// token, shown this once (201).
pub(super) async fn create_token(
    State(s): St,
    Admin(actor): Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    same_site(&headers, &["application/json"])?;
    let bytes = read_body(body, 4096).await?;
    let t: NewToken = json_body(
        &bytes,
        r#"{"name": "…", "role": "viewer" | "reviewer" | "admin"}"#,
    )?;
    let (secret, info) = registry_call(&s, move |s| {
        let made = s.registry.create_token(&actor, &t.name, t.role)?;
        s.access.tokens.refresh(&s.registry)?;
        Ok(made)
    })
    .await?;
    tracing::info!(
        "api: token {} ({}) made for {:?}",
        info.id,
        info.role,
        info.name
    );
    let mut v = json!(info);
    v["token"] = json!(secret);
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(v),
    )
        .into_response())
}

/// `DELETE /api/tokens/{id}`: the token stops working (204).
pub(super) async fn revoke_token(
    State(s): St,
    Admin(actor): Admin,
    Seg(id): Seg<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    same_site(&headers, &[])?;
    registry_call(&s, move |s| {
        s.registry.revoke_token(&actor, &id)?;
        s.access.tokens.refresh(&s.registry)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/audit?target=&limit=&offset=`: the audit log, newest first.
pub(super) async fn audit(
    State(s): St,
    Admin(_): Admin,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|_| bad("the query string could not be read"))?;
    let num = |name: &str, default: usize, max: usize| super::num_param(&q, name, default, max);
    let (limit, offset) = (num("limit", 100, 1000)?, num("offset", 0, 10_000_000)?);
    let target = q.get("target").filter(|v| !v.is_empty()).cloned();
    let (entries, total) = registry_call(&s, move |s| {
        Ok(s.registry.audit_log(target.as_deref(), limit, offset)?)
    })
    .await?;
    Ok(Json(
        json!({ "total": total, "limit": limit, "offset": offset, "entries": entries }),
    ))
}

//! Reviews (`POST /api/cases/{id}/review`): who may write, and what a review may say.
//!
//! A write needs the bearer token (compared by its SHA-256, so the time taken says
//! nothing about the token), or `open_writes`. It must be JSON
//! (`Content-Type: application/json`): a browser cannot send that to another site
//! without asking it first, so a page elsewhere cannot make an analyst's browser review
//! a case; a request whose `Origin` is another host than the one it is addressed to is
//! refused as well. The reviewer's name and note go through the one free-text check
//! ([`crate::cases::text`]). Every review and every refused write is logged with the
//! peer's address.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::{bad, blocking, case_id, ApiError, Seg, St};
use crate::cases::{now_ms, text, Review, Verdict};

/// Largest review body.
const MAX_REVIEW_BODY: usize = 16 * 1024;

/// How long a review body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks the bearer token or the open-writes switch.
fn authorise(s: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    match &s.token {
        Some(want) if want.trim().is_empty() => Err(ApiError(
            StatusCode::FORBIDDEN,
            "writes are disabled: the API token is empty".into(),
        )),
        Some(want) => {
            let got = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let (a, b): ([u8; 32], [u8; 32]) = (
                Sha256::digest(got.as_bytes()).into(),
                Sha256::digest(want.as_bytes()).into(),
            );
            if a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0 {
                Ok(())
            } else {
                Err(ApiError(
                    StatusCode::UNAUTHORIZED,
                    "a valid bearer token is required".into(),
                ))
            }
        }
        None if s.open_writes => Ok(()),
        None => Err(ApiError(
            StatusCode::FORBIDDEN,
            "writes are disabled: set api.token_env (or api.open_writes)".into(),
        )),
    }
}

/// Refuses what a page on another site could make a browser send: a body that is not
/// JSON, or an `Origin` other than the host the request is for.
fn same_site(headers: &HeaderMap) -> Result<(), ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a review must be sent as Content-Type: application/json".into(),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .split_once("://")
            .map_or(origin, |(_, rest)| rest)
            .trim_end_matches('/');
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("a cross-site request is refused (Origin {origin}, Host {host})"),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    verdict: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reviewer: Option<String>,
}

pub(super) async fn review(
    State(s): St,
    Seg(id): Seg<String>,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let peer = crate::serve::peer(&ext);
    let checked = authorise(&s, &headers).and_then(|()| same_site(&headers));
    if let Err(e) = &checked {
        tracing::warn!("api: refused a review of case {id} from {peer}: {}", e.1);
    }
    checked?;
    let id = case_id(&id)?;
    let bytes =
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_REVIEW_BODY)).await
        {
            Err(_) => {
                return Err(ApiError(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body did not arrive within {BODY_TIMEOUT:?}"),
                ))
            }
            Ok(Err(_)) => {
                return Err(ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is over {MAX_REVIEW_BODY} bytes"),
                ))
            }
            Ok(Ok(b)) => b,
        };
    let b: ReviewBody = serde_json::from_slice(&bytes).map_err(|e| {
        bad(format!(
            "the body must be JSON {{\"verdict\": \"confirm\" | \"reject\", \"note\": \"…\"}}: {e}"
        ))
    })?;
    let verdict = Verdict::parse(&b.verdict).ok_or_else(|| {
        bad(format!(
            "verdict: {:?} is neither confirm nor reject",
            b.verdict
        ))
    })?;
    text::check("note", &b.note, 2000, true).map_err(bad)?;
    let reviewer = b.reviewer.unwrap_or_else(|| "analyst".into());
    if reviewer.trim().is_empty() {
        return Err(bad("reviewer: 1 to 100 characters"));
    }
    text::check("reviewer", &reviewer, 100, false).map_err(bad)?;
    let r = Review {
        case_id: id,
        verdict,
        reviewer,
        note: b.note,
        at_ms: now_ms(),
    };
    let (who, what) = (r.reviewer.clone(), r.verdict);
    let case = blocking(&s, move |s| {
        s.store.review(&r)?;
        s.store.case(r.case_id)
    })
    .await?;
    tracing::info!("api: case {id} {what:?} by {who:?} from {peer}");
    s.outbox_waker.notify_one();
    Ok(Json(json!({ "case": case })))
}

//! Who a request is, and whether its role allows the call.
//!
//! Every handler that reads or writes citizens' data takes one of the extractors
//! [`Viewer`], [`Reviewer`] or [`Admin`]: the request's bearer token
//! ([`crate::registry::access`]) must carry that role or a higher one, else the call
//! is refused before anything else is read — 401 without a token (or with one that
//! is not in force), 403 with a token whose role is too low. Without a token, a read
//! is allowed only where the config opens reads (`api.open_reads`) or writes, a
//! review only where it opens writes (`api.open_writes`: anyone is a reviewer); an
//! admin call always needs a token.
//!
//! A write must also be sent as a browser cannot send it to another site unasked
//! ([`same_site`]), and its body arrives within a limit of size and time
//! ([`read_body`]).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

use super::{ApiError, ApiState};
use crate::registry::access::Tokens;
use crate::registry::{Actor, Role};

/// What the config allows without a token, and the tokens in force.
pub struct Access {
    /// The tokens (and the config's `api.token`).
    pub tokens: Arc<Tokens>,
    /// Reads without a token (`api.open_reads`).
    pub open_reads: bool,
    /// Reviews without a token (`api.open_writes`).
    pub open_writes: bool,
}

impl Access {
    /// The role of a caller without a token: a reviewer where writes are open (an
    /// open review includes reading what is reviewed), a viewer where reads are,
    /// else none.
    pub fn anonymous(&self) -> Option<Role> {
        if self.open_writes {
            Some(Role::Reviewer)
        } else if self.open_reads {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// The actor a request is, if its role is at least `need`.
    pub fn authorise(&self, headers: &HeaderMap, need: Role) -> Result<Actor, ApiError> {
        let actor = match headers.get(header::AUTHORIZATION) {
            Some(_) => {
                let token = bearer(headers).unwrap_or("");
                self.tokens.check(token).ok_or_else(|| {
                    ApiError(
                        StatusCode::UNAUTHORIZED,
                        "the bearer token is not one in force".into(),
                    )
                })?
            }
            None => {
                // (never an admin: an admin call always needs a token)
                if self.anonymous().is_none_or(|r| r < need) {
                    return Err(ApiError(
                        StatusCode::UNAUTHORIZED,
                        format!(
                            "this needs a token with the {need} role (Authorization: Bearer …)"
                        ),
                    ));
                }
                return Ok(Actor {
                    name: "anonymous".into(),
                    role: need,
                    token: None,
                });
            }
        };
        if actor.role < need {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs the {need} role; the token {:?} is a {}",
                    actor.name, actor.role
                ),
            ));
        }
        Ok(actor)
    }
}

/// The actor a request is, if its role is at least `need`; a token not known here
/// (made a moment ago on another node or on the command line) makes the node read
/// the tokens again first, at most once a second.
pub async fn authorise(
    state: &Arc<ApiState>,
    headers: &HeaderMap,
    need: Role,
) -> Result<Actor, ApiError> {
    let r = state.access.authorise(headers, need);
    if r.as_ref().is_err_and(|e| e.0 == StatusCode::UNAUTHORIZED) {
        let presented = bearer(headers).unwrap_or("").to_string();
        if state.access.tokens.worth_asking(&presented) {
            let s = state.clone();
            let read = tokio::task::spawn_blocking(move || s.access.tokens.refresh(&s.registry));
            if let Ok(Ok(())) = read.await {
                return state.access.authorise(headers, need);
            }
        }
    }
    r
}

/// The bearer token of a request's `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    Some(
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or("")
            .trim(),
    )
}

macro_rules! role_extractor {
    ($name:ident, $role:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $name(pub Actor);

        impl FromRequestParts<Arc<ApiState>> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &Arc<ApiState>,
            ) -> Result<Self, ApiError> {
                let r = authorise(state, &parts.headers, $role).await;
                match r {
                    Ok(a) => Ok(Self(a)),
                    Err(e) => {
                        if e.0 == StatusCode::FORBIDDEN || parts.method != axum::http::Method::GET {
                            let peer = crate::serve::peer(&parts.extensions);
                            tracing::warn!(
                                "api: refused {} {} from {peer}: {}",
                                parts.method,
                                parts.uri.path(),
                                e.1
                            );
                        }
                        Err(e)
                    }
                }
            }
        }
    };
}

role_extractor!(
    Viewer,
    Role::Viewer,
    "A caller who may read cases, evidence, cameras and frames."
);
role_extractor!(
    Reviewer,
    Role::Reviewer,
    "A caller who may also confirm and reject cases."
);
role_extractor!(
    Admin,
    Role::Admin,
    "A caller who may also change cameras and tokens and read the audit log."
);

/// Refuses what a page on another site could make a browser send: a body that is
/// not of `types` (JSON, or a catalogue's CSV: neither can be sent across sites
/// without the other site agreeing first), or an `Origin` other than the host the
/// request is for.
pub fn same_site(headers: &HeaderMap, types: &[&str]) -> Result<(), ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = ctype.split(';').next().unwrap_or("").trim();
    if !types.is_empty() && !types.iter().any(|t| base.eq_ignore_ascii_case(t)) {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the body must be sent as Content-Type: {}",
                types.join(" or ")
            ),
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

/// How long a body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request's body, at most `max` bytes, arrived within the body timeout.
pub async fn read_body(body: Body, max: usize) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, max)).await {
        Err(_) => Err(ApiError(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {BODY_TIMEOUT:?}"),
        )),
        Ok(Err(_)) => Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {max} bytes"),
        )),
        Ok(Ok(b)) => Ok(b),
    }
}

/// A JSON body of type `T`, with what is wrong with it named.
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| super::bad(format!("the body must be {what}: {e}")))
}

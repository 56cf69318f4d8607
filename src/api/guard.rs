//! What every response of the API, the review page and the built-in inbox goes through:
//!
//! - **The host a request is for.** A request addressed to a host this server does not
//!   answer for is refused (421): on a loopback address only `localhost`, `127.0.0.1`,
//!   `[::1]` and the names in `api.allowed_hosts` / `api.public_url` are, so a web page
//!   that points its own name at 127.0.0.1 (DNS rebinding) cannot read the local demo's
//!   cases or review them. On another address, `api.allowed_hosts` when set; else any.
//! - **Headers that keep the page in its place**: a Content-Security-Policy that allows
//!   only this server and the review page's own script and style (by their SHA-256),
//!   no framing (`frame-ancestors 'none'`, `X-Frame-Options: DENY`: its one-key confirm
//!   and reject cannot be clickjacked), `nosniff`, no referrer.

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::ApiError;
use super::ApiState;

/// Puts the guard in front of `router`.
pub fn protect<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    state: Arc<ApiState>,
) -> Router<S> {
    router.layer(axum::middleware::from_fn_with_state(state, host_guard))
}

/// The guard itself, as a middleware function.
pub async fn host_guard(State(s): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    if let Some(allowed) = &s.allowed_hosts {
        if let Some(host) = req.headers().get(header::HOST) {
            let host = host.to_str().unwrap_or("");
            if !host_allowed(allowed, host) {
                let peer = crate::serve::peer(req.extensions());
                tracing::warn!("api: refused a request for host {host:?} from {peer}");
                return ApiError(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!("this server does not answer for host {host:?}"),
                )
                .into_response();
            }
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp().clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// Whether `host` (a Host header: `name`, `name:port`, `[v6]:port`) is one of
/// `allowed` (each `name` or `name:port`), without regard to case.
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let bare = match host.strip_prefix('[') {
        Some(rest) => rest
            .split(']')
            .next()
            .map(|h| format!("[{h}]"))
            .unwrap_or_default(),
        None => host
            .rsplit_once(':')
            .map_or(host.clone(), |(h, _)| h.to_string()),
    };
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&host) || a.eq_ignore_ascii_case(&bare))
}

/// The hosts a server bound to `listen` answers for: on a loopback address the local
/// names, plus `extra` (`allowed_hosts`, `public_url`'s host); elsewhere `extra` when
/// given, else any host (`None`).
pub fn allowed_hosts(listen: &str, extra: &[String]) -> Option<Vec<String>> {
    let loopback = listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or_else(|_| listen.starts_with("localhost:"));
    if loopback {
        let mut v: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().cloned());
        Some(v)
    } else if extra.is_empty() {
        None
    } else {
        let mut v = extra.to_vec();
        if let Ok(a) = listen.parse::<std::net::SocketAddr>() {
            v.push(a.ip().to_string());
        }
        Some(v)
    }
}

/// The policy: this server only, and the pages' (review, editor) inline scripts and
/// styles by their hashes.
fn csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |tag: &str| -> String {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            [super::REVIEW_PAGE, super::EDITOR_PAGE]
                .iter()
                .flat_map(|page| page.split(open.as_str()).skip(1))
                .filter_map(|rest| rest.split(close.as_str()).next())
                .map(|body| {
                    let d = Sha256::digest(body.as_bytes());
                    format!(
                        " 'sha256-{}'",
                        base64::engine::general_purpose::STANDARD.encode(d)
                    )
                })
                .collect()
        };
        let policy = format!(
            "default-src 'none'; connect-src 'self'; img-src 'self' blob:; media-src 'self' blob:; script-src{}; style-src{}; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            hash("script"),
            hash("style")
        );
        HeaderValue::from_str(&policy).expect("a header-safe policy")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_matched_with_and_without_ports() {
        let local = allowed_hosts("127.0.0.1:8080", &["gw.example".into()]).unwrap();
        for ok in [
            "localhost:8080",
            "127.0.0.1:8080",
            "LOCALHOST",
            "[::1]:8080",
            "gw.example",
        ] {
            assert!(host_allowed(&local, ok), "{ok}");
        }
        for no in [
            "attacker.example",
            "attacker.example:8080",
            "127.0.0.2:8080",
            "localhost.evil",
        ] {
            assert!(!host_allowed(&local, no), "{no}");
        }
        assert_eq!(allowed_hosts("0.0.0.0:8080", &[]), None, "any host");
        let named = allowed_hosts("0.0.0.0:8080", &["gw.city.example".into()]).unwrap();
        assert!(host_allowed(&named, "gw.city.example:8080"));
        assert!(!host_allowed(&named, "evil.example"));
    }

    #[test]
    fn the_policy_holds_the_pages_script_and_style_hashes() {
        let p = csp().to_str().unwrap();
        assert!(p.contains("frame-ancestors 'none'"));
        // a script and a style on each of the two pages (review, editor)
        assert_eq!(p.matches("'sha256-").count(), 4, "{p}");
        assert!(!p.contains("unsafe-inline"));
    }
}

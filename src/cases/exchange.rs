//! What one delivery sends and how one HTTP exchange with a receiver goes, shared by
//! the workflow clients ([`super::open311`], [`super::webhook`]): the outgoing case
//! and its attributes, the client's HTTP settings, an answer read whole (bounded), and
//! what a transport error or a `Retry-After` means for the retry policy.

use super::config::DeliveryConfig;
use super::retry::AttemptResult;
use super::{Case, Delivery, Event, Evidence, Review};

/// Everything one delivery sends, read from the store just before sending (so a case
/// goes out as it stands then, not as it stood when it was queued).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The delivery.
    pub delivery: Delivery,
    /// The case.
    pub case: Case,
    /// Its evidence files.
    pub evidence: Vec<Evidence>,
    /// Its review decisions.
    pub reviews: Vec<Review>,
    /// The receiver's request id, once known.
    pub remote_id: Option<String>,
    /// The receiver's token, when it answered with one.
    pub token: Option<String>,
    /// The evidence files it carries (`media = "attach"`, a case's create only), by
    /// evidence id, in sequence order.
    pub attached: Vec<(i64, Vec<u8>)>,
}

impl Outgoing {
    /// A plain-language description of the case, at most `max` characters.
    pub fn description(&self, max: usize) -> String {
        let c = &self.case;
        let when = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default()
        };
        let mut text = format!(
            "{} in {} (grid cell {}): seen {} time{} by {} between {} and {}. Status: {}.",
            c.kind.as_str().replace('_', " "),
            c.admin_path,
            c.cell,
            c.count,
            if c.count == 1 { "" } else { "s" },
            if c.cameras.is_empty() {
                "no camera".to_string()
            } else {
                c.cameras.join(", ")
            },
            when(c.first_seen_ms),
            when(c.last_seen_ms),
            c.status.as_str()
        );
        if let Some(r) = self.reviews.last() {
            text.push_str(&format!(
                " Reviewed by {}: {}{}.",
                r.reviewer,
                r.verdict.as_str(),
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.note)
                }
            ));
        }
        text.push_str(&format!(" gridwatch case {}.", c.id));
        truncate_chars(&text, max)
    }

    /// The case's violation photo (the frame in which the rule fired, with its
    /// strip); else its first photo (a camera fault's; a case stored before photos had
    /// roles).
    pub fn violation_photo(&self) -> Option<&Evidence> {
        violation_photo(&self.evidence)
    }

    /// The address of the violation photo under `public_url`.
    pub fn media_url(&self, public_url: Option<&str>) -> Option<String> {
        let base = public_url?.trim_end_matches('/');
        self.violation_photo().map(|e| format!("{base}/{}", e.file))
    }

    /// The bytes carried of evidence item `id`, if they are.
    pub fn attached(&self, id: i64) -> Option<&[u8]> {
        self.attached
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| &b[..])
    }
}

/// Of a case's `evidence`, its violation photo (the frame in which the rule fired);
/// else its first photo (a camera fault's; a case stored before photos had roles).
pub fn violation_photo(evidence: &[Evidence]) -> Option<&Evidence> {
    use super::photo::PhotoRole;
    evidence
        .iter()
        .find(|e| e.role == Some(PhotoRole::Violation))
        .or(evidence.iter().find(|e| e.role != Some(PhotoRole::Clip)))
}

/// At most `max` characters of `s`, cut on a character boundary with an ellipsis.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// What a client made of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Taken; the receiver's ids when it gave them.
    Ok {
        /// Request id.
        remote_id: Option<String>,
        /// Token to resolve later.
        token: Option<String>,
        /// What the receiver said, for the log.
        detail: String,
    },
    /// Not taken: the retry policy decides.
    Failed(AttemptResult),
    /// The receiver has nothing yet (an unresolved token): try again later.
    NotYet(String),
    /// Not sent on purpose (the receiver takes no follow-ups).
    Skipped(String),
}

/// Maps a reqwest error to an attempt result.
pub(crate) fn transport_error(e: &reqwest::Error) -> AttemptResult {
    if e.is_timeout() {
        AttemptResult::Timeout
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        AttemptResult::Connection(text)
    }
}

/// The HTTP client of a delivery config: its timeout for connecting and for the whole
/// request, gridwatch's user agent, TLS (OpenSSL) trusting the system's CAs and those of
/// `ca_file`. Certificates are always verified.
pub(crate) fn http_client(cfg: &DeliveryConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .user_agent(concat!("gridwatch/", env!("CARGO_PKG_VERSION")));
    for cert in cfg.extra_roots()? {
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// An HTTP answer, read whole.
pub(crate) struct Reply {
    /// Its status.
    pub status: reqwest::StatusCode,
    /// `Retry-After` in seconds, when given so.
    pub retry_after: Option<u64>,
    /// Its body.
    pub body: axum::body::Bytes,
}

impl Reply {
    /// A refusal the retry policy judges, with `text` as the receiver's reason.
    pub fn refusal(&self, text: String) -> Sent {
        Sent::Failed(AttemptResult::Status {
            code: self.status.as_u16(),
            retry_after: self.retry_after,
            body: text,
        })
    }
}

/// Sends a request and reads the whole answer; a transport failure is the attempt's
/// result.
pub(crate) async fn exchange(req: reqwest::RequestBuilder) -> Result<Reply, Sent> {
    let resp = req
        .send()
        .await
        .map_err(|e| Sent::Failed(transport_error(&e)))?;
    let status = resp.status();
    let retry_after = retry_after(resp.headers());
    let body = resp
        .bytes()
        .await
        .map_err(|e| Sent::Failed(transport_error(&e)))?;
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// `Retry-After` in seconds, when given so.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The Open311 `attribute[...]` values and webhook fields every delivery carries.
pub fn case_attributes(out: &Outgoing) -> Vec<(&'static str, String)> {
    let c = &out.case;
    vec![
        ("gridwatch_case_id", c.id.to_string()),
        ("gridwatch_kind", c.kind.to_string()),
        ("gridwatch_cell", c.cell.clone()),
        ("gridwatch_status", c.status.as_str().to_string()),
        ("gridwatch_count", c.count.to_string()),
        ("gridwatch_cameras", c.cameras.join(",")),
        ("gridwatch_first_seen_ms", c.first_seen_ms.to_string()),
        ("gridwatch_last_seen_ms", c.last_seen_ms.to_string()),
        (
            "gridwatch_event",
            match out.delivery.event {
                Event::Create => "create",
                Event::Update => "update",
                Event::Resolve => "resolve",
            }
            .to_string(),
        ),
        (
            "gridwatch_idempotency_key",
            out.delivery.idempotency_key.clone(),
        ),
    ]
}

//! The outbox: delivers queued cases to the workflow API. A case is committed (and its
//! delivery queued) before anything is sent; the outbox only ever reads the queue, sends,
//! and records what happened. A crash between the receiver taking a case and the
//! outbox recording it leaves the delivery pending: it is sent again after the restart
//! with the same idempotency key, which a receiver that honours it (the built-in inbox
//! does) answers with the request it already has.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{watch, Notify};

use super::config::{DeliveryConfig, TargetKind};
use super::open311::Open311Client;
use super::retry::{AttemptResult, Decision, RetryPolicy};
use super::webhook::WebhookClient;
use super::{
    now_ms, AfterAttempt, Attempt, Case, CaseStore, Delivery, Event, Evidence, Review, StoreError,
};

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
            c.kind.replace('_', " "),
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

    /// The address of the case's first evidence file under `public_url`.
    pub fn media_url(&self, public_url: Option<&str>) -> Option<String> {
        let base = public_url?.trim_end_matches('/');
        self.evidence.first().map(|e| format!("{base}/{}", e.file))
    }
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

/// The workflow client a config names.
pub enum Client {
    /// Open311 GeoReport v2.
    Open311(Open311Client),
    /// JSON webhook.
    Webhook(WebhookClient),
}

impl Client {
    /// Builds the client for a delivery config.
    pub fn from_config(cfg: &DeliveryConfig) -> Result<Self, String> {
        Ok(match cfg.target {
            TargetKind::Open311 => Self::Open311(Open311Client::new(cfg)?),
            TargetKind::Webhook => Self::Webhook(WebhookClient::new(cfg)?),
        })
    }

    /// One attempt.
    pub async fn send(&self, out: &Outgoing) -> Sent {
        match self {
            Self::Open311(c) => c.send(out).await,
            Self::Webhook(c) => c.send(out).await,
        }
    }
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

/// How long the outbox waits after its store failed.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// The delivery worker.
pub struct Outbox {
    store: Arc<dyn CaseStore>,
    client: Client,
    policy: RetryPolicy,
    concurrency: usize,
    wake: Arc<Notify>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Deliveries attempted.
    pub attempted: usize,
    /// Of which delivered.
    pub delivered: usize,
}

impl Outbox {
    /// An outbox over `store` sending through `client`.
    pub fn new(
        store: Arc<dyn CaseStore>,
        client: Client,
        policy: RetryPolicy,
        concurrency: usize,
    ) -> Self {
        Self {
            store,
            client,
            policy,
            concurrency: concurrency.max(1),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the worker early (a case was just opened or reviewed).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn CaseStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .expect("store task panicked")
    }

    /// Sends what is due now, up to `concurrency` at a time; one attempt each.
    pub async fn round(&self) -> Result<Round, StoreError> {
        let limit = self.concurrency * 8;
        let due = self.blocking(move |s| s.due(now_ms(), limit)).await?;
        let attempted = due.len();
        let results: Vec<Result<bool, StoreError>> = futures::stream::iter(due)
            .map(|d| self.deliver(d))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut delivered = 0;
        for r in results {
            delivered += r? as usize;
        }
        Ok(Round {
            attempted,
            delivered,
        })
    }

    async fn deliver(&self, delivery: Delivery) -> Result<bool, StoreError> {
        let case_id = delivery.case_id;
        let out = self
            .blocking(move |s| {
                let (remote_id, token) = s.remote(case_id)?;
                Ok(Outgoing {
                    case: s.case(case_id)?,
                    evidence: s.evidence(case_id)?,
                    reviews: s.reviews(case_id)?,
                    remote_id,
                    token,
                    delivery,
                })
            })
            .await?;
        let sent = self.client.send(&out).await;
        let at_ms = now_ms();
        let attempt_no = out.delivery.attempts + 1;
        let (attempt, after) = self.judge(out.delivery.id, attempt_no, at_ms, sent);
        let ok = matches!(after, AfterAttempt::Delivered { .. });
        match &after {
            AfterAttempt::Retry { error, .. } => tracing::debug!(
                case = case_id,
                delivery = out.delivery.id,
                "delivery attempt {attempt_no} failed, will retry: {error}"
            ),
            AfterAttempt::Failed(why) => tracing::warn!(
                case = case_id,
                delivery = out.delivery.id,
                "delivery of case {case_id} ({}) failed for good: {why}",
                out.delivery.event.as_str()
            ),
            _ => {}
        }
        let id = out.delivery.id;
        self.blocking(move |s| s.finish(id, &attempt, &after))
            .await?;
        Ok(ok)
    }

    fn judge(
        &self,
        delivery_id: i64,
        attempt_no: u32,
        at_ms: i64,
        sent: Sent,
    ) -> (Attempt, AfterAttempt) {
        let jitter = rand::random::<f64>();
        let retry_at = |wait: Duration| at_ms + wait.as_millis() as i64;
        let log = |result: &str, http_status: Option<u16>, detail: String| Attempt {
            delivery_id,
            at_ms,
            result: result.to_string(),
            http_status,
            detail,
        };
        match sent {
            Sent::Ok {
                remote_id,
                token,
                detail,
            } => (
                log("delivered", None, detail),
                AfterAttempt::Delivered { remote_id, token },
            ),
            Sent::Skipped(why) => (
                log("skipped", None, why.clone()),
                AfterAttempt::Skipped(why),
            ),
            Sent::NotYet(why) => {
                let wait = match self
                    .policy
                    .decide(attempt_no, &AttemptResult::Timeout, jitter)
                {
                    Decision::RetryAfter(w) => w,
                    _ => self.policy.initial,
                };
                (
                    log("not_yet", None, why.clone()),
                    AfterAttempt::Retry {
                        at_ms: retry_at(wait),
                        error: why,
                    },
                )
            }
            Sent::Failed(result) => {
                let (kind, status, detail) = match &result {
                    AttemptResult::Delivered => ("delivered", None, String::new()),
                    AttemptResult::Timeout => ("timeout", None, "no answer in time".to_string()),
                    AttemptResult::Connection(e) => ("connection", None, e.clone()),
                    AttemptResult::Status { code, body, .. } => ("http", Some(*code), body.clone()),
                    AttemptResult::NotOurs(why) => ("not_ours", None, why.clone()),
                };
                let error = match status {
                    Some(code) => format!("HTTP {code}: {detail}"),
                    None => format!("{kind}: {detail}"),
                };
                let after = match self.policy.decide(attempt_no, &result, jitter) {
                    Decision::Delivered => AfterAttempt::Delivered {
                        remote_id: None,
                        token: None,
                    },
                    Decision::RetryAfter(wait) => AfterAttempt::Retry {
                        at_ms: retry_at(wait),
                        error,
                    },
                    Decision::Permanent(why) => AfterAttempt::Failed(why),
                };
                (log(kind, status, detail), after)
            }
        }
    }

    /// Runs until `shutdown` turns true: a round, then sleep until the next delivery is
    /// due, the waker fires, or at most a minute. Store failures are logged and retried,
    /// never the end of delivery.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), StoreError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // a store that fails (a locked or full disk) stops nothing for good: the
            // deliveries stay queued, and the outbox tries again a little later
            let wait = match self.round().await {
                Ok(r) if r.attempted > 0 => continue,
                Ok(_) => match self.blocking(|s| s.next_due_ms()).await {
                    Ok(next) => next
                        .map(|t| Duration::from_millis((t - now_ms()).clamp(10, 60_000) as u64))
                        .unwrap_or(Duration::from_secs(60)),
                    Err(e) => {
                        tracing::error!("outbox: {e}; trying again in {STORE_RETRY:?}");
                        STORE_RETRY
                    }
                },
                Err(e) => {
                    tracing::error!("outbox: {e}; trying again in {STORE_RETRY:?}");
                    STORE_RETRY
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Delivers until nothing is pending, or until `deadline` passes; returns whether
    /// the queue emptied. Waits for retries (and other nodes' claims) that end before
    /// the deadline.
    pub async fn drain(&self, deadline: Option<std::time::Instant>) -> Result<bool, StoreError> {
        loop {
            let r = self.round().await?;
            if r.attempted > 0 {
                continue;
            }
            let Some(next) = self.blocking(|s| s.next_due_ms()).await? else {
                return Ok(true);
            };
            // look again at least twice a second: with a shared store another node may
            // finish what it holds (its claim is what `next` waits for) before then
            let wait = Duration::from_millis((next - now_ms()).clamp(5, 500) as u64);
            if let Some(d) = deadline {
                if std::time::Instant::now() + wait > d {
                    return Ok(false);
                }
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// The Open311 `attribute[...]` values and webhook fields every delivery carries.
pub fn case_attributes(out: &Outgoing) -> Vec<(&'static str, String)> {
    let c = &out.case;
    vec![
        ("gridwatch_case_id", c.id.to_string()),
        ("gridwatch_kind", c.kind.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_not_bytes() {
        let s = "违章停车".repeat(2000);
        let t = truncate_chars(&s, 4000);
        assert_eq!(t.chars().count(), 4000);
        assert!(t.ends_with('…'));
        assert_eq!(truncate_chars("short", 4000), "short");
    }
}

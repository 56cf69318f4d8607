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

use super::config::{DeliveryConfig, MediaMode, TargetKind};
pub use super::exchange::{case_attributes, truncate_chars, Outgoing, Sent};
use super::open311::Open311Client;
use super::photo::PhotoRole;
use super::retry::{AttemptResult, Decision, RetryPolicy};
use super::webhook::WebhookClient;
use super::{AfterAttempt, Attempt, CaseStore, Delivery, Event, Evidence, StoreError};

/// The evidence files a create to `target` carries: Open311 takes one medium, the
/// violation photo; the webhook every item, in sequence order, while their bytes total
/// at most `max` (one that does not fit is skipped, later smaller ones may still fit).
/// Only those are read.
fn carried(
    s: &dyn CaseStore,
    case_id: i64,
    target: TargetKind,
    evidence: &[Evidence],
    max: usize,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let items: Vec<&Evidence> = match target {
        TargetKind::Open311 => super::exchange::violation_photo(evidence)
            .into_iter()
            .collect(),
        TargetKind::Webhook => evidence.iter().collect(),
    };
    let mut out = Vec::new();
    let mut total = 0;
    for e in items {
        if let Some(bytes) = s.evidence_bytes(case_id, e.id)? {
            if total + bytes.len() <= max {
                total += bytes.len();
                out.push((e.id, bytes));
            }
        }
    }
    Ok(out)
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

    /// Its delivery config.
    pub fn config(&self) -> &DeliveryConfig {
        match self {
            Self::Open311(c) => c.config(),
            Self::Webhook(c) => c.config(),
        }
    }

    /// One attempt.
    pub async fn send(&self, out: &Outgoing) -> Sent {
        match self {
            Self::Open311(c) => c.send(out).await,
            Self::Webhook(c) => c.send(out).await,
        }
    }
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
    clock: Arc<dyn crate::clock::Clock>,
    /// `media = "attach"`: how long a case's create waits for its clip.
    clip_wait: Option<Duration>,
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
            clock: Arc::new(crate::clock::SystemClock),
            clip_wait: None,
        }
    }

    /// With `media = "attach"`, a case's create to a webhook (which carries every item)
    /// waits up to `wait` after it was queued for the case's clip (made by the service
    /// a moment after the case opened), so that the clip goes with it. Without this
    /// (clips off) nothing waits; an Open311 create, which carries the violation photo
    /// alone, never does.
    pub fn expecting_clips(mut self, wait: Duration) -> Self {
        self.clip_wait = Some(wait);
        self
    }

    /// The outbox reading the time from `clock` (tests; the system's clock
    /// otherwise): what is due, when an attempt was made, when a retry is due.
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Wakes the worker early (a case was just opened or reviewed).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn CaseStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        super::blocking(self.store.clone(), move |s| f(s)).await
    }

    /// Sends what is due now, up to `concurrency` at a time; one attempt each.
    pub async fn round(&self) -> Result<Round, StoreError> {
        let limit = self.concurrency * 8;
        let now = self.clock.now_ms();
        let due = self.blocking(move |s| s.due(now, limit)).await?;
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
        let cfg = self.client.config();
        let (target, max) = (cfg.target, cfg.media_max_bytes);
        let attach = cfg.media == MediaMode::Attach && delivery.event == Event::Create;
        // a webhook create may wait for the clip: then nothing is read to carry yet
        let age = self.clock.now_ms() - delivery.created_ms;
        let may_wait = attach
            && target == TargetKind::Webhook
            && self.clip_wait.is_some_and(|w| age < w.as_millis() as i64);
        let (out, waiting) = self
            .blocking(move |s| {
                let (remote_id, token) = s.remote(case_id)?;
                let evidence = s.evidence(case_id)?;
                let waiting = may_wait && !evidence.iter().any(|e| e.role == Some(PhotoRole::Clip));
                let attached = match attach && !waiting {
                    true => carried(s, case_id, target, &evidence, max)?,
                    false => Vec::new(),
                };
                let out = Outgoing {
                    case: s.case(case_id)?,
                    evidence,
                    reviews: s.reviews(case_id)?,
                    remote_id,
                    token,
                    delivery,
                    attached,
                };
                Ok((out, waiting))
            })
            .await?;
        let sent = match waiting {
            true => Sent::NotYet("waiting for the case's clip to attach it".into()),
            false => self.client.send(&out).await,
        };
        let at_ms = self.clock.now_ms();
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
            let wait =
                match self.round().await {
                    Ok(r) if r.attempted > 0 => continue,
                    Ok(_) => match self.blocking(|s| s.next_due_ms()).await {
                        Ok(next) => next
                            .map(|t| {
                                Duration::from_millis(
                                    (t - self.clock.now_ms()).clamp(10, 60_000) as u64
                                )
                            })
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
            let wait = Duration::from_millis((next - self.clock.now_ms()).clamp(5, 500) as u64);
            if let Some(d) = deadline {
                if std::time::Instant::now() + wait > d {
                    return Ok(false);
                }
            }
            tokio::time::sleep(wait).await;
        }
    }
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

//! Delivery retries: which failures are worth another try, and when.
//!
//! Retriable: timeouts, refused or reset connections, 5xx, 429 (honouring
//! `Retry-After`), 408. Permanent: any other 4xx — the receiver understood the request
//! and said no; retrying would only say it again. Retriable failures wait an exponential
//! backoff (from `initial`, doubling to `max`) with ±20 % jitter, or the receiver's
//! `Retry-After` when it gives one (capped at `max`).

use std::time::Duration;

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver took it.
    Delivered,
    /// No answer in time.
    Timeout,
    /// The connection could not be made or broke.
    Connection(String),
    /// An HTTP status other than 2xx, with the receiver's `Retry-After` (seconds) and
    /// its error text.
    Status {
        /// The status code.
        code: u16,
        /// `Retry-After`, when given as seconds.
        retry_after: Option<u64>,
        /// What the receiver said.
        body: String,
    },
    /// The receiver answered with something that cannot be this delivery's (a request
    /// another sender filed under the same idempotency key): retrying would get the same
    /// answer.
    NotOurs(String),
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Done.
    Delivered,
    /// Try again after this long.
    RetryAfter(Duration),
    /// Give up: record the reason, make it visible.
    Permanent(String),
}

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The decision after attempt number `attempt` (1 for the first) ended in `result`;
    /// `jitter` in 0..1 spreads the wait over ±20 %.
    pub fn decide(&self, attempt: u32, result: &AttemptResult, jitter: f64) -> Decision {
        let backoff = || {
            let base =
                self.initial.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
            let wait = base.min(self.max.as_secs_f64()) * (0.8 + 0.4 * jitter.clamp(0.0, 1.0));
            Decision::RetryAfter(Duration::from_secs_f64(wait))
        };
        match result {
            AttemptResult::Delivered => Decision::Delivered,
            AttemptResult::NotOurs(why) => Decision::Permanent(why.clone()),
            AttemptResult::Timeout | AttemptResult::Connection(_) => backoff(),
            AttemptResult::Status {
                code,
                retry_after,
                body,
            } => match code {
                200..=299 => Decision::Delivered,
                429 | 503 if retry_after.is_some() => Decision::RetryAfter(
                    Duration::from_secs(retry_after.unwrap_or(0)).min(self.max),
                ),
                408 | 429 | 500..=599 => backoff(),
                _ => Decision::Permanent(format!(
                    "HTTP {code}: {}",
                    if body.is_empty() {
                        "(no body)"
                    } else {
                        body.as_str()
                    }
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> AttemptResult {
        AttemptResult::Status {
            code,
            retry_after,
            body: "bad service_code".into(),
        }
    }

    const P: RetryPolicy = RetryPolicy {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };

    #[test]
    fn retriable_timeout_backs_off_exponentially_with_jitter() {
        assert_eq!(
            P.decide(1, &AttemptResult::Timeout, 0.5),
            Decision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            P.decide(3, &AttemptResult::Timeout, 0.5),
            Decision::RetryAfter(Duration::from_secs(8))
        );
        assert_eq!(
            P.decide(3, &AttemptResult::Timeout, 0.0),
            Decision::RetryAfter(Duration::from_secs_f64(6.4))
        );
        assert_eq!(
            P.decide(3, &AttemptResult::Timeout, 1.0),
            Decision::RetryAfter(Duration::from_secs_f64(9.6))
        );
        assert_eq!(
            P.decide(40, &AttemptResult::Timeout, 0.5),
            Decision::RetryAfter(Duration::from_secs(60)),
            "capped"
        );
    }

    #[test]
    fn retriable_connection_refused() {
        assert!(matches!(
            P.decide(1, &AttemptResult::Connection("refused".into()), 0.5),
            Decision::RetryAfter(_)
        ));
    }

    #[test]
    fn retriable_server_errors_and_request_timeout() {
        for code in [500, 502, 503, 504, 408] {
            assert!(
                matches!(
                    P.decide(2, &status(code, None), 0.5),
                    Decision::RetryAfter(_)
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn retriable_429_honours_retry_after() {
        assert_eq!(
            P.decide(1, &status(429, Some(17)), 0.5),
            Decision::RetryAfter(Duration::from_secs(17))
        );
        assert_eq!(
            P.decide(1, &status(429, Some(9999)), 0.5),
            Decision::RetryAfter(Duration::from_secs(60))
        );
        assert!(matches!(
            P.decide(1, &status(429, None), 0.5),
            Decision::RetryAfter(_)
        ));
    }

    #[test]
    fn permanent_client_errors_keep_their_reason() {
        for code in [400, 401, 403, 404, 409, 413, 422] {
            match P.decide(1, &status(code, None), 0.5) {
                Decision::Permanent(reason) => {
                    assert!(
                        reason.contains(&code.to_string()) && reason.contains("bad service_code"),
                        "{reason}"
                    )
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn permanent_an_answer_that_is_not_ours() {
        let why = "the receiver answered with request 7, filed under another key";
        assert_eq!(
            P.decide(1, &AttemptResult::NotOurs(why.into()), 0.5),
            Decision::Permanent(why.into())
        );
    }

    #[test]
    fn delivered_is_done() {
        assert_eq!(
            P.decide(1, &AttemptResult::Delivered, 0.5),
            Decision::Delivered
        );
        assert_eq!(P.decide(1, &status(201, None), 0.5), Decision::Delivered);
    }
}

//! Reviews (`POST /api/cases/{id}/review`): who may write, and what a review may say.
//!
//! A review needs a reviewer's (or an admin's) token, or `open_writes`
//! ([`super::auth`]). It must be JSON
//! (`Content-Type: application/json`): a browser cannot send that to another site
//! without asking it first, so a page elsewhere cannot make an analyst's browser review
//! a case; a request whose `Origin` is another host than the one it is addressed to is
//! refused as well. The reviewer's name and note go through the one free-text check
//! ([`crate::cases::text`]). Every review and every refused write is logged with the
//! peer's address.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::{read_body, same_site, Reviewer};
use super::{bad, blocking, case_id, ApiError, Seg, St};
use crate::cases::{now_ms, text, Review, Verdict};

/// Largest review body.
const MAX_REVIEW_BODY: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    verdict: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reviewer: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn review(
    State(s): St,
    Reviewer(actor): Reviewer,
    Seg(id): Seg<String>,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let peer = crate::serve::peer(&ext);
    if let Err(e) = same_site(&headers, &["application/json"]) {
        tracing::warn!("api: refused a review of case {id} from {peer}: {}", e.1);
        return Err(e);
    }
    let id = case_id(&id)?;
    let bytes = read_body(body, MAX_REVIEW_BODY).await?;
    let b: ReviewBody = serde_json::from_slice(&bytes).map_err(|e| {
        bad(format!(
            "the body must be JSON {{\"verdict\": \"confirm\" | \"reject\", \"reason\": \"wrong_object\" | …, \"note\": \"…\"}}: {e}"
        ))
    })?;
    let verdict = Verdict::parse(&b.verdict).ok_or_else(|| {
        bad(format!(
            "verdict: {:?} is neither confirm nor reject",
            b.verdict
        ))
    })?;
    text::check("note", &b.note, 2000, true).map_err(bad)?;
    let reason = crate::cases::ledger::reason_of(verdict, b.reason.as_deref()).map_err(bad)?;
    // a person's own token reviews under its name; the shared config token and open
    // writes under the name the page gives
    let reviewer = match &actor.token {
        Some(_) => actor.name.clone(),
        None => b.reviewer.unwrap_or_else(|| "analyst".into()),
    };
    if reviewer.trim().is_empty() {
        return Err(bad("reviewer: 1 to 100 characters"));
    }
    text::check("reviewer", &reviewer, 100, false).map_err(bad)?;
    let r = Review {
        case_id: id,
        verdict,
        reviewer,
        note: b.note,
        reason,
        at_ms: now_ms(),
    };
    let (who, what) = (r.reviewer.clone(), r.verdict);
    let case = blocking(&s, move |s| {
        let before = s.store.case(r.case_id)?;
        s.store.review(&r)?;
        let after = s.store.case(r.case_id)?;
        // the review is the case store's; its audit entry follows it (a store that
        // fails between the two leaves the review, logged here)
        let doc = |c: &crate::cases::Case| serde_json::json!({ "status": c.status, "reviewer": r.reviewer, "verdict": r.verdict, "reason": r.reason, "note": r.note });
        if let Err(e) = s.registry.audit(
            &actor,
            "case.review",
            &format!("case/{}", r.case_id),
            Some(&serde_json::json!({ "status": before.status })),
            Some(&doc(&after)),
        ) {
            tracing::error!("api: the audit entry of the review of case {} was not written: {e}", r.case_id);
        }
        Ok(after)
    })
    .await?;
    tracing::info!("api: case {id} {what:?} by {who:?} from {peer}");
    s.outbox_waker.notify_one();
    Ok(Json(json!({ "case": case })))
}

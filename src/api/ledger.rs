//! The reviewers' ledger (`GET /api/ledger`): how many of the cases reviewers looked
//! at were right, by kind, camera, zone, model and week ([`crate::cases::ledger`]).
//!
//! `since` (ms or RFC 3339; default 28 days ago), `by` (a comma-separated subset of
//! kind, camera, zone, model, week; default all), `below` (precision that flags a row,
//! default 0.7) and `min_reviews` (verdicts a row needs to be flagged, default 10).
//! Viewers may read it: it counts decisions and shows no evidence.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Viewer;
use super::{bad, blocking, num_param, time_param, ApiError, St};
use crate::cases::ledger::{ledger as count, Alert, Dimension};
use crate::cases::now_ms;

/// How far back the ledger looks by default.
pub(crate) const DEFAULT_DAYS: i64 = 28;

pub(super) async fn ledger(
    State(s): St,
    Viewer(_): Viewer,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|_| bad("the query string could not be read"))?;
    let since_ms = time_param(&q, "since")?.unwrap_or_else(|| now_ms() - DEFAULT_DAYS * 86_400_000);
    let by = Dimension::parse_list(q.get("by").map_or("", String::as_str)).map_err(bad)?;
    let alert = Alert {
        below: super::map::float(&q, "below", 0.0..=1.0)?.unwrap_or(Alert::default().below),
        min_reviews: num_param(
            &q,
            "min_reviews",
            Alert::default().min_reviews as usize,
            1_000_000,
        )? as u64,
    };
    let rows = blocking(&s, move |s| s.store.verdicts(since_ms)).await?;
    let table = count(&rows, &by, alert);
    Ok(Json(json!({
        "since_ms": since_ms,
        "by": by.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "below": alert.below,
        "min_reviews": alert.min_reviews,
        "rows": table,
    })))
}

//! `GET /api/cases/{id}/evidence/{item}/original`: the unblurred original of an
//! evidence photo ([`crate::cases::originals`]), for a reviewer (or an admin) only;
//! 404 when none is kept (the operator keeps none, nothing was pixelated in it, or its
//! retention is over). Each read is logged with who asked.

use axum::extract::State;
use axum::http::{header, Extensions, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::Reviewer;
use super::{blocking, case_id, ApiError, Seg, St};

pub(super) async fn original(
    State(s): St,
    Reviewer(actor): Reviewer,
    Seg((case, item)): Seg<(String, String)>,
    ext: Extensions,
) -> Result<Response, ApiError> {
    let case = case_id(&case)?;
    let not_found = || ApiError(StatusCode::NOT_FOUND, "no original kept".into());
    let item: i64 = item.parse().map_err(|_| not_found())?;
    let jpeg = blocking(&s, move |s| s.store.original_jpeg(case, item))
        .await?
        .ok_or_else(not_found)?;
    tracing::info!(
        "api: the unblurred original of case {case} evidence {item} read by {} ({}) from {}",
        actor.name,
        actor.role.as_str(),
        crate::serve::peer(&ext),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        jpeg,
    )
        .into_response())
}

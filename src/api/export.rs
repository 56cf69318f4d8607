//! `GET /api/cases/{id}/export`: the case as the zip `gridwatch cases export` writes
//! ([`crate::cases::export`]), for a reviewer (or an admin) only: it is the case's
//! evidence leaving the system. A case whose evidence does not verify is answered 409
//! with what does not match. The chain head is sent in `X-Gridwatch-Chain-Head` too,
//! for the archive to keep apart from the zip. Each export is logged with who asked.

use axum::extract::State;
use axum::http::{header, Extensions, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::Reviewer;
use super::{case_id, ApiError, Seg, St};
use crate::cases::export::{write_zip, ExportError};
use crate::cases::now_ms;

/// The header carrying the chain head.
pub const CHAIN_HEAD: &str = "x-gridwatch-chain-head";

pub(super) async fn export(
    State(s): St,
    Reviewer(actor): Reviewer,
    Seg(id): Seg<String>,
    ext: Extensions,
) -> Result<Response, ApiError> {
    let id = case_id(&id)?;
    let store = s.store.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut buf = std::io::Cursor::new(Vec::new());
        write_zip(&*store, id, now_ms(), &mut buf).map(|m| (m, buf.into_inner()))
    })
    .await
    .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))?;
    let (manifest, zip) = match written {
        Ok(v) => v,
        Err(ExportError::Store(e)) => return Err(e.into()),
        Err(e @ ExportError::Unverified { .. }) => {
            tracing::error!("api: export refused: {e}");
            return Err(ApiError(StatusCode::CONFLICT, e.to_string()));
        }
        Err(e @ ExportError::Write(_)) => {
            tracing::error!("api: case {id}: {e}");
            return Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".into(),
            ));
        }
    };
    tracing::info!(
        "api: case {id} exported to {} ({}) from {}: {} bytes, chain head {}",
        actor.name,
        actor.role.as_str(),
        crate::serve::peer(&ext),
        zip.len(),
        manifest.chain_head
    );
    let disposition = format!("attachment; filename=\"case-{id}.zip\"");
    let mut r = (
        [
            (header::CONTENT_TYPE, "application/zip"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        zip,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).expect("ascii"),
    );
    h.insert(
        HeaderName::from_static(CHAIN_HEAD),
        HeaderValue::from_str(&manifest.chain_head).expect("hex"),
    );
    Ok(r)
}

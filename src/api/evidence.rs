//! `GET /evidence/{case}/{id}.jpg` (a photo) and `/evidence/{case}/{id}.mp4` (a clip):
//! an evidence file exactly as stored (its SHA-256 is the store's), for any viewer.
//! Only names the case's own records give are served (`<digits>/<digits>.<ext>`, the
//! extension the item's role has), so nothing can name a path outside the evidence.
//! A single byte range (`Range: bytes=a-b`, `a-`, `-n`) is answered with 206, as video
//! players ask for; an unsatisfiable one with 416.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::Viewer;
use super::{ApiError, Seg, St};

pub(super) async fn evidence(
    State(s): St,
    Viewer(_): Viewer,
    Seg((case, file)): Seg<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "no such evidence".into());
    let (stem, ext) = file.rsplit_once('.').ok_or_else(not_found)?;
    let digits = |v: &str| !v.is_empty() && v.len() < 19 && v.bytes().all(|b| b.is_ascii_digit());
    if !digits(&case) || !digits(stem) || !matches!(ext, "jpg" | "mp4") {
        return Err(not_found());
    }
    let (case_id, id): (i64, i64) = match (case.parse(), stem.parse()) {
        (Ok(c), Ok(i)) => (c, i),
        _ => return Err(not_found()),
    };
    let name = format!("evidence/{case_id}/{id}.{ext}");
    let store = s.store.clone();
    let found = tokio::task::spawn_blocking(move || {
        let item = store
            .evidence(case_id)?
            .into_iter()
            .find(|e| e.file == name);
        match item {
            Some(e) => Ok(store
                .evidence_bytes(case_id, e.id)?
                .map(|b| (e.content_type(), b))),
            None => Ok(None),
        }
    })
    .await
    .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))?
    .map_err(|e: crate::cases::StoreError| ApiError::from(e))?;
    let (content_type, bytes) = found.ok_or_else(not_found)?;
    let common = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
        (header::ACCEPT_RANGES, "bytes"),
    ];
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok((common, bytes).into_response());
    };
    let len = bytes.len() as u64;
    match byte_range(range, len) {
        Some((a, b)) => {
            let part = bytes[a as usize..=b as usize].to_vec();
            let content_range = format!("bytes {a}-{b}/{len}");
            Ok((
                StatusCode::PARTIAL_CONTENT,
                common,
                [(header::CONTENT_RANGE, content_range)],
                part,
            )
                .into_response())
        }
        None => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response()),
    }
}

/// The first and last byte (inclusive) of a single-range `Range` header over `len`
/// bytes; `None` when it cannot be satisfied or is not one range of bytes.
fn byte_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (first, last) = match (a.is_empty(), b.is_empty()) {
        (true, true) => return None,
        // the last n bytes
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            if n == 0 {
                return None;
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, true) => (a.parse().ok()?, len - 1),
        (false, false) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(len - 1)),
    };
    (first <= last && first < len).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-5000", 1000), Some((0, 999)));
        assert_eq!(byte_range("bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=5-4", 1000), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
        assert_eq!(byte_range("bytes=-0", 1000), None);
        assert_eq!(byte_range("bytes=x-", 1000), None);
        assert_eq!(byte_range("bytes=0-0", 0), None);
    }
}

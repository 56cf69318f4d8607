//! Zones as resources: list and get (viewers), their versions (viewers), make or
//! change one and delete one (admins; every change in the audit log). A zone is a
//! GeoJSON feature, as a zones file has it, checked the same way and against the
//! cameras it lies on: a pixel zone must name a camera (or `camera@preset`) of the
//! list, lie inside its frame, and below its horizon where the camera is
//! calibrated. A change reaches every node's scenes at its next registry poll (this
//! node's at once), in place: tracks and dwell go on.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{json_body, read_body, same_site, Admin, Viewer};
use super::cameras::registry_call;
use super::{ApiError, ApiState, Seg, St};
use crate::geo::zones::{Zone, ZoneArea};
use crate::registry::zones::ZoneRecord;
use crate::registry::RegistryError;

/// Largest zone document (a zone has at most 5 000 points).
const MAX_ZONE_BODY: usize = 512 * 1024;

/// A zone as the API shows it: its feature, with its version, when and by whom it
/// last changed (foreign members of the feature, as GeoJSON allows).
fn shown(r: &ZoneRecord) -> Value {
    let mut f = r.doc.clone();
    f["version"] = json!(r.version);
    f["updated_ms"] = json!(r.updated_ms);
    f["updated_by"] = json!(r.updated_by);
    f
}

/// `GET /api/zones`: every zone, as a GeoJSON FeatureCollection.
pub(super) async fn list(State(s): St, _: Viewer) -> Result<Json<Value>, ApiError> {
    let zones = registry_call(&s, |s| Ok(s.registry.zones()?)).await?;
    Ok(Json(json!({
        "type": "FeatureCollection",
        "features": zones.iter().map(shown).collect::<Vec<_>>(),
    })))
}

/// `GET /api/zones/{id}`.
pub(super) async fn get(
    State(s): St,
    _: Viewer,
    Seg(id): Seg<String>,
) -> Result<Json<Value>, ApiError> {
    let z = registry_call(&s, move |s| Ok(s.registry.zone(&id)?.ok_or(id))).await?;
    match z {
        Ok(z) => Ok(Json(shown(&z))),
        Err(id) => Err(ApiError(StatusCode::NOT_FOUND, format!("no zone {id:?}"))),
    }
}

/// `GET /api/zones/{id}/versions`: every version, oldest first (a deleted one with
/// `feature: null`).
pub(super) async fn versions(
    State(s): St,
    _: Viewer,
    Seg(id): Seg<String>,
) -> Result<Json<Value>, ApiError> {
    let v = registry_call(&s, move |s| Ok(s.registry.zone_versions(&id)?)).await?;
    if v.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, "no such zone".into()));
    }
    Ok(Json(history(&v, "feature")))
}

/// Versions as the API shows them, each document under `name`.
pub(super) fn history(v: &[crate::registry::versioned::Version], name: &str) -> Value {
    v.iter()
        .map(|v| json!({"version": v.version, name: v.doc, "at_ms": v.at_ms, "actor": v.actor}))
        .collect()
}

fn writable(s: &ApiState) -> Result<(), ApiError> {
    if s.zones_writable {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::CONFLICT,
            "the zones are the geo.zones file's (registry.zones = \"config\"): change it there"
                .into(),
        ))
    }
}

/// `PUT /api/zones/{id}`: makes or changes a zone (a GeoJSON Feature); answers it
/// with its new version, or 400 with every reason it cannot be.
pub(super) async fn put(
    State(s): St,
    Admin(actor): Admin,
    Seg(id): Seg<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    writable(&s)?;
    same_site(&headers, &["application/json", "application/geo+json"])?;
    let bytes = read_body(body, MAX_ZONE_BODY).await?;
    let feature: Value = json_body(&bytes, "a zone, as a GeoJSON Feature")?;
    let r = registry_call(&s, move |s| {
        let r = s
            .registry
            .put_zone(&actor, &id, feature, |z| where_it_lies(s, z))?;
        s.cameras_changed.notify_one();
        Ok(r)
    })
    .await?;
    tracing::info!(zone = r.id.as_str(), version = r.version, "api: zone saved");
    Ok(Json(shown(&r)))
}

/// `DELETE /api/zones/{id}` (204); its versions stay.
pub(super) async fn delete(
    State(s): St,
    Admin(actor): Admin,
    Seg(id): Seg<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    writable(&s)?;
    delete_and_wake(&s, &headers, move |s| s.registry.delete_zone(&actor, &id)).await
}

/// A registry deletion (a zone, a calibration) the caller may make: checked to come
/// from this site, made, and the camera controller woken; 204.
pub(super) async fn delete_and_wake(
    s: &std::sync::Arc<ApiState>,
    headers: &HeaderMap,
    f: impl FnOnce(&ApiState) -> Result<(), RegistryError> + Send + 'static,
) -> Result<StatusCode, ApiError> {
    same_site(headers, &[])?;
    registry_call(s, move |s| {
        f(s)?;
        s.cameras_changed.notify_one();
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The problems of a pixel zone with the camera it lies on: a camera (or preset)
/// not in the list, a drone, points outside its frame, points above its horizon (where the
/// view is calibrated, its calibration's image is the frame). Ground zones lie on
/// the ground: nothing to check here.
fn where_it_lies(s: &ApiState, z: &Zone) -> Vec<String> {
    let ZoneArea::Pixels { camera, area } = &z.area else {
        return Vec::new();
    };
    if s.view.get(camera).is_some_and(|r| r.camera.drone.is_some()) {
        return vec![format!(
            "properties.camera: {camera} is a drone: its pixels are nowhere in particular; draw a ground zone (no camera)"
        )];
    }
    let cal = match super::calibrations::in_use(s, camera) {
        Err(RegistryError::NotFound(m)) => return vec![m],
        // no calibration (or one that does not load: the camera reports that): the
        // frame's size is not known here
        Err(_) | Ok(None) => return Vec::new(),
        Ok(Some((cal, ..))) => cal,
    };
    let (w, h) = cal.image_size;
    let mut out = Vec::new();
    let points = area.iter().flat_map(|p| p.exterior().coords());
    for pt in points {
        if pt.x < 0.0 || pt.y < 0.0 || pt.x > w as f64 || pt.y > h as f64 {
            out.push(format!(
                "geometry: ({}, {}) is outside the {w}×{h} frame",
                pt.x, pt.y
            ));
        } else if cal.image_to_ground(pt.x, pt.y).is_err() {
            out.push(format!(
                "geometry: ({}, {}) is above the horizon (not on the ground)",
                pt.x, pt.y
            ));
        }
        if out.len() >= 10 {
            break;
        }
    }
    out
}

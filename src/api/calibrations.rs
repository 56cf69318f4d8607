//! Calibrations as resources, one per camera view (`camera`, or `camera@preset`):
//! read one (viewers) with its fit — each control point's error in metres, the RMS
//! error — and what it puts on the frame (the grid cells and ground zones it sees);
//! check one without saving, save one, delete one (admins; every change in the audit
//! log). Saving refuses a calibration that does not fit or whose RMS error is over
//! `geo.max_rms_m`, with the reason. The camera's scene starts again with it within
//! a registry poll (this node's at once).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{json_body, read_body, same_site, Admin, Viewer};
use super::cameras::{list_writable, registry_call};
use super::zones::history;
use super::{ApiError, ApiState, Seg, St};
use crate::geo::calib::{Calibration, CalibrationDoc};
use crate::geo::grid::CellLocator;
use crate::geo::overlay::{grid_outlines, project_ring};
use crate::geo::zones::{Zone, ZoneArea};
use crate::registry::view::View;
use crate::registry::RegistryError;

/// Largest calibration document.
const MAX_BODY: usize = 64 * 1024;

/// The camera a view belongs to and the calibration file it has (if any); or why
/// there is no such view.
pub(super) fn view_file(view: &View, key: &str) -> Result<Option<std::path::PathBuf>, String> {
    let (cam, preset) = match key.split_once('@') {
        Some((c, p)) => (c, Some(p)),
        None => (key, None),
    };
    let Some(rec) = view.get(cam) else {
        return Err(format!("camera: no camera {cam:?} in the camera list"));
    };
    let c = rec.camera;
    match preset {
        None if !c.presets.is_empty() => Err(format!(
            "camera: {cam} has presets: name one as \"{cam}@<preset>\""
        )),
        None => Ok(c.calibration),
        Some(p) => match c.presets.into_iter().find(|x| x.id == p) {
            Some(x) => Ok(x.calibration),
            None => Err(format!("camera: {cam} has no preset {p:?}")),
        },
    }
}

/// A calibration in use: the fit, its document, where it comes from (`registry`,
/// `file`) and its version (the registry's).
pub(super) type InUse = (Calibration, Value, &'static str, Option<i64>);

/// The calibration a view uses now: the registry's, else its camera's file. `Err`:
/// no such view.
pub(super) fn in_use(s: &ApiState, key: &str) -> Result<Option<InUse>, RegistryError> {
    let file = view_file(&s.view, key).map_err(RegistryError::NotFound)?;
    if let Some(r) = s.registry.calibration(key)? {
        if let Ok(cal) = crate::registry::calibrations::fit(key, &r.doc) {
            return Ok(Some((cal, r.doc, "registry", Some(r.version))));
        }
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let problem = |e: crate::geo::GeoError| RegistryError::Invalid(vec![e.to_string()]);
    // read once: shown as it is, and fitted
    let doc = Calibration::file_doc(&path).map_err(problem)?;
    let shown = json!(doc);
    let cal = Calibration::of_doc(&path, key.to_string(), doc).map_err(problem)?;
    Ok(Some((cal, shown, "file", None)))
}

/// A fit as the API shows it.
fn fit(cal: &Calibration, max_rms_m: f64) -> Value {
    json!({
        "rms_m": cal.rms_m,
        "max_rms_m": max_rms_m,
        "within_limit": cal.rms_m <= max_rms_m,
        "image_width": cal.image_size.0,
        "image_height": cal.image_size.1,
        "points": cal.errors.iter().map(|e| json!({
            "x": e.point.x, "y": e.point.y, "lat": e.point.lat, "lon": e.point.lon,
            "error_m": e.error_m, "inlier": e.inlier,
        })).collect::<Vec<_>>(),
    })
}

/// What a calibration puts on the frame: the grid cells it sees and the ground
/// zones (pixel zones are drawn as they are).
fn overlay(s: &ApiState, cal: &Calibration) -> Value {
    let grid = match &*s.cells {
        CellLocator::Grid(g) => json!(grid_outlines(cal, g)),
        CellLocator::H3(_) => json!([]),
    };
    let zones: Vec<Value> = if s.zones_writable {
        s.registry
            .zones()
            .unwrap_or_default()
            .iter()
            .filter_map(|r| Zone::from_feature(&r.doc, &r.id).ok())
            .filter_map(|z| match &z.area {
                ZoneArea::Ground(mp) => {
                    let rings: Vec<_> = mp
                        .iter()
                        .map(|p| project_ring(cal, p.exterior()))
                        .filter(|r| r.len() >= 2)
                        .collect();
                    (!rings.is_empty())
                        .then(|| json!({"id": z.id, "kind": z.kind.as_str(), "rings": rings}))
                }
                ZoneArea::Pixels { .. } => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({"grid": grid, "zones": zones})
}

/// The problems of a fitted calibration: points the fit left out (more than 1 m
/// off the others' fit), an RMS error over the limit.
fn problems(cal: &Calibration, max_rms_m: f64) -> Vec<String> {
    let mut out = Vec::new();
    for (i, e) in cal.errors.iter().enumerate().filter(|(_, e)| !e.inlier) {
        out.push(format!(
            "points: point {} ({}, {}) is {:.2} m off the fit of the others and left out of it: move it or remove it",
            i + 1,
            e.point.x,
            e.point.y,
            e.error_m
        ));
    }
    if cal.rms_m > max_rms_m {
        let worst = cal
            .errors
            .iter()
            .enumerate()
            .filter(|(_, e)| e.inlier)
            .max_by(|a, b| a.1.error_m.total_cmp(&b.1.error_m));
        out.push(format!(
            "rms: the RMS error {:.3} m is over the limit {max_rms_m:.3} m (geo.max_rms_m){}",
            cal.rms_m,
            worst.map_or(String::new(), |(i, e)| format!(
                "; point {} is off by {:.2} m",
                i + 1,
                e.error_m
            ))
        ));
    }
    out
}

/// `GET /api/calibrations`: the views with a calibration in the registry.
pub(super) async fn list(State(s): St, _: Viewer) -> Result<Json<Value>, ApiError> {
    let all = registry_call(&s, |s| Ok(s.registry.calibrations()?)).await?;
    Ok(Json(json!(all
        .iter()
        .map(|r| json!({"id": r.id, "version": r.version, "updated_ms": r.updated_ms, "updated_by": r.updated_by}))
        .collect::<Vec<_>>())))
}

/// `GET /api/calibrations/{view}`: the calibration the view uses (`source`:
/// `registry` or `file`; `calibration: null` when it has none), its fit and overlay.
pub(super) async fn get(
    State(s): St,
    _: Viewer,
    Seg(key): Seg<String>,
) -> Result<Json<Value>, ApiError> {
    let k = key.clone();
    let doc = registry_call(&s, move |s| {
        Ok(match in_use(s, &k)? {
            None => json!({"id": k, "source": null, "calibration": null}),
            Some((cal, doc, source, version)) => json!({
                "id": k, "source": source, "version": version, "calibration": doc,
                "fit": fit(&cal, s.max_rms_m), "overlay": overlay(s, &cal),
            }),
        })
    })
    .await?;
    Ok(Json(doc))
}

/// `GET /api/calibrations/{view}/versions`: every version saved, oldest first.
pub(super) async fn versions(
    State(s): St,
    _: Viewer,
    Seg(key): Seg<String>,
) -> Result<Json<Value>, ApiError> {
    let v = registry_call(&s, move |s| Ok(s.registry.calibration_versions(&key)?)).await?;
    if v.is_empty() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "no calibration saved for this view".into(),
        ));
    }
    Ok(Json(history(&v, "calibration")))
}

async fn body_doc(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    same_site(headers, &["application/json"])?;
    let bytes = read_body(body, MAX_BODY).await?;
    let doc: Value = json_body(&bytes, "a calibration")?;
    // the document's shape, named by field, before anything is fitted
    serde_json::from_value::<CalibrationDoc>(doc.clone())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("not a calibration: {e}")))?;
    Ok(doc)
}

/// `POST /api/calibrations/{view}/check`: fits a calibration without saving it;
/// answers its fit, overlay and `problems` (empty: it can be saved).
pub(super) async fn check(
    State(s): St,
    Admin(_): Admin,
    Seg(key): Seg<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let doc = body_doc(&headers, body).await?;
    let out = registry_call(&s, move |s| {
        view_file(&s.view, &key).map_err(RegistryError::NotFound)?;
        let cal = crate::registry::calibrations::fit(&key, &doc)
            .map_err(|e| RegistryError::Invalid(vec![e]))?;
        Ok(json!({
            "fit": fit(&cal, s.max_rms_m), "overlay": overlay(s, &cal),
            "problems": problems(&cal, s.max_rms_m),
        }))
    })
    .await?;
    Ok(Json(out))
}

/// `PUT /api/calibrations/{view}`: saves a calibration (a new version); 400 with
/// every reason it cannot be.
pub(super) async fn put(
    State(s): St,
    Admin(actor): Admin,
    Seg(key): Seg<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    list_writable(&s, "change the calibration file there")?;
    let doc = body_doc(&headers, body).await?;
    let out = registry_call(&s, move |s| {
        view_file(&s.view, &key).map_err(RegistryError::NotFound)?;
        let max = s.max_rms_m;
        let (r, cal) = s
            .registry
            .put_calibration(&actor, &key, doc, |c| problems(c, max))?;
        s.cameras_changed.notify_one();
        tracing::info!(
            view = key.as_str(),
            version = r.version,
            rms_m = cal.rms_m,
            "api: calibration saved"
        );
        Ok(json!({
            "id": r.id, "source": "registry", "version": r.version, "calibration": r.doc,
            "updated_ms": r.updated_ms, "updated_by": r.updated_by,
            "fit": fit(&cal, max), "overlay": overlay(s, &cal),
        }))
    })
    .await?;
    Ok(Json(out))
}

/// `DELETE /api/calibrations/{view}` (204): the view goes back to its file's
/// calibration, if any; the versions stay.
pub(super) async fn delete(
    State(s): St,
    Admin(actor): Admin,
    Seg(key): Seg<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    list_writable(&s, "change the calibration file there")?;
    super::zones::delete_and_wake(&s, &headers, move |s| {
        s.registry.delete_calibration(&actor, &key)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight points on a 40 × 30 m patch seen from above, each `noise` metres off
    /// east, alternately either way.
    fn noisy(noise: f64) -> Calibration {
        let pts: Vec<Value> = (0..8)
            .map(|i| {
                let (x, y) = ((i % 4) as f64 * 200.0 + 50.0, (i / 4) as f64 * 300.0 + 100.0);
                let east = x * 0.05 + if i % 2 == 0 { noise } else { -noise };
                json!({"x": x, "y": y, "lat": 31.23 - y * 0.05 / 110_900.0, "lon": 121.47 + east / 95_300.0})
            })
            .collect();
        let doc = json!({"image_width": 800, "image_height": 600, "points": pts});
        Calibration::from_doc("test", "cam", &doc).unwrap()
    }

    #[test]
    fn an_rms_error_over_the_limit_is_a_problem_named_with_the_worst_point() {
        let cal = noisy(0.4);
        assert!(cal.errors.iter().all(|e| e.inlier));
        assert!(cal.rms_m > 0.2 && cal.rms_m < 1.0, "{}", cal.rms_m);
        assert!(problems(&cal, 1.0).is_empty());
        let p = problems(&cal, 0.1);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("over the limit 0.100 m") && p[0].contains("point "),
            "{p:?}"
        );
    }
}

//! The ground about a place, for maps drawn without external tiles
//! (`GET /api/map?lat=…&lon=…&radius_m=…`): the grid cells and the ground zones that
//! come within `radius_m` (default 100 m, at most 2 km) of it. The review page draws
//! a case's point and its drone frames on it, and a drone's current footprint.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use geo::{coord, BoundingRect, Intersects, MultiPolygon, Rect};
use serde_json::{json, Value};

use super::auth::Viewer;
use super::{bad, blocking, ApiError, St};
use crate::geo::grid::CellLocator;
use crate::geo::zones::{Zone, ZoneArea};
use crate::geo::{LatLon, LocalFrame};

/// Cells and zones in one answer, at most (each).
const MAX_ITEMS: usize = 400;

pub(super) fn float(
    q: &HashMap<String, String>,
    name: &str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Option<f64>, ApiError> {
    let Some(v) = q.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    v.parse::<f64>()
        .ok()
        .filter(|x| range.contains(x))
        .map(Some)
        .ok_or_else(|| {
            bad(format!(
                "{name}: {v:?} is not a number from {} to {}",
                range.start(),
                range.end()
            ))
        })
}

/// Rings as `[[lat, lon], …]`.
fn rings(mp: &MultiPolygon<f64>) -> Vec<Vec<[f64; 2]>> {
    mp.iter()
        .map(|p| p.exterior().coords().map(|c| [c.y, c.x]).collect())
        .collect()
}

pub(super) async fn map(
    State(s): St,
    Viewer(_): Viewer,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|_| bad("the query string could not be read"))?;
    let lat = float(&q, "lat", -90.0..=90.0)?.ok_or_else(|| bad("lat: required"))?;
    let lon = float(&q, "lon", -180.0..=180.0)?.ok_or_else(|| bad("lon: required"))?;
    let radius = float(&q, "radius_m", 1.0..=2000.0)?.unwrap_or(100.0);
    let doc = blocking(&s, move |s| {
        let frame = LocalFrame::new(LatLon { lat, lon });
        let (sw, ne) = (
            frame.to_latlon(-radius, -radius),
            frame.to_latlon(radius, radius),
        );
        let area = Rect::new(
            coord! { x: sw.lon, y: sw.lat },
            coord! { x: ne.lon, y: ne.lat },
        );
        let near = |mp: &MultiPolygon<f64>| mp.bounding_rect().is_some_and(|b| b.intersects(&area));
        let cells: Vec<Value> = match &*s.cells {
            CellLocator::Grid(g) => g
                .cells()
                .filter(|(_, mp)| near(mp))
                .take(MAX_ITEMS)
                .map(|(admin, mp)| json!({"id": admin.grid, "rings": rings(mp)}))
                .collect(),
            CellLocator::H3(res) => h3o::LatLng::new(lat, lon)
                .map(|ll| {
                    let k = (radius / res.edge_length_m()).ceil().clamp(1.0, 10.0) as u32;
                    ll.to_cell(*res)
                        .grid_disk::<Vec<_>>(k)
                        .into_iter()
                        .take(MAX_ITEMS)
                        .map(|c| {
                            let ring: Vec<[f64; 2]> =
                                c.boundary().iter().map(|p| [p.lat(), p.lng()]).collect();
                            json!({"id": format!("h3:{c}"), "rings": [ring]})
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let zones: Vec<Zone> = if s.zones_writable {
            s.registry
                .zones()?
                .iter()
                .filter_map(|r| Zone::from_feature(&r.doc, &r.id).ok())
                .collect()
        } else {
            s.file_zones.zones().to_vec()
        };
        let zones: Vec<Value> = zones
            .iter()
            .filter_map(|z| match &z.area {
                ZoneArea::Ground(mp) if near(mp) => Some(json!({
                    "id": z.id, "name": z.name, "kind": z.kind.as_str(), "rings": rings(mp),
                })),
                _ => None,
            })
            .take(MAX_ITEMS)
            .collect();
        Ok(json!({"lat": lat, "lon": lon, "radius_m": radius, "cells": cells, "zones": zones}))
    })
    .await?;
    Ok(Json(doc))
}

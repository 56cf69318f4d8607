//! Geofenced zones: GeoJSON polygons (WGS84, or pixels of one camera) with a kind, active
//! time windows in the city's time zone, and per-kind parameters.
//!
//! ```json
//! {"type": "FeatureCollection", "timezone": "Asia/Shanghai", "features": [
//!   {"type": "Feature", "id": "np-1",
//!    "properties": {"kind": "no_parking", "windows": ["Mon-Fri 07:00-09:00", "22:00-06:00"],
//!                   "params": {"dwell": "5m"}},
//!    "geometry": {"type": "Polygon", "coordinates": [[[121.47, 31.23], …]]}},
//!   {"type": "Feature", "id": "px-1",
//!    "properties": {"kind": "no_dumping", "camera": "street"},
//!    "geometry": {"type": "Polygon", "coordinates": [[[10, 400], [200, 400], …]]}}
//! ]}
//! ```
//!
//! A feature with a `camera` property is in that camera's pixels; otherwise in
//! longitude, latitude (GeoJSON order). Polygons may have holes; multipolygons are
//! fine. A zone without `windows` is always active. A window like `22:00-06:00` runs
//! across midnight: it belongs to the day it starts on.

use std::path::Path;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use geo::{BoundingRect, Intersects, MultiPolygon, Point, Validation};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;
use serde::Serialize;

use super::{GeoError, LatLon};

/// What a zone forbids or watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// Vehicles may not stay.
    NoParking,
    /// No street vending.
    NoVending,
    /// No dumping.
    NoDumping,
    /// Watched for construction.
    ConstructionWatch,
    /// A kind of the city's own.
    Other(String),
}

impl ZoneKind {
    /// From its name.
    pub fn parse(s: &str) -> Self {
        match s {
            "no_parking" => Self::NoParking,
            "no_vending" => Self::NoVending,
            "no_dumping" => Self::NoDumping,
            "construction_watch" => Self::ConstructionWatch,
            other => Self::Other(other.to_string()),
        }
    }

    /// Its name, as [`ZoneKind::parse`] reads it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::NoParking => "no_parking",
            Self::NoVending => "no_vending",
            Self::NoDumping => "no_dumping",
            Self::ConstructionWatch => "construction_watch",
            Self::Other(s) => s,
        }
    }
}

/// A weekly time window, minutes from midnight; `start > end` runs past midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// Days it starts on, Monday first.
    pub days: [bool; 7],
    /// Start, minutes after midnight.
    pub start: u32,
    /// End, minutes after midnight (exclusive).
    pub end: u32,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Result<usize, String> {
    let l = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| l.starts_with(d) && l.len() >= 3)
        .ok_or_else(|| format!("`{s}` is not a day (Mon … Sun)"))
}

fn clock(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not a time like 07:30"))?;
    let (h, m): (u32, u32) = (
        h.parse()
            .map_err(|_| format!("`{s}` is not a time like 07:30"))?,
        m.parse()
            .map_err(|_| format!("`{s}` is not a time like 07:30"))?,
    );
    if h > 24 || m > 59 || (h == 24 && m > 0) {
        return Err(format!("`{s}` is not a time of day"));
    }
    Ok(h * 60 + m)
}

impl TimeWindow {
    /// Parses `[DAYS ]HH:MM-HH:MM`, DAYS like `Mon-Fri`, `Sat,Sun` or `Tue`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (days_part, times) = match s.rsplit_once(' ') {
            Some((d, t)) => (Some(d), t),
            None => (None, s),
        };
        let mut days = [days_part.is_none(); 7];
        if let Some(d) = days_part {
            for part in d.split(',') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a)?, day(b)?);
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => days[day(part)?] = true,
                }
            }
        }
        let (a, b) = times
            .split_once('-')
            .ok_or_else(|| format!("`{s}`: give a time range like 07:00-09:00"))?;
        let (start, end) = (clock(a)?, clock(b)?);
        if start == end {
            return Err(format!("`{s}`: the window is empty"));
        }
        Ok(Self { days, start, end })
    }

    /// Whether the window covers local time `t`.
    pub fn covers<T: Datelike + Timelike>(&self, t: &T) -> bool {
        let wd = t.weekday().num_days_from_monday() as usize;
        let m = t.hour() * 60 + t.minute();
        if self.start < self.end {
            self.days[wd] && self.start <= m && m < self.end
        } else {
            (self.days[wd] && m >= self.start) || (self.days[(wd + 6) % 7] && m < self.end)
        }
    }
}

/// Where a zone is.
#[derive(Debug, Clone)]
pub enum ZoneArea {
    /// WGS84 polygons, x = longitude, y = latitude.
    Ground(MultiPolygon<f64>),
    /// Pixel polygons of one camera.
    Pixels {
        /// The camera id.
        camera: String,
        /// x = column, y = row.
        area: MultiPolygon<f64>,
    },
}

/// One zone.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Id (the feature's id, or its position in the file).
    pub id: String,
    /// Human-readable name, when given.
    pub name: Option<String>,
    /// Its kind.
    pub kind: ZoneKind,
    /// Where it is.
    pub area: ZoneArea,
    /// When it is active (empty: always).
    pub windows: Vec<TimeWindow>,
    /// Per-kind parameters (dwell time and the like) as given.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Its version in the registry (`None`: a zones file's); cases record it.
    pub version: Option<i64>,
}

impl Zone {
    /// Whether the zone is active at `t` in time zone `tz`.
    pub fn active_at(&self, t: DateTime<Utc>, tz: Tz) -> bool {
        self.windows.is_empty() || {
            let local = tz.from_utc_datetime(&t.naive_utc());
            self.windows.iter().any(|w| w.covers(&local))
        }
    }
}

impl Zone {
    /// A zone from one GeoJSON feature (as a zones file has them, checked the same
    /// way); `id` when the feature has none of its own.
    pub fn from_feature(feature: &serde_json::Value, id: &str) -> Result<Self, String> {
        let mut f: geojson::Feature = serde_json::from_value(feature.clone())
            .map_err(|e| format!("not a GeoJSON Feature: {e}"))?;
        if f.id.is_none() {
            f.id = Some(geojson::feature::Id::String(id.to_string()));
        }
        let (id, props, mp) =
            read_feature(0, &f, &|p: &Properties| !p.contains_key("camera")).map_err(|(_, m)| m)?;
        Self::of(id, props, mp)
    }

    /// A zone from a feature as read (its properties taken apart: `kind`, `windows`,
    /// `camera`, `params`, `name`); the message says which property is wrong.
    pub(crate) fn of(
        id: String,
        mut props: Properties,
        mp: MultiPolygon<f64>,
    ) -> Result<Self, String> {
        let kind = props
            .remove("kind")
            .and_then(|v| v.as_str().map(ZoneKind::parse))
            .ok_or_else(|| "missing property `kind` (no_parking, no_vending, no_dumping, construction_watch, …)".to_string())?;
        let windows = match props.remove("windows") {
            None => Vec::new(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|w| {
                    w.as_str()
                        .ok_or_else(|| "windows must be strings".to_string())
                        .and_then(TimeWindow::parse)
                        .map_err(|m| format!("property `windows`: {m}"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(
                    "property `windows` must be a list like [\"Mon-Fri 07:00-09:00\"]".to_string(),
                )
            }
        };
        let area = match props.remove("camera") {
            Some(serde_json::Value::String(camera)) => ZoneArea::Pixels { camera, area: mp },
            Some(_) => return Err("property `camera` must be a camera id".to_string()),
            None => ZoneArea::Ground(mp),
        };
        let params = match props.remove("params") {
            Some(serde_json::Value::Object(m)) => m,
            None => Default::default(),
            Some(_) => return Err("property `params` must be an object".to_string()),
        };
        props.remove("id");
        let name = props
            .remove("name")
            .and_then(|v| v.as_str().map(String::from));
        Ok(Zone {
            id,
            name,
            kind,
            area,
            windows,
            params,
            version: None,
        })
    }
}

type Indexed = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// A GeoJSON feature's properties.
pub(crate) type Properties = serde_json::Map<String, serde_json::Value>;

/// A feature as read: id, properties, area.
pub(crate) type RawFeature = (String, Properties, MultiPolygon<f64>);

/// All zones of a city, indexed.
#[derive(Debug)]
pub struct ZoneSet {
    zones: Vec<Zone>,
    tz: Tz,
    ground: RTree<Indexed>,
}

fn rect(m: &MultiPolygon<f64>) -> Option<Rectangle<[f64; 2]>> {
    let r = m.bounding_rect()?;
    Some(Rectangle::from_corners(
        [r.min().x, r.min().y],
        [r.max().x, r.max().y],
    ))
}

/// Reads GeoJSON polygons of a file, with each feature's properties, checking
/// geometry type, coordinate ranges (for WGS84) and validity. Shared by zones and grid.
pub(crate) fn read_features(
    path: &Path,
    wgs84: impl Fn(&Properties) -> bool,
) -> Result<(Vec<RawFeature>, Option<String>), GeoError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| GeoError::new(path, None, format!("cannot read: {e}")))?;
    let gj: geojson::GeoJson = text
        .parse()
        .map_err(|e| GeoError::new(path, None, format!("not valid GeoJSON: {e}")))?;
    let geojson::GeoJson::FeatureCollection(fc) = gj else {
        return Err(GeoError::new(
            path,
            None,
            "expected a GeoJSON FeatureCollection",
        ));
    };
    let tz = fc
        .foreign_members
        .as_ref()
        .and_then(|m| m.get("timezone"))
        .and_then(|v| v.as_str())
        .map(String::from);
    let mut out = Vec::with_capacity(fc.features.len());
    for (i, f) in fc.features.iter().enumerate() {
        out.push(read_feature(i, f, &wgs84).map_err(|(item, m)| GeoError::new(path, item, m))?);
    }
    Ok((out, tz))
}

/// One GeoJSON feature (the `i`th) as read: id, properties, polygons, checked as
/// [`read_features`] checks them; an error names the feature.
pub(crate) fn read_feature(
    i: usize,
    f: &geojson::Feature,
    wgs84: &impl Fn(&Properties) -> bool,
) -> Result<RawFeature, (Option<String>, String)> {
    let err = |item: Option<String>, m: String| (item, m);
    let id = match &f.id {
        Some(geojson::feature::Id::String(s)) => s.clone(),
        Some(geojson::feature::Id::Number(n)) => n.to_string(),
        None => f
            .properties
            .as_ref()
            .and_then(|p| p.get("id"))
            .and_then(|v| v.as_str().map(String::from).or_else(|| Some(v.to_string())))
            .unwrap_or_else(|| format!("#{}", i + 1)),
    };
    let item = || Some(format!("feature {id}"));
    let props = f.properties.clone().unwrap_or_default();
    let geom = f
        .geometry
        .as_ref()
        .ok_or_else(|| err(item(), "has no geometry".into()))?;
    let mp: MultiPolygon<f64> = match &geom.value {
        geojson::GeometryValue::Polygon { .. } => {
            MultiPolygon(vec![geo::Polygon::try_from(&geom.value)
                .map_err(|e| err(item(), format!("bad polygon: {e}")))?])
        }
        geojson::GeometryValue::MultiPolygon { .. } => MultiPolygon::try_from(&geom.value)
            .map_err(|e| err(item(), format!("bad multipolygon: {e}")))?,
        other => {
            return Err(err(
                item(),
                format!(
                    "must be a Polygon or MultiPolygon, not {}",
                    other.type_name()
                ),
            ))
        }
    };
    if wgs84(&props) {
        for c in mp.iter().flat_map(|p| {
            p.exterior()
                .coords()
                .chain(p.interiors().iter().flat_map(|r| r.coords()))
        }) {
            LatLon { lat: c.y, lon: c.x }.check().map_err(|m| {
                err(
                    item(),
                    format!("{m} (GeoJSON positions are [longitude, latitude])"),
                )
            })?;
        }
    }
    // the validity check compares every edge with every other: cap the size so a
    // huge outline is a clear error, not a start that hangs (10 000 points took
    // 0.5 s, 100 000 about 40 s)
    let vertices: usize = mp
        .iter()
        .map(|p| p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>())
        .sum();
    if vertices > MAX_ZONE_VERTICES {
        return Err(err(
            item(),
            format!(
                "{vertices} points, more than {MAX_ZONE_VERTICES}: simplify the outline \
                 (e.g. QGIS Simplify, or ogr2ogr -simplify 0.5 for half a metre)"
            ),
        ));
    }
    if let Err(e) = mp.check_validation() {
        return Err(err(item(), format!("invalid polygon: {e}")));
    }
    Ok((id, props, mp))
}

/// The features of a zones file, each with its id (the feature's, or its place in
/// the file) written into it, checked as [`ZoneSet::load`] checks them: what a
/// registry that keeps zones is seeded with.
pub fn file_features(path: &Path) -> Result<Vec<(String, serde_json::Value)>, GeoError> {
    ZoneSet::load(path, Some(Tz::UTC))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| GeoError::new(path, None, format!("cannot read: {e}")))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| GeoError::new(path, None, format!("not valid GeoJSON: {e}")))?;
    let mut out = Vec::new();
    for (i, mut v) in doc["features"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let f: geojson::Feature = serde_json::from_value(v.clone())
            .map_err(|e| GeoError::new(path, None, format!("feature {}: {e}", i + 1)))?;
        let (id, _, _) = read_feature(i, &f, &|p: &Properties| !p.contains_key("camera"))
            .map_err(|(item, m)| GeoError::new(path, item, m))?;
        v["id"] = id.clone().into();
        out.push((id, v));
    }
    Ok(out)
}

/// Points one zone (or grid cell) may have, all its rings together.
pub const MAX_ZONE_VERTICES: usize = 5_000;

impl ZoneSet {
    /// Reads zones from a GeoJSON file. The time zone is `tz` when given, else the
    /// file's top-level `timezone`, else UTC. Errors name the file and the feature.
    pub fn load(path: &Path, tz: Option<Tz>) -> Result<Self, GeoError> {
        let (features, file_tz) = read_features(path, |p| !p.contains_key("camera"))?;
        let tz = match (tz, file_tz) {
            (Some(t), _) => t,
            (None, Some(name)) => name.parse().map_err(|_| {
                GeoError::new(
                    path,
                    Some("timezone".into()),
                    format!("unknown time zone `{name}`"),
                )
            })?,
            (None, None) => Tz::UTC,
        };
        let mut zones = Vec::with_capacity(features.len());
        for (id, props, mp) in features {
            let item = Some(format!("feature {id}"));
            zones.push(Zone::of(id, props, mp).map_err(|m| GeoError::new(path, item, m))?);
        }
        Ok(Self::indexed(zones, tz))
    }

    fn indexed(zones: Vec<Zone>, tz: Tz) -> Self {
        let ground = RTree::bulk_load(
            zones
                .iter()
                .enumerate()
                .filter_map(|(i, z)| match &z.area {
                    ZoneArea::Ground(m) => rect(m).map(|r| GeomWithData::new(r, i)),
                    ZoneArea::Pixels { .. } => None,
                })
                .collect(),
        );
        Self { zones, tz, ground }
    }

    /// The zones of `ids` alone (a camera that watches only some zones); the ids
    /// that name no zone come back too, for the caller to report.
    pub fn only(&self, ids: &[String]) -> (Self, Vec<String>) {
        let zones: Vec<Zone> = self
            .zones
            .iter()
            .filter(|z| ids.contains(&z.id))
            .cloned()
            .collect();
        let unknown = ids
            .iter()
            .filter(|id| !self.zones.iter().any(|z| &z.id == *id))
            .cloned()
            .collect();
        (Self::indexed(zones, self.tz), unknown)
    }

    /// A set of these zones, in time zone `tz`.
    pub fn from_zones(zones: Vec<Zone>, tz: Tz) -> Self {
        Self::indexed(zones, tz)
    }

    /// No zones at all (a deployment that has none yet: nothing is a violation).
    pub fn empty(tz: Option<Tz>) -> Self {
        Self {
            zones: Vec::new(),
            tz: tz.unwrap_or(Tz::UTC),
            ground: RTree::new(),
        }
    }

    /// Every zone.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The city's time zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// Ground zones containing `p` (boundary included) and active at `t`, in file
    /// order, appended to `out`.
    pub fn at<'a>(&'a self, p: LatLon, t: DateTime<Utc>, out: &mut Vec<&'a Zone>) {
        let pt = Point::new(p.lon, p.lat);
        let start = out.len();
        for hit in self.ground.locate_all_at_point(&[p.lon, p.lat]) {
            let z = &self.zones[hit.data];
            if let ZoneArea::Ground(m) = &z.area {
                if m.intersects(&pt) && z.active_at(t, self.tz) {
                    out.push(z);
                }
            }
        }
        // file order: zones live in one Vec, so address order is index order
        out[start..].sort_by_key(|z| *z as *const Zone as usize);
    }

    /// Pixel zones of `camera` containing (`x`, `y`) and active at `t`.
    pub fn at_pixel<'a>(
        &'a self,
        camera: &str,
        x: f64,
        y: f64,
        t: DateTime<Utc>,
        out: &mut Vec<&'a Zone>,
    ) {
        let pt = Point::new(x, y);
        out.extend(self.zones.iter().filter(|z| match &z.area {
            ZoneArea::Pixels { camera: c, area } => {
                c == camera && area.intersects(&pt) && z.active_at(t, self.tz)
            }
            ZoneArea::Ground(_) => false,
        }));
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    #[test]
    fn windows_parse_and_cover_across_midnight() {
        // 2026-11-27 is a Friday
        let w = TimeWindow::parse("Mon-Fri 07:00-09:00").unwrap();
        assert!(w.covers(&at(2026, 11, 27, 8, 59)));
        assert!(!w.covers(&at(2026, 11, 27, 9, 0)));
        assert!(!w.covers(&at(2026, 11, 28, 8, 0)), "Saturday");
        let night = TimeWindow::parse("Fri 22:00-06:00").unwrap();
        assert!(night.covers(&at(2026, 11, 27, 23, 0)));
        assert!(
            night.covers(&at(2026, 11, 28, 5, 59)),
            "Saturday early belongs to Friday's window"
        );
        assert!(
            !night.covers(&at(2026, 11, 27, 5, 0)),
            "Friday early belongs to Thursday's"
        );
        let daily = TimeWindow::parse("22:00-06:00").unwrap();
        assert!(daily.covers(&at(2026, 11, 27, 5, 0)));
        let wrap = TimeWindow::parse("Sat-Mon 10:00-11:00").unwrap();
        assert_eq!(wrap.days, [true, false, false, false, false, true, true]);
        assert!(TimeWindow::parse("Mon-Fri 7-9").is_err());
        assert!(TimeWindow::parse("Funday 07:00-09:00")
            .unwrap_err()
            .contains("Funday"));
        assert!(TimeWindow::parse("07:00-07:00").is_err());
        assert!(TimeWindow::parse("25:00-26:00").is_err());
    }
}

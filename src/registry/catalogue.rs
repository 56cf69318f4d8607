//! Camera catalogues exported by a video platform, as CSV or JSON: every row read and
//! checked before anything is stored, every bad row reported with its number, its id
//! and what is wrong with it.
//!
//! **CSV**: a header row, then one camera a row. Columns (any order; only `id` and
//! `source` are required; an empty cell is the field's default):
//!
//! | column | meaning |
//! |---|---|
//! | `id` | the camera's id (1–64 letters, digits, `-_.`) |
//! | `source` | `rtsp://…`, a video file or a folder of images |
//! | `every` | `keyframes`, an interval such as `2s`, or `all` (default `2s`) |
//! | `transport` | `tcp` or `udp` (default `tcp`) |
//! | `loop` | files: play again at the end (`true`/`false`, default `true`) |
//! | `calibration` | a calibration file |
//! | `lat`, `lon` | where the camera is (both, or neither) |
//! | `stall_timeout` | e.g. `10s` |
//! | `enabled` | `true`/`false` (default `true`) |
//! | `zones` | zone ids separated by `;` |
//! | `label.<key>` | a label, e.g. `label.district` |
//!
//! **JSON**: an array of camera objects as the API takes them, or `{"cameras": [...]}`.

use serde::Serialize;

use super::{validate, CameraEntry, RegistryError, MAX_IMPORT};

/// A row that cannot be imported.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowError {
    /// The row's number: the line of a CSV file (the header is line 1), the position
    /// (from 1) in a JSON array.
    pub row: usize,
    /// The camera's id, when the row has one.
    pub id: Option<String>,
    /// What is wrong, each starting with the field.
    pub problems: Vec<String>,
}

/// Why a catalogue cannot be imported.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CatalogueError {
    /// What is wrong with the file as a whole (absent when the rows are the trouble).
    pub message: Option<String>,
    /// The rows that cannot be imported.
    pub rows: Vec<RowError>,
}

impl std::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(m) = &self.message {
            return f.write_str(m);
        }
        write!(f, "{} rows cannot be imported", self.rows.len())?;
        for r in self.rows.iter().take(20) {
            write!(f, "\n  row {}", r.row)?;
            if let Some(id) = &r.id {
                write!(f, " ({id})")?;
            }
            write!(f, ": {}", r.problems.join("; "))?;
        }
        if self.rows.len() > 20 {
            write!(f, "\n  … and {} more", self.rows.len() - 20)?;
        }
        Ok(())
    }
}

fn whole(message: String) -> CatalogueError {
    CatalogueError {
        message: Some(message),
        rows: Vec::new(),
    }
}

/// The format of a catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header.
    Csv,
    /// A JSON array of cameras.
    Json,
}

impl Format {
    /// The format a file's name or a request's content type says; else what the
    /// bytes look like (JSON starts with `[` or `{`).
    pub fn guess(hint: &str, bytes: &[u8]) -> Self {
        let hint = hint.to_ascii_lowercase();
        let looks_json = || {
            bytes
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'[' || *b == b'{')
        };
        if hint.ends_with(".csv") || hint.contains("text/csv") {
            Format::Csv
        } else if hint.ends_with(".json") || hint.contains("json") || looks_json() {
            Format::Json
        } else {
            Format::Csv
        }
    }
}

/// Reads and checks a whole catalogue.
pub fn parse(bytes: &[u8], format: Format) -> Result<Vec<CameraEntry>, CatalogueError> {
    let rows = match format {
        Format::Csv => csv_rows(bytes)?,
        Format::Json => json_rows(bytes)?,
    };
    if rows.len() > MAX_IMPORT {
        return Err(whole(format!(
            "{} cameras: one import takes at most {MAX_IMPORT}",
            rows.len()
        )));
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (row, id, parsed) in rows {
        let mut problems = Vec::new();
        match parsed {
            Err(p) => problems.extend(p),
            Ok(mut c) => {
                if let Err(RegistryError::Invalid(p)) = validate(&mut c) {
                    problems.extend(p);
                }
                if let Some(first) = seen.insert(c.id.clone(), row) {
                    problems.push(format!("id: {:?} is also on row {first}", c.id));
                }
                if problems.is_empty() {
                    out.push(c);
                }
            }
        }
        if !problems.is_empty() {
            errors.push(RowError { row, id, problems });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(CatalogueError {
            message: None,
            rows: errors,
        })
    }
}

type Parsed = (usize, Option<String>, Result<CameraEntry, Vec<String>>);

fn json_rows(bytes: &[u8]) -> Result<Vec<Parsed>, CatalogueError> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| whole(format!("the catalogue is not JSON: {e}")))?;
    let list = match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => match o.remove("cameras") {
            Some(serde_json::Value::Array(a)) => a,
            _ => {
                return Err(whole(
                    "a JSON catalogue is an array of cameras, or {\"cameras\": [...]}".into(),
                ))
            }
        },
        _ => return Err(whole("a JSON catalogue is an array of cameras".into())),
    };
    Ok(list
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let id = v.get("id").and_then(|x| x.as_str()).map(String::from);
            (
                i + 1,
                id,
                serde_json::from_value::<CameraEntry>(v).map_err(|e| vec![e.to_string()]),
            )
        })
        .collect())
}

const COLUMNS: [&str; 11] = [
    "id",
    "source",
    "every",
    "transport",
    "loop",
    "calibration",
    "lat",
    "lon",
    "stall_timeout",
    "enabled",
    "zones",
];

fn csv_rows(bytes: &[u8]) -> Result<Vec<Parsed>, CatalogueError> {
    let mut rd = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: Vec<String> = rd
        .headers()
        .map_err(|e| whole(format!("the CSV header cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let mut problems = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if !COLUMNS.contains(&h.as_str()) && h.strip_prefix("label.").is_none_or(|k| k.is_empty()) {
            problems.push(format!(
                "column {} {h:?} is not one of {} or label.<key>",
                i + 1,
                COLUMNS.join(", ")
            ));
        }
        if header[..i].contains(h) {
            problems.push(format!("column {h:?} is given twice"));
        }
    }
    for need in ["id", "source"] {
        if !header.iter().any(|h| h == need) {
            problems.push(format!("the header has no {need:?} column"));
        }
    }
    if !problems.is_empty() {
        return Err(whole(format!("the CSV header: {}", problems.join("; "))));
    }
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                out.push((line, None, Err(vec![format!("cannot be read: {e}")])));
                continue;
            }
        };
        let line = rec.position().map_or(line, |p| p.line() as usize);
        let cell = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| rec.get(i))
                .filter(|v| !v.is_empty())
        };
        let id = cell("id").map(String::from);
        out.push((line, id, csv_camera(&header, &rec, &cell)));
    }
    Ok(out)
}

fn csv_camera<'a>(
    header: &[String],
    rec: &'a csv::StringRecord,
    cell: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<CameraEntry, Vec<String>> {
    let mut problems = Vec::new();
    let mut doc = serde_json::Map::new();
    for name in [
        "id",
        "source",
        "every",
        "transport",
        "calibration",
        "stall_timeout",
    ] {
        if let Some(v) = cell(name) {
            doc.insert(name.into(), v.into());
        }
    }
    let boolean = |name: &str, problems: &mut Vec<String>| -> Option<bool> {
        let v = cell(name)?;
        match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => {
                problems.push(format!("{name}: {v:?} is neither true nor false"));
                None
            }
        }
    };
    if let Some(b) = boolean("loop", &mut problems) {
        doc.insert("loop".into(), b.into());
    }
    if let Some(b) = boolean("enabled", &mut problems) {
        doc.insert("enabled".into(), b.into());
    }
    match (cell("lat"), cell("lon")) {
        (None, None) => {}
        (Some(lat), Some(lon)) => match (lat.parse::<f64>(), lon.parse::<f64>()) {
            (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() => {
                doc.insert("location".into(), serde_json::json!([a, b]));
            }
            _ => problems.push(format!("lat, lon: {lat:?}, {lon:?} are not numbers")),
        },
        _ => problems.push("lat, lon: give both, or neither".into()),
    }
    if let Some(z) = cell("zones") {
        let zones: Vec<&str> = z
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        doc.insert("zones".into(), zones.into());
    }
    let labels: serde_json::Map<String, serde_json::Value> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Some((h.strip_prefix("label.")?, rec.get(i)?)))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    if !labels.is_empty() {
        doc.insert("labels".into(), labels.into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::from_value(doc.into()).map_err(|e| vec![e.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_catalogue_is_read_with_labels_and_locations() {
        let csv = "id,source,every,lat,lon,label.district,zones,enabled\n\
                   cam-1,rtsp://10.0.0.1/s1,1s,31.2,121.4,Huangpu,z1;z2,true\n\
                   cam-2,rtsp://10.0.0.2/s1,,31.3,121.5,,,false\n";
        let cams = parse(csv.as_bytes(), Format::Csv).unwrap();
        assert_eq!(cams.len(), 2);
        assert_eq!(
            cams[0].labels.get("district").map(String::as_str),
            Some("Huangpu")
        );
        assert_eq!(cams[0].zones, vec!["z1", "z2"]);
        assert_eq!(cams[0].location, Some([31.2, 121.4]));
        assert_eq!(cams[1].every_text(), "2s");
        assert!(!cams[1].enabled);
    }

    #[test]
    fn every_bad_row_is_named_and_nothing_comes_back() {
        let csv = "id,source,lat,lon\n\
                   ok-1,rtsp://10.0.0.1/a,31,121\n\
                   bad id,rtsp://10.0.0.2/a,31,121\n\
                   no-place,rtsp://10.0.0.3/a,,\n\
                   ok-1,rtsp://10.0.0.4/a,31,121\n\
                   short,rtsp://x/a\n";
        let e = parse(csv.as_bytes(), Format::Csv).unwrap_err();
        let rows: Vec<usize> = e.rows.iter().map(|r| r.row).collect();
        assert_eq!(rows, vec![3, 4, 5, 6], "{e}");
        assert!(e.rows[0].problems[0].starts_with("id:"), "{e}");
        assert!(
            e.rows[1]
                .problems
                .iter()
                .any(|p| p.contains("calibration or location")),
            "{e}"
        );
        assert!(
            e.rows[2]
                .problems
                .iter()
                .any(|p| p.contains("also on row 2")),
            "{e}"
        );
        let e = parse(b"name,url\nx,y\n", Format::Csv).unwrap_err();
        assert!(e.message.unwrap().contains("\"name\" is not one of"));
        let e = parse(b"{\"cameras\": 5}", Format::Json).unwrap_err();
        assert!(e.message.is_some());
        let e = parse(
            br#"[{"id": "a", "source": "rtsp://h/x", "location": [1, 2], "colour": "red"}]"#,
            Format::Json,
        )
        .unwrap_err();
        assert!(e.rows[0].problems[0].contains("colour"), "{e}");
    }

    #[test]
    fn the_format_is_guessed_from_the_name_or_the_bytes() {
        assert_eq!(Format::guess("cams.CSV", b"["), Format::Csv);
        assert_eq!(
            Format::guess("application/json; charset=utf-8", b"id"),
            Format::Json
        );
        assert_eq!(Format::guess("", b"  [{}]"), Format::Json);
        assert_eq!(Format::guess("", b"id,source"), Format::Csv);
    }
}

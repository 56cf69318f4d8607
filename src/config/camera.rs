//! One camera's settings: a `[[camera]]` of the config file, and the document the
//! camera registry (the `registry` module) keeps, creates and imports — one type, so a
//! camera reads the same from TOML, from the API's JSON and from a catalogue, and is
//! checked by the same rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decode::Sampling;
use crate::ingest::RtspTransport;

/// One camera.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraEntry {
    /// Unique id (logs, metrics, cases, pixel zones' `camera`).
    pub id: String,
    /// `rtsp://…` (credentials may be in the URL), a video file, or a directory of
    /// images.
    pub source: String,
    /// Which frames to decode: `keyframes`, an interval like `"2s"`, or `all`, as
    /// written.
    #[serde(default = "default_every", rename = "every")]
    pub(crate) every_text: String,
    /// The sampling, parsed from `every` when the camera is read.
    #[serde(skip, default = "default_sampling")]
    pub every: Sampling,
    /// RTSP transport: `tcp` or `udp`, as written.
    #[serde(default = "default_transport", rename = "transport")]
    pub(crate) transport_text: String,
    /// The transport, parsed from `transport` when the camera is read.
    #[serde(skip)]
    pub transport: RtspTransport,
    /// The camera's main (high-resolution) stream, `rtsp://…` (credentials may be in
    /// the URL; it uses `transport` too), when `source` is its substream: detection
    /// runs on `source`, and the main stream is read only when a violation opens a
    /// case, for one keyframe from which the subject's close-up is cut at full
    /// resolution (the case's `detail` photo; docs/cases.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_source: Option<String>,
    /// Files and folders: play them again from the start at the end.
    #[serde(default = "yes", rename = "loop")]
    pub looping: bool,
    /// Ground-plane calibration file (TOML); without it only pixel zones apply and
    /// cases are placed at `location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<PathBuf>,
    /// Where the camera is, `[lat, lon]`, for cameras without calibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<[f64; 2]>,
    /// No frame for this long → reconnect; also the limit for one read or decode call
    /// (one that does not return within it is a decoder fault).
    #[serde(default = "default_stall", with = "humantime_serde_compat")]
    pub stall_timeout: Duration,
    /// Whether the camera runs (a disabled camera keeps its settings and its cases).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Free labels, such as `district` or `owner` (filters of the camera list).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The ids of the zones (of `geo.zones`) this camera's findings may fall in;
    /// empty: every zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// The positions of a PTZ camera, each with its reference picture, calibration and
    /// zones; the scene recognises from the image which one the camera is at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<PresetEntry>,
    /// A drone (or any moving camera with telemetry): its findings are placed through
    /// each frame's pose; it has no calibration, presets or pixel zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drone: Option<super::DroneEntry>,
}

/// One position of a PTZ camera (`[[camera.presets]]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PresetEntry {
    /// Its name (as a camera id: letters, digits, `-_.`): shown in the API and the
    /// metrics, and named by its pixel zones as `camera = "<camera id>@<preset>"`.
    pub id: String,
    /// A picture of the view at this preset: a frame the camera gave there (JPEG or
    /// PNG, at the size of the stream the camera is sampled from). Without it, the
    /// preset waits for one captured from the live frame (the editor, or
    /// `POST /api/references/<camera>@<preset>`); one captured so is used instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<PathBuf>,
    /// The preset's ground calibration (TOML); without it, its cases are placed at the
    /// camera's `location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<PathBuf>,
    /// The ids of the zones its findings may fall in; empty: the camera's `zones`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
}

/// Most presets of one camera.
const MAX_PRESETS: usize = 64;

/// Durations as humantime strings, both ways.
pub(super) mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration ({e})")))
    }
}

fn default_every() -> String {
    "2s".into()
}
fn default_sampling() -> Sampling {
    Sampling::Every(Duration::from_secs(2))
}
fn default_transport() -> String {
    "tcp".into()
}
fn yes() -> bool {
    true
}
fn default_stall() -> Duration {
    Duration::from_secs(10)
}

/// Most labels on one camera, and the longest key and value.
const MAX_LABELS: usize = 32;
const MAX_LABEL: usize = 200;

/// The name of a camera's view: the camera id, or `camera@preset` for a PTZ preset
/// (how pixel zones, calibrations and the scene name it).
pub fn view_key(camera: &str, preset: Option<&str>) -> String {
    match preset {
        Some(p) => format!("{camera}@{p}"),
        None => camera.to_string(),
    }
}

impl CameraEntry {
    /// A camera of `source` with every other field at its default (tests, tools).
    pub fn new(id: &str, source: &str) -> Self {
        let mut c: Self = serde_json::from_value(serde_json::json!({ "id": id, "source": source }))
            .expect("the defaults deserialize");
        c.parse_fields();
        c
    }

    /// `every` as written.
    pub fn every_text(&self) -> &str {
        &self.every_text
    }

    /// Sets `every` (as written) and its parsed value.
    pub fn set_every(&mut self, every: &str) -> Result<(), String> {
        self.every = every.parse::<Sampling>().map_err(|e| e.to_string())?;
        self.every_text = every.to_string();
        Ok(())
    }

    /// Relative paths (a file source, the calibration) become relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        let paths = self.presets.iter_mut().flat_map(|p| {
            p.reference
                .as_mut()
                .into_iter()
                .chain(p.calibration.as_mut())
        });
        for p in self.calibration.iter_mut().chain(paths) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(d) = &mut self.drone {
            d.resolve(base);
        }
        if !self.source.contains("://") && Path::new(&self.source).is_relative() {
            self.source = base.join(&self.source).display().to_string();
        }
    }

    /// Parses the fields written as text into their types; every one that does not
    /// parse is a problem, starting with the field's name (`.every: …`).
    pub fn parse_fields(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        match self.every_text.parse::<Sampling>() {
            Ok(s) => self.every = s,
            Err(e) => out.push(format!(".every: {e}")),
        }
        match self.transport_text.parse::<RtspTransport>() {
            Ok(t) => self.transport = t,
            Err(e) => out.push(format!(".transport: {e}")),
        }
        out
    }

    /// Whether `id` can name a camera: 1 to 64 letters, digits, `-_.`, not starting
    /// with a dot (it names files and URLs).
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && !id.starts_with('.')
            && id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    }

    /// Every problem of the values, each starting with the field's name (`.source: …`,
    /// or `: …` for the camera as a whole); the id's own check is [`Self::valid_id`].
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        let c = self;
        if c.source.starts_with("rtsp://") {
            match url::Url::parse(&c.source) {
                Err(_) => out.push(".source: not a valid URL".into()),
                Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                    out.push(".source: the rtsp:// URL has no host".into())
                }
                Ok(_) => {}
            }
        } else if c.source.contains("://") {
            out.push(".source: only rtsp:// URLs, files and folders are supported".into());
        } else if !Path::new(&c.source).exists() {
            out.push(format!(".source: {} does not exist", c.source));
        }
        if let Some(m) = &c.main_source {
            match url::Url::parse(m) {
                Ok(u) if u.scheme() == "rtsp" && u.host_str().is_some_and(|h| !h.is_empty()) => {}
                Ok(u) if u.scheme() == "rtsp" => {
                    out.push(".main_source: the rtsp:// URL has no host".into())
                }
                _ => out.push(".main_source: not an rtsp:// URL".into()),
            }
        }
        if let Some(p) = &c.calibration {
            if !p.exists() {
                out.push(format!(".calibration: {} does not exist", p.display()));
            }
        }
        if let Some([lat, lon]) = c.location {
            if !(lat.abs() <= 90.0 && lon.abs() <= 180.0) {
                out.push(format!(".location: [{lat}, {lon}] is not a place"));
            }
        }
        if let Some(d) = &c.drone {
            out.extend(d.check());
            if c.calibration.is_some() || !c.presets.is_empty() {
                out.push(
                    ".drone: a drone is placed by its pose: it has no calibration or presets"
                        .into(),
                );
            }
        }
        let unplaced = if c.drone.is_some() {
            false
        } else if c.presets.is_empty() {
            c.calibration.is_none()
        } else {
            c.presets.iter().any(|p| p.calibration.is_none())
        };
        if unplaced && c.location.is_none() {
            out.push(": give calibration or location, so its cases can be placed".into());
        }
        out.extend(self.check_presets());
        if c.stall_timeout < Duration::from_millis(100) {
            out.push(".stall_timeout: must be at least 100ms".into());
        }
        if c.labels.len() > MAX_LABELS {
            out.push(format!(".labels: at most {MAX_LABELS}"));
        }
        for (k, v) in &c.labels {
            if k.is_empty() || k.len() > MAX_LABEL || v.len() > MAX_LABEL {
                out.push(format!(
                    ".labels: {k:?}: keys 1 to {MAX_LABEL} characters, values up to {MAX_LABEL}"
                ));
            } else if let Err(e) = crate::cases::text::check("label", v, MAX_LABEL, true) {
                out.push(format!(".labels.{k}: {e}"));
            }
        }
        if c.zones.len() > 1000 || c.zones.iter().any(|z| z.is_empty() || z.len() > 200) {
            out.push(".zones: up to 1000 zone ids of 1 to 200 characters".into());
        }
        out
    }

    /// The problems of the presets, each starting with `.presets.<id>` (or
    /// `.presets[n]`).
    fn check_presets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.presets.is_empty() {
            return out;
        }
        if self.presets.len() > MAX_PRESETS {
            out.push(format!(".presets: at most {MAX_PRESETS}"));
        }
        if self.calibration.is_some() {
            out.push(
                ".calibration: a camera with presets gives each preset its calibration".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.presets.iter().enumerate() {
            if !Self::valid_id(&p.id) {
                out.push(format!(
                    ".presets[{i}].id: {:?} is not a name (1 to 64 letters, digits, -_.)",
                    p.id
                ));
                continue;
            }
            let at = format!(".presets.{}", p.id);
            if !seen.insert(p.id.as_str()) {
                out.push(format!("{at}: a second preset of that name"));
            }
            if let Some(pic) = p.reference.as_ref().filter(|r| !r.is_file()) {
                out.push(format!("{at}.reference: {} does not exist", pic.display()));
            }
            if let Some(cal) = &p.calibration {
                if !cal.exists() {
                    out.push(format!(
                        "{at}.calibration: {} does not exist",
                        cal.display()
                    ));
                }
            }
            if p.zones.len() > 1000 || p.zones.iter().any(|z| z.is_empty() || z.len() > 200) {
                out.push(format!(
                    "{at}.zones: up to 1000 zone ids of 1 to 200 characters"
                ));
            }
        }
        out
    }

    /// The source for messages and listings: an RTSP URL without its password.
    pub fn source_redacted(&self) -> String {
        redacted(&self.source)
    }

    /// The main stream for listings, likewise.
    pub fn main_source_redacted(&self) -> Option<String> {
        self.main_source.as_deref().map(redacted)
    }

    /// The camera as JSON for listings and the audit log: its URLs' passwords hidden.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        self.hide_passwords(&mut v);
        v
    }

    /// Hides the passwords of this camera's URLs in `v` (its JSON, or a document that
    /// flattens it).
    pub fn hide_passwords(&self, v: &mut serde_json::Value) {
        v["source"] = self.source_redacted().into();
        if let Some(m) = self.main_source_redacted() {
            v["main_source"] = m.into();
        }
    }

    /// Where the main stream is read (`None` without one, or when it does not parse:
    /// [`Self::check`] names that).
    pub fn main_stream(&self) -> Option<crate::rules::detail::MainStream> {
        let url = url::Url::parse(self.main_source.as_deref()?).ok()?;
        Some(crate::rules::detail::MainStream {
            url,
            udp: self.transport == RtspTransport::Udp,
        })
    }
}

/// An RTSP URL with its password shown as `***` (anything else as it is).
fn redacted(source: &str) -> String {
    match url::Url::parse(source) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_reads_the_same_from_toml_and_json_and_goes_back_as_written() {
        let toml_text = "id = \"c1\"\nsource = \"rtsp://u:pw@cam.example/x\"\nevery = \"500ms\"\ntransport = \"udp\"\nlocation = [31.0, 121.0]\nstall_timeout = \"4s\"\nlabels = { district = \"Huangpu\" }\n";
        let mut a: CameraEntry = toml::from_str(toml_text).unwrap();
        assert!(a.parse_fields().is_empty());
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["every"], "500ms");
        assert_eq!(json["stall_timeout"], "4s");
        assert_eq!(json["transport"], "udp");
        let mut b: CameraEntry = serde_json::from_value(json).unwrap();
        assert!(b.parse_fields().is_empty());
        assert_eq!(a, b);
        assert_eq!(b.transport, RtspTransport::Udp);
        assert_eq!(b.every, Sampling::Every(Duration::from_millis(500)));
        assert!(b.check().is_empty(), "{:?}", b.check());
        assert_eq!(b.source_redacted(), "rtsp://u:***@cam.example/x");
    }

    #[test]
    fn bad_values_are_named_by_field() {
        let mut c: CameraEntry = serde_json::from_value(serde_json::json!({
            "id": "x", "source": "http://nope", "every": "sometimes", "location": [91.0, 0.0],
            "labels": { "": "x" }
        }))
        .unwrap();
        let mut all = c.parse_fields();
        all.extend(c.check());
        for f in [".every", ".source", ".location", ".labels"] {
            assert!(all.iter().any(|m| m.starts_with(f)), "{f}: {all:?}");
        }
        assert!(!CameraEntry::valid_id(".hidden"));
        assert!(!CameraEntry::valid_id("a/b"));
        assert!(CameraEntry::valid_id("cam-01.north_2"));
    }

    #[test]
    fn a_main_stream_is_checked_and_its_password_never_shown() {
        let mut c = CameraEntry::new("c1", "rtsp://u:sub@cam.example/sub");
        c.main_source = Some("rtsp://admin:s3cret@cam.example/main?token=t0k".into());
        c.location = Some([31.2, 121.4]);
        assert!(c.check().is_empty(), "{:?}", c.check());
        let shown = c.redacted_json();
        assert_eq!(
            shown["main_source"],
            "rtsp://admin:***@cam.example/main?token=t0k"
        );
        assert_eq!(shown["source"], "rtsp://u:***@cam.example/sub");
        let main = c.main_stream().unwrap();
        assert_eq!(main.url.password(), Some("s3cret"));
        let debug = format!("{main:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("t0k"),
            "{debug}"
        );
        for (bad, says) in [
            ("http://cam/main", "not an rtsp:// URL"),
            ("rtsp:///main", "no host"),
            ("main.mp4", "not an rtsp:// URL"),
        ] {
            c.main_source = Some(bad.into());
            let all = c.check();
            assert!(
                all.iter()
                    .any(|m| m.starts_with(".main_source") && m.contains(says)),
                "{bad}: {all:?}"
            );
        }
    }

    #[test]
    fn presets_are_checked_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let pic = dir.path().join("road.jpg");
        std::fs::write(&pic, b"x").unwrap();
        let text = format!(
            "id = \"ptz\"\nsource = \"rtsp://cam/x\"\ncalibration = \"{cal}\"\n\
             [[presets]]\nid = \"road\"\nreference = \"road.jpg\"\n\
             [[presets]]\nid = \"road\"\nreference = \"nowhere.jpg\"\ncalibration = \"no.toml\"\n\
             [[presets]]\nid = \"a b\"\nreference = \"road.jpg\"\n",
            cal = pic.display()
        );
        let mut c: CameraEntry = toml::from_str(&text).unwrap();
        assert!(c.parse_fields().is_empty());
        c.resolve(dir.path());
        assert_eq!(
            c.presets[0].reference.as_deref(),
            Some(&*pic),
            "relative to the config"
        );
        let all = c.check();
        for needle in [
            ".calibration: a camera with presets",
            ".presets.road: a second preset",
            ".presets.road.reference:",
            ".presets.road.calibration:",
            ".presets[2].id:",
            ": give calibration or location",
        ] {
            assert!(
                all.iter().any(|m| m.starts_with(needle)),
                "{needle}: {all:?}"
            );
        }
        // and a good one
        c.calibration = None;
        c.location = Some([31.2, 121.4]);
        c.presets.truncate(1);
        assert!(c.check().is_empty(), "{:?}", c.check());
        // a preset may wait for its picture to be captured
        c.presets[0].reference = None;
        assert!(c.check().is_empty(), "{:?}", c.check());
        let back: CameraEntry = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back.presets, c.presets);
    }
}

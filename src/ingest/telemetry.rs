//! Drone telemetry: a side channel of poses (JSON Lines) matched to video frames by
//! time, for projecting what a drone sees onto the ground.
//!
//! One JSON object per line:
//!
//! ```json
//! {"time": "2026-11-27T07:00:00.250Z", "lat": 31.2304, "lon": 121.4737,
//!  "alt_agl": 60.0, "heading": 90.0, "pitch": -45.0, "roll": 0.0}
//! ```
//!
//! `time` is RFC 3339 or Unix seconds; `alt_agl` (alias `alt`) is metres above
//! ground; angles are degrees (heading clockwise from north, pitch negative below the
//! horizon; `pitch` may be left out for a camera on a fixed mount, whose pitch the
//! camera's settings give). Lines come from a file (read, then followed as it grows), from UDP
//! datagrams (one or more lines each), or from a long-lived HTTP response (a ground
//! station's JSON Lines feed; re-requested after a pause when it ends or fails). A frame gets the pose interpolated at its
//! capture time when samples lie on both sides within the allowed gap, else the
//! nearest sample within the gap, else none.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Where a drone's telemetry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelemetrySource {
    /// A JSON Lines file, followed as it grows.
    File(PathBuf),
    /// JSON Lines in UDP datagrams sent to this address.
    Udp(SocketAddr),
    /// A JSON Lines HTTP feed (`http://…`), streamed.
    Http(url::Url),
}

impl TelemetrySource {
    /// `udp://HOST:PORT` (listened on), an `http://` JSON Lines feed, or a file;
    /// the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(addr) = s.strip_prefix("udp://") {
            return addr
                .parse()
                .map(TelemetrySource::Udp)
                .map_err(|_| format!("`{addr}` is not HOST:PORT (an address to listen on)"));
        }
        if s.starts_with("http://") {
            return s
                .parse()
                .map(TelemetrySource::Http)
                .map_err(|e| format!("`{s}` is not a valid URL ({e})"));
        }
        if s.starts_with("https://") {
            return Err(
                "https feeds are not supported yet; use http:// on a trusted network".into(),
            );
        }
        if s.contains("://") {
            return Err(format!("`{s}`: udp://, http:// or a file"));
        }
        Ok(TelemetrySource::File(PathBuf::from(s)))
    }
}

/// A drone's pose at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DronePose {
    /// When it was measured.
    #[serde(serialize_with = "ser_time")]
    pub time: SystemTime,
    /// Latitude, degrees (WGS84).
    pub lat: f64,
    /// Longitude, degrees (WGS84).
    pub lon: f64,
    /// Altitude above ground, metres.
    pub alt_agl: f64,
    /// Heading, degrees clockwise from north, 0..360.
    pub heading: f64,
    /// Camera pitch, degrees; negative looks down (NaN: not in the telemetry).
    pub pitch: f64,
    /// Roll, degrees.
    pub roll: f64,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
}

/// Parses one line. Errors name the field.
pub fn parse_line(line: &str) -> Result<DronePose, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let num = |k: &str| -> Result<f64, String> {
        obj.get(k)
            .ok_or_else(|| format!("missing field `{k}`"))?
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("field `{k}` is not a number"))
    };
    let time = match obj.get("time").ok_or("missing field `time`")? {
        serde_json::Value::String(s) => humantime::parse_rfc3339_weak(s)
            .map_err(|e| format!("field `time`: `{s}` is not an RFC 3339 time: {e}"))?,
        serde_json::Value::Number(n) => {
            let secs = n
                .as_f64()
                .filter(|s| *s >= 0.0)
                .ok_or("field `time`: negative")?;
            UNIX_EPOCH + Duration::from_secs_f64(secs)
        }
        _ => return Err("field `time` must be a string or a number".into()),
    };
    let lat = num("lat")?;
    let lon = num("lon")?;
    if !(-90.0..=90.0).contains(&lat) {
        return Err(format!(
            "field `lat`: {lat} is outside -90..90 (lat and lon swapped?)"
        ));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(format!("field `lon`: {lon} is outside -180..180"));
    }
    let alt_agl = num("alt_agl")
        .or_else(|_| num("alt"))
        .map_err(|_| "missing field `alt_agl`".to_string())?;
    let heading = num("heading")?.rem_euclid(360.0);
    Ok(DronePose {
        time,
        lat,
        lon,
        alt_agl,
        heading,
        pitch: match obj.get("pitch") {
            None => f64::NAN,
            Some(_) => num("pitch")?,
        },
        roll: num("roll").unwrap_or(0.0),
    })
}

/// Recent poses of one drone, in time order.
#[derive(Debug, Default)]
pub struct Track {
    samples: Mutex<VecDeque<DronePose>>,
}

/// Poses kept per drone (at 10 Hz: 20 minutes).
const MAX_SAMPLES: usize = 12_000;

impl Track {
    /// Adds a pose (out-of-order ones are put in place).
    pub fn push(&self, p: DronePose) {
        let mut s = self.samples.lock().expect("track lock");
        let at = s.partition_point(|q| q.time <= p.time);
        s.insert(at, p);
        while s.len() > MAX_SAMPLES {
            s.pop_front();
        }
    }

    /// Number of poses held.
    pub fn len(&self) -> usize {
        self.samples.lock().expect("track lock").len()
    }

    /// Whether no pose is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pose at `t`: interpolated between neighbours within `max_gap` of it, else
    /// the nearest within `max_gap`, else none.
    pub fn at(&self, t: SystemTime, max_gap: Duration) -> Option<DronePose> {
        let s = self.samples.lock().expect("track lock");
        let i = s.partition_point(|q| q.time <= t);
        let before = i
            .checked_sub(1)
            .and_then(|j| s.get(j))
            .filter(|p| gap(p.time, t) <= max_gap);
        let after = s.get(i).filter(|p| gap(p.time, t) <= max_gap);
        match (before, after) {
            (Some(a), Some(b)) => Some(interpolate(a, b, t)),
            (Some(a), None) => Some(*a),
            (None, Some(b)) => Some(*b),
            (None, None) => None,
        }
    }
}

fn gap(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default()
}

fn interpolate(a: &DronePose, b: &DronePose, t: SystemTime) -> DronePose {
    let span = gap(a.time, b.time).as_secs_f64();
    if span <= 0.0 {
        return *a;
    }
    let f = gap(a.time, t).as_secs_f64() / span;
    let lerp = |x: f64, y: f64| x + (y - x) * f;
    // heading the short way round
    let dh = (b.heading - a.heading + 540.0).rem_euclid(360.0) - 180.0;
    DronePose {
        time: t,
        lat: lerp(a.lat, b.lat),
        lon: lerp(a.lon, b.lon),
        alt_agl: lerp(a.alt_agl, b.alt_agl),
        heading: (a.heading + dh * f).rem_euclid(360.0),
        pitch: lerp(a.pitch, b.pitch),
        roll: lerp(a.roll, b.roll),
    }
}

/// Feeds `track` from `source` until `stop` turns true. Bad lines are skipped and
/// reported through `on_error` with their line number or sender.
pub async fn run_reader(
    source: TelemetrySource,
    track: std::sync::Arc<Track>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    on_error: impl Fn(String) + Send + 'static,
) {
    match source {
        TelemetrySource::File(path) => {
            let mut offset = 0usize;
            let mut line_no = 0usize;
            let mut pending = String::new();
            loop {
                match tokio::fs::read(&path).await {
                    Ok(bytes) if bytes.len() >= offset => {
                        pending.push_str(&String::from_utf8_lossy(&bytes[offset..]));
                        offset = bytes.len();
                        while let Some(nl) = pending.find('\n') {
                            let line: String = pending.drain(..=nl).collect();
                            line_no += 1;
                            if line.trim().is_empty() {
                                continue;
                            }
                            match parse_line(line.trim()) {
                                Ok(p) => track.push(p),
                                Err(e) => {
                                    on_error(format!("{} line {line_no}: {e}", path.display()))
                                }
                            }
                        }
                    }
                    Ok(_) => {
                        // the file was truncated or replaced: read it again from the start
                        offset = 0;
                        line_no = 0;
                        pending.clear();
                    }
                    Err(e) => on_error(format!(
                        "cannot read telemetry file {}: {e}",
                        path.display()
                    )),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
        TelemetrySource::Http(url) => {
            let client = reqwest::Client::new();
            loop {
                let fed = async {
                    let mut resp = client
                        .get(url.clone())
                        .send()
                        .await
                        .and_then(|r| r.error_for_status())
                        .map_err(|e| format!("telemetry feed {url}: {e}"))?;
                    let mut pending = Vec::new();
                    while let Some(chunk) = resp
                        .chunk()
                        .await
                        .map_err(|e| format!("telemetry feed {url}: {e}"))?
                    {
                        pending.extend_from_slice(&chunk);
                        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                            let line: Vec<u8> = pending.drain(..=nl).collect();
                            let line = String::from_utf8_lossy(&line);
                            if line.trim().is_empty() {
                                continue;
                            }
                            match parse_line(line.trim()) {
                                Ok(p) => track.push(p),
                                Err(e) => on_error(format!("telemetry feed {url}: {e}")),
                            }
                        }
                    }
                    Ok::<(), String>(())
                };
                tokio::select! {
                    r = fed => if let Err(e) = r { on_error(e) },
                    _ = stop.wait_for(|s| *s) => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
        TelemetrySource::Udp(addr) => {
            let sock = match tokio::net::UdpSocket::bind(addr).await {
                Ok(s) => s,
                Err(e) => {
                    on_error(format!("cannot listen for telemetry on udp {addr}: {e}"));
                    return;
                }
            };
            let mut buf = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = sock.recv_from(&mut buf) => match r {
                        Ok((n, from)) => {
                            for line in String::from_utf8_lossy(&buf[..n]).lines().filter(|l| !l.trim().is_empty()) {
                                match parse_line(line.trim()) {
                                    Ok(p) => track.push(p),
                                    Err(e) => on_error(format!("telemetry from udp {from}: {e}")),
                                }
                            }
                        }
                        Err(e) => on_error(format!("telemetry socket {addr}: {e}")),
                    },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pose(secs: f64, lat: f64, heading: f64) -> DronePose {
        DronePose {
            time: UNIX_EPOCH + Duration::from_secs_f64(secs),
            lat,
            lon: 121.0,
            alt_agl: 50.0,
            heading,
            pitch: -30.0,
            roll: 0.0,
        }
    }

    #[test]
    fn parses_lines_and_names_bad_fields() {
        let p = parse_line(
            r#"{"time":"2026-11-27T07:00:00.500Z","lat":31.2,"lon":121.4,"alt":60,"heading":-90,"pitch":-45}"#,
        )
        .unwrap();
        assert_eq!(p.heading, 270.0);
        assert_eq!(p.alt_agl, 60.0);
        assert_eq!(p.roll, 0.0);
        let p = parse_line(
            r#"{"time":1795000000.25,"lat":1,"lon":2,"alt_agl":3,"heading":4,"pitch":5,"roll":6}"#,
        )
        .unwrap();
        assert_eq!(
            p.time,
            UNIX_EPOCH + Duration::from_millis(1_795_000_000_250)
        );
        for (line, needle) in [
            (
                r#"{"time":1,"lat":121.4,"lon":31.2,"alt":1,"heading":0,"pitch":0}"#,
                "swapped",
            ),
            (
                r#"{"time":1,"lat":1,"alt":1,"heading":0,"pitch":0}"#,
                "`lon`",
            ),
            (
                r#"{"time":"yesterday","lat":1,"lon":1,"alt":1,"heading":0,"pitch":0}"#,
                "`time`",
            ),
            (
                r#"{"time":1,"lat":"n","lon":1,"alt":1,"heading":0,"pitch":0}"#,
                "`lat`",
            ),
            ("not json", "not JSON"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn frames_get_the_pose_interpolated_at_their_time() {
        let t = Track::default();
        t.push(pose(12.0, 31.2, 10.0));
        t.push(pose(10.0, 31.0, 350.0)); // out of order
        let at = |s: f64| {
            t.at(
                UNIX_EPOCH + Duration::from_secs_f64(s),
                Duration::from_secs(1),
            )
        };
        let mid = at(11.0).unwrap();
        assert!((mid.lat - 31.1).abs() < 1e-9);
        assert!(
            mid.heading.abs() < 1e-9 || (mid.heading - 360.0).abs() < 1e-9,
            "350 → 10 passes north: {}",
            mid.heading
        );
        assert_eq!(at(12.5).unwrap().lat, 31.2, "nearest within the gap");
        assert!(at(14.0).is_none(), "too far from any sample");
        assert!(at(9.5).is_some());
        // a gap wider than allowed on one side: nearest on the other side only
        assert_eq!(
            t.at(
                UNIX_EPOCH + Duration::from_secs_f64(11.0),
                Duration::from_millis(900)
            )
            .map(|p| p.lat),
            None
        );
    }
}

//! A drone camera's settings (`[camera.drone]`): where its poses come from, how they
//! line up with its video, and its camera's optics. A drone's findings are placed on
//! the ground through the pose of the frame they were seen in (`geo::drone`), not by
//! a calibration.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::camera::humantime_serde_compat;
use crate::ingest::telemetry::TelemetrySource;

/// A drone camera.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DroneEntry {
    /// Where its poses come from: `udp://HOST:PORT` (listened on), an `http://` JSON
    /// Lines feed, or a JSON Lines file (followed as it grows); one pose a line
    /// (`time`, `lat`, `lon`, `alt_agl`, `heading`, `pitch`, `roll`).
    pub telemetry: String,
    /// Its camera's horizontal field of view, degrees (a pinhole with the principal
    /// point at the image centre and square pixels).
    pub hfov_deg: f64,
    /// A frame is placed only by poses within this of its capture time; one without
    /// is not used for findings.
    #[serde(default = "default_gap", with = "humantime_serde_compat")]
    pub max_gap: Duration,
    /// How much later its video arrives than the telemetry of the same instant.
    #[serde(default, with = "humantime_serde_compat")]
    pub video_latency: Duration,
    /// The camera's pitch on its mount, degrees (negative looks down), for telemetry
    /// that does not send `pitch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gimbal_pitch: Option<f64>,
}

fn default_gap() -> Duration {
    Duration::from_secs(1)
}

impl DroneEntry {
    /// Where the telemetry comes from.
    pub fn source(&self) -> Result<TelemetrySource, String> {
        TelemetrySource::parse(&self.telemetry)
    }

    /// A telemetry file named relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        if let Ok(TelemetrySource::File(p)) = self.source() {
            if p.is_relative() {
                self.telemetry = base.join(p).display().to_string();
            }
        }
    }

    /// Every problem, each starting with its field (`.drone.hfov_deg: …`).
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.source() {
            Err(e) => out.push(format!(".drone.telemetry: {e}")),
            Ok(TelemetrySource::File(p)) if !p.is_file() => {
                out.push(format!(".drone.telemetry: {} does not exist", p.display()))
            }
            Ok(_) => {}
        }
        if !(self.hfov_deg > 1.0 && self.hfov_deg < 179.0) {
            out.push(format!(
                ".drone.hfov_deg: {}° is not a field of view (between 1 and 179)",
                self.hfov_deg
            ));
        }
        if self.max_gap < Duration::from_millis(10) || self.max_gap > Duration::from_secs(60) {
            out.push(".drone.max_gap: between 10ms and 60s".into());
        }
        if self.video_latency > Duration::from_secs(60) {
            out.push(".drone.video_latency: at most 60s".into());
        }
        if let Some(p) = self.gimbal_pitch {
            if !(-90.0..=30.0).contains(&p) {
                out.push(format!(
                    ".drone.gimbal_pitch: {p}° is not a mount's pitch (-90, straight down, to 30)"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drone(toml: &str) -> DroneEntry {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_drone_is_checked_field_by_field() {
        let d = drone("telemetry = \"udp://0.0.0.0:14550\"\nhfov_deg = 84\n");
        assert!(d.check().is_empty(), "{:?}", d.check());
        assert_eq!(d.max_gap, Duration::from_secs(1));
        assert_eq!(d.video_latency, Duration::ZERO);
        let bad = drone(
            "telemetry = \"udp://nowhere\"\nhfov_deg = 190\nmax_gap = \"2m\"\nvideo_latency = \"2m\"\ngimbal_pitch = -120\n",
        );
        let all = bad.check();
        for needle in [
            ".drone.telemetry: `nowhere` is not HOST:PORT",
            ".drone.hfov_deg: 190°",
            ".drone.max_gap:",
            ".drone.video_latency:",
            ".drone.gimbal_pitch: -120°",
        ] {
            assert!(
                all.iter().any(|m| m.starts_with(needle)),
                "{needle}: {all:?}"
            );
        }
        let file = drone("telemetry = \"poses.jsonl\"\nhfov_deg = 84\n");
        assert!(file.check()[0].contains("poses.jsonl does not exist"));
        let mut rel = file.clone();
        rel.resolve(Path::new("/etc/gridwatch"));
        assert_eq!(rel.telemetry, "/etc/gridwatch/poses.jsonl");
        let mut udp = d.clone();
        udp.resolve(Path::new("/etc/gridwatch"));
        assert_eq!(udp, d, "an address is not a path");
        assert!(
            drone("telemetry = \"https://gs/feed\"\nhfov_deg = 84\n").check()[0]
                .contains("https feeds are not supported")
        );
    }
}

//! Delivery settings: where cases go (Open311 GeoReport v2, a JSON webhook, or the
//! built-in inbox), the service code of each violation kind, timeouts and retries.
//! Every field is documented in `docs/cases.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::retry::RetryPolicy;

/// The national city-management event codes gridwatch's kinds map to by default.
pub const DEFAULT_SERVICE_CODES: &[(&str, &str, &str)] = &[
    ("illegal_parking", "0505", "Motor vehicles parked illegally"),
    ("street_vending", "0501", "Unlicensed street vending"),
    ("illegal_construction", "0101", "Illegal construction"),
    ("dumping", "0103", "Accumulated waste and muck"),
    // not a national code: a workflow files equipment faults under its own (set
    // `[delivery.service_codes] camera_fault`)
    ("camera_fault", "9001", "Camera fault (video equipment)"),
];

/// Which kind of receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// An Open311 GeoReport v2 endpoint (`url` is its base, ending before
    /// `requests.json`).
    Open311,
    /// A JSON webhook (`url` is the full address), signed with HMAC-SHA256.
    Webhook,
}

/// The `[delivery]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// `open311` or `webhook`.
    pub target: TargetKind,
    /// The receiver's address.
    pub url: String,
    /// Open311 `api_key`; better given through `api_key_env` (a config file, or a
    /// Kubernetes ConfigMap, is no place for a credential).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Environment variable holding the Open311 `api_key`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Open311 `jurisdiction_id`.
    #[serde(default)]
    pub jurisdiction_id: Option<String>,
    /// The webhook's HMAC-SHA256 secret; better given through `secret_env`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Environment variable holding the webhook secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Whether the receiver takes follow-ups (Open311: `POST requests/{id}/updates.json`,
    /// which the built-in inbox serves; the webhook: `case.updated` events). When false
    /// they are recorded as skipped.
    #[serde(default = "yes")]
    pub updates: bool,
    /// Base address evidence is served from, for `media_url` (e.g.
    /// `http://gridwatch.example:8080`); without it no media_url is sent.
    #[serde(default)]
    pub public_url: Option<String>,
    /// One request's time limit.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// First retry wait (doubles up to `retry_max`, ±20 % jitter).
    #[serde(default = "default_retry_initial", with = "humantime_serde_compat")]
    pub retry_initial: Duration,
    /// Longest retry wait.
    #[serde(default = "default_retry_max", with = "humantime_serde_compat")]
    pub retry_max: Duration,
    /// Deliveries in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// PEM file of CA certificates trusted for `https` receivers besides the system's
    /// (a city's own CA). Relative to the config file's folder.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Service code per violation kind; kinds not named keep their default.
    #[serde(default)]
    pub service_codes: BTreeMap<String, String>,
    /// How a case's evidence goes with its delivery: `url` (addresses under
    /// `public_url`) or `attach` (the files themselves, for a receiver that cannot
    /// reach gridwatch).
    #[serde(default)]
    pub media: MediaMode,
    /// `attach`: the most bytes of evidence one delivery carries (the items that fit,
    /// in sequence order; the rest by address).
    #[serde(default = "default_media_max_bytes")]
    pub media_max_bytes: usize,
}

/// How evidence goes with a delivery.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Addresses only (`media_url`, the webhook's evidence `url`s).
    #[default]
    Url,
    /// The files too: Open311 as `multipart/form-data` with the violation photo as its
    /// `media` part; the webhook with each item's bytes (base64) in its `data`.
    Attach,
}

fn default_media_max_bytes() -> usize {
    16 << 20
}

fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(2)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(600)
}
fn default_concurrency() -> usize {
    4
}

/// `"10s"`, `"2m"`: humantime durations in TOML strings.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration ({e})")))
    }
}

/// A delivery config error, naming the file and field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

impl DeliveryConfig {
    /// A config for an Open311 endpoint with every default.
    pub fn open311(url: &str) -> Self {
        Self {
            target: TargetKind::Open311,
            url: url.to_string(),
            api_key: None,
            api_key_env: None,
            jurisdiction_id: None,
            secret: None,
            secret_env: None,
            updates: true,
            public_url: None,
            timeout: default_timeout(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            concurrency: default_concurrency(),
            service_codes: BTreeMap::new(),
            ca_file: None,
            media: MediaMode::Url,
            media_max_bytes: default_media_max_bytes(),
        }
    }

    /// Reads the `[delivery]` table of a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let mut cfg = Self::parse_unchecked(&text, &file)?;
        cfg.resolve(path.parent().unwrap_or(Path::new(".")));
        cfg.check()
            .map_err(|message| ConfigError { file, message })?;
        Ok(cfg)
    }

    /// Makes relative paths (`ca_file`) relative to `base`, the config file's folder.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(p) = &mut self.ca_file {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The CA certificates of `ca_file`, read and parsed; empty without one.
    pub fn extra_roots(&self) -> Result<Vec<reqwest::Certificate>, String> {
        let Some(path) = &self.ca_file else {
            return Ok(Vec::new());
        };
        let pem = std::fs::read(path)
            .map_err(|e| format!("[delivery] ca_file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "[delivery] ca_file {}: not PEM certificates ({e})",
                path.display()
            )
        })?;
        if certs.is_empty() {
            return Err(format!(
                "[delivery] ca_file {}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)",
                path.display()
            ));
        }
        Ok(certs)
    }

    /// Parses the `[delivery]` table of TOML text; `file` names it in errors, relative
    /// paths stay relative to the current folder.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let cfg = Self::parse_unchecked(text, file)?;
        cfg.check().map_err(|message| ConfigError {
            file: file.to_string(),
            message,
        })?;
        Ok(cfg)
    }

    fn parse_unchecked(text: &str, file: &str) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct Doc {
            delivery: Option<toml::Value>,
        }
        let err = |message: String| ConfigError {
            file: file.to_string(),
            message,
        };
        let doc: Doc = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let table = doc
            .delivery
            .ok_or_else(|| err("no [delivery] table".into()))?;
        let cfg: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| err(format!("[delivery]: {}", e.message())))?;
        Ok(cfg)
    }

    /// Checks the values that parse but make no sense.
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| format!("[delivery] url {:?}: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "[delivery] url {:?}: only http and https are supported",
                self.url
            ));
        }
        if self.media == MediaMode::Attach && !(1024..=256 << 20).contains(&self.media_max_bytes) {
            return Err(format!(
                "[delivery] media_max_bytes: {} (1024 to 268435456)",
                self.media_max_bytes
            ));
        }
        if self.target == TargetKind::Webhook && self.secret().is_none() {
            return Err(
                "[delivery] a webhook needs a signing secret: set secret_env (or secret)".into(),
            );
        }
        if let Some(var) = &self.api_key_env {
            if self.api_key.is_some() {
                return Err("[delivery] give api_key or api_key_env, not both".into());
            }
            if std::env::var(var)
                .map(|v| v.trim().is_empty())
                .unwrap_or(true)
            {
                return Err(format!(
                    "[delivery] api_key_env: environment variable {var} is not set"
                ));
            }
        }
        if let Some(var) = &self.secret_env {
            if std::env::var(var).map(|v| v.is_empty()).unwrap_or(true) {
                return Err(format!(
                    "[delivery] secret_env: environment variable {var} is not set"
                ));
            }
        }
        self.extra_roots()?;
        if self.concurrency == 0 {
            return Err("[delivery] concurrency must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return Err("[delivery] timeout must be more than 0".into());
        }
        for (kind, code) in &self.service_codes {
            if code.trim().is_empty() {
                return Err(format!("[delivery.service_codes] {kind}: empty code"));
            }
        }
        Ok(())
    }

    /// The Open311 api_key: from `api_key_env` when set, else `api_key`.
    pub fn api_key(&self) -> Option<String> {
        self.api_key_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| self.api_key.clone())
    }

    /// The webhook secret: from `secret_env` when set, else `secret`.
    pub fn secret(&self) -> Option<String> {
        self.secret_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|s| !s.is_empty())
            .or_else(|| self.secret.clone())
    }

    /// The service code for a violation kind: configured, else the default, else the
    /// kind itself.
    pub fn service_code(&self, kind: &str) -> String {
        service_code(&self.service_codes, kind)
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            initial: self.retry_initial,
            max: self.retry_max,
        }
    }
}

/// The service code for a kind given overrides.
pub fn service_code(overrides: &BTreeMap<String, String>, kind: &str) -> String {
    overrides
        .get(kind)
        .cloned()
        .or_else(|| {
            DEFAULT_SERVICE_CODES
                .iter()
                .find(|(k, _, _)| *k == kind)
                .map(|(_, c, _)| c.to_string())
        })
        .unwrap_or_else(|| kind.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let cfg = DeliveryConfig::parse(
            "[delivery]\ntarget = \"open311\"\nurl = \"http://city.example/open311/v2\"\ntimeout = \"3s\"\n[delivery.service_codes]\ndumping = \"0199\"\n",
            "g.toml",
        )
        .unwrap();
        assert_eq!(cfg.timeout, Duration::from_secs(3));
        assert_eq!(cfg.service_code("dumping"), "0199");
        assert_eq!(cfg.service_code("illegal_parking"), "0505");
        assert_eq!(cfg.retry().max, Duration::from_secs(600));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = DeliveryConfig::parse(
            "[delivery]\ntarget = \"open311\"\nurl = \"http://x\"\ntimout = \"3s\"\n",
            "g.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("g.toml") && e.contains("timout"), "{e}");
        let e = DeliveryConfig::parse(
            "[delivery]\ntarget = \"webhook\"\nurl = \"http://x/hook\"\n",
            "g.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("secret"), "{e}");
        let e = DeliveryConfig::parse(
            "[delivery]\ntarget = \"open311\"\nurl = \"ftp://x\"\n",
            "g.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("http"), "{e}");
        let e = DeliveryConfig::parse(
            "[delivery]\ntarget = \"open311\"\nurl = \"http://x\"\ntimeout = \"soon\"\n",
            "g.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("soon"), "{e}");
    }
}

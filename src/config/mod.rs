//! The service config (`gridwatch run --config gridwatch.toml`): cameras, model, geo
//! files, rules, dedup, the API and delivery. Every field is documented in
//! `docs/config.md`; unknown fields are errors naming the file and the field. Relative
//! paths are taken from the config file's directory (from the checkout for the
//! built-in default).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cases::config::DeliveryConfig;
use crate::detect::Provider;

mod camera;
mod drone;
pub use camera::{view_key, CameraEntry, PresetEntry};
pub use drone::DroneEntry;

/// `"30s"`, `"5m"`: durations as humantime strings.
mod dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration ({e})")))
    }

    pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        de(d).map(Some)
    }
}

/// The whole config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the case store, evidence and the built-in inbox live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// A shared PostgreSQL case store (`postgres://user:password@host:5432/db`) instead
    /// of the embedded SQLite file; better given through `store_env`.
    #[serde(default)]
    pub store: Option<String>,
    /// Environment variable holding the PostgreSQL URL.
    #[serde(default)]
    pub store_env: Option<String>,
    /// The HTTP API and review page.
    #[serde(default)]
    pub api: ApiConfig,
    /// The detector.
    #[serde(default)]
    pub model: ModelConfig,
    /// Zones and grid.
    #[serde(default)]
    pub geo: GeoConfig,
    /// Rule settings.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Dedup and evidence.
    #[serde(default)]
    pub cases: CasesConfig,
    /// Where cases go; absent: the built-in inbox served by this process.
    #[serde(default)]
    pub delivery: Option<DeliveryConfig>,
    /// Sharing the cameras with other nodes over the PostgreSQL store.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Where the camera list lives, and how often nodes look for changes.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// The cameras: with `registry.cameras = "store"` (the default) the seed of an
    /// empty registry; with `"config"` the camera list itself.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraEntry>,
}

/// Where the camera list lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraSource {
    /// In the case store, changed through the API and `gridwatch cameras`; the
    /// config's `[[camera]]` entries seed a registry that has never had cameras.
    Store,
    /// The config's `[[camera]]` entries, read-only (cameras kept in files and git).
    Config,
}

/// `[registry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `store` or `config`.
    #[serde(default = "default_camera_source")]
    pub cameras: CameraSource,
    /// Where the zones live: `store` (edited through the API, seeded from
    /// `geo.zones` once) or `config` (the `geo.zones` file, read-only).
    #[serde(default = "default_camera_source")]
    pub zones: CameraSource,
    /// How often a node looks for camera changes in the store.
    #[serde(default = "default_poll", deserialize_with = "dur::de")]
    pub poll: Duration,
}

fn default_camera_source() -> CameraSource {
    CameraSource::Store
}
fn default_poll() -> Duration {
    Duration::from_secs(2)
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            cameras: default_camera_source(),
            zones: default_camera_source(),
            poll: default_poll(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Environment variable holding an admin token (named `config-token`), to
    /// bootstrap the personal tokens of the registry.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The token itself (better: `token_env`).
    #[serde(default)]
    pub token: Option<String>,
    /// Let anyone on the network read and review cases (the built-in demo on
    /// 127.0.0.1 does); admin calls still need a token.
    #[serde(default)]
    pub open_writes: bool,
    /// Let anyone who reaches the port read cases, evidence, cameras and frames
    /// without a token (the built-in demo on 127.0.0.1 does); off: a viewer token.
    #[serde(default)]
    pub open_reads: bool,
    /// The address others reach this API at, for evidence URLs sent to the workflow
    /// (default: `http://` + `listen`).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Host names (optionally with `:port`) requests may be addressed to, besides the
    /// listen address, `public_url`'s host and, on a loopback address, `localhost`: a
    /// request for another host (DNS rebinding of a local demo) is refused. Empty on a
    /// non-loopback address: any host.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// A request's headers must arrive within this (slow clients hold nothing long).
    #[serde(default = "default_header_timeout", deserialize_with = "dur::de")]
    pub header_timeout: Duration,
    /// Connections open at once; past it new ones wait.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_connections() -> usize {
    512
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            token_env: None,
            token: None,
            open_writes: false,
            open_reads: false,
            public_url: None,
            allowed_hosts: Vec::new(),
            header_timeout: default_header_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

/// `[model]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model manifest; default: the bundled NanoDet COCO-80.
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// `cpu`, `cuda[:N]` or `tensorrt[:N]`, as written.
    #[serde(default = "default_provider", rename = "provider")]
    provider_text: String,
    /// The provider, parsed from `provider` when the config is read.
    #[serde(skip)]
    pub provider: Provider,
    /// Inference threads (0: ONNX Runtime decides).
    #[serde(default)]
    pub threads: usize,
    /// Let idle inference threads spin waiting for work (off: the cores are shared
    /// with the decoders, and spinning takes time from them).
    #[serde(default)]
    pub spin: bool,
    /// Most frames (from any cameras) per inference call.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// With a model that takes several frames per call: after the first frame, how
    /// long to wait for other cameras' frames to fill the batch.
    #[serde(default = "default_gather", deserialize_with = "dur::de")]
    pub gather: Duration,
    /// Detection workers, each with its own ONNX Runtime session and its own share of
    /// the cameras (a camera's frames always go to the same worker, in order).
    #[serde(default = "default_workers")]
    pub workers: usize,
}

fn default_workers() -> usize {
    1
}

fn default_gather() -> Duration {
    Duration::from_millis(20)
}

fn default_provider() -> String {
    "cpu".into()
}
fn default_batch() -> usize {
    4
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            manifest: None,
            provider_text: default_provider(),
            provider: Provider::Cpu,
            threads: 0,
            spin: false,
            batch: default_batch(),
            gather: default_gather(),
            workers: default_workers(),
        }
    }
}

/// `[geo]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// Zones GeoJSON (ground zones in WGS84, pixel zones per camera).
    #[serde(default)]
    pub zones: Option<PathBuf>,
    /// The city's management grid GeoJSON; without it cases are keyed by H3 cells.
    #[serde(default)]
    pub grid: Option<PathBuf>,
    /// H3 resolution when there is no grid (default 10, about 15 000 m²).
    #[serde(default)]
    pub h3_resolution: Option<u8>,
    /// IANA time zone the zones' time windows are in (default: the zones file's, else
    /// UTC), as written.
    #[serde(default, rename = "timezone")]
    timezone_text: Option<String>,
    /// The time zone, parsed from `timezone` when the config is read.
    #[serde(skip)]
    pub timezone: Option<chrono_tz::Tz>,
    /// The largest RMS error (metres) of a calibration saved through the API or the
    /// editor (default 1.0, as `gridwatch calibrate --max-rms`).
    #[serde(default = "default_max_rms_m")]
    pub max_rms_m: f64,
}

fn default_max_rms_m() -> f64 {
    1.0
}

impl Default for GeoConfig {
    fn default() -> Self {
        Self {
            zones: None,
            grid: None,
            h3_resolution: None,
            timezone_text: None,
            timezone: None,
            max_rms_m: default_max_rms_m(),
        }
    }
}

/// `[rules]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Illegal parking.
    #[serde(default)]
    pub parking: RuleTiming,
    /// Street vending.
    #[serde(default)]
    pub vending: RuleTiming,
    /// Dumping.
    #[serde(default)]
    pub dumping: RuleTiming,
    /// Illegal construction (`dwell`: how long a change must hold, default 6h).
    #[serde(default)]
    pub construction: RuleTiming,
    /// Dumping and construction seen from drones, by revisit.
    #[serde(default)]
    pub revisit: RevisitTiming,
    /// Let these dwell times win over the zones' own `dwell` parameters (demos and
    /// drills).
    #[serde(default)]
    pub override_zone_dwell: bool,
    /// Check every sample's view against the camera's reference view (correct small
    /// shifts, pause the rules of a moved, covered, defocused or frozen camera).
    #[serde(default = "yes")]
    pub view_check: bool,
    /// Register a sample against the reference every this many samples (1: every
    /// one); in between, a sample that changed much from the last registered one is
    /// registered at once, the others keep its state and correction.
    #[serde(default = "default_view_every")]
    pub view_every: u32,
    /// A camera covered, defocused, frozen or (without presets) moved off its view for
    /// this long files a camera-fault case; `"0s"`: never.
    #[serde(default = "default_fault_after", deserialize_with = "dur::de")]
    pub view_fault_after: Duration,
}

fn default_view_every() -> u32 {
    5
}
fn default_fault_after() -> Duration {
    Duration::from_secs(600)
}

fn yes() -> bool {
    true
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            parking: RuleTiming::default(),
            vending: RuleTiming::default(),
            dumping: RuleTiming::default(),
            construction: RuleTiming::default(),
            revisit: RevisitTiming::default(),
            override_zone_dwell: false,
            view_check: true,
            view_every: default_view_every(),
            view_fault_after: default_fault_after(),
        }
    }
}

/// A rule's timing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTiming {
    /// Dwell before a violation when the zone sets none (defaults: parking 5m,
    /// vending 5m, dumping 1m).
    #[serde(default, deserialize_with = "dur::de_opt")]
    pub dwell: Option<Duration>,
    /// Dwell before a warning (parking, vending).
    #[serde(default, deserialize_with = "dur::de_opt")]
    pub warn_after: Option<Duration>,
}

/// `[rules.revisit]`: how a drone's passes over a watched zone are compared.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisitTiming {
    /// Ground cell side, metres (default 0.1; 0.02 to 5).
    #[serde(default)]
    pub cell_m: Option<f64>,
    /// A pass over a zone ends when no frame has seen it for this long (default 5s).
    #[serde(default, deserialize_with = "dur::de_opt")]
    pub pass_gap: Option<Duration>,
    /// A pass ends when it has lasted this long, so a hover is several (default 30s).
    #[serde(default, deserialize_with = "dur::de_opt")]
    pub max_pass: Option<Duration>,
}

/// `[cases]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesConfig {
    /// An open case absorbs violations seen within this of its last one.
    #[serde(default = "default_window", deserialize_with = "dur::de")]
    pub window: Duration,
    /// After a case is closed or rejected, its key opens no new case for this long.
    #[serde(default = "default_cooldown", deserialize_with = "dur::de")]
    pub cooldown: Duration,
    /// Follow-ups of a filed case go at most this often.
    #[serde(default = "default_followup", deserialize_with = "dur::de")]
    pub followup_delay: Duration,
    /// Evidence items kept per case: the first violation's sequence (first sight, up
    /// to three middle frames, the violation, the close-up, the main stream's close-up,
    /// the clip), then later sightings'.
    #[serde(default = "default_evidence")]
    pub evidence_per_case: usize,
    /// Evidence of cases not seen for this long is deleted (checked hourly).
    #[serde(default = "default_retention", deserialize_with = "dur::de")]
    pub evidence_retention: Duration,
    /// `[cases.privacy]`: who is blurred in evidence (people other than the subject,
    /// by default).
    #[serde(default)]
    pub privacy: crate::rules::privacy::PrivacyConfig,
    /// `[cases.captions]`: the strip of time, camera and place under every evidence
    /// photo, and its font.
    #[serde(default)]
    pub captions: crate::rules::caption::CaptionConfig,
    /// `[cases.originals]`: unblurred originals for reviewers (off by default).
    #[serde(default)]
    pub originals: crate::cases::originals::OriginalsConfig,
    /// `[cases.clip]`: the MP4 of the sampled frames up to each new case's violation.
    #[serde(default)]
    pub clip: crate::rules::clip::ClipConfig,
}

fn default_retention() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}

/// `[cluster]`: used when the store is PostgreSQL (see `service/cluster.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique among the nodes; default: `GRIDWATCH_NODE`, else the
    /// host name (a StatefulSet pod's name).
    #[serde(default)]
    pub node: Option<String>,
    /// How long a camera lease lasts without renewal; renewed every third of it.
    #[serde(default = "default_lease_ttl", deserialize_with = "dur::de")]
    pub lease_ttl: Duration,
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(15)
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node: None,
            lease_ttl: default_lease_ttl(),
        }
    }
}

impl ClusterConfig {
    /// The node name: `node`, else `GRIDWATCH_NODE`, else the host name.
    pub fn node_name(&self) -> String {
        self.node
            .clone()
            .or_else(|| std::env::var("GRIDWATCH_NODE").ok())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "gridwatch".into())
    }
}

fn default_window() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_cooldown() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn default_followup() -> Duration {
    Duration::from_secs(60)
}
fn default_evidence() -> usize {
    10
}

impl Default for CasesConfig {
    fn default() -> Self {
        Self {
            window: default_window(),
            cooldown: default_cooldown(),
            followup_delay: default_followup(),
            evidence_per_case: default_evidence(),
            evidence_retention: default_retention(),
            privacy: Default::default(),
            captions: Default::default(),
            originals: Default::default(),
            clip: Default::default(),
        }
    }
}

/// A config error with the file and the field's path.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// What is wrong, starting with the field's path.
    pub message: String,
}

/// The built-in default: the sample clip as a looping camera, the bundled model, the
/// sample scene's calibration, zones and grid, the embedded store and inbox.
pub const BUILT_IN: &str = r#"
data_dir = "data"

[api]
listen = "127.0.0.1:8080"
open_writes = true
open_reads = true

[geo]
zones = "samples/geo/zones.geojson"
grid = "samples/geo/grid.geojson"

[rules]
# the demo shows a case within a minute; real zones keep their own dwell times
override_zone_dwell = true
parking = { dwell = "30s" }
vending = { dwell = "60s" }
dumping = { dwell = "30s" }

[[camera]]
id = "street"
source = "samples/street.mp4"
every = "1s"
calibration = "calibration/street.toml"

# a second view of the same scene (the clip scripts/make-test-clips.sh makes, where a
# bag is left on the lawn): its frames are batched with the first camera's, and the van
# both see is one case with two cameras
[[camera]]
id = "street-east"
source = "tests/fixtures/clips/street-dumping.mp4"
every = "1s"
calibration = "calibration/street.toml"
"#;

impl Config {
    /// Reads and checks a config file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self, Vec<ConfigError>> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                file: file.clone(),
                message: e.to_string(),
            }]
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file, base)
    }

    /// The built-in default: the model, clip and scene from gridwatch's home
    /// ([`crate::source_dir`]), the data in `./data` — where it is run, not inside an
    /// installed home that may not be writable.
    /// Its errors are those of a home that lacks the sample files.
    pub fn built_in() -> Result<Self, Vec<ConfigError>> {
        let mut cfg = Self::parse(BUILT_IN, "(built-in config)", crate::source_dir())?;
        cfg.data_dir = std::env::current_dir()
            .map(|d| d.join("data"))
            .unwrap_or_else(|_| PathBuf::from("data"));
        Ok(cfg)
    }

    /// Parses TOML text; `file` names it in errors, `base` resolves relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Self, Vec<ConfigError>> {
        let (cfg, problems) = Self::parse_unchecked(text, file, base)?;
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems
                .into_iter()
                .map(|message| ConfigError {
                    file: file.to_string(),
                    message,
                })
                .collect())
        }
    }

    /// As [`Config::parse`], but a config whose values have problems comes back with
    /// them (the fields that did not parse keep their defaults); an error only when
    /// the text is not a config at all. (Deserializing a `Config` directly leaves its
    /// text fields unparsed: make one with this, [`Config::parse`] or [`Config::load`].)
    pub fn parse_unchecked(
        text: &str,
        file: &str,
        base: &Path,
    ) -> Result<(Self, Vec<String>), Vec<ConfigError>> {
        let err = |message: String| ConfigError {
            file: file.to_string(),
            message,
        };
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let mut m = e.message().to_string();
            if let Some(span) = e.span() {
                let line = text[..span.start].matches('\n').count() + 1;
                m = format!("line {line}: {m}");
            }
            vec![err(m)]
        })?;
        cfg.resolve(base);
        let mut problems = cfg.parse_fields();
        problems.extend(cfg.check());
        Ok((cfg, problems))
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        if let Some(p) = &mut self.model.manifest {
            fix(p);
        }
        if let Some(p) = &mut self.geo.zones {
            fix(p);
        }
        if let Some(p) = &mut self.geo.grid {
            fix(p);
        }
        if let Some(p) = &mut self.cases.privacy.plates {
            fix(&mut p.model);
        }
        if let Some(d) = &mut self.delivery {
            d.resolve(base);
        }
        for c in &mut self.cameras {
            c.resolve(base);
        }
    }

    /// Parses the fields written as text into their types, once: every one that does
    /// not parse is a problem, starting with the field's path (the others keep their
    /// defaults; a config with problems is never used).
    fn parse_fields(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, c) in self.cameras.iter_mut().enumerate() {
            let at = format!("camera[{i}] ({})", c.id);
            out.extend(c.parse_fields().into_iter().map(|m| format!("{at}{m}")));
        }
        match self.model.provider_text.parse::<Provider>() {
            Ok(p) => self.model.provider = p,
            Err(e) => out.push(format!("model.provider: {e}")),
        }
        if let Some(tz) = &self.geo.timezone_text {
            match tz.parse::<chrono_tz::Tz>() {
                Ok(t) => self.geo.timezone = Some(t),
                Err(_) => out.push(format!("geo.timezone: {tz:?} is not an IANA time zone")),
            }
        }
        out
    }

    /// Every problem of the fields' values and of how they go together, each starting
    /// with the field's path (the text fields' parse is [`Config::parse`]'s).
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.cameras.is_empty() && self.registry.cameras == CameraSource::Config {
            out.push(
                "camera: no [[camera]] given (with registry.cameras = \"config\" the file is the camera list)"
                    .into(),
            );
        }
        let mut ids = std::collections::HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let at = format!("camera[{i}] ({})", c.id);
            if !CameraEntry::valid_id(&c.id) {
                out.push(format!(
                    "camera[{i}].id: {:?} must be 1 to 64 letters, digits, - _ . and not start with a dot (it names files and URLs)",
                    c.id
                ));
            }
            if !ids.insert(c.id.clone()) {
                out.push(format!("{at}.id: used twice"));
            }
            out.extend(c.check().into_iter().map(|m| format!("{at}{m}")));
        }
        for (name, p) in [
            ("model.manifest", &self.model.manifest),
            ("geo.zones", &self.geo.zones),
            ("geo.grid", &self.geo.grid),
        ] {
            if let Some(p) = p {
                if !p.exists() {
                    out.push(format!("{name}: {} does not exist", p.display()));
                }
            }
        }
        if self.cluster.lease_ttl < std::time::Duration::from_secs(3) {
            out.push("cluster.lease_ttl: must be at least 3s".into());
        }
        if let Some(n) = &self.cluster.node {
            if n.is_empty() || n.len() > 200 {
                out.push("cluster.node: must be 1 to 200 characters".into());
            }
        }
        let rv = &self.rules.revisit;
        if rv.cell_m.is_some_and(|c| !(0.02..=5.0).contains(&c)) {
            out.push("rules.revisit.cell_m: must be 0.02 to 5 (metres)".into());
        }
        if rv
            .pass_gap
            .is_some_and(|d| d < std::time::Duration::from_secs(1))
        {
            out.push("rules.revisit.pass_gap: must be at least 1s".into());
        }
        if let (Some(m), g) = (
            rv.max_pass,
            rv.pass_gap.unwrap_or(std::time::Duration::from_secs(5)),
        ) {
            if m <= g {
                out.push(format!(
                    "rules.revisit.max_pass: must be longer than pass_gap ({})",
                    humantime::format_duration(g)
                ));
            }
        }
        if self.cases.evidence_retention < std::time::Duration::from_secs(3600) {
            out.push("cases.evidence_retention: must be at least 1h".into());
        }
        if self.model.batch == 0 {
            out.push("model.batch: must be at least 1".into());
        }
        if self.model.workers == 0 || self.model.workers > 64 {
            out.push("model.workers: must be 1 to 64".into());
        }
        if !(self.geo.max_rms_m.is_finite() && self.geo.max_rms_m > 0.0) {
            out.push("geo.max_rms_m: must be a number of metres above 0".into());
        }
        if let Some(r) = self.geo.h3_resolution {
            if r > 15 {
                out.push(format!("geo.h3_resolution: {r} is above 15"));
            }
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            out.push(format!(
                "api.listen: {:?} is not an address like 127.0.0.1:8080",
                self.api.listen
            ));
        }
        if let Some(var) = &self.api.token_env {
            if std::env::var(var)
                .map(|v| v.trim().is_empty())
                .unwrap_or(true)
            {
                out.push(format!(
                    "api.token_env: environment variable {var} is not set or empty"
                ));
            }
        }
        if self
            .api
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            out.push("api.token: empty (an empty token would let anyone write; leave it out to refuse writes)".into());
        }
        if self.api.open_writes && self.api_token().is_none() {
            let loopback = self
                .api
                .listen
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            if !loopback {
                out.push(format!(
                    "api.open_writes: on {} anyone who reaches the port could review cases; set api.token_env, or listen on 127.0.0.1",
                    self.api.listen
                ));
            }
        }
        if self.api.open_reads {
            let loopback = self
                .api
                .listen
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            if !loopback {
                tracing::warn!(
                    "api.open_reads: on {} anyone who reaches the port can read cases and evidence",
                    self.api.listen
                );
            }
        }
        if self.registry.poll < Duration::from_millis(100)
            || self.registry.poll > Duration::from_secs(300)
        {
            out.push("registry.poll: 100ms to 5m".into());
        }
        if self.api.max_connections == 0 {
            out.push("api.max_connections: must be at least 1".into());
        }
        if self.api.header_timeout.is_zero() {
            out.push("api.header_timeout: must be more than 0".into());
        }
        if let Some(var) = &self.store_env {
            if std::env::var(var).map(|v| v.is_empty()).unwrap_or(true) {
                out.push(format!("store_env: environment variable {var} is not set"));
            }
        }
        if let Some(url) = self.store_url() {
            if !crate::pg::is_url(&url) {
                out.push("store: only postgres:// URLs are supported (leave it out for the embedded store)".into());
            }
        }
        out.extend(self.cases.originals.check());
        out.extend(self.cases.clip.check());
        if self.cases.evidence_per_case == 0 {
            out.push("cases.evidence_per_case: must be at least 1".into());
        }
        if let Some(d) = &self.delivery {
            if let Err(e) = d.check() {
                out.push(e.trim_start_matches('[').replacen("] ", ".", 1));
            }
        }
        out
    }

    /// The PostgreSQL URL, from `store_env` or `store`; `None`: the embedded SQLite.
    pub fn store_url(&self) -> Option<String> {
        self.store_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|s| !s.is_empty())
            .or_else(|| self.store.clone())
    }

    /// The bearer token for writes, if any.
    pub fn api_token(&self) -> Option<String> {
        self.api
            .token_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|s| !s.is_empty())
            .or_else(|| self.api.token.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Sampling;
    use crate::ingest::RtspTransport;

    #[test]
    fn the_built_in_config_is_valid() {
        let c = Config::built_in().unwrap();
        assert_eq!(c.cameras.len(), 2);
        assert!(c.cameras[0].calibration.as_ref().unwrap().exists());
        assert_eq!(c.rules.parking.dwell, Some(Duration::from_secs(30)));
        assert_eq!(
            c.data_dir,
            std::env::current_dir().unwrap().join("data"),
            "where it runs"
        );
    }

    #[test]
    fn every_error_names_its_field() {
        let text = r#"
[model]
provider = "tpu"
batch = 0
[rules.revisit]
cell_m = 0.001
max_pass = "2s"
[api]
listen = "everywhere"
[[camera]]
id = "a b"
source = "nowhere.mp4"
every = "sometimes"
[[camera]]
id = "cam2"
source = "http://x/stream"
location = [95.0, 0.0]
"#;
        let errs = Config::parse(text, "g.toml", Path::new("/tmp")).unwrap_err();
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let joined = all.join("\n");
        for needle in [
            "g.toml: model.provider",
            "model.batch",
            "rules.revisit.cell_m: must be 0.02 to 5",
            "rules.revisit.max_pass: must be longer than pass_gap (5s)",
            "api.listen",
            "camera[0].id",
            "camera[0] (a b).source: /tmp/nowhere.mp4 does not exist",
            "camera[0] (a b).every",
            "camera[0] (a b): give calibration or location",
            "camera[1] (cam2).source: only rtsp://",
            "camera[1] (cam2).location",
        ] {
            assert!(joined.contains(needle), "missing {needle} in\n{joined}");
        }
        let e =
            Config::parse("[api]\nlisten = 5\nbogus = 1\n", "g.toml", Path::new("/")).unwrap_err();
        assert!(e[0].to_string().contains("line 2"), "{}", e[0]);
    }

    #[test]
    fn text_fields_are_parsed_once_into_their_types_and_every_bad_one_named() {
        let camera = |every: &str, transport: &str| {
            format!(
                "[[camera]]\nid = \"a\"\nsource = \"rtsp://cam.example/x\"\nevery = \"{every}\"\ntransport = \"{transport}\"\nlocation = [31.0, 121.0]\n"
            )
        };
        let text = format!(
            "[model]\nprovider = \"cuda:1\"\n[geo]\ntimezone = \"Asia/Shanghai\"\n{}",
            camera("500ms", "udp")
        );
        let cfg = Config::parse(&text, "t.toml", Path::new("/")).unwrap();
        assert_eq!(
            cfg.cameras[0].every,
            Sampling::Every(Duration::from_millis(500))
        );
        assert_eq!(cfg.cameras[0].transport, RtspTransport::Udp);
        assert_eq!(cfg.model.provider, Provider::Cuda { device: 1 });
        assert_eq!(cfg.geo.timezone, Some(chrono_tz::Asia::Shanghai));
        let text = format!(
            "[model]\nprovider = \"tpu\"\n[geo]\ntimezone = \"Mars/Olympus\"\n{}",
            camera("sometimes", "quic")
        );
        let errors = Config::parse(&text, "t.toml", Path::new("/")).unwrap_err();
        let all: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        for field in [
            "camera[0] (a).every",
            "camera[0] (a).transport",
            "model.provider",
            "geo.timezone",
        ] {
            assert!(all.iter().any(|m| m.starts_with(field)), "{field}: {all:?}");
        }
    }
}

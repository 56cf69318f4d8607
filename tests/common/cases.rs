//! Violations and dedup settings shared by the case-store tests (SQLite and PostgreSQL
//! run the same scenarios).

use std::time::Duration;

use gridwatch::cases::inbox::InboxConfig;
use gridwatch::cases::{DedupConfig, NewViolation};

/// The API key the tests' inboxes know gridwatch by (client `gridwatch`).
pub const INBOX_KEY: &str = "test-key-of-the-gridwatch-client";

/// The environment variable the tests hand that key over in (`gridwatch inbox
/// --client-env`, `[delivery] api_key_env`).
pub const INBOX_KEY_ENV: &str = "GW_TEST_INBOX_KEY";

/// The inbox's defaults with gridwatch as its one client.
pub fn inbox_config() -> InboxConfig {
    InboxConfig::default().with_client("gridwatch", INBOX_KEY)
}

/// A minute, ms.
pub const MIN: i64 = 60_000;

/// A one-hour case window and a 30-minute cool-down.
pub fn dedup() -> DedupConfig {
    DedupConfig {
        window: Duration::from_secs(60 * 60),
        cooldown: Duration::from_secs(30 * 60),
        ..DedupConfig::default()
    }
}

/// A violation of `kind` in `cell` seen by `camera` at `at_ms`, held for a minute.
pub fn violation(kind: &str, cell: &str, camera: &str, at_ms: i64) -> NewViolation {
    NewViolation {
        kind: kind.parse().unwrap(),
        cell: cell.into(),
        admin_path: format!("D / S / C / {cell}"),
        lat: 31.23,
        lon: 121.47,
        camera: camera.into(),
        zone: "z".into(),
        zone_version: None,
        at_ms,
        since_ms: at_ms - MIN,
    }
}

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
        footprint: None,
    }
}

/// A case's sightings, newest first, keep a drone finding's frame on the ground and
/// a fixed camera's lack of one (both stores).
#[allow(dead_code)]
pub fn sightings_keep_footprints(store: &dyn gridwatch::cases::CaseStore) {
    let fixed = violation("dumping", "fp-cell", "street", 7_000_000);
    let mut drone = violation("dumping", "fp-cell", "drone-1", 7_060_000);
    let corners = [
        [31.2301, 121.4701],
        [31.2302, 121.4705],
        [31.2298, 121.4706],
        [31.2297, 121.4702],
    ];
    drone.footprint = Some(corners);
    let (id, _) = store.record(&fixed).unwrap();
    let (same, _) = store.record(&drone).unwrap();
    assert_eq!(id, same, "one case");
    let s = store.sightings(id, 10).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].camera.as_str(), s[0].footprint),
        ("drone-1", Some(corners))
    );
    assert_eq!((s[1].camera.as_str(), s[1].footprint), ("street", None));
    assert_eq!((s[1].lat, s[1].at_ms), (fixed.lat, fixed.at_ms));
    assert_eq!(
        store.sightings(id, 1).unwrap().len(),
        1,
        "at most the limit"
    );
}

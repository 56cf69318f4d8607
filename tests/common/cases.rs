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
        model: String::new(),
        model_sha256: String::new(),
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

/// A change made to a store behind its back.
#[allow(dead_code)]
pub enum Tamper {
    /// One byte of an evidence image flipped (case, evidence id).
    FlipByte(i64, i64),
    /// An evidence record (and its image) removed.
    Remove(i64),
    /// An evidence record's time changed.
    Retime(i64),
    /// An evidence record's role changed (to `crop`).
    Relabel(i64),
}

/// Three evidence images of a case, chained: `verify` finds nothing; each change
/// behind the store's back is named by the item it touched, and only that one.
#[allow(dead_code)]
pub fn the_evidence_chain_names_what_was_changed(
    store: &dyn gridwatch::cases::CaseStore,
    tamper: &dyn Fn(Tamper),
) {
    use gridwatch::cases::integrity::verify_case;
    let (case, _) = store
        .record(&violation(
            "illegal_parking",
            "chain-cell",
            "street",
            9_000_000,
        ))
        .unwrap();
    // two photos, then a clip (an MP4: a file of its own kind, chained the same)
    let bytes = |i: u32| -> Vec<u8> { (0..500u32).map(|b| (b * (i + 3)) as u8).collect() };
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            let role = (i == 2).then_some(gridwatch::cases::photo::PhotoRole::Clip);
            store
                .add_photo(case, "street", 9_000_000 + i as i64, role, &bytes(i), 5)
                .unwrap()
                .unwrap()
                .id
        })
        .collect();
    let clip = store.evidence(case).unwrap().pop().unwrap();
    assert!(
        clip.file.ends_with(&format!("/{}.mp4", ids[2])),
        "{}",
        clip.file
    );
    assert_eq!(
        store.evidence_bytes(case, ids[2]).unwrap().unwrap(),
        bytes(2)
    );
    let ok = verify_case(store, case).unwrap();
    assert_eq!((ok.items, ok.problems.len()), (3, 0), "{ok:?}");
    let chains: Vec<_> = store
        .evidence(case)
        .unwrap()
        .into_iter()
        .map(|e| e.chain.unwrap())
        .collect();
    assert_eq!(ok.head, chains[2], "the head is the last item's chain");
    assert_eq!(
        chains
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );

    tamper(Tamper::Retime(ids[0]));
    let c = verify_case(store, case).unwrap();
    assert_eq!(c.problems.len(), 1, "{c:?}");
    assert!(
        c.problems[0].contains(&format!("evidence {} ", ids[0])) && c.problems[0].contains("chain"),
        "{c:?}"
    );

    tamper(Tamper::FlipByte(case, ids[1]));
    let c = verify_case(store, case).unwrap();
    assert_eq!(c.problems.len(), 2, "{c:?}");
    assert!(
        c.problems[1].contains(&format!("evidence {} ", ids[1]))
            && c.problems[1].contains("altered"),
        "{c:?}"
    );

    tamper(Tamper::Remove(ids[1]));
    let c = verify_case(store, case).unwrap();
    assert_eq!(c.items, 2);
    assert_eq!(c.problems.len(), 2, "{c:?}");
    assert!(
        c.problems[1].contains(&format!("evidence {} ", ids[2]))
            && c.problems[1].contains("removed"),
        "the item after the gap: {c:?}"
    );

    // a relabelled role (a violation photo passed off as a close-up) is named
    use gridwatch::cases::photo::PhotoRole;
    let (other, _) = store
        .record(&violation("dumping", "chain-cell-2", "street", 9_100_000))
        .unwrap();
    let items: Vec<i64> = [PhotoRole::FirstSight, PhotoRole::Violation]
        .into_iter()
        .map(|r| {
            let b = bytes(7);
            let e = store.add_photo(other, "street", 9_100_000, Some(r), &b, 5);
            e.unwrap().unwrap().id
        })
        .collect();
    let c = verify_case(store, other).unwrap();
    assert!(c.problems.is_empty() && c.version == 2, "{c:?}");
    tamper(Tamper::Relabel(items[1]));
    let c = verify_case(store, other).unwrap();
    assert_eq!(c.problems.len(), 1, "{c:?}");
    assert!(
        c.problems[0].contains(&format!("evidence {} ", items[1]))
            && c.problems[0].contains("role"),
        "{c:?}"
    );
}

/// The unblurred originals of a store: kept per evidence item of its own case only,
/// listed per case, read back byte for byte, pruned by their own time, gone with
/// their evidence.
#[allow(dead_code)]
pub fn originals_round_trip(store: &dyn gridwatch::cases::CaseStore) {
    let t = 1_795_000_000_000i64;
    let (a, _) = store
        .record(&violation("street_vending", "o1", "cam1", t))
        .unwrap();
    let (b, _) = store
        .record(&violation("street_vending", "o2", "cam1", t))
        .unwrap();
    let photo = |case, at| {
        store
            .add_evidence(case, "cam1", at, b"private", 10)
            .unwrap()
            .unwrap()
    };
    let (a1, a2, b1) = (photo(a, t), photo(a, t + 10 * MIN), photo(b, t));
    store.add_original(a, a1.id, t, b"unblurred 1").unwrap();
    store
        .add_original(a, a2.id, t + 10 * MIN, b"unblurred 2")
        .unwrap();
    // another case's item is not this case's: nothing kept
    store.add_original(a, b1.id, t, b"not a's").unwrap();
    assert_eq!(store.originals(a).unwrap(), [a1.id, a2.id]);
    assert!(store.originals(b).unwrap().is_empty());
    assert_eq!(
        store.original_jpeg(a, a1.id).unwrap().as_deref(),
        Some(&b"unblurred 1"[..])
    );
    assert_eq!(store.original_jpeg(b, a1.id).unwrap(), None, "not b's");
    // the evidence itself is what was stored blurred
    assert_eq!(store.evidence_bytes(a, a1.id).unwrap().unwrap(), b"private");
    // their own, shorter retention: the older one goes, the evidence stays
    assert_eq!(store.prune_originals(t + 5 * MIN).unwrap(), 1);
    assert_eq!(store.originals(a).unwrap(), [a2.id]);
    assert_eq!(store.evidence(a).unwrap().len(), 2);
    // and when the case's evidence goes, its originals go with it
    assert!(store.prune_evidence(t + 60 * MIN).unwrap() >= 2);
    assert!(store.originals(a).unwrap().is_empty());
    assert_eq!(store.original_jpeg(a, a2.id).unwrap(), None);
}

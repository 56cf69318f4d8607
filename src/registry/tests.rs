use super::*;
use crate::clock::ManualClock;

fn open(dir: &std::path::Path) -> Registry {
    crate::cases::sqlite::SqliteStore::open(dir, crate::cases::DedupConfig::default()).unwrap();
    Registry::open(None, dir).unwrap()
}

fn cam(id: &str) -> CameraEntry {
    let mut c = CameraEntry::new(id, &format!("rtsp://10.0.0.1/{id}"));
    c.location = Some([31.2, 121.4]);
    c
}

fn admin() -> Actor {
    Actor::system("test")
}

#[test]
fn writes_bump_the_revision_and_the_changes_say_what_changed() {
    let d = tempfile::tempdir().unwrap();
    let r = open(d.path());
    assert_eq!(r.revision().unwrap(), 0);
    let a = r.create(&admin(), cam("a")).unwrap();
    assert_eq!(a.revision, 1);
    r.create(&admin(), cam("b")).unwrap();
    assert!(matches!(
        r.create(&admin(), cam("a")),
        Err(RegistryError::Exists(_))
    ));
    let all = r.changes_since(0).unwrap();
    assert_eq!(all.revision, 2);
    assert_eq!(all.changed.len(), 2);
    let mut b = cam("b");
    b.set_every("500ms").unwrap();
    let b2 = r.update(&admin(), b.clone()).unwrap();
    assert_eq!(b2.revision, 3);
    assert_eq!(
        r.update(&admin(), b).unwrap().revision,
        3,
        "an equal update changes nothing"
    );
    r.delete(&admin(), "a").unwrap();
    assert!(matches!(
        r.delete(&admin(), "a"),
        Err(RegistryError::NotFound(_))
    ));
    let c = r.changes_since(2).unwrap();
    assert_eq!(c.revision, 4);
    assert_eq!(c.deleted, vec!["a".to_string()]);
    assert_eq!(c.changed.len(), 1);
    assert_eq!(c.changed[0].camera.every_text(), "500ms");
    assert!(r.get("a").unwrap().is_none());
    // a deleted id can be registered again
    r.create(&admin(), cam("a")).unwrap();
    let off = r.set_enabled(&admin(), "a", false).unwrap();
    assert!(!off.camera.enabled);
    assert!(!r.get("a").unwrap().unwrap().camera.enabled);
}

#[test]
fn a_bad_camera_is_refused_with_every_field_named() {
    let d = tempfile::tempdir().unwrap();
    let r = open(d.path());
    let mut c = CameraEntry::new("bad id", "ftp://x");
    c.location = Some([100.0, 0.0]);
    let Err(RegistryError::Invalid(p)) = r.create(&admin(), c) else {
        panic!("accepted")
    };
    for f in ["id:", "source:", "location:"] {
        assert!(p.iter().any(|m| m.starts_with(f)), "{f}: {p:?}");
    }
    assert_eq!(r.revision().unwrap(), 0, "nothing written");
}

#[test]
fn an_update_with_the_hidden_password_keeps_the_password() {
    let d = tempfile::tempdir().unwrap();
    let r = open(d.path());
    let mut c = cam("a");
    c.source = "rtsp://admin:s3cret@10.0.0.9/live".into();
    r.create(&admin(), c.clone()).unwrap();
    let mut shown = c.clone();
    shown.source = c.source_redacted();
    shown.set_every("1s").unwrap();
    let after = r.update(&admin(), shown).unwrap();
    assert_eq!(after.camera.source, "rtsp://admin:s3cret@10.0.0.9/live");
    let (log, _) = r.audit_log(Some("camera/a"), 10, 0).unwrap();
    assert!(
        !serde_json::to_string(&log).unwrap().contains("s3cret"),
        "the audit log hides passwords"
    );
}

#[test]
fn imports_are_whole_and_counted_and_the_seed_goes_in_once() {
    let d = tempfile::tempdir().unwrap();
    let r = open(d.path());
    assert_eq!(r.seed(&[cam("s1"), cam("s2")]).unwrap(), Some(2));
    assert_eq!(r.seed(&[cam("s3")]).unwrap(), None, "seeded once");
    let mut s2 = cam("s2");
    s2.labels.insert("district".into(), "Xuhui".into());
    let sum = r.import(&admin(), &[cam("s1"), s2, cam("n1")]).unwrap();
    assert_eq!((sum.created, sum.updated, sum.unchanged), (1, 1, 1));
    assert_eq!(r.changes_since(0).unwrap().changed.len(), 3);
    let (log, total) = r.audit_log(None, 100, 0).unwrap();
    assert_eq!(total, 3, "two seeded, one import: {log:?}");
    assert_eq!(log[0].action, "camera.import");
    assert_eq!(log[0].actor, "test");
    assert_eq!(log[2].actor, "config");
}

#[test]
fn tokens_are_kept_hashed_checked_and_revoked() {
    let d = tempfile::tempdir().unwrap();
    let r = open(d.path()).with_clock(std::sync::Arc::new(ManualClock::at(1_000)));
    let (secret, info) = r.create_token(&admin(), "alice", Role::Reviewer).unwrap();
    assert!(secret.starts_with(&format!("gw_{}_", info.id)));
    let raw = std::fs::read(d.path().join("cases.sqlite")).unwrap();
    let wal = std::fs::read(d.path().join("cases.sqlite-wal")).unwrap_or_default();
    // The secret is URL-safe base64 and may itself hold `_`: split at the first two only.
    let body = secret.splitn(3, '_').nth(2).unwrap().as_bytes();
    assert_eq!(body.len(), 43, "32 random bytes, base64 without padding");
    for bytes in [&raw, &wal] {
        assert!(
            !bytes.windows(body.len()).any(|w| w == body),
            "the secret is not stored"
        );
    }
    let t = access::Tokens::new(None);
    t.refresh(&r).unwrap();
    let who = t.check(&secret).unwrap();
    assert_eq!((who.name.as_str(), who.role), ("alice", Role::Reviewer));
    let mut wrong = secret.clone();
    wrong.pop();
    assert!(t.check(&wrong).is_none());
    r.revoke_token(&admin(), &info.id).unwrap();
    assert!(r.revoke_token(&admin(), &info.id).is_err(), "revoked once");
    t.refresh(&r).unwrap();
    assert!(t.check(&secret).is_none(), "revoked");
    assert_eq!(r.tokens().unwrap()[0].revoked_ms, Some(1_000));
    assert!(r.create_token(&admin(), " ", Role::Viewer).is_err());
}

#[test]
fn coordinates_come_back_exactly_so_an_equal_import_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let r = open(d.path());
    let cams: Vec<CameraEntry> = (0..500)
        .map(|i| {
            let mut c = cam(&format!("c{i}"));
            c.location = Some([
                31.2 + i as f64 * 1e-5,
                121.473_712_345_678 - i as f64 * 3e-7,
            ]);
            c
        })
        .collect();
    assert_eq!(r.import(&admin(), &cams).unwrap().created, 500);
    let again = r.import(&admin(), &cams).unwrap();
    assert_eq!((again.unchanged, again.updated), (500, 0));
}

fn square(x: f64, camera: Option<&str>) -> serde_json::Value {
    let mut props = serde_json::json!({"kind": "no_parking", "params": {"dwell": "2m"}});
    if let Some(c) = camera {
        props["camera"] = c.into();
    }
    serde_json::json!({
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "Polygon", "coordinates": [[[x, 10.0], [x + 50.0, 10.0], [x + 50.0, 60.0], [x, 60.0], [x, 10.0]]]}
    })
}

#[test]
fn zones_are_versioned_checked_audited_and_seeded_once() {
    let d = tempfile::tempdir().unwrap();
    let r = open(d.path()).with_clock(std::sync::Arc::new(ManualClock::at(5_000)));
    let seed = vec![("z0".to_string(), square(0.0, Some("cam")))];
    assert_eq!(r.seed_zones(&seed).unwrap(), Some(1));
    assert_eq!(r.seed_zones(&seed).unwrap(), None, "seeded once");
    let rev = r.zones_revision().unwrap();
    assert!(rev > 0);
    let ok = |_: &crate::geo::zones::Zone| Vec::new();
    let z = r
        .put_zone(&admin(), "z1", square(10.0, Some("cam")), ok)
        .unwrap();
    assert_eq!((z.version, z.doc["id"].as_str()), (1, Some("z1")));
    assert!(r.zones_revision().unwrap() > rev);
    assert!(
        r.changes_since(rev).unwrap().changed.is_empty(),
        "no camera changed"
    );
    // the same feature again: no new version
    assert_eq!(
        r.put_zone(&admin(), "z1", square(10.0, Some("cam")), ok)
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        r.put_zone(&admin(), "z1", square(20.0, Some("cam")), ok)
            .unwrap()
            .version,
        2
    );
    // a bow tie, another zone's id, a kind-less feature, a check's own reason: refused
    let mut bow = square(0.0, Some("cam"));
    bow["geometry"]["coordinates"] = serde_json::json!([[
        [0.0, 0.0],
        [50.0, 50.0],
        [50.0, 0.0],
        [0.0, 50.0],
        [0.0, 0.0]
    ]]);
    let refused = |f: serde_json::Value, id: &str| match r
        .put_zone(&admin(), id, f, |_| vec!["outside the frame".into()])
    {
        Err(RegistryError::Invalid(m)) => m.join("; "),
        other => panic!("{other:?}"),
    };
    assert!(refused(bow, "z1").contains("invalid polygon"));
    let mut other = square(0.0, None);
    other["id"] = "z9".into();
    assert!(refused(other, "z1").contains("is not the zone's"));
    let mut kindless = square(0.0, None);
    kindless["properties"] = serde_json::json!({});
    assert!(refused(kindless, "z1").contains("kind"));
    assert_eq!(refused(square(30.0, None), "z1"), "outside the frame");
    assert_eq!(r.zone("z1").unwrap().unwrap().version, 2, "nothing written");
    // deleted, then made again: its versions go on
    r.delete_zone(&admin(), "z1").unwrap();
    assert!(r.zone("z1").unwrap().is_none());
    assert!(matches!(
        r.delete_zone(&admin(), "z1"),
        Err(RegistryError::NotFound(_))
    ));
    assert_eq!(
        r.put_zone(&admin(), "z1", square(40.0, Some("cam")), ok)
            .unwrap()
            .version,
        4
    );
    let versions = r.zone_versions("z1").unwrap();
    let shown: Vec<(i64, bool)> = versions
        .iter()
        .map(|v| (v.version, v.doc.is_some()))
        .collect();
    assert_eq!(shown, [(1, true), (2, true), (3, false), (4, true)]);
    assert_eq!(versions[0].actor, "test");
    // the set the scenes use
    let set = r.zone_set(chrono_tz::Tz::UTC).unwrap();
    let ids: Vec<&str> = set.zones().iter().map(|z| z.id.as_str()).collect();
    assert_eq!(ids, ["z0", "z1"]);
    let (log, _) = r.audit_log(Some("zone/z1"), 10, 0).unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["zone.create", "zone.delete", "zone.update", "zone.create"],
        "newest first"
    );
}

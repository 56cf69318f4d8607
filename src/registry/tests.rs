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

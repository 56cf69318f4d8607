//! Evidence integrity: each item chained to the one before it and to the case, in
//! both stores; a byte flipped in an image, a record's time changed or an item
//! removed behind the store's back is named by `cases verify` (the library call and
//! the command).

mod common;

use std::process::Command;

use common::cases::{dedup, Tamper};
use gridwatch::cases::sqlite::SqliteStore;

#[test]
fn the_sqlite_stores_chain_names_a_flipped_byte_a_retimed_record_a_removed_item_and_a_relabel() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
    let db = tmp.path().join("cases.sqlite");
    let dir = tmp.path().to_path_buf();
    let sql = |q: &str| {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(q).unwrap();
    };
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_gridwatch"))
            .args(["cases", "verify", "--data"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    let before = verify();
    assert!(before.status.success(), "{before:?}");
    common::cases::the_evidence_chain_names_what_was_changed(&store, &|t| match t {
        Tamper::FlipByte(case, id) => {
            let p = dir.join(format!("evidence/{case}/{id}.jpg"));
            let mut b = std::fs::read(&p).unwrap();
            b[100] ^= 0x01;
            std::fs::write(&p, b).unwrap();
        }
        Tamper::Remove(id) => sql(&format!("DELETE FROM evidence WHERE id = {id}")),
        Tamper::Retime(id) => sql(&format!(
            "UPDATE evidence SET at_ms = at_ms + 1 WHERE id = {id}"
        )),
        Tamper::Relabel(id) => sql(&format!(
            "UPDATE evidence SET role = 'crop' WHERE id = {id}"
        )),
    });
    let after = verify();
    let err = String::from_utf8_lossy(&after.stderr);
    assert!(!after.status.success(), "verify fails");
    assert!(
        err.contains("does not follow")
            && err.contains("3 problem(s)")
            && err.contains("case 2 evidence 5"),
        "{err}"
    );
}

#[test]
fn the_postgresql_stores_chain_names_what_was_changed() {
    let pg = common::pg::Pg::start();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let store = gridwatch::cases::postgres::PgStore::open(&url, tmp.path(), dedup()).unwrap();
    let sql = |q: &str| {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(q).unwrap();
    };
    common::cases::the_evidence_chain_names_what_was_changed(&store, &|t| {
        match t {
        Tamper::FlipByte(_, id) => sql(&format!(
            "UPDATE evidence_jpeg SET jpeg = overlay(jpeg placing '\\x00'::bytea from 101 for 1) WHERE evidence_id = {id}"
        )),
        Tamper::Remove(id) => sql(&format!(
            "DELETE FROM evidence_jpeg WHERE evidence_id = {id}; DELETE FROM evidence WHERE id = {id}"
        )),
        Tamper::Retime(id) => sql(&format!("UPDATE evidence SET at_ms = at_ms + 1 WHERE id = {id}")),
        Tamper::Relabel(id) => sql(&format!("UPDATE evidence SET role = 'crop' WHERE id = {id}")),
    }
    });
}

/// A case chained before roles were (version 1) still verifies, and goes on in its
/// own version when evidence is added.
#[test]
fn a_version_1_chain_verifies_and_goes_on_as_version_1() {
    use gridwatch::cases::integrity::{genesis, link, verify_case};
    use gridwatch::cases::CaseStore;
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(tmp.path(), dedup()).unwrap();
    let (case, _) = store
        .record(&common::cases::violation(
            "dumping", "v1-cell", "cam", 8_000_000,
        ))
        .unwrap();
    for i in 0..2u8 {
        store
            .add_evidence(case, "cam", 8_000_000 + i as i64, &[i; 300], 5)
            .unwrap();
    }
    // as an older gridwatch chained them
    let c = store.case(case).unwrap();
    let mut prev = genesis(1, case, c.kind.as_str(), &c.cell, c.first_seen_ms);
    let db = rusqlite::Connection::open(tmp.path().join("cases.sqlite")).unwrap();
    for e in store.evidence(case).unwrap() {
        prev = link(1, &prev, &e.sha256, &e.camera, e.at_ms, None);
        db.execute(
            "UPDATE evidence SET chain = ?1 WHERE id = ?2",
            rusqlite::params![prev, e.id],
        )
        .unwrap();
    }
    let check = verify_case(&store, case).unwrap();
    assert!(check.problems.is_empty() && check.version == 1, "{check:?}");
    assert_eq!(check.head, prev);
    store
        .add_evidence(case, "cam", 8_000_009, &[9; 300], 5)
        .unwrap();
    let check = verify_case(&store, case).unwrap();
    assert!(
        check.problems.is_empty() && check.version == 1 && check.items == 3,
        "{check:?}"
    );
}

/// Exports a case, checks the zip with the Python checker (zipfile and hashlib, not
/// gridwatch), shows the checker fails on a changed byte, and that a case whose
/// evidence does not verify is not exported at all.
#[test]
fn a_case_exports_as_a_zip_that_checks_without_gridwatch() {
    use gridwatch::cases::{CaseStore, Review, Verdict};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = SqliteStore::open(&dir, dedup()).unwrap();
    let (case, _) = store
        .record(&common::cases::violation(
            "illegal_parking",
            "export-cell",
            "街口-1",
            7_000_000,
        ))
        .unwrap();
    let images: Vec<Vec<u8>> = (0..3u32)
        .map(|i| (0..4000u32).map(|b| (b * (i + 7) / 3) as u8).collect())
        .collect();
    for (i, img) in images.iter().enumerate() {
        store
            .add_evidence(case, "街口-1", 7_000_000 + i as i64 * 1000, img, 5)
            .unwrap()
            .unwrap();
    }
    // and a clip, as the clip worker makes one
    let frames: Vec<opencv::core::Mat> = (0..3)
        .map(|i| {
            opencv::core::Mat::new_rows_cols_with_default(
                120,
                160,
                opencv::core::CV_8UC3,
                opencv::core::Scalar::all(60.0 * i as f64),
            )
            .unwrap()
        })
        .collect();
    let mp4 = gridwatch::draw::mp4::encode_mp4(&frames, Default::default()).unwrap();
    let role = Some(gridwatch::cases::photo::PhotoRole::Clip);
    store
        .add_photo(case, "街口-1", 7_003_000, role, &mp4, 5)
        .unwrap()
        .unwrap();
    store
        .review(&Review {
            case_id: case,
            verdict: Verdict::Confirm,
            reviewer: "ana".into(),
            note: "plate visible".into(),
            at_ms: 7_100_000,
            reason: None,
        })
        .unwrap();
    let head = gridwatch::cases::integrity::verify_case(&store, case)
        .unwrap()
        .head;
    let gw = |out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_gridwatch"))
            .args(["cases", "export", &case.to_string(), "--data"])
            .arg(&dir)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let check = |zip: &std::path::Path| {
        Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/check-export.py"
            ))
            .arg(zip)
            .args(["--head", &head])
            .output()
            .unwrap()
    };
    let zip = tmp.path().join("case.zip");
    let out = gw(&zip);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&head),
        "{out:?}"
    );
    let ok = check(&zip);
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("7 files"),
        "case.json, 3 images, the clip, chain.json, manifest.json: {ok:?}"
    );
    let listed = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).namelist())",
        ])
        .arg(&zip)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!("evidence/{case}/4.mp4")),
        "the clip under its stored name: {listed}"
    );
    // the images are stored as they are: find the second one in the zip, change a byte
    let mut bytes = std::fs::read(&zip).unwrap();
    let at = bytes
        .windows(64)
        .position(|w| w == &images[1][..64])
        .expect("stored image in the zip");
    bytes[at + 2000] ^= 0x10;
    let changed = tmp.path().join("changed.zip");
    std::fs::write(&changed, bytes).unwrap();
    let bad = check(&changed);
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success(), "{bad:?}");
    assert!(
        said.contains("evidence/") && said.contains("does not match"),
        "{said}"
    );
    // a store whose evidence does not verify exports nothing
    let e = store.evidence(case).unwrap();
    let p = dir.join(&e[2].file);
    let mut b = std::fs::read(&p).unwrap();
    b[10] ^= 0x01;
    std::fs::write(&p, b).unwrap();
    let refused = tmp.path().join("refused.zip");
    let out = gw(&refused);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("does not verify") && err.contains(&format!("evidence {}", e[2].id)),
        "{err}"
    );
    assert!(!refused.exists() && !tmp.path().join("refused.zip.part").exists());
}

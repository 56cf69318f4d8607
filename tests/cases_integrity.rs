//! Evidence integrity: each item chained to the one before it and to the case, in
//! both stores; a byte flipped in an image, a record's time changed or an item
//! removed behind the store's back is named by `cases verify` (the library call and
//! the command).

mod common;

use std::process::Command;

use common::cases::{dedup, Tamper};
use gridwatch::cases::sqlite::SqliteStore;

#[test]
fn the_sqlite_stores_chain_names_a_flipped_byte_a_retimed_record_and_a_removed_item() {
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
    });
    let after = verify();
    let err = String::from_utf8_lossy(&after.stderr);
    assert!(!after.status.success(), "verify fails");
    assert!(
        err.contains("does not follow") && err.contains("2 problem(s)"),
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
    }
    });
}

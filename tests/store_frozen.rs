//! A case store that stops answering must not stop detection. `gridwatch run` with six
//! file cameras over a real PostgreSQL reached through a proxy; the proxy freezes for
//! 30 s (connections stay open, nothing passes: a store call hangs for as long as the
//! network is silent). Detection frames per second during the freeze stay at what
//! they were before it, the violations found meanwhile wait in the recorder's queue,
//! and once the store answers every violation found is recorded, none lost. (The
//! street clip's van is parked all along, one track across the clip's loops: the
//! street cameras play it with its first 35 s dark, so the van comes anew each pass.)

mod common;

use std::time::{Duration, Instant};

use common::node::Node;
use common::pg::Pg;
use common::proxy::Proxy;

#[test]
fn detection_runs_on_while_the_store_is_frozen_and_every_violation_is_recorded_after() {
    let pg = Pg::start();
    let direct = pg.database();
    let (proxy, via_proxy) = Proxy::to_database(&direct);
    let tmp = tempfile::tempdir().unwrap();
    let p = |rel: &str| common::path(rel).display().to_string();
    let gap = tmp.path().join("street-gap.mp4");
    common::ffmpeg(&[
        "-i",
        &p("samples/street.mp4"),
        "-vf",
        "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='lt(t,35)'",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        gap.to_str().unwrap(),
    ]);
    // leases far longer than the freeze: the cameras keep running meanwhile
    let mut cfg = format!(
        "data_dir = \"{}\"\nstore_env = \"GW_TEST_STORE\"\n[api]\nlisten = \"127.0.0.1:0\"\nopen_reads = true\n\
         [cluster]\nlease_ttl = \"300s\"\n[geo]\nzones = \"{}\"\ngrid = \"{}\"\n\
         [rules]\noverride_zone_dwell = true\nparking = {{ dwell = \"3s\" }}\ndumping = {{ dwell = \"5s\" }}\n",
        tmp.path().join("data").display(),
        p("samples/geo/zones.geojson"),
        p("samples/geo/grid.geojson"),
    );
    for i in 0..6 {
        let clip = if i % 2 == 0 {
            gap.display().to_string()
        } else {
            p("tests/fixtures/clips/street-dumping.mp4")
        };
        cfg += &format!(
            "[[camera]]\nid = \"c{i}\"\nsource = \"{}\"\nevery = \"1s\"\ncalibration = \"{}\"\n",
            clip,
            p("calibration/street.toml")
        );
    }
    let path = tmp.path().join("gridwatch.toml");
    std::fs::write(&path, cfg).unwrap();
    let node = Node::start("gw-frozen", &path, &via_proxy, tmp.path());
    let frames = || node.metric("gridwatch_detect_frames_total");
    let wait_for = |what: &str, limit: Duration, ok: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !ok() {
            assert!(t.elapsed() < limit, "{what}\n{}", node.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait_for("all six cameras running", Duration::from_secs(60), &|| {
        node.running().len() == 6
    });
    // detection at its pace before the freeze
    let (f0, t0) = (frames(), Instant::now());
    std::thread::sleep(Duration::from_secs(15));
    let before = (frames() - f0) / t0.elapsed().as_secs_f64();

    proxy.freeze(true);
    let (found0, recorded0) = (
        node.metric("gridwatch_violations_found_total"),
        node.metric("gridwatch_violations_total"),
    );
    let (f1, t1) = (frames(), Instant::now());
    // frozen for 30 s, and on until violations were found meanwhile (the clips'
    // parked van and bags come once per pass)
    let mut most_waiting = 0.0f64;
    while t1.elapsed() < Duration::from_secs(30)
        || (most_waiting == 0.0 && t1.elapsed() < Duration::from_secs(120))
    {
        std::thread::sleep(Duration::from_secs(2));
        most_waiting = most_waiting.max(node.metric("gridwatch_violations_waiting"));
    }
    let during = (frames() - f1) / t1.elapsed().as_secs_f64();
    let found = node.metric("gridwatch_violations_found_total") - found0;
    let recorded = node.metric("gridwatch_violations_total") - recorded0;
    let store_up = node.metric("gridwatch_store_up");
    proxy.freeze(false);
    eprintln!(
        "detection {before:.2} frames/s before the freeze, {during:.2} during it; \
         {found} violations found during it, {recorded} recorded meanwhile, \
         at most {most_waiting} waiting"
    );
    assert!(
        before > 2.0,
        "detection ran before the freeze: {before:.2} frames/s"
    );
    assert!(
        during >= 0.8 * before,
        "detection slowed by the frozen store: {before:.2} → {during:.2} frames/s\n{}",
        node.log()
    );
    assert!(found >= 1.0, "violations found during the freeze: {found}");
    assert_eq!(recorded, 0.0, "the store was frozen: nothing recorded");
    assert!(most_waiting >= 1.0, "violations waited for the store");
    assert_eq!(store_up, 0.0, "/metrics says the store did not answer");

    // the store answers again: everything found is recorded, in the database
    wait_for(
        "every violation found recorded",
        Duration::from_secs(60),
        &|| {
            let f = node.metric("gridwatch_violations_found_total");
            node.metric("gridwatch_violations_waiting") == 0.0
                && node.metric("gridwatch_violations_total") == f
        },
    );
    assert_eq!(node.metric("gridwatch_violations_lost_total"), 0.0);
    let recorded_all = node.metric("gridwatch_violations_total");
    let mut c = postgres::Client::connect(&direct, postgres::NoTls).unwrap();
    let rows: i64 = c
        .query_one("SELECT count(*) FROM violations", &[])
        .unwrap()
        .get(0);
    // the node goes on finding violations: the table has at least what was counted
    assert!(
        rows as f64 >= recorded_all,
        "{rows} violation rows, {recorded_all} recorded"
    );
    assert!(
        node.log().contains("to record a violation;"),
        "the slow call is logged\n{}",
        node.log()
    );
}

//! The zone and calibration editor in headless Chromium over WebDriver, against
//! `gridwatch run` on the street clip: an operator opens it from the review page,
//! draws a no-parking zone on the camera's live frame (a crossing outline is refused
//! on the page; points dragged and deleted), saves it, and the running camera finds
//! the parked van in it within seconds — its case records the zone's version; then
//! clicks four ground control points, types their coordinates, sees each point's
//! error, saves the calibration, and the camera places the van where the new
//! calibration says.

mod common;

use std::time::{Duration, Instant};

use common::node::{eventually, get, Node};
use common::path;
use common::webdriver::Browser;
use serde_json::Value;

const TOKEN: &str = "zone-editor-token";

#[test]
fn a_zone_and_a_calibration_drawn_in_the_editor_are_used_by_the_running_camera() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = format!(
        r#"data_dir = "{data}"
[api]
listen = "127.0.0.1:0"
open_reads = true
token = "{TOKEN}"
[rules]
override_zone_dwell = true
parking = {{ dwell = "15s" }}

[[camera]]
id = "street"
source = "{clip}"
every = "1s"
calibration = "{cal}"
"#,
        data = dir.join("data").display(),
        clip = path("samples/street.mp4").display(),
        cal = path("calibration/street.toml").display(),
    );
    let cfg_path = dir.join("g.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let node = Node::start("n1", &cfg_path, "", dir);
    let cases = || {
        let d = get(&format!("{}/api/cases?kind=illegal_parking", node.url))?;
        Some(d["cases"].as_array()?.clone())
    };
    eventually(
        "the camera's first frame",
        &node,
        Duration::from_secs(60),
        || {
            let c = get(&format!("{}/api/cameras/street", node.url))?;
            c["last_frame"].is_string().then_some(())
        },
    );
    // no zone yet: the van parks where nothing forbids it
    std::thread::sleep(Duration::from_secs(18));
    assert_eq!(cases().map(|c| c.len()), Some(0), "no zone, no case");

    let b = Browser::start();
    let long = Duration::from_secs(20);
    b.goto(&format!("{}/", node.url));
    b.eval(&format!(
        "sessionStorage.setItem('gridwatch-token', '{TOKEN}')"
    ));
    b.click(&b.find("#to-editor", long));
    b.wait_for(
        "document.getElementById('who').dataset.role === 'admin'",
        long,
    );
    b.wait_for(
        "document.getElementById('canvas').dataset.loaded === '1'",
        long,
    );
    assert_eq!(
        b.eval("[document.getElementById('canvas').width, document.getElementById('canvas').getBoundingClientRect().width]"),
        serde_json::json!([768, 768]),
        "the frame at its own size"
    );
    assert_eq!(b.eval("document.getElementById('view').value"), "street");
    let canvas = b.find("#canvas", long);

    // a crossing outline is refused on the page, before anything is sent
    b.click(&b.find("#z-new", long));
    b.type_into(&b.find("#z-id", long), "np-drawn");
    for p in [(620.0, 70.0), (766.0, 130.0), (766.0, 70.0), (620.0, 130.0)] {
        b.click_at(&canvas, p);
    }
    b.click(&b.find("#z-save", long));
    b.wait_for(
        "document.getElementById('z-msg').textContent.includes('edges 1 and 3 cross')",
        long,
    );
    assert_eq!(
        get(&format!("{}/api/zones", node.url)).unwrap()["features"],
        serde_json::json!([])
    );
    // mended by dragging two corners, a stray point added and deleted
    b.drag(&canvas, (766.0, 70.0), (766.0, 130.0));
    b.drag(&canvas, (766.0, 130.0), (766.0, 70.0));
    // (a click lands within a pixel of where it is aimed: the browser rounds)
    b.wait_for(
        "Math.abs(draft[1][1] - 70) <= 1 && Math.abs(draft[2][1] - 130) <= 1",
        long,
    );
    b.click_at(&canvas, (700.0, 100.0));
    b.wait_for("draft.length === 5", long);
    b.key("\u{E017}"); // Delete
    b.wait_for("draft.length === 4", long);
    b.click(&b.find("#z-save", long));
    b.wait_for(
        "document.getElementById('z-msg').textContent.includes('Saved np-drawn (version 1)')",
        long,
    );
    let saved = Instant::now();
    let zone = get(&format!("{}/api/zones/np-drawn", node.url)).unwrap();
    assert_eq!(zone["properties"]["camera"], "street", "{zone}");
    let ring: Vec<(f64, f64)> = zone["geometry"]["coordinates"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let want = [
        (620.0, 70.0),
        (766.0, 70.0),
        (766.0, 130.0),
        (620.0, 130.0),
        (620.0, 70.0),
    ];
    assert_eq!(ring.len(), want.len(), "{zone}");
    for (got, want) in ring.iter().zip(want) {
        assert!(
            (got.0 - want.0).abs() <= 1.0 && (got.1 - want.1).abs() <= 1.0,
            "{got:?} is not {want:?}: {zone}"
        );
    }
    assert_eq!(zone["updated_by"], "config-token", "{zone}");
    let first = eventually(
        "a case in the drawn zone",
        &node,
        Duration::from_secs(60),
        || cases()?.first().cloned(),
    );
    eprintln!("a case {:?} after the zone was saved", saved.elapsed());
    assert!(
        saved.elapsed() < Duration::from_secs(15),
        "the scene took the zone within seconds"
    );
    let id = first["id"].as_i64().unwrap();
    let detail = get(&format!("{}/api/cases/{id}", node.url)).unwrap();
    assert_eq!(detail["zones"][0]["zone"], "np-drawn", "{detail}");
    assert_eq!(detail["zones"][0]["version"], 1, "{detail}");

    // the calibration: the file's eight points are shown with their errors
    b.click(&b.find("#mode-cal", long));
    b.wait_for("document.querySelectorAll('#gcps tr').length === 8", long);
    assert!(b
        .text(&b.find("#c-source", long))
        .contains("calibration file"));
    // four points clicked anew, their coordinates typed: the street's own, 0.0015°
    // (about 167 m) farther north
    b.click(&b.find("#c-clear", long));
    b.wait_for("document.querySelectorAll('#gcps tr').length === 0", long);
    let shift = 0.0015;
    let points = [
        (40.0, 190.0, 31.23056589, 121.47370073),
        (298.0, 207.0, 31.23052709, 121.47375893),
        (740.0, 470.0, 31.23042766, 121.47378364),
        (60.0, 530.0, 31.23046393, 121.47368876),
    ];
    for (i, &(x, y, lat, lon)) in points.iter().enumerate() {
        b.click_at(&canvas, (x, y));
        b.wait_for(
            &format!("document.querySelectorAll('#gcps tr').length === {}", i + 1),
            long,
        );
        let row = format!("#gcps tr:nth-child({})", i + 1);
        b.type_into(
            &b.find(&format!("{row} .gcp-lat"), long),
            &format!("{}\u{E007}", lat + shift),
        );
        b.type_into(
            &b.find(&format!("{row} .gcp-lon"), long),
            &format!("{lon}\u{E007}"),
        );
    }
    b.click(&b.find("#c-check", long));
    b.wait_for(
        "document.getElementById('c-msg').textContent.startsWith('Fits')",
        long,
    );
    let errors =
        b.eval("[...document.querySelectorAll('#gcps .gcp-error')].map(e => e.textContent)");
    assert_eq!(
        errors,
        serde_json::json!(["0.00", "0.00", "0.00", "0.00"]),
        "four points fit exactly"
    );
    b.click(&b.find("#c-save", long));
    b.wait_for(
        "document.getElementById('c-msg').textContent.includes('Saved (version 1)')",
        long,
    );
    let cal: Value = get(&format!("{}/api/calibrations/street", node.url)).unwrap();
    assert_eq!(
        (cal["source"].as_str(), cal["version"].as_i64()),
        (Some("registry"), Some(1)),
        "{cal}"
    );
    drop(b);
    // the camera starts again with it: the van, still parked, is now placed about
    // 167 m north, in another cell, so a second case opens there
    let moved = eventually(
        "a case placed by the new calibration",
        &node,
        Duration::from_secs(90),
        || cases()?.into_iter().find(|c| c["id"] != first["id"]),
    );
    let north = moved["lat"].as_f64().unwrap() - first["lat"].as_f64().unwrap();
    assert!(
        (north - shift).abs() < 0.0004,
        "moved {north}° north: {moved} vs {first}"
    );
    let log = node.log();
    assert!(log.contains("calibrations: 1 from the registry"), "{log}");
}

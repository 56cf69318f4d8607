//! A new PTZ preset made in the editor, in headless Chromium over WebDriver, against
//! `gridwatch run` on the street clip: the operator adds a preset to the camera
//! there; it has no picture yet, so the scene cannot recognise it and a zone drawn
//! for it finds nothing; the editor says the preset has no reference, the operator
//! captures the live frame as its reference, and within seconds the camera is
//! recognised at the preset and the parked van's case is filed in it.

mod common;

use std::time::{Duration, Instant};

use common::node::{call, eventually, get, Node};
use common::path;
use common::webdriver::Browser;

const TOKEN: &str = "preset-editor-token";

#[test]
fn a_preset_added_and_captured_in_the_editor_is_recognised_and_its_rules_run() {
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
id = "ptz"
source = "{clip}"
every = "1s"
location = [31.2305, 121.4738]
"#,
        data = dir.join("data").display(),
        clip = path("samples/street.mp4").display(),
    );
    let cfg_path = dir.join("g.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let node = Node::start("n1", &cfg_path, "", dir);
    let camera = || get(&format!("{}/api/cameras/ptz", node.url));
    let cases = || {
        let d = get(&format!("{}/api/cases?kind=illegal_parking", node.url))?;
        Some(d["cases"].as_array()?.clone())
    };
    eventually(
        "the camera's frames",
        &node,
        Duration::from_secs(60),
        || camera()?["last_frame"].is_string().then_some(()),
    );
    let b = Browser::start();
    let long = Duration::from_secs(20);
    b.goto(&format!("{}/", node.url));
    b.eval(&format!(
        "sessionStorage.setItem('gridwatch-token', '{TOKEN}')"
    ));
    b.goto(&format!("{}/editor", node.url));
    b.wait_for(
        "document.getElementById('canvas').dataset.loaded === '1'",
        long,
    );
    assert_eq!(b.eval("document.getElementById('view').value"), "ptz");
    b.type_into(&b.find("#p-id", long), "road");
    b.click(&b.find("#p-new", long));
    b.wait_for(
        "document.getElementById('p-msg').textContent.startsWith('Added preset road')",
        long,
    );
    assert_eq!(b.eval("document.getElementById('view').value"), "ptz@road");
    eventually(
        "the camera at a preset it cannot recognise",
        &node,
        Duration::from_secs(30),
        || (camera()?["view"]["state"] == "no_reference").then_some(()),
    );
    // a no-parking zone of the preset, where the van parks
    let zone = serde_json::json!({
        "type": "Feature",
        "properties": {"kind": "no_parking", "camera": "ptz@road"},
        "geometry": {"type": "Polygon", "coordinates": [[[620, 70], [766, 70], [766, 130], [620, 130], [620, 70]]]}
    });
    let (s, body) = call(
        reqwest::Method::PUT,
        &format!("{}/api/zones/np-road", node.url),
        Some(TOKEN),
        Some(&zone.to_string()),
    )
    .unwrap();
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    // longer than the dwell: the preset is not recognised, so its rules wait
    std::thread::sleep(Duration::from_secs(20));
    assert_eq!(cases().map(|c| c.len()), Some(0), "no reference, no case");

    b.eval("document.getElementById('refresh').click()");
    b.wait_for(
        "document.getElementById('canvas').dataset.loaded === '1' && document.getElementById('ref-panel').dataset.source === 'none'",
        long,
    );
    assert!(b
        .text(&b.find("#r-status", long))
        .contains("None yet: the camera is never recognised at this preset"));
    b.click(&b.find("#r-capture", long));
    b.wait_for(
        "document.getElementById('r-msg').textContent.startsWith('Captured (version 1, 768×576)')",
        long,
    );
    let captured = Instant::now();
    b.wait_for(
        "document.getElementById('ref-panel').dataset.source === 'registry' && !document.getElementById('r-img').classList.contains('hidden') && document.getElementById('r-img').naturalWidth === 768",
        long,
    );
    assert!(b
        .text(&b.find("#r-status", long))
        .starts_with("Captured by config-token"));
    drop(b);

    // the camera starts again with the picture: it is at the preset, and its rules run
    eventually(
        "the camera recognised at the preset",
        &node,
        Duration::from_secs(30),
        || {
            let c = camera()?;
            (c["view"]["state"] == "steady" && c["view"]["preset"] == "road").then_some(())
        },
    );
    eprintln!("recognised {:?} after the capture", captured.elapsed());
    let case = eventually(
        "the van's case in the preset's zone",
        &node,
        Duration::from_secs(90),
        || cases()?.first().cloned(),
    );
    eprintln!("a case {:?} after the capture", captured.elapsed());
    let id = case["id"].as_i64().unwrap();
    let detail = get(&format!("{}/api/cases/{id}", node.url)).unwrap();
    assert_eq!(detail["zones"][0]["zone"], "np-road", "{detail}");
    let (s, log) = call(
        reqwest::Method::GET,
        &format!("{}/api/audit?target=reference/ptz@road", node.url),
        Some(TOKEN),
        None,
    )
    .unwrap();
    assert_eq!(s, 200);
    let log: serde_json::Value = serde_json::from_slice(&log).unwrap();
    assert_eq!(log["entries"][0]["action"], "reference.capture", "{log}");
    assert_eq!(log["entries"][0]["after"]["width"], 768, "{log}");
    assert!(node
        .log()
        .contains("reference pictures: 1 captured in the registry"));
}

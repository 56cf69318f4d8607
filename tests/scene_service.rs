//! The scene in `gridwatch run`, on clips made the way cameras deliver them
//! (FFmpeg with x264's defaults: B-frames, long GOPs): a PTZ camera touring two
//! presets is seen at each in `/api/cameras` and the metrics, and files nothing as a
//! fault while it is steered; a camera capped mid-stream files one camera-fault case,
//! which reaches the workflow (the built-in Open311 inbox) under its own service code.
//! (A zone saved while the camera runs: tests/editor.rs.)

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::node::{eventually, get, get_text, Node};
use common::{ffmpeg, path};
use serde_json::Value;

/// The street clip as a PTZ camera touring two presets sees it: 608×456 of the
/// 768×576 view, at the road (160, 0) for 8 s, a one-second move, at the plaza
/// (0, 120) for 8 s, a move back; and a picture of each preset.
fn tour(dir: &Path) {
    let street = path("samples/street.mp4");
    let street = street.to_str().unwrap();
    // 0 at the road, 1 at the plaza
    let p = "if(lt(mod(t,18),9),clip(mod(t,18)-8,0,1),1-clip(mod(t,18)-17,0,1))";
    let crop = format!("crop=w=608:h=456:x='160-160*({p})':y='120*({p})'");
    ffmpeg(&[
        "-i",
        street,
        "-vf",
        &crop,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        dir.join("tour.mp4").to_str().unwrap(),
    ]);
    for (name, x, y) in [("road", 160, 0), ("plaza", 0, 120)] {
        ffmpeg(&[
            "-i",
            street,
            "-vf",
            &format!("crop=608:456:{x}:{y}"),
            "-frames:v",
            "1",
            dir.join(format!("{name}.jpg")).to_str().unwrap(),
        ]);
    }
}

/// The street clip, capped (black) from 4 s on, 40 s long.
fn capped(dir: &Path) {
    ffmpeg(&[
        "-i",
        path("samples/street.mp4").to_str().unwrap(),
        "-t",
        "40",
        "-vf",
        "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,4)'",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        dir.join("capped.mp4").to_str().unwrap(),
    ]);
}

#[test]
fn a_touring_ptz_camera_is_seen_at_its_presets_and_a_capped_camera_files_a_fault_case() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tour(dir);
    capped(dir);
    let d = |name: &str| dir.join(name).display().to_string();
    let cfg = format!(
        r#"data_dir = "{data}"
[api]
listen = "127.0.0.1:0"
open_reads = true
[rules]
view_fault_after = "6s"

[[camera]]
id = "tour"
source = "{tour}"
every = "1s"
location = [31.2305, 121.4738]
[[camera.presets]]
id = "road"
reference = "{road}"
[[camera.presets]]
id = "plaza"
reference = "{plaza}"

[[camera]]
id = "capped"
source = "{capped}"
every = "1s"
calibration = "{cal}"
"#,
        data = d("data"),
        tour = d("tour.mp4"),
        road = d("road.jpg"),
        plaza = d("plaza.jpg"),
        capped = d("capped.mp4"),
        cal = path("calibration/street.toml").display(),
    );
    let cfg_path = dir.join("g.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let check = common::gridwatch(&["config", "check", cfg_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "config check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let node = Node::start("n1", &cfg_path, "", dir);
    // the touring camera, seen at both presets (and, between them, at none or moved)
    let mut presets = BTreeSet::new();
    let mut tour_states = BTreeSet::new();
    let mut metric_seen = false;
    eventually(
        "the tour at both presets",
        &node,
        Duration::from_secs(90),
        || {
            let cams = get(&format!("{}/api/cameras", node.url))?;
            let tour = cams.as_array()?.iter().find(|c| c["id"] == "tour")?.clone();
            if let Some(p) = tour["view"]["preset"].as_str() {
                presets.insert(p.to_string());
            }
            if let Some(s) = tour["view"]["state"].as_str() {
                tour_states.insert(s.to_string());
            }
            let m = get_text(&format!("{}/metrics", node.url)).unwrap_or_default();
            metric_seen |= m.contains(
                "gridwatch_camera_view{camera=\"tour\",state=\"steady\",preset=\"road\"} 1",
            ) || m.contains(
                "gridwatch_camera_view{camera=\"tour\",state=\"steady\",preset=\"plaza\"} 1",
            );
            (presets.len() == 2 && metric_seen).then_some(())
        },
    );
    eprintln!("tour: presets {presets:?}, states {tour_states:?}");
    // the capped camera: covered, then one camera-fault case, delivered
    let case: Value = eventually(
        "the camera-fault case",
        &node,
        Duration::from_secs(60),
        || {
            let doc = get(&format!("{}/api/cases?kind=camera_fault", node.url))?;
            doc["cases"].as_array()?.first().cloned()
        },
    );
    assert_eq!(case["cameras"], serde_json::json!(["capped"]), "{case}");
    let cams = get(&format!("{}/api/cameras", node.url)).unwrap();
    let capped = cams
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "capped")
        .unwrap();
    assert_eq!(capped["view"]["state"], "covered", "{capped}");
    let id = case["id"].as_i64().unwrap().to_string();
    let req = eventually(
        "the fault at the inbox",
        &node,
        Duration::from_secs(30),
        || {
            let list = get(&format!("{}/open311/v2/requests.json", node.url))?;
            list.as_array()?
                .iter()
                .find(|r| r["attributes"]["gridwatch_case_id"].as_str() == Some(id.as_str()))
                .cloned()
        },
    );
    assert_eq!(req["service_code"], "9001", "{req}");
    // steering between presets is no fault
    let faults = get(&format!("{}/api/cases?kind=camera_fault", node.url)).unwrap();
    assert_eq!(faults["total"], 1, "{faults}");
}

//! A drone in `gridwatch run`, beside a fixed camera: the drone's view of the street
//! (rendered from the street clip through the calibration, tests/common/drone.rs,
//! encoded with x264's defaults) is served over RTSP by a real server, and its
//! telemetry comes over UDP, stamped as it is sent; the drone hovers 3 m beside the
//! street camera. Both see the parked van: one case, both cameras on it, placed in
//! the same cell; `/api/cameras` shows the drone's poses, counts and footprint. The
//! review page (in Chromium) draws the case on a small map of its grid cells and
//! zones with the drone's frame on the ground around its point, and the cameras view
//! what the drone sees now.

mod common;

use std::time::Duration;

use common::drone::{beside, render_clip, street_camera, telemetry, H, W};
use common::node::{eventually, get, Node};
use common::path;
use common::rtsp::RtspServer;
use common::webdriver::Browser;
use gridwatch::geo::calib::Calibration;
use gridwatch::geo::drone::DroneCamera;

#[test]
fn a_drone_and_a_fixed_camera_on_the_same_van_make_one_case() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cal = Calibration::load(&path("calibration/street.toml")).unwrap();
    let (start, hfov, _) = street_camera(&cal);
    let pose = beside(&start, 3.0);
    let cam = DroneCamera {
        width: W,
        height: H,
        hfov_deg: hfov,
    };
    let clip = dir.join("drone.mp4");
    render_clip(&cal, &cam, &pose, 10, &clip);
    let server = RtspServer::start(&[&format!("drone=h264:{}", clip.display())], 0);
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let cfg = format!(
        r#"data_dir = "{data}"
[api]
listen = "127.0.0.1:0"
open_reads = true
[geo]
zones = "{zones}"
grid = "{grid}"
[rules]
override_zone_dwell = true
parking = {{ dwell = "15s" }}

[[camera]]
id = "street"
source = "{street}"
every = "1s"
calibration = "{cal}"

[[camera]]
id = "drone-1"
source = "{rtsp}"
every = "1s"
[camera.drone]
telemetry = "udp://127.0.0.1:{port}"
hfov_deg = {hfov}
"#,
        data = dir.join("data").display(),
        zones = path("samples/geo/zones.geojson").display(),
        grid = path("samples/geo/grid.geojson").display(),
        street = path("samples/street.mp4").display(),
        cal = path("calibration/street.toml").display(),
        rtsp = server.url("drone"),
    );
    let cfg_path = dir.join("g.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let _poses = telemetry(format!("127.0.0.1:{port}").parse().unwrap(), pose);
    let node = Node::start("n1", &cfg_path, "", dir);
    let parking = || {
        let d = get(&format!("{}/api/cases?kind=illegal_parking", node.url))?;
        Some(d["cases"].as_array()?.clone())
    };
    let case = eventually(
        "one parking case with both cameras",
        &node,
        Duration::from_secs(120),
        || {
            parking()?.into_iter().find(|c| {
                let mut cams: Vec<_> = c["cameras"].as_array().into_iter().flatten().collect();
                cams.sort_by_key(|v| v.to_string());
                cams == [&serde_json::json!("drone-1"), &serde_json::json!("street")]
            })
        },
    );
    assert_eq!(
        parking().map(|c| c.len()),
        Some(1),
        "one van, one case: {case}"
    );
    assert!(
        case["cell"].as_str().unwrap().starts_with("310101-"),
        "{case}"
    );
    let drone = get(&format!("{}/api/cameras/drone-1", node.url)).unwrap();
    let frames = &drone["drone_frames"];
    assert!(frames["posed"].as_u64().unwrap() > 10, "{drone}");
    assert_eq!(frames["pose"]["alt_agl"], pose.alt_agl, "{drone}");
    let footprint = frames["footprint"].as_array().unwrap();
    assert_eq!(footprint.len(), 4, "{drone}");
    assert!(case["count"].as_i64().unwrap() >= 2, "{case}");
    // the case's sightings keep the drone's frame on the ground
    let doc = get(&format!("{}/api/cases/{}", node.url, case["id"])).unwrap();
    let by_drone: Vec<_> = doc["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["camera"] == "drone-1")
        .collect();
    assert!(!by_drone.is_empty(), "{doc}");
    assert!(
        by_drone
            .iter()
            .all(|s| s["footprint"].as_array().is_some_and(|f| f.len() == 4)),
        "{doc}"
    );
    // the review page draws them: the case's point inside the drone's frame, in its
    // grid cell; the cameras view draws what the drone sees now
    let b = Browser::start();
    b.goto(&format!("{}/", node.url));
    let long = Duration::from_secs(20);
    let row = format!("#list .row[data-case-id='{}']", case["id"]);
    b.click(&b.find(&row, long));
    b.wait_for(
        "document.querySelector('#case-map polygon.footprint[data-camera=\"drone-1\"]') !== null",
        long,
    );
    let inside = b.eval(
        "(() => { const m = document.getElementById('case-map'), p = m.querySelector('circle.point');
           const pt = new DOMPoint(+p.getAttribute('cx'), +p.getAttribute('cy'));
           const f = [...m.querySelectorAll('polygon.footprint')];
           return { in_frame: f.some((e) => e.isPointInFill(pt)),
                    in_cell: [...m.querySelectorAll('polygon.cell.here')].some((e) => e.isPointInFill(pt)),
                    zones: m.querySelectorAll('polygon.zone').length }; })()",
    );
    assert_eq!(inside["in_frame"], true, "{inside}");
    assert_eq!(inside["in_cell"], true, "{inside}");
    assert!(inside["zones"].as_u64().unwrap() >= 1, "{inside}");
    b.click(&b.find("#tab-cams", long));
    b.wait_for(
        "document.querySelector('.cam[data-camera=\"drone-1\"] svg.map polygon.footprint') !== null
         && document.querySelector('.cam[data-camera=\"drone-1\"] svg.map circle.drone') !== null",
        long,
    );
    drop(server);
}

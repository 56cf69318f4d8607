//! The registry at a city's scale on one node: 10 000 cameras imported from a
//! catalogue on the command line — 9 998 whose sources do not answer, two served by the
//! test RTSP server — then run: the served two stream while the others back off, the
//! list pages through all of them, a deletion stops its camera, memory stays bounded
//! and SIGTERM ends the node within seconds. Figures are printed (the benchmark
//! `cargo bench --bench registry` measures them properly).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

mod common;

use common::node::{call, Node};
use common::rtsp::{closed_port, RtspServer};

const ROOT: &str = "scale-root-token";

fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    t.elapsed()
}

fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[test]
fn ten_thousand_cameras_on_one_node() {
    let server = RtspServer::start(
        &["a=h264:samples/street.mp4", "b=h264:samples/street.mp4"],
        0,
    );
    let dead = closed_port();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut csv = String::from("id,source,every,lat,lon,label.district\n");
    for i in 0..10_000 {
        let source = match i {
            0 => server.url("a").to_string(),
            1 => server.url("b").to_string(),
            _ => format!("rtsp://127.0.0.1:{dead}/cam-{i}"),
        };
        csv.push_str(&format!("cam-{i:05},{source},4s,31.2,121.4,d{}\n", i % 16));
    }
    let file = tmp.path().join("catalogue.csv");
    std::fs::write(&file, csv).unwrap();
    let out = common::gridwatch(&[
        "cameras",
        "import",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("10000 new"), "{said}");
    eprintln!("{}", said.trim());

    let cfg = tmp.path().join("gridwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[api]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ROOT}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut node = Node::start("gw-scale", &cfg, "", tmp.path());
    eprintln!("the node answered {:?} after its start", t0.elapsed());
    let get = |path: &str| -> (u16, Value, Duration) {
        let t = Instant::now();
        let (s, b) = call(
            Method::GET,
            &format!("{}{path}", node.url),
            Some(ROOT),
            None,
        )
        .expect("an answer");
        (
            s,
            serde_json::from_slice(&b).unwrap_or(Value::Null),
            t.elapsed(),
        )
    };
    // the served two stream, the others back off
    let streamed = wait_for(Duration::from_secs(60), "the served cameras stream", || {
        ["cam-00000", "cam-00001"].iter().all(|id| {
            get(&format!("/api/cameras/{id}")).1["decoded"]
                .as_u64()
                .unwrap_or(0)
                > 0
        })
    });
    eprintln!("both served cameras decoded frames {streamed:?} after the node answered");
    let (_, dead_one, _) = get("/api/cameras/cam-05000");
    assert!(
        ["backing_off", "connecting"].contains(&dead_one["state"].as_str().unwrap_or("")),
        "{dead_one}"
    );
    // every page, each camera once
    let mut seen = std::collections::BTreeSet::new();
    let mut slowest = Duration::ZERO;
    for page in 0..10 {
        let (s, v, took) = get(&format!("/api/cameras?limit=1000&offset={}", page * 1000));
        assert_eq!(s, 200);
        slowest = slowest.max(took);
        for c in v.as_array().unwrap() {
            assert!(seen.insert(c["id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(seen.len(), 10_000);
    eprintln!("10 pages of 1000 cameras, the slowest answered in {slowest:?}");
    let (s, v, _) = get("/api/cameras?label=district:d7&limit=1000");
    assert_eq!((s, v.as_array().unwrap().len()), (200, 625));
    let (s, _, took) = get("/metrics");
    assert_eq!(s, 200);
    eprintln!("/metrics with 10 000 cameras answered in {took:?}");
    // one served camera deleted: it stops, the other streams on
    let (s, _) = call(
        Method::DELETE,
        &format!("{}/api/cameras/cam-00001", node.url),
        Some(ROOT),
        None,
    )
    .unwrap();
    assert_eq!(s, 204);
    wait_for(Duration::from_secs(10), "the deleted camera stops", || {
        !node.running_as(Some(ROOT)).contains("cam-00001")
    });
    let before = get("/api/cameras/cam-00000").1["decoded"]
        .as_u64()
        .unwrap_or(0);
    wait_for(Duration::from_secs(20), "the other one streams on", || {
        get("/api/cameras/cam-00000").1["decoded"]
            .as_u64()
            .unwrap_or(0)
            > before
    });
    let rss = rss_mib(node.child.id());
    eprintln!("resident memory with 10 000 cameras: {rss:.0} MiB");
    assert!(rss < 2048.0, "{rss} MiB");
    unsafe {
        libc::kill(node.child.id() as i32, libc::SIGTERM);
    }
    let t = Instant::now();
    loop {
        if node.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "no exit 6 s after SIGTERM\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("exited {:?} after SIGTERM", t.elapsed());
}

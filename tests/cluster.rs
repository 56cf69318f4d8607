//! Many gridwatch nodes over one real PostgreSQL (a throwaway cluster on 127.0.0.1):
//! the camera leases directly (three nodes share 30 cameras, a dead node's cameras are
//! taken over after its TTL, a clean leave hands them over at once, a node name used
//! twice is refused), and three `gridwatch run` processes over 30 file cameras: every
//! camera on exactly one node, one case for the van every node's cameras see, a node
//! killed with SIGKILL and its cameras picked up by the others, PostgreSQL restarted
//! mid-run, the workflow receiver down and then back — every case filed exactly once;
//! and a node whose network to the database goes silent (a freezable proxy) stops its
//! cameras before the other node takes them, and takes its share back afterwards.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cases::dedup;
use common::node::{get, get_bytes, status, Node};
use common::pg::Pg;
use common::proxy::Proxy;
use gridwatch::cases::postgres::PgStore;
use gridwatch::cases::{CaseStore, DeliveryState};
use gridwatch::cluster::Membership;

fn cameras(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("cam-{i:02}")).collect()
}

/// Which node holds each camera (by the nodes' own reckoning), panicking on a camera
/// held twice.
fn owners(nodes: &[&Membership]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in nodes {
        for c in n.held() {
            if let Some(other) = out.insert(c.clone(), n.node().to_string()) {
                panic!("{c} held by both {other} and {}", n.node());
            }
        }
    }
    out
}

#[test]
fn leases_share_the_cameras_and_move_only_a_dead_or_leaving_nodes_share() {
    let pg = Pg::start();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    drop(PgStore::open(&url, tmp.path(), dedup()).unwrap()); // migrations
    let ttl = Duration::from_secs(3);
    let cams = cameras(30);
    let node = |name: &str| Membership::new(&url, name, None, cams.clone(), ttl);
    let (a, b, c) = (node("gw-a"), node("gw-b"), node("gw-c"));
    for _ in 0..2 {
        for n in [&a, &b, &c] {
            n.beat().unwrap();
        }
    }
    let before = owners(&[&a, &b, &c]);
    assert_eq!(before.len(), 30, "every camera held: {before:?}");
    for n in [&a, &b, &c] {
        let share = n.held().len();
        assert!((4..=16).contains(&share), "{}: {share} of 30", n.node());
        assert_eq!(n.live_nodes(), ["gw-a", "gw-b", "gw-c"]);
    }
    let holders = a.holders().unwrap();
    for (cam, node) in &before {
        assert_eq!(&holders[cam].node, node, "the lease table agrees");
    }

    // gw-d joins: only cameras that now prefer it move, each to gw-d
    let d = node("gw-d");
    for _ in 0..2 {
        for n in [&a, &b, &c, &d] {
            n.beat().unwrap();
        }
    }
    let joined = owners(&[&a, &b, &c, &d]);
    assert_eq!(joined.len(), 30);
    let moved: Vec<&String> = joined
        .iter()
        .filter(|(cam, node)| before[*cam] != **node)
        .map(|(cam, _)| cam)
        .collect();
    assert!(!moved.is_empty() && moved.len() <= 15, "{moved:?}");
    for cam in &moved {
        assert_eq!(joined[*cam], "gw-d", "{cam} moved to another old node");
    }
    // … and leaves again: its share goes back where it was
    d.leave().unwrap();
    for _ in 0..2 {
        for n in [&a, &b, &c] {
            n.beat().unwrap();
        }
    }
    assert_eq!(owners(&[&a, &b, &c]), before);

    // a second process claiming to be gw-a is refused
    let twin = node("gw-a");
    let err = twin.beat().unwrap_err();
    assert!(err.contains("another gridwatch process"), "{err}");
    assert!(twin.held().is_empty());

    // gw-c dies (stops beating): it stops its own cameras when its leases run out by
    // its own clock, and the others take them at their first beat after that
    let c_share = c.held();
    let died = Instant::now();
    while !c.held().is_empty() {
        assert!(died.elapsed() < ttl + Duration::from_millis(200));
        a.beat().unwrap();
        b.beat().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let taken = loop {
        a.beat().unwrap();
        b.beat().unwrap();
        let o = owners(&[&a, &b, &c]);
        if o.len() == 30 {
            break died.elapsed();
        }
        assert!(
            died.elapsed() < ttl * 2,
            "after {:?} only {} cameras held",
            died.elapsed(),
            o.len()
        );
        std::thread::sleep(ttl / 3);
    };
    assert!(taken >= ttl - Duration::from_millis(500), "{taken:?}");
    let after = owners(&[&a, &b, &c]);
    for (cam, node) in &before {
        if !c_share.contains(cam) {
            assert_eq!(&after[cam], node, "{cam} moved though its node lived");
        }
    }

    // gw-b leaves cleanly: gw-a has everything at its next beat, no TTL wait
    b.leave().unwrap();
    assert!(b.held().is_empty());
    a.beat().unwrap();
    assert_eq!(a.held().len(), 30);
    assert_eq!(a.live_nodes(), ["gw-a"]);
}

/// Waits for `cond`, up to `limit`, polling every 250 ms; panics with `what()`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "after {limit:?}: {}", what());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn three_nodes_share_thirty_cameras_survive_a_kill_a_restart_and_file_each_case_once() {
    let pg = Pg::start();
    let store_url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let p = |rel: &str| common::path(rel).display().to_string();
    let inbox_port = free_port();
    let mut cfg = format!(
        r#"data_dir = "{data}"
store_env = "GW_TEST_STORE"
[api]
listen = "127.0.0.1:0"
open_reads = true
[cluster]
lease_ttl = "3s"
[geo]
zones = "{zones}"
grid = "{grid}"
[rules]
override_zone_dwell = true
parking = {{ dwell = "10s" }}
dumping = {{ dwell = "10m" }}
construction = {{ dwell = "10m" }}
[delivery]
target = "open311"
url = "http://127.0.0.1:{inbox_port}/open311/v2"
api_key_env = "GW_TEST_INBOX_KEY"
retry_initial = "300ms"
retry_max = "1s"
"#,
        data = tmp.path().join("data").display(),
        zones = p("samples/geo/zones.geojson"),
        grid = p("samples/geo/grid.geojson"),
    );
    // 30 cameras of the same street (two clips of it), one frame every 4 s: the van
    // parked there is seen by cameras on every node
    for (i, cam) in cameras(30).iter().enumerate() {
        let clip = if i % 2 == 0 {
            "samples/street.mp4"
        } else {
            "tests/fixtures/clips/street-dumping.mp4"
        };
        cfg.push_str(&format!(
            "[[camera]]\nid = \"{cam}\"\nsource = \"{}\"\nevery = \"4s\"\ncalibration = \"{}\"\n",
            p(clip),
            p("calibration/street.toml")
        ));
    }
    let cfg_path = tmp.path().join("gridwatch.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut nodes: Vec<Node> = ["gw-a", "gw-b", "gw-c"]
        .iter()
        .map(|n| {
            // each node its own data directory (nothing on disk is shared)
            let dir = tmp.path().join(n);
            std::fs::create_dir_all(&dir).unwrap();
            Node::start(n, &cfg_path, &store_url, &dir)
        })
        .collect();
    let store = PgStore::open(&store_url, tmp.path(), dedup()).unwrap();
    let all: BTreeSet<String> = cameras(30).into_iter().collect();

    // every camera on exactly one node
    let shares =
        |nodes: &[Node]| -> Vec<BTreeSet<String>> { nodes.iter().map(Node::running).collect() };
    let covered_once = |s: &[BTreeSet<String>]| {
        let total: usize = s.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<String> = s.iter().flatten().cloned().collect();
        total == 30 && union == all
    };
    // (the first node up holds everything until the others join, then hands over)
    // (settled: the same for longer than a heartbeat)
    let mut last = (Vec::new(), Instant::now());
    wait_for(
        Duration::from_secs(30),
        || {
            let s = shares(&nodes);
            if s != last.0 {
                last = (s, Instant::now());
                return false;
            }
            covered_once(&s)
                && s.iter().all(|x| x.len() >= 4)
                && last.1.elapsed() > Duration::from_millis(1500)
        },
        || format!("shares {:?}", shares(&nodes)),
    );
    let first = shares(&nodes);
    // every node's /api/cameras names the holder of the cameras it does not run (read
    // at most once a heartbeat)
    for n in &nodes {
        let consistent = || {
            let view = get(&format!("{}/api/cameras", n.url)).unwrap();
            let view = view.as_array().unwrap();
            view.len() == 30
                && view.iter().all(|c| {
                    let id = c["id"].as_str().unwrap();
                    let holder = nodes.iter().zip(&first).find(|(_, s)| s.contains(id));
                    holder.is_some_and(|h| c["node"] == h.0.name.as_str())
                })
        };
        wait_for(Duration::from_secs(5), consistent, || {
            format!(
                "{}'s view: {:?}",
                n.name,
                get(&format!("{}/api/cameras", n.url))
            )
        });
    }

    // the van: one parking case, seen by cameras held on different nodes
    let node_of = |cam: &str, s: &[BTreeSet<String>]| {
        s.iter().position(|x| x.contains(cam)).unwrap_or(usize::MAX)
    };
    wait_for(
        Duration::from_secs(120),
        || {
            store.cases(None, 50).unwrap().iter().any(|c| {
                c.kind == "illegal_parking"
                    && c.cameras
                        .iter()
                        .map(|cam| node_of(cam, &first))
                        .collect::<BTreeSet<_>>()
                        .len()
                        >= 2
            })
        },
        || {
            format!(
                "cases {:?}\n{}",
                store.cases(None, 50).unwrap(),
                nodes[0].log()
            )
        },
    );

    // its evidence is served by every node, whichever node recorded it
    let van = store
        .cases(None, 50)
        .unwrap()
        .into_iter()
        .find(|c| c.kind == "illegal_parking")
        .unwrap();
    let ev = store.evidence(van.id).unwrap();
    assert!(!ev.is_empty());
    let served: Vec<Vec<u8>> = nodes
        .iter()
        .map(|n| get_bytes(&format!("{}/{}", n.url, ev[0].file)).unwrap_or_default())
        .collect();
    for (n, b) in nodes.iter().zip(&served) {
        assert!(b.starts_with(&[0xFF, 0xD8]), "{} served no JPEG", n.name);
        assert_eq!(b, &served[0], "{} served other bytes", n.name);
    }

    // SIGKILL one node: its cameras go to the other two within the TTL (+ a heartbeat)
    let killed = nodes.pop().unwrap();
    let killed_share = first[2].clone();
    unsafe {
        libc::kill(killed.child.id() as i32, libc::SIGKILL);
    }
    let t = Instant::now();
    wait_for(
        Duration::from_secs(10),
        || covered_once(&shares(&nodes)),
        || format!("after the kill: {:?}", shares(&nodes)),
    );
    eprintln!(
        "a killed node's {} cameras were running elsewhere {:?} after SIGKILL",
        killed_share.len(),
        t.elapsed()
    );
    let second = shares(&nodes);
    for i in 0..2 {
        assert!(
            first[i].is_subset(&second[i]),
            "{} lost cameras though it lived: {:?} → {:?}",
            nodes[i].name,
            first[i],
            second[i]
        );
    }
    drop(killed);

    // PostgreSQL restarts mid-run: the nodes reconnect and carry on
    let frames_before: Vec<f64> = nodes
        .iter()
        .map(|n| n.metric("gridwatch_detect_frames_total"))
        .collect();
    pg.restart();
    // this test's own connection went with the restart: its next call reconnects
    let _ = store.cases(None, 1);
    std::thread::sleep(Duration::from_secs(2));
    wait_for(
        Duration::from_secs(20),
        || covered_once(&shares(&nodes)),
        || format!("after the restart: {:?}", shares(&nodes)),
    );
    wait_for(
        Duration::from_secs(30),
        || {
            nodes.iter().zip(&frames_before).all(|(n, b)| {
                n.metric("gridwatch_detect_frames_total") > b + 10.0
                    && n.metric("gridwatch_violations_waiting") == 0.0
            })
        },
        || format!("{}\n{}", nodes[0].log(), nodes[1].log()),
    );
    for n in &nodes {
        assert_eq!(n.metric("gridwatch_violations_lost_total"), 0.0);
    }
    // the store still decides: still one parking case, absorbing new sightings
    let parking = |s: &PgStore| {
        s.cases(None, 50)
            .unwrap()
            .into_iter()
            .filter(|c| c.kind == "illegal_parking")
            .collect::<Vec<_>>()
    };
    let seen = parking(&store)[0].count;
    wait_for(
        Duration::from_secs(60),
        || parking(&store)[0].count > seen,
        || {
            format!(
                "no sighting recorded after the restart: {:?}",
                parking(&store)
            )
        },
    );
    assert_eq!(
        parking(&store).len(),
        1,
        "one van, one case: {:?}",
        parking(&store)
    );

    // the receiver was down all along: nothing delivered yet, attempts recorded
    let cases = store.cases(None, 100).unwrap();
    assert!(!cases.is_empty());
    for c in &cases {
        let d = &store.deliveries(Some(c.id)).unwrap()[0];
        assert_eq!(d.state, DeliveryState::Pending, "{d:?}");
        assert!(d.attempts >= 1, "tried while the receiver was down: {d:?}");
    }
    // … then it comes up: each case filed exactly once, by whichever node
    let mut inbox = common::gridwatch(&[
        "inbox",
        "--data",
        tmp.path().join("inbox").to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{inbox_port}"),
        "--client-env",
        &format!("gridwatch={}", common::cases::INBOX_KEY_ENV),
    ])
    .env(common::cases::INBOX_KEY_ENV, common::cases::INBOX_KEY)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let creates_delivered = || {
        store
            .cases(None, 100)
            .unwrap()
            .iter()
            .all(|c| store.deliveries(Some(c.id)).unwrap()[0].state == DeliveryState::Delivered)
    };
    wait_for(Duration::from_secs(30), creates_delivered, || {
        format!("{:?}", store.deliveries(None).unwrap())
    });
    let requests = get(&format!(
        "http://127.0.0.1:{inbox_port}/open311/v2/requests.json"
    ))
    .unwrap();
    let requests = requests.as_array().unwrap();
    let cases = store.cases(None, 100).unwrap();
    assert_eq!(
        requests.len(),
        cases.len(),
        "one request per case: {requests:?}"
    );
    let mut ids: Vec<&str> = requests
        .iter()
        .map(|r| r["service_request_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), cases.len(), "no request twice");
    let _ = inbox.kill();
    let _ = inbox.wait();

    // a clean stop gives the leases back
    for mut n in nodes {
        unsafe {
            libc::kill(n.child.id() as i32, libc::SIGTERM);
        }
        let status = n.child.wait().unwrap();
        assert!(status.success(), "{}:\n{}", n.name, n.log());
        assert!(n.log().contains("camera leases given back"), "{}", n.log());
    }
    let mut c = postgres::Client::connect(&store_url, postgres::NoTls).unwrap();
    let left: i64 = c
        .query_one("SELECT count(*) FROM camera_leases", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn a_node_cut_off_from_the_database_stops_its_cameras_before_another_takes_them() {
    let pg = Pg::start();
    let direct = pg.database();
    let (proxy, via_proxy) = Proxy::to_database(&direct);
    let tmp = tempfile::tempdir().unwrap();
    let p = |rel: &str| common::path(rel).display().to_string();
    let mut cfg = format!(
        "data_dir = \"{}\"\nstore_env = \"GW_TEST_STORE\"\n[api]\nlisten = \"127.0.0.1:0\"\nopen_reads = true\n[cluster]\nlease_ttl = \"6s\"\n",
        tmp.path().join("data").display()
    );
    for cam in cameras(8) {
        cfg.push_str(&format!(
            "[[camera]]\nid = \"{cam}\"\nsource = \"{}\"\nevery = \"4s\"\ncalibration = \"{}\"\n",
            p("samples/street.mp4"),
            p("calibration/street.toml")
        ));
    }
    let cfg_path = tmp.path().join("gridwatch.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let cut = Node::start("gw-cut", &cfg_path, &via_proxy, tmp.path());
    let ok = Node::start("gw-ok", &cfg_path, &direct, tmp.path());
    let mut last = (Vec::new(), Instant::now());
    wait_for(
        Duration::from_secs(30),
        || {
            let s = vec![cut.running(), ok.running()];
            if s != last.0 {
                last = (s, Instant::now());
                return false;
            }
            s[0].len() + s[1].len() == 8
                && !s[0].is_empty()
                && !s[1].is_empty()
                && last.1.elapsed() > Duration::from_millis(1500)
        },
        || format!("{:?} {:?}", cut.running(), ok.running()),
    );
    let cut_share = cut.running();

    // the network to the database goes silent for gw-cut
    proxy.freeze(true);
    let t = Instant::now();
    let mut stopped_after = None;
    loop {
        // gw-ok first: gw-cut only ever stops cameras while cut off, so a camera it
        // still runs when asked after gw-ok ran on both at the moment gw-ok answered
        let b = ok.running();
        let a = cut.running();
        assert!(
            a.is_disjoint(&b),
            "{:?} after the cut, a camera ran on both nodes: {a:?} {b:?}\n{}",
            t.elapsed(),
            cut.log()
        );
        if a.is_empty() && stopped_after.is_none() {
            stopped_after = Some(t.elapsed());
        }
        if b.len() == 8 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "gw-ok has {b:?}, gw-cut {a:?}\n{}",
            cut.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped_after = stopped_after.expect("gw-cut stopped its cameras");
    let taken_after = t.elapsed();
    eprintln!(
        "cut off: gw-cut stopped its {} cameras after {stopped_after:?}, gw-ok ran them after {taken_after:?}",
        cut_share.len()
    );
    // TTL 6 s: renewed every 2 s, kept locally for 5 s after the last renewal
    assert!(stopped_after <= Duration::from_secs(7), "{stopped_after:?}");
    assert!(cut
        .log()
        .contains("cameras run on until their leases run out"));
    // not ready (the load balancer stops sending it the review page), but alive
    let url = |n: &Node, path: &str| format!("{}{path}", n.url);
    assert_eq!(status(&url(&cut, "/readyz")), Some(503));
    assert_eq!(status(&url(&cut, "/healthz")), Some(200));
    assert_eq!(status(&url(&ok, "/readyz")), Some(200));

    // the network comes back: gw-cut takes its share back, each camera on one node
    proxy.freeze(false);
    wait_for(
        Duration::from_secs(60),
        || {
            let (a, b) = (cut.running(), ok.running());
            a.is_disjoint(&b) && a.len() + b.len() == 8 && !a.is_empty()
        },
        || format!("{:?} {:?}\n{}", cut.running(), ok.running(), cut.log()),
    );
    assert_eq!(status(&url(&cut, "/readyz")), Some(200));
}

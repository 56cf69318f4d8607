//! The camera registry live on two nodes over one PostgreSQL store: a camera created
//! through one node's API starts within seconds on the node that leases it, and both
//! nodes list it; an update restarts it with its new settings; disabled it stops and
//! enabled it starts again; deleted it stops everywhere and its open case stays. Reads
//! need a token on both nodes; a token revoked on one node stops working on the other
//! within a poll.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

mod common;

use common::node::{call, Node};
use common::pg::Pg;

fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    t.elapsed()
}

fn json(m: Method, url: &str, token: &str, body: Option<&str>) -> (u16, Value) {
    let (s, b) = call(m, url, Some(token), body).expect("an answer");
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[test]
fn cameras_change_live_on_two_nodes() {
    let pg = Pg::start();
    let store = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let p = |rel: &str| common::path(rel).display().to_string();
    let cfg = format!(
        "data_dir = \"{}\"\nstore_env = \"GW_TEST_STORE\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
         [registry]\npoll = \"500ms\"\n[cluster]\nlease_ttl = \"3s\"\n\
         [[camera]]\nid = \"seed\"\nsource = \"{}\"\nevery = \"4s\"\ncalibration = \"{}\"\n",
        tmp.path().join("data").display(),
        p("samples/street.mp4"),
        p("calibration/street.toml"),
    );
    let cfg_path = tmp.path().join("gridwatch.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    // an admin token, made on the command line against the shared store
    let admin = common::make_token(
        &["--store-env", "GW_TEST_STORE"],
        &[("GW_TEST_STORE", &store)],
        "ops",
        "admin",
    );
    let a = Node::start("gw-a", &cfg_path, &store, tmp.path());
    let b = Node::start("gw-b", &cfg_path, &store, tmp.path());
    let nodes = [&a, &b];
    let running = |id: &str| -> Vec<String> {
        nodes
            .iter()
            .filter(|n| n.running_as(Some(&admin)).contains(id))
            .map(|n| n.name.clone())
            .collect()
    };
    let listed = |n: &Node, id: &str| {
        json(
            Method::GET,
            &format!("{}/api/cameras/{id}", n.url),
            &admin,
            None,
        )
    };

    // reads need a token on both nodes
    for n in nodes {
        assert_eq!(
            common::node::status(&format!("{}/api/cameras", n.url)),
            Some(401)
        );
        assert_eq!(
            common::node::status(&format!("{}/api/cases", n.url)),
            Some(401)
        );
    }
    wait_for(Duration::from_secs(20), "the seeded camera runs", || {
        running("seed").len() == 1
    });

    // created through gw-a: runs on one node within seconds, listed by both
    let doc = format!(
        r#"{{"id":"added","source":"{}","every":"4s","calibration":"{}","labels":{{"district":"Huangpu"}}}}"#,
        p("samples/street.mp4"),
        p("calibration/street.toml")
    );
    let (s, v) = json(
        Method::POST,
        &format!("{}/api/cameras", a.url),
        &admin,
        Some(&doc),
    );
    assert_eq!(s, 201, "{v}");
    let started = wait_for(
        Duration::from_secs(15),
        "the new camera runs on one node",
        || running("added").len() == 1,
    );
    eprintln!("a new camera ran {started:?} after its creation");
    wait_for(Duration::from_secs(5), "gw-b lists it", || {
        listed(&b, "added").0 == 200
    });
    assert_eq!(listed(&b, "added").1["labels"]["district"], "Huangpu");
    let holder = running("added")[0].clone();
    let on = |name: &str| nodes.iter().find(|n| n.name == name).unwrap();

    // updated: the holder restarts it with the new sampling
    let since = listed(on(&holder), "added").1["since"].clone();
    let doc2 = doc.replace("\"every\":\"4s\"", "\"every\":\"3s\"");
    let (s, v) = json(
        Method::PUT,
        &format!("{}/api/cameras/added", b.url),
        &admin,
        Some(&doc2),
    );
    assert_eq!(s, 200, "{v}");
    wait_for(
        Duration::from_secs(15),
        "the holder runs the new settings",
        || {
            let now = listed(on(&holder), "added").1;
            now["sampling"] == "every 3s" && now["since"] != since
        },
    );

    // a case seen by it
    let cases = gridwatch::cases::open(Some(&store), tmp.path(), Default::default()).unwrap();
    let (case_id, _) = cases
        .record(&common::cases::violation(
            "illegal_parking",
            "cell-live",
            "added",
            gridwatch::cases::now_ms(),
        ))
        .unwrap();

    // disabled: stops; enabled: starts again
    let (s, _) = json(
        Method::POST,
        &format!("{}/api/cameras/added/disable", a.url),
        &admin,
        None,
    );
    assert_eq!(s, 200);
    wait_for(Duration::from_secs(15), "the disabled camera stops", || {
        running("added").is_empty()
    });
    assert_eq!(listed(&b, "added").1["state"], "disabled");
    let (s, _) = json(
        Method::POST,
        &format!("{}/api/cameras/added/enable", b.url),
        &admin,
        None,
    );
    assert_eq!(s, 200);
    wait_for(
        Duration::from_secs(15),
        "the enabled camera runs again",
        || running("added").len() == 1,
    );

    // deleted: stops everywhere, no node lists it, its case stays open
    let (s, _) = call(
        Method::DELETE,
        &format!("{}/api/cameras/added", a.url),
        Some(&admin),
        None,
    )
    .unwrap();
    assert_eq!(s, 204);
    wait_for(Duration::from_secs(15), "the deleted camera stops", || {
        running("added").is_empty()
    });
    wait_for(Duration::from_secs(5), "no node lists it", || {
        nodes.iter().all(|n| listed(n, "added").0 == 404)
    });
    let (_, c) = json(
        Method::GET,
        &format!("{}/api/cases/{case_id}", b.url),
        &admin,
        None,
    );
    assert_eq!(c["case"]["status"], "open", "{c}");
    assert!(running("seed").len() == 1, "the other camera ran on");

    // a viewer token made on gw-b works on gw-a; revoked on gw-b, refused on gw-a
    let (s, t) = json(
        Method::POST,
        &format!("{}/api/tokens", b.url),
        &admin,
        Some(r#"{"name":"vic","role":"viewer"}"#),
    );
    assert_eq!(s, 201, "{t}");
    let viewer = t["token"].as_str().unwrap().to_string();
    let (id, secret_shown) = (t["id"].as_str().unwrap().to_string(), viewer.clone());
    wait_for(Duration::from_secs(5), "gw-a takes the new token", || {
        call(
            Method::GET,
            &format!("{}/api/cases", a.url),
            Some(&secret_shown),
            None,
        )
        .map(|r| r.0)
            == Some(200)
    });
    assert_eq!(
        call(
            Method::POST,
            &format!("{}/api/cameras/seed/disable", a.url),
            Some(&viewer),
            None
        )
        .map(|r| r.0),
        Some(403),
        "a viewer may not administer"
    );
    let (s, _) = call(
        Method::DELETE,
        &format!("{}/api/tokens/{id}", b.url),
        Some(&admin),
        None,
    )
    .unwrap();
    assert_eq!(s, 204);
    let gone = wait_for(
        Duration::from_secs(5),
        "gw-a refuses the revoked token",
        || {
            call(
                Method::GET,
                &format!("{}/api/cases", a.url),
                Some(&viewer),
                None,
            )
            .map(|r| r.0)
                == Some(401)
        },
    );
    eprintln!("a token revoked on gw-b was refused on gw-a {gone:?} later");
    // the audit log, on either node, has all of it
    let (_, log) = json(
        Method::GET,
        &format!("{}/api/audit?limit=100", a.url),
        &admin,
        None,
    );
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "camera.create",
        "camera.update",
        "camera.disable",
        "camera.enable",
        "camera.delete",
        "token.create",
        "token.revoke",
    ] {
        assert!(actions.contains(&want), "{want}: {actions:?}");
    }
}

#[test]
fn zones_and_preset_pictures_are_versioned_the_same_on_postgresql() {
    let pg = Pg::start();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    drop(
        gridwatch::cases::postgres::PgStore::open(
            &url,
            tmp.path(),
            gridwatch::cases::DedupConfig::default(),
        )
        .unwrap(),
    );
    let r = gridwatch::registry::Registry::open(Some(&url), tmp.path()).unwrap();
    let sys = gridwatch::registry::Actor::system("test");
    let square = |x: f64| {
        serde_json::json!({
            "type": "Feature",
            "properties": {"kind": "no_dumping"},
            "geometry": {"type": "Polygon", "coordinates": [[[121.47 + x, 31.23], [121.4701 + x, 31.23], [121.4701 + x, 31.2301], [121.47 + x, 31.23]]]}
        })
    };
    let seed = vec![("lawn".to_string(), square(0.0))];
    assert_eq!(r.seed_zones(&seed).unwrap(), Some(1));
    assert_eq!(r.seed_zones(&seed).unwrap(), None);
    let rev = r.zones_revision().unwrap();
    assert_eq!(
        r.put_zone(&sys, "lawn", square(0.001), |_| Vec::new())
            .unwrap()
            .version,
        2
    );
    r.delete_zone(&sys, "lawn").unwrap();
    assert!(r.zones_revision().unwrap() > rev);
    assert!(r.zones().unwrap().is_empty());
    let v: Vec<(i64, bool)> = r
        .zone_versions("lawn")
        .unwrap()
        .iter()
        .map(|v| (v.version, v.doc.is_some()))
        .collect();
    assert_eq!(v, [(1, true), (2, true), (3, false)]);
    assert_eq!(
        r.put_zone(&sys, "lawn", square(0.0), |_| Vec::new())
            .unwrap()
            .version,
        4
    );
    assert_eq!(r.zone_set(chrono_tz::Tz::UTC).unwrap().zones().len(), 1);

    // a preset's captured picture: stored and read back byte for byte, in versions
    let dog = std::fs::read(common::path("samples/dog.jpg")).unwrap();
    let rev = r.references_revision().unwrap();
    let one = r.put_reference(&sys, "ptz@road", &dog, (768, 576)).unwrap();
    assert_eq!((one.version, one.bytes), (1, dog.len()));
    assert!(r.references_revision().unwrap() > rev);
    let (rec, back) = r.reference("ptz@road").unwrap().unwrap();
    assert_eq!((back == dog, rec.width, rec.height), (true, 768, 576));
    assert_eq!(
        r.put_reference(&sys, "ptz@road", &dog, (768, 576))
            .unwrap()
            .version,
        1
    );
    let kite = std::fs::read(common::path("samples/kite.jpg")).unwrap();
    assert_eq!(
        r.put_reference(&sys, "ptz@road", &kite, (1352, 900))
            .unwrap()
            .version,
        2
    );
    r.delete_reference(&sys, "ptz@road").unwrap();
    assert!(r.reference("ptz@road").unwrap().is_none());
    assert!(r.reference_versions().unwrap().is_empty());
    assert_eq!(
        r.put_reference(&sys, "ptz@road", &dog, (768, 576))
            .unwrap()
            .version,
        4
    );
}

//! The service end to end over real sockets: `gridwatch run` on the built-in demo files
//! a real case from the sample scene and delivers it to its own Open311 inbox; the
//! review page in headless Chromium confirms one case and rejects another (the token
//! refused first), and the decisions reach the store and the inbox; SIGTERM stops it
//! cleanly with nothing lost.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::eventually;
use common::webdriver::Browser;
use gridwatch::cases::photo::PhotoRole;
use gridwatch::cases::sqlite::SqliteStore;
use gridwatch::cases::{CaseStore, DedupConfig, DeliveryState, NewViolation};
use serde_json::Value;
use sha2::Digest;

struct Service {
    child: Child,
    url: String,
}

impl Service {
    fn start(args: &[&str]) -> Self {
        let mut child = common::gridwatch(&[&["run"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (line, url) = common::first_url(&mut child);
        let Some(url) = url else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "gridwatch run printed no address: {line}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        };
        Self { child, url }
    }

    fn get(&self, path: &str) -> Value {
        http("GET", &format!("{}{path}", self.url), None).1
    }

    /// A GET with a bearer token.
    fn get_as(&self, path: &str, token: &str) -> Value {
        http(
            "GET",
            &format!("{}{path}", self.url),
            Some((token, String::new())),
        )
        .1
    }

    /// SIGTERM, then the exit status within `wait`.
    fn terminate(mut self, wait: Duration) -> (bool, String) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status.success(), err);
            }
            assert!(t.elapsed() < wait, "no exit {wait:?} after SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(method: &str, url: &str, body: Option<(&str, String)>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut req = if method == "GET" {
            c.get(url)
        } else {
            c.post(url)
        };
        if let Some((auth, b)) = body {
            if method != "GET" {
                req = req.header("content-type", "application/json").body(b);
            }
            if !auth.is_empty() {
                req = req.header("authorization", format!("Bearer {auth}"));
            }
        }
        match req.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let b = r.bytes().await.unwrap_or_default();
                (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    })
}

#[test]
fn the_built_in_demo_files_a_real_case_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let svc = Service::start(&["--data", data, "--listen", "127.0.0.1:0"]);
    let t = Instant::now();
    let case_of = |kind: &str| {
        let doc = svc.get("/api/cases");
        doc["cases"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["kind"] == kind).cloned())
    };
    eventually("the parked van", Duration::from_secs(150), || {
        case_of("illegal_parking")
    });
    eprintln!("first parking case after {:?}", t.elapsed());
    // both demo cameras see the van: one case, both cameras
    let case = eventually(
        "the second camera on the same case",
        Duration::from_secs(60),
        || {
            case_of("illegal_parking")
                .filter(|c| c["cameras"] == serde_json::json!(["street", "street-east"]))
        },
    );
    // the bag left on the lawn in the second camera's clip
    let dumping = eventually("the dumping case", Duration::from_secs(120), || {
        case_of("dumping")
    });
    eprintln!("dumping case after {:?}", t.elapsed());
    assert_eq!(dumping["cameras"], serde_json::json!(["street-east"]));
    assert_eq!(
        svc.get("/api/cases?kind=illegal_parking")["total"],
        1,
        "one van, one case"
    );
    assert!(
        case["cell"].as_str().unwrap().starts_with("310101-"),
        "{case}"
    );
    let id = case["id"].as_i64().unwrap();
    // evidence: real JPEGs served by the API
    let ev = eventually("evidence", Duration::from_secs(10), || {
        let doc = svc.get(&format!("/api/cases/{id}"));
        doc["evidence"]
            .as_array()
            .filter(|l| l.iter().any(|e| e["role"] == "crop"))
            .cloned()
    });
    // the sequence: first sight, frames during the stay, the violation, the close-up
    let roles: Vec<&str> = ev.iter().map(|e| e["role"].as_str().unwrap()).collect();
    // (then the later sightings the case absorbed, if any)
    let story = roles.iter().position(|&r| r == "crop").unwrap();
    // (the clip comes from its worker a moment after the case opens)
    assert!(
        roles[story + 1..]
            .iter()
            .all(|&r| r == "latest" || r == "clip"),
        "{roles:?}"
    );
    assert_eq!(roles[0], "first_sight", "{roles:?}");
    assert_eq!(roles[story - 1], "violation", "{roles:?}");
    assert!(
        roles[1..story - 1].iter().all(|&r| r == "middle"),
        "{roles:?}"
    );
    assert!((1..=3).contains(&(story - 2)), "{roles:?}");
    let times: Vec<i64> = ev
        .iter()
        .filter(|e| e["role"] != "clip")
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let jpeg = rt.block_on(async {
        reqwest::get(format!("{}{}", svc.url, ev[0]["url"].as_str().unwrap()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    // the clip of the samples up to the violation: an MP4 FFmpeg reads, served whole
    // and by byte range, its SHA-256 the store's
    let clip = eventually("the clip", Duration::from_secs(30), || {
        let doc = svc.get(&format!("/api/cases/{id}"));
        doc["evidence"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["role"] == "clip").cloned())
    });
    assert_eq!(clip["content_type"], "video/mp4");
    let clip_url = format!("{}{}", svc.url, clip["url"].as_str().unwrap());
    assert!(clip_url.ends_with(".mp4"), "{clip_url}");
    let (mp4, part) = rt.block_on(async {
        let http = reqwest::Client::new();
        let whole = http.get(&clip_url).send().await.unwrap();
        assert_eq!(whole.headers()["content-type"], "video/mp4");
        let whole = whole.bytes().await.unwrap();
        let part = http
            .get(&clip_url)
            .header("Range", "bytes=4-11")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes 4-11/{}", whole.len()).as_str()
        );
        (whole, part.bytes().await.unwrap())
    });
    assert_eq!(&part[..], &mp4[4..12]);
    assert_eq!(
        format!("{:x}", sha2::Sha256::digest(&mp4)),
        clip["sha256"].as_str().unwrap()
    );
    let probed = common::ffprobe_video(&mp4);
    assert!(probed.contains("codec_name=h264"), "{probed}");
    let frames: usize = probed
        .lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..=8).contains(&frames), "{frames} frames: {probed}");
    // delivered over HTTP to the built-in inbox, under its idempotency key
    let req = eventually("the case at the inbox", Duration::from_secs(20), || {
        let list = svc.get("/open311/v2/requests.json");
        list.as_array()
            .and_then(|l| {
                l.iter().find(|r| {
                    r["attributes"]["gridwatch_case_id"].as_str() == Some(id.to_string().as_str())
                })
            })
            .cloned()
    });
    assert_eq!(req["service_code"], "0505");
    let violation = ev.iter().find(|e| e["role"] == "violation").unwrap();
    assert_eq!(
        req["media_url"].as_str().unwrap(),
        format!("{}{}", svc.url, violation["url"].as_str().unwrap()),
        "the Open311 request shows the violation photo"
    );
    // a reviewer rejects the dumping case: the ledger counts it under the model that
    // found it (the bundled one, by manifest name and file hash) with its reason
    let dumping_id = dumping["id"].as_i64().unwrap();
    let (code, answer) = http(
        "POST",
        &format!("{}/api/cases/{dumping_id}/review", svc.url),
        Some(("", r#"{"verdict":"reject","reason":"wrong_object"}"#.into())),
    );
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = http(
        "POST",
        &format!("{}/api/cases/{id}/review", svc.url),
        Some((
            "",
            r#"{"verdict":"confirm","reason":"wrong_object"}"#.into(),
        )),
    );
    assert_eq!(code, 400, "a confirmation has no reason: {answer}");
    assert!(answer.to_string().contains("reason"), "{answer}");
    let ledger = svc.get("/api/ledger?by=model,kind");
    let rows = ledger["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{ledger}");
    assert_eq!(rows[0]["model"], "nanodet-coco-416");
    assert_eq!(
        rows[0]["model_sha256"],
        "e745295a6c2eca0de1c6025289f2b9364598437ec056bbc9797813cca41ec313"
    );
    assert_eq!(rows[0]["kind"], "dumping");
    assert_eq!(rows[0]["reasons"]["wrong_object"], 1);
    assert_eq!(rows[0]["precision"], 0.0);
    let metrics = rt.block_on(async {
        reqwest::get(format!("{}/metrics", svc.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        metrics.contains("gridwatch_camera_state{camera=\"street\",state=\"streaming\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("gridwatch_cases{kind=\"illegal_parking\",status=\"open\"}"));
    assert!(
        metrics.contains("gridwatch_reviews{kind=\"dumping\",verdict=\"reject\"} 1"),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "gridwatch_clips_total{outcome=\"stored\"}") >= 2.0,
        "a clip for each case: {metrics}"
    );
    let (ok, stderr) = svc.terminate(Duration::from_secs(30));
    assert!(ok, "exit status after SIGTERM; stderr:\n{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let store = SqliteStore::open(tmp.path(), DedupConfig::default()).unwrap();
    let c = store.case(id).unwrap();
    assert_eq!(c.kind, "illegal_parking");
    assert_eq!(
        store.deliveries(Some(id)).unwrap()[0].state,
        DeliveryState::Delivered
    );
    assert_eq!(store.delivery_counts().unwrap().failed, 0);
    // the clip is chained like the photos
    let check = gridwatch::cases::integrity::verify_case(&store, id).unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
}

#[test]
fn a_reviewer_confirms_and_rejects_in_the_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    {
        let store = SqliteStore::open(&data, DedupConfig::default()).unwrap();
        let jpeg = std::fs::read(common::path("samples/person.jpg")).unwrap();
        // a clip as the service's clip worker encodes one
        let clip = {
            let photo = opencv::imgcodecs::imread_def(
                common::path("samples/person.jpg").display().to_string(),
            )
            .unwrap();
            let frames = [photo.clone(), photo];
            gridwatch::draw::mp4::encode_mp4(&frames, Default::default()).unwrap()
        };
        for (i, kind) in ["dumping", "street_vending"].iter().enumerate() {
            let (id, _) = store
                .record(&NewViolation {
                    kind: kind.parse().unwrap(),
                    cell: format!("310101-007-010{i}"),
                    admin_path: "Huangpu / Riverside".into(),
                    lat: 31.2305,
                    lon: 121.4739,
                    camera: "street".into(),
                    zone: "z".into(),
                    zone_version: None,
                    at_ms: gridwatch::cases::now_ms() - 60_000,
                    since_ms: gridwatch::cases::now_ms() - 120_000,
                    footprint: None,
                    model: String::new(),
                    model_sha256: String::new(),
                })
                .unwrap();
            let t = gridwatch::cases::now_ms() - 120_000;
            for (n, role) in [PhotoRole::FirstSight, PhotoRole::Violation]
                .into_iter()
                .enumerate()
            {
                store
                    .add_photo(id, "street", t + n as i64 * 60_000, Some(role), &jpeg, 3)
                    .unwrap();
            }
            store
                .add_photo(id, "street", t + 60_000, Some(PhotoRole::Clip), &clip, 3)
                .unwrap();
        }
    }
    let p = |rel: &str| common::path(rel).display().to_string();
    let cfg = tmp.path().join("gridwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"data_dir = "{data}"
[api]
listen = "127.0.0.1:0"
token = "t0k3n"
[geo]
zones = "{zones}"
grid = "{grid}"
[cases]
followup_delay = "0s"
[[camera]]
id = "street"
source = "{clip}"
every = "keyframes"
calibration = "{cal}"
"#,
            data = data.display(),
            zones = p("samples/geo/zones.geojson"),
            grid = p("samples/geo/grid.geojson"),
            clip = p("samples/street.mp4"),
            cal = p("calibration/street.toml"),
        ),
    )
    .unwrap();
    let svc = Service::start(&["--config", cfg.to_str().unwrap()]);
    // reads need a token here
    assert_eq!(http("GET", &format!("{}/api/cases", svc.url), None).0, 401);
    assert_eq!(
        svc.get_as("/api/cases", "t0k3n")["total"],
        2,
        "{}",
        svc.get_as("/api/cases", "t0k3n")
    );
    // a viewer's token, made by an admin on the command line
    let viewer = common::make_token(&["--data", data.to_str().unwrap()], &[], "vic", "viewer");
    let b = Browser::start();
    b.goto(&format!("{}/", svc.url));
    let long = Duration::from_secs(20);
    // no token: the page asks for one and shows nothing
    b.wait_for(
        "getComputedStyle(document.getElementById('signin')).display === 'block'",
        long,
    );
    assert_eq!(b.eval("document.querySelectorAll('#list .row').length"), 0);
    // a wrong one is not accepted
    b.type_into(&b.find("#signin-token", long), "gw_00000000_wrong\u{E007}");
    b.wait_for(
        "document.getElementById('signin-msg').textContent.includes('not accepted')",
        long,
    );
    // a viewer sees the cases and the evidence, and no way to review
    b.type_into(&b.find("#signin-token", long), &format!("{viewer}\u{E007}"));
    b.wait_for("document.querySelectorAll('#list .row').length === 2", long);
    b.wait_for(
        "document.getElementById('who').dataset.role === 'viewer'",
        long,
    );
    let first = b
        .eval("document.querySelector('#list .row.sel').dataset.caseId")
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    // the page shows the case's evidence (fetched with the token) and where it is
    b.wait_for(
        "document.querySelectorAll('#detail .imgs img').length === 2",
        long,
    );
    b.wait_for(
        "[...document.querySelectorAll('#detail .imgs img')].every((i) => i.complete && i.naturalWidth > 0)",
        long,
    );
    // each photo says what it is in the sequence
    let said = b.eval(
        "[...document.querySelectorAll('#detail .imgs figure')].map((f) => f.dataset.role + ': ' + f.querySelector('figcaption').textContent)",
    );
    let said: Vec<&str> = said
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(
        said[0].starts_with("first_sight: first sight · "),
        "{said:?}"
    );
    assert!(said[1].starts_with("violation: violation · "), "{said:?}");
    // the clip plays in the page: Chromium decodes its H.264
    assert!(said[2].starts_with("clip: clip · "), "{said:?}");
    b.wait_for(
        "(() => { const v = document.querySelector('#detail .imgs video'); return v && v.readyState >= 1 && v.duration > 0.9 && v.videoWidth > 0; })()",
        long,
    );
    assert!(b
        .text(&b.find("#detail dl", long))
        .contains("Huangpu / Riverside"));
    b.wait_for("document.querySelector('#detail .readonly') !== null", long);
    assert_eq!(b.eval("document.getElementById('confirm')"), Value::Null);
    assert_eq!(b.eval("document.getElementById('export')"), Value::Null);
    // keys go to the page, not to a field the pointer happens to be over
    b.eval("document.activeElement && document.activeElement.blur()");
    b.key("c");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        svc.get_as(&format!("/api/cases/{first}"), "t0k3n")["case"]["status"],
        "open",
        "a viewer's key press reviews nothing"
    );
    // the token lasts the tab's session: a reload keeps the viewer signed in
    b.goto(&format!("{}/", svc.url));
    b.wait_for(
        "document.getElementById('who').dataset.role === 'viewer'",
        long,
    );

    // signed out, then in with the admin token: confirmed (button), then the other
    // one rejected (keyboard)
    b.click(&b.find("#signout", long));
    b.wait_for(
        "getComputedStyle(document.getElementById('signin')).display === 'block'",
        long,
    );
    b.type_into(&b.find("#signin-token", long), "t0k3n\u{E007}");
    b.wait_for(
        "document.getElementById('who').dataset.role === 'admin'",
        long,
    );
    b.wait_for("document.querySelectorAll('#list .row').length === 2", long);
    // an admin (as a reviewer) exports the case: the page names the chain head the
    // archive keeps, the one `cases verify` finds
    b.click(&b.find("#export", long));
    b.wait_for(
        "(document.getElementById('msg')||{}).textContent?.includes('chain head')",
        long,
    );
    let said = b.text(&b.find("#msg", long));
    let head = said.rsplit(' ').next().unwrap().to_string();
    assert_eq!(head.len(), 64, "{said}");
    let check = gridwatch::cases::integrity::verify_case(
        &gridwatch::cases::sqlite::SqliteStore::open(&data, Default::default()).unwrap(),
        first,
    )
    .unwrap();
    assert_eq!(check.head, head, "{said}");
    let note = b.find("#note", long);
    b.type_into(&note, "bags on the lawn");
    b.click(&b.find("#confirm", long));
    b.wait_for(
        "(document.getElementById('msg')||{}).textContent?.includes('confirmed')",
        long,
    );
    assert_eq!(
        svc.get_as(&format!("/api/cases/{first}"), "t0k3n")["case"]["status"],
        "confirmed"
    );
    b.wait_for("document.querySelectorAll('#list .row').length === 1", long);
    let second = b
        .eval("document.querySelector('#list .row.sel').dataset.caseId")
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert_ne!(first, second);
    // the reviewer says why (from the short list), then rejects by key; keys go to
    // the page, not to a field the pointer happens to be over
    b.eval("document.getElementById('reason').value = 'camera_moved'");
    b.eval("document.activeElement && document.activeElement.blur()");
    b.key("r");
    eventually("the rejection", long, || {
        (svc.get_as(&format!("/api/cases/{second}"), "t0k3n")["case"]["status"] == "rejected")
            .then_some(())
    });
    let reviews = svc.get_as(&format!("/api/cases/{first}"), "t0k3n")["reviews"].clone();
    assert_eq!(reviews[0]["verdict"], "confirm");
    assert_eq!(reviews[0]["note"], "bags on the lawn");
    assert_eq!(
        reviews[0].get("reason"),
        None,
        "a confirmation has no reason"
    );
    let reviews = svc.get_as(&format!("/api/cases/{second}"), "t0k3n")["reviews"].clone();
    assert_eq!(reviews[0]["reason"], "camera_moved");

    // the reviewers' ledger: one row per camera and kind, the reason counted; sorted
    // by a click on a heading
    b.click(&b.find("#tab-ledger", long));
    b.wait_for(
        "document.querySelectorAll('#ledger-rows tr').length === 2",
        long,
    );
    let rows = b.eval(
        "[...document.querySelectorAll('#ledger-rows tr')].map((r) => [...r.cells].map((c) => c.textContent))",
    );
    assert_eq!(rows[0][4], "0 %", "lowest precision first: {rows}");
    assert_eq!(rows[0][0], "street");
    assert_eq!(
        (rows[0][2].as_str(), rows[0][3].as_str()),
        (Some("0"), Some("1"))
    );
    assert_eq!(rows[0][6], "camera moved 1", "{rows}");
    assert_eq!(rows[1][4], "100 %", "{rows}");
    b.click(&b.find("#ledger-head th[data-col='precision']", long));
    b.wait_for(
        "document.querySelector('#ledger-rows tr').cells[4].textContent === '100 %'",
        long,
    );
    let ledger = svc.get_as("/api/ledger?by=camera", "t0k3n");
    let row = &ledger["rows"][0];
    assert_eq!(
        (row["confirmed"].as_u64(), row["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(row["camera"], "street");
    assert!(row.get("kind").is_none(), "{ledger}");
    assert_eq!(row["flagged"], false, "two reviews are too few to flag on");

    // both decisions reach the workflow as follow-ups
    eventually(
        "the decisions at the inbox",
        Duration::from_secs(30),
        || {
            let list = svc.get("/open311/v2/requests.json");
            let status = |id: i64| {
                list.as_array()?
                    .iter()
                    .find(|r| {
                        r["attributes"]["gridwatch_case_id"].as_str()
                            == Some(id.to_string().as_str())
                    })
                    .map(|r| {
                        (
                            r["attributes"]["gridwatch_status"].clone(),
                            r["status"].clone(),
                        )
                    })
            };
            (status(first)? == ("confirmed".into(), "open".into())
                && status(second)? == ("rejected".into(), "closed".into()))
                .then_some(())
        },
    );

    // the cameras view
    b.click(&b.find("#tab-cams", long));
    let cam = b.find(".cam[data-camera='street']", long);
    assert!(b.text(&cam).contains("street"));
    assert!(b.text(&cam).contains("· node "), "{}", b.text(&cam));

    // writes over the API without the token are refused too
    let (code, _) = http(
        "POST",
        &format!("{}/api/cases/{first}/review", svc.url),
        Some(("", r#"{"verdict":"reject"}"#.into())),
    );
    assert_eq!(code, 401);
    drop(b);
    let (ok, stderr) = svc.terminate(Duration::from_secs(30));
    assert!(ok, "{stderr}");
}

/// A config in `dir`: the generated dynamic-batch test model with `model` settings,
/// `cameras` cameras playing the street clip every 500 ms.
fn test_model_config(dir: &std::path::Path, cameras: usize, model: &str) -> std::path::PathBuf {
    let p = |rel: &str| common::path(rel).display().to_string();
    let mut text = format!(
        "data_dir = \"{}\"\n[api]\nlisten = \"127.0.0.1:0\"\nopen_reads = true\n[model]\nmanifest = \"{}\"\n{model}\n",
        dir.join("data").display(),
        p("tests/fixtures/models/yolov8-test.toml"),
    );
    for i in 0..cameras {
        text.push_str(&format!(
            "[[camera]]\nid = \"cam{i}\"\nsource = \"{}\"\nevery = \"500ms\"\nlocation = [31.23, 121.47]\n",
            p("samples/street.mp4")
        ));
    }
    let cfg = dir.join("g.toml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// A metric's value from Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn frames_of_several_cameras_share_inference_calls() {
    // a model with a dynamic batch dimension (generated test model), three cameras
    let tmp = tempfile::tempdir().unwrap();
    let cfg = test_model_config(tmp.path(), 3, "batch = 4\ngather = \"50ms\"");
    let svc = Service::start(&["--config", cfg.to_str().unwrap()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read = || {
        rt.block_on(async {
            reqwest::get(format!("{}/metrics", svc.url))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let m = eventually("30 frames detected", Duration::from_secs(60), || {
        let m = read();
        (metric(&m, "gridwatch_detect_frames_total") >= 30.0).then_some(m)
    });
    let frames = metric(&m, "gridwatch_detect_frames_total");
    let batches = metric(&m, "gridwatch_detect_batches_total");
    eprintln!("{frames} frames in {batches} inference calls");
    assert!(
        batches <= frames * 0.6,
        "{frames} frames in {batches} calls: frames of different cameras were not batched"
    );
    let (ok, stderr) = svc.terminate(Duration::from_secs(30));
    assert!(ok, "{stderr}");
}

#[test]
fn two_detection_workers_share_the_cameras() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = test_model_config(tmp.path(), 4, "workers = 2\nbatch = 2");
    let svc = Service::start(&["--config", cfg.to_str().unwrap()]);
    // every camera's frames reach detection (each camera's last processed frame is kept)
    let cams = eventually(
        "a processed frame from every camera",
        Duration::from_secs(60),
        || {
            let list = svc.get("/api/cameras");
            let l = list.as_array()?;
            (l.len() == 4 && l.iter().all(|c| c["last_frame"].is_string())).then(|| l.clone())
        },
    );
    assert_eq!(cams.len(), 4);
    let (ok, stderr) = svc.terminate(Duration::from_secs(30));
    assert!(ok, "{stderr}");
}

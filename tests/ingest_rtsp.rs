//! The ingest pool against a real RTSP server (GStreamer's gst-rtsp-server via
//! scripts/rtsp-server.py): H.264 and H.265, TCP and UDP, many cameras at once, a server
//! killed and restarted, bad paths and ports, a server that stops sending, a stream of
//! corrupt NAL units, keyframe-only decoding, TEARDOWN on shutdown.

mod common;

use std::time::Duration;

use common::rtsp::{closed_port, eventually, RtspServer};
use gridwatch::decode::Sampling;
use gridwatch::ingest::{
    CameraConfig, CameraState, CameraStatus, Pool, PoolOptions, RtspTransport, Source,
};

const H264: &str = "h264:samples/street.mp4";
const H265: &str = "h265:tests/fixtures/clips/street-h265.mp4";

fn camera(id: &str, url: url::Url, sampling: Sampling) -> CameraConfig {
    let mut c = CameraConfig::new(id, url, sampling);
    c.stall_timeout = Duration::from_secs(3);
    c.connect_timeout = Duration::from_secs(3);
    c.backoff_min = Duration::from_millis(200);
    c.backoff_max = Duration::from_secs(1);
    c
}

fn status(pool: &Pool, id: &str) -> CameraStatus {
    pool.camera(id)
        .unwrap_or_else(|| panic!("camera {id} is in the pool"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_h265_keyframe_mode_decodes_exactly_the_keyframes() {
    let server = RtspServer::start(&[&format!("a={H264}"), &format!("b={H265}")], 0);
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera("h264", server.url("a"), Sampling::Keyframes))
        .unwrap();
    pool.add(camera("h265", server.url("b"), Sampling::Keyframes))
        .unwrap();
    let mut frames = Vec::new();
    let ok = eventually(Duration::from_secs(20), || {
        pool.take_frames(&mut frames);
        ["h264", "h265"]
            .iter()
            .all(|id| status(&pool, id).keyframes >= 3)
    })
    .await;
    assert!(ok, "both streams deliver keyframes: {:#?}", pool.status());
    assert!(pool.remove("h264").await && pool.remove("h265").await);
    pool.take_frames(&mut frames);
    for id in ["h264", "h265"] {
        // removed cameras report nothing; use the frames and counters gathered
        let got: Vec<_> = frames.iter().filter(|f| &*f.camera == id).collect();
        assert!(!got.is_empty(), "{id} handed on frames");
        assert!(
            got.iter().all(|f| f.frame.keyframe),
            "{id}: only keyframes are handed on"
        );
    }
    assert!(frames
        .iter()
        .any(|f| f.frame.width == 768 && f.frame.height == 576));
    assert!(frames
        .iter()
        .any(|f| f.frame.width == 384 && f.frame.height == 288));
    // keyframes every 2 s: pts of successive frames of one camera differ by multiples of 2 s
    for id in ["h264", "h265"] {
        let pts: Vec<i64> = frames
            .iter()
            .filter(|f| &*f.camera == id)
            .map(|f| f.frame.pts_ms.unwrap())
            .collect();
        assert!(
            pts.windows(2).all(|w| (w[1] - w[0]) % 2000 == 0),
            "{id}: {pts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_counts_decoded_equal_keyframes_received() {
    let server = RtspServer::start(&[&format!("a={H264}")], 0);
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera("k", server.url("a"), Sampling::Keyframes))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || status(&pool, "k").keyframes
            >= 4)
        .await
    );
    // let the last decode job finish, then compare
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = status(&pool, "k");
    assert!(
        s.received > s.keyframes * 5,
        "non-keyframes arrive too: {s:?}"
    );
    let settled = eventually(Duration::from_secs(2), || {
        let s = status(&pool, "k");
        s.decoded == s.keyframes || s.decoded + 1 == s.keyframes
    })
    .await;
    let s = status(&pool, "k");
    assert!(settled, "decoded exactly the keyframes: {s:?}");
    assert_eq!(s.corrupt, 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_cameras_at_once_over_tcp_and_udp() {
    let mounts: Vec<String> = (0..16).map(|i| format!("c{i}={H264}")).collect();
    let refs: Vec<&str> = mounts.iter().map(String::as_str).collect();
    let server = RtspServer::start(&refs, 0);
    let pool = Pool::new(PoolOptions::default());
    for i in 0..16 {
        let mut c = camera(
            &format!("cam{i:02}"),
            server.url(&format!("c{i}")),
            Sampling::Every(Duration::from_secs(1)),
        );
        if i % 4 == 3 {
            if let Source::Rtsp { transport, .. } = &mut c.source {
                *transport = RtspTransport::Udp;
            }
        }
        pool.add(c).unwrap();
    }
    let mut frames = Vec::new();
    let ok = eventually(Duration::from_secs(30), || {
        pool.take_frames(&mut frames);
        pool.status()
            .iter()
            .all(|s| s.state == CameraState::Streaming && s.handed_on >= 3)
    })
    .await;
    assert!(ok, "all 16 stream and hand on frames: {:#?}", pool.status());
    for s in pool.status() {
        assert!(
            s.decoded < s.received,
            "{}: sampling decodes less than it receives: {s:?}",
            s.id
        );
        assert_eq!(s.reconnects, 0, "{s:?}");
    }
    assert!(
        pool.add(camera("cam00", server.url("c0"), Sampling::All))
            .is_err(),
        "ids are unique"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_reconnected_while_the_others_never_pause() {
    let mut flaky = RtspServer::start(&[&format!("x={H264}")], 0);
    let steady = RtspServer::start(&[&format!("y={H264}")], 0);
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera("flaky", flaky.url("x"), Sampling::Keyframes))
        .unwrap();
    pool.add(camera("steady", steady.url("y"), Sampling::Keyframes))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || status(&pool, "flaky").keyframes
            >= 2)
        .await
    );

    flaky.kill();
    assert!(
        eventually(Duration::from_secs(10), || status(&pool, "flaky").state
            == CameraState::BackingOff)
        .await,
        "{:?}",
        status(&pool, "flaky")
    );
    let err = status(&pool, "flaky").last_error.unwrap_or_default();
    assert!(!err.is_empty(), "the error is kept");
    // the other camera keeps receiving while the first is down
    let before = status(&pool, "steady").received;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = status(&pool, "steady").received;
    assert!(
        after >= before + 15,
        "steady kept streaming ({before} → {after})"
    );
    assert_eq!(status(&pool, "steady").state, CameraState::Streaming);

    flaky.restart();
    let resumed_from = status(&pool, "flaky").keyframes;
    assert!(
        eventually(Duration::from_secs(20), || {
            let s = status(&pool, "flaky");
            s.state == CameraState::Streaming && s.keyframes >= resumed_from + 2
        })
        .await,
        "{:?}",
        status(&pool, "flaky")
    );
    assert!(status(&pool, "flaky").reconnects >= 1);
    assert_eq!(status(&pool, "steady").reconnects, 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_path_and_closed_port_are_clear_per_camera_errors() {
    let server = RtspServer::start(&[&format!("good={H264}")], 0);
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera(
        "nopath",
        server.url("does-not-exist"),
        Sampling::Keyframes,
    ))
    .unwrap();
    let port = closed_port();
    pool.add(camera(
        "noport",
        format!("rtsp://127.0.0.1:{port}/x").parse().unwrap(),
        Sampling::Keyframes,
    ))
    .unwrap();
    pool.add(camera("good", server.url("good"), Sampling::Keyframes))
        .unwrap();
    let ok = eventually(Duration::from_secs(15), || {
        let (a, b) = (status(&pool, "nopath"), status(&pool, "noport"));
        a.last_error.is_some() && b.last_error.is_some() && status(&pool, "good").keyframes >= 2
    })
    .await;
    assert!(ok, "{:#?}", pool.status());
    let a = status(&pool, "nopath");
    let b = status(&pool, "noport");
    assert!(
        matches!(a.state, CameraState::BackingOff | CameraState::Connecting),
        "{a:?}"
    );
    let ea = a.last_error.unwrap();
    assert!(ea.contains("DESCRIBE") && ea.contains("404"), "{ea}");
    let eb = b.last_error.unwrap();
    assert!(
        eb.contains("DESCRIBE") && eb.to_lowercase().contains("refused"),
        "{eb}"
    );
    assert_eq!(status(&pool, "good").state, CameraState::Streaming);
    // they keep retrying with backoff, not spinning
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(status(&pool, "noport").reconnects >= 1);
    assert!(
        status(&pool, "noport").reconnects < 20,
        "backoff bounds the retries"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_sending_without_closing_is_detected_as_stalled() {
    let frozen = RtspServer::start(&[&format!("z={H264}")], 0);
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera("stall", frozen.url("z"), Sampling::Keyframes))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || status(&pool, "stall").keyframes
            >= 1)
        .await
    );
    frozen.freeze();
    let ok = eventually(Duration::from_secs(15), || {
        status(&pool, "stall")
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("stalled"))
    })
    .await;
    assert!(ok, "{:?}", status(&pool, "stall"));
    // reconnecting to a frozen server times out instead of hanging the camera
    assert!(
        eventually(Duration::from_secs(15), || {
            status(&pool, "stall")
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("no answer within"))
        })
        .await,
        "{:?}",
        status(&pool, "stall")
    );
    frozen.thaw();
    // and removing it does not hang either
    assert!(
        tokio::time::timeout(Duration::from_secs(10), pool.remove("stall"))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_nal_units_give_a_clear_error_not_a_crash() {
    let server = RtspServer::start(
        &[
            "bad=annexb-h264:tests/fixtures/clips/garbage.h264",
            &format!("ok={H264}"),
        ],
        0,
    );
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera("garbage", server.url("bad"), Sampling::All))
        .unwrap();
    pool.add(camera("fine", server.url("ok"), Sampling::Keyframes))
        .unwrap();
    let ok = eventually(Duration::from_secs(20), || {
        let s = status(&pool, "garbage");
        s.corrupt > 0
            && s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("corrupt"))
            && status(&pool, "fine").keyframes >= 2
    })
    .await;
    assert!(ok, "{:?}", status(&pool, "garbage"));
    // concealed garbage is not handed on to detection
    let s = status(&pool, "garbage");
    assert!(s.handed_on * 4 < s.decoded, "{s:?}");
    assert!(status(&pool, "fine").keyframes >= 2);
    assert_eq!(status(&pool, "fine").corrupt, 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_teardown() {
    let server = RtspServer::start(&[&format!("t={H264}")], 0);
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera("t", server.url("t"), Sampling::Keyframes))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || status(&pool, "t").keyframes
            >= 1)
        .await
    );
    assert!(server.saw("PLAY /t"));
    pool.shutdown().await;
    assert!(
        eventually(Duration::from_secs(5), || server.saw("TEARDOWN /t")).await,
        "events: {:?}",
        server.events.lock().unwrap()
    );
    assert!(pool.status().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_sampling_is_not_mistaken_for_a_broken_stream() {
    // one frame every 5 s with a 3 s stall timeout: between samples nothing is decoded,
    // which must not count as "no decodable picture"
    let server = RtspServer::start(&[&format!("s={H264}")], 0);
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera(
        "sparse",
        server.url("s"),
        Sampling::Every(Duration::from_secs(5)),
    ))
    .unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let s = status(&pool, "sparse");
    assert_eq!(s.state, CameraState::Streaming, "{s:?}");
    assert_eq!(s.reconnects, 0, "{s:?}");
    assert!(s.last_error.is_none(), "{s:?}");
    assert!(
        (2..=3).contains(&s.handed_on),
        "frames at 0 s and 5 s: {s:?}"
    );
    // with a 2 s GOP, a sample every 5 s needs at most the chain from its keyframe
    assert!(s.decoded * 3 < s.received, "{s:?}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_authenticate_and_are_never_shown() {
    let server = RtspServer::start_with(&[&format!("p={H265}")], 0, &["--auth", "cam user:p@ss"]);
    let url = |login: &str| -> url::Url {
        format!("rtsp://{login}@127.0.0.1:{}/p", server.port)
            .parse()
            .unwrap()
    };
    let pool = Pool::new(PoolOptions::default());
    pool.add(camera(
        "right",
        url("cam%20user:p%40ss"),
        Sampling::Keyframes,
    ))
    .unwrap();
    pool.add(camera("wrong", url("cam%20user:nope"), Sampling::Keyframes))
        .unwrap();
    pool.add(camera("none", server.url("p"), Sampling::Keyframes))
        .unwrap();
    let ok = eventually(Duration::from_secs(20), || {
        status(&pool, "right").keyframes >= 2
            && status(&pool, "wrong").last_error.is_some()
            && status(&pool, "none").last_error.is_some()
    })
    .await;
    assert!(ok, "{:#?}", pool.status());
    for id in ["wrong", "none"] {
        let e = status(&pool, id).last_error.unwrap();
        assert!(e.contains("401"), "{id}: {e}");
    }
    for s in pool.status() {
        assert!(
            !s.url.contains("p%40ss") && !s.url.contains("nope") && !s.url.contains("cam"),
            "{}",
            s.url
        );
    }
    pool.shutdown().await;
}

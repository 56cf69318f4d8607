//! Files and image folders as pool cameras (looping, real-time pacing, finite runs),
//! and drone telemetry matched to frames by time (file and UDP side channels).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::path;
use common::rtsp::{closed_port, eventually};
use gridwatch::decode::Sampling;
use gridwatch::ingest::telemetry::TelemetrySource;
use gridwatch::ingest::{CameraConfig, CameraFrame, CameraState, Pool, PoolOptions, Source};

fn file_camera(
    id: &str,
    rel: &str,
    sampling: Sampling,
    realtime: bool,
    looping: bool,
) -> CameraConfig {
    let mut c = CameraConfig::with_source(
        id,
        Source::File {
            path: path(rel),
            realtime,
            looping,
        },
        sampling,
    );
    c.backoff_min = Duration::from_millis(100);
    c.backoff_max = Duration::from_millis(500);
    c
}

fn images_camera(id: &str, interval_ms: u64, looping: bool) -> CameraConfig {
    CameraConfig::with_source(
        id,
        Source::Images {
            dir: path("samples"),
            interval: Duration::from_millis(interval_ms),
            looping,
        },
        Sampling::All,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_clip_keeps_going_with_increasing_time() {
    let pool = Pool::new(PoolOptions::default());
    pool.add(file_camera(
        "loop",
        "tests/fixtures/clips/street-h265.mp4",
        Sampling::Keyframes,
        false,
        true,
    ))
    .unwrap();
    let mut all: Vec<CameraFrame> = Vec::new();
    let mut buf = Vec::new();
    let ok = eventually(Duration::from_secs(30), || {
        pool.take_frames(&mut buf);
        all.append(&mut buf);
        all.iter().any(|f| f.frame.pts_ms.unwrap() > 62_000)
    })
    .await;
    assert!(
        ok,
        "second pass of the 60 s clip reached: {:?}",
        pool.camera("loop")
    );
    assert!(all.iter().all(|f| f.frame.keyframe && f.frame.width == 384));
    let pts: Vec<i64> = all.iter().map(|f| f.frame.pts_ms.unwrap()).collect();
    assert!(
        pts.windows(2).all(|w| w[1] > w[0]),
        "time only moves forward across loops: {pts:?}"
    );
    let s = pool.camera("loop").unwrap();
    assert_eq!(s.state, CameraState::Streaming);
    assert_eq!(
        s.decoded, s.keyframes,
        "keyframe mode decodes only keyframes: {s:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_files_are_paced_by_their_timestamps() {
    let pool = Pool::new(PoolOptions::default());
    pool.add(file_camera(
        "rt",
        "samples/street.mp4",
        Sampling::Every(Duration::from_secs(1)),
        true,
        false,
    ))
    .unwrap();
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let s = pool.camera("rt").unwrap();
    assert!(
        (3..=5).contains(&s.handed_on),
        "about one frame a second in real time: {s:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finite_image_folder_ends_and_a_missing_file_backs_off() {
    let pool = Pool::new(PoolOptions::default());
    pool.add(images_camera("photos", 20, false)).unwrap();
    pool.add(file_camera(
        "missing",
        "samples/nope.mp4",
        Sampling::All,
        false,
        true,
    ))
    .unwrap();
    let mut frames = Vec::new();
    let ok = eventually(Duration::from_secs(10), || {
        pool.take_frames(&mut frames);
        pool.camera("photos").unwrap().state == CameraState::Stopped
    })
    .await;
    assert!(ok, "{:?}", pool.camera("photos"));
    assert_eq!(
        pool.camera("photos").unwrap().decoded,
        3,
        "dog, kite, person"
    );
    assert!(frames.iter().any(|f| &*f.camera == "photos"));
    let m = pool.camera("missing").unwrap();
    assert!(
        matches!(m.state, CameraState::BackingOff | CameraState::Connecting),
        "{m:?}"
    );
    assert!(m.last_error.unwrap().contains("samples/nope.mp4"));
    pool.shutdown().await;
}

fn line(t: SystemTime, lat: f64) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    format!(
        r#"{{"time":{secs},"lat":{lat},"lon":121.47,"alt_agl":60,"heading":90,"pitch":-40,"roll":0}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drone_frames_carry_the_pose_from_udp_telemetry() {
    let port = closed_port();
    let mut cam = images_camera("drone", 100, true);
    cam.telemetry = Some(TelemetrySource::Udp(
        format!("127.0.0.1:{port}").parse().unwrap(),
    ));
    let pool = Pool::new(PoolOptions::default());
    pool.add(cam).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = SystemTime::now() - Duration::from_secs(1);
    // 10 Hz for 8 s, latitude rising with time; two lines per datagram, plus a bad one
    for k in 0..40 {
        let a = line(
            start + Duration::from_millis(200 * k),
            31.0 + k as f64 * 0.001,
        );
        let b = line(
            start + Duration::from_millis(200 * k + 100),
            31.0 + k as f64 * 0.001 + 0.0005,
        );
        sock.send_to(format!("{a}\n{b}\n").as_bytes(), ("127.0.0.1", port))
            .unwrap();
    }
    sock.send_to(b"{\"time\":1}\n", ("127.0.0.1", port))
        .unwrap();
    let mut frames = Vec::new();
    let ok = eventually(Duration::from_secs(10), || {
        pool.take_frames(&mut frames);
        frames.iter().filter(|f| f.pose.is_some()).count() >= 3
    })
    .await;
    assert!(ok, "frames get poses: {:?}", pool.camera("drone"));
    for f in frames.iter().filter(|f| f.pose.is_some()) {
        let p = f.pose.unwrap();
        // the pose is the one at the frame's time: latitude follows the time line
        let dt = p.time.duration_since(start).unwrap().as_secs_f64();
        let want = 31.0 + dt / 0.2 * 0.001;
        assert!(
            (p.lat - want).abs() < 1e-6,
            "lat {} at {dt:.3}s, want {want}",
            p.lat
        );
        assert_eq!(p.time, f.received);
    }
    let err = pool.camera("drone").unwrap().last_error.unwrap_or_default();
    assert!(
        err.contains("telemetry") && err.contains("`lat`"),
        "bad lines are reported: {err}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_from_a_file_names_bad_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("pose.jsonl");
    let now = SystemTime::now();
    let mut text = String::new();
    for k in -20..100 {
        let t = if k < 0 {
            now - Duration::from_millis((-k * 100) as u64)
        } else {
            now + Duration::from_millis(k as u64 * 100)
        };
        text.push_str(&line(t, 30.5));
        text.push('\n');
        if k == -19 {
            text.push_str(
                "{\"time\":1,\"lat\":121,\"lon\":31,\"alt\":5,\"heading\":0,\"pitch\":0}\n",
            );
        }
    }
    std::fs::write(&file, text).unwrap();
    let mut cam = images_camera("d2", 100, true);
    cam.telemetry = Some(TelemetrySource::File(file.clone()));
    let pool = Pool::new(PoolOptions::default());
    pool.add(cam).unwrap();
    let mut frames = Vec::new();
    assert!(
        eventually(Duration::from_secs(8), || {
            pool.take_frames(&mut frames);
            frames.iter().any(|f| f.pose.is_some_and(|p| p.lat == 30.5))
        })
        .await
    );
    let err = pool.camera("d2").unwrap().last_error.unwrap_or_default();
    assert!(
        err.contains("pose.jsonl line 3") && err.contains("swapped"),
        "{err}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_from_an_http_feed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // a ground station: one long response, a pose line every 100 ms
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = [0u8; 1024];
        let _ = sock.read(&mut req).await;
        sock.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        for _ in 0..80 {
            let l = line(SystemTime::now(), 22.25);
            if sock.write_all(format!("{l}\n").as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut cam = images_camera("d3", 100, true);
    cam.telemetry = Some(TelemetrySource::Http(
        format!("http://{addr}/feed").parse().unwrap(),
    ));
    let pool = Pool::new(PoolOptions::default());
    pool.add(cam).unwrap();
    let mut frames = Vec::new();
    assert!(
        eventually(Duration::from_secs(8), || {
            pool.take_frames(&mut frames);
            frames
                .iter()
                .filter(|f| f.pose.is_some_and(|p| p.lat == 22.25))
                .count()
                >= 3
        })
        .await,
        "{:?}",
        pool.camera("d3")
    );
    pool.shutdown().await;
}

/// Sampling on a grid that falls on keyframes (every 2 s and 4 s with a keyframe every
/// 2 s, B-frames between them) decodes the keyframes it samples and nothing else —
/// but for the first sample, which waits for the reorder delay (two pictures) to be
/// sure no B-frame comes before it — and gives exactly the frames a full sequential
/// decode picks: same times, same pixels.
#[test]
fn sampling_on_the_keyframe_grid_decodes_only_keyframes_and_matches_a_full_decode() {
    use gridwatch::decode::{FileDecoder, Frame, Sampler, Sampling};
    use std::time::Duration;
    let clip = common::path("samples/street.mp4");
    let decode = |sampling: Sampling| {
        let mut dec = FileDecoder::open(&clip).unwrap();
        let mut sampler = Sampler::new(sampling);
        let mut out = Vec::new();
        let mut f = Frame::default();
        while dec.next_sampled(&mut sampler, &mut f).unwrap() {
            out.push((f.pts_ms.unwrap(), f.keyframe, f.data.clone()));
        }
        (out, dec.stats().decoded)
    };
    let (all, all_decoded) = decode(Sampling::All);
    assert_eq!(all_decoded as usize, all.len());
    for secs in [2u64, 4] {
        let (sampled, decoded) = decode(Sampling::Every(Duration::from_secs(secs)));
        assert!(
            sampled.iter().all(|s| s.1),
            "every {secs}s: all samples are keyframes"
        );
        // the sampled keyframes, plus the first sample's reorder delay: every 2 s
        // needs all 40 keyframes, every 4 s half of them
        assert!(
            decoded as usize <= sampled.len() + 2 && decoded as usize >= sampled.len(),
            "every {secs}s: {decoded} decoded for {} samples",
            sampled.len()
        );
        assert_eq!(sampled.len() as u64, 80 / secs, "every {secs}s");
        let mut want = Vec::new();
        let mut next = 0;
        for f in &all {
            if f.0 >= next {
                want.push(f);
                next = f.0 - f.0 % (secs as i64 * 1000) + secs as i64 * 1000;
            }
        }
        assert_eq!(sampled.len(), want.len(), "every {secs}s");
        for (s, w) in sampled.iter().zip(want) {
            assert_eq!(s.0, w.0, "every {secs}s: same time");
            assert!(s.2 == w.2, "every {secs}s: frame at {} ms differs", s.0);
        }
    }
}

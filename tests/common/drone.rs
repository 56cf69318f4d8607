//! A virtual drone over the street clip, consistent by construction: the
//! calibration maps the clip's pixels to the ground, so what a drone at a given pose
//! sees of the street is a homography of each frame (drone pixel → ground through
//! the pose, ground → street pixel through the calibration).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use gridwatch::decode::{FileDecoder, Frame, Sampler, Sampling};
use gridwatch::geo::calib::Calibration;
use gridwatch::geo::drone::DroneCamera;
use gridwatch::ingest::telemetry::DronePose;
use opencv::core::{self, Mat, Point2f, Point3f, Vector};
use opencv::prelude::*;

/// The street clip's size, and the drone camera's.
pub const W: u32 = 768;
pub const H: u32 = 576;

/// The street camera's pose and field of view, fitted to its calibration: the
/// pinhole (principal point at the centre) whose view of the ground best matches
/// the calibration's, over a grid of the frame's ground pixels.
pub fn street_camera(cal: &Calibration) -> (DronePose, f64, f64) {
    let frame = cal.frame();
    let (mut img, mut obj) = (Vector::<Point2f>::new(), Vector::<Point3f>::new());
    for y in (150..=570).step_by(60) {
        for x in (20..=760).step_by(60) {
            let g = cal.image_to_ground(x as f64, y as f64).unwrap();
            let (e, n) = frame.to_local(g);
            img.push(Point2f::new(x as f32, y as f32));
            obj.push(Point3f::new(e as f32, n as f32, 0.0));
        }
    }
    let mut best: Option<(f64, f64, Mat, Mat)> = None;
    for hfov in (30..=110).step_by(2) {
        let f = (W as f64 / 2.0) / (hfov as f64 / 2.0).to_radians().tan();
        let k = Mat::from_slice_2d(&[
            [f, 0.0, W as f64 / 2.0],
            [0.0, f, H as f64 / 2.0],
            [0.0, 0.0, 1.0],
        ])
        .unwrap();
        let (mut rvec, mut tvec) = (Mat::default(), Mat::default());
        let ok = opencv::calib3d::solve_pnp(
            &obj,
            &img,
            &k,
            &Mat::default(),
            &mut rvec,
            &mut tvec,
            false,
            opencv::calib3d::SOLVEPNP_ITERATIVE,
        )
        .unwrap();
        if !ok {
            continue;
        }
        let mut back = Vector::<Point2f>::new();
        opencv::calib3d::project_points_def(&obj, &rvec, &tvec, &k, &Mat::default(), &mut back)
            .unwrap();
        let err = (img.iter().zip(back.iter()))
            .map(|(a, b)| ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)) as f64)
            .sum::<f64>()
            / img.len() as f64;
        if best.as_ref().is_none_or(|b| err < b.1) {
            best = Some((hfov as f64, err, rvec, tvec));
        }
    }
    let (hfov, err, rvec, tvec) = best.unwrap();
    let mut r = Mat::default();
    opencv::calib3d::rodrigues_def(&rvec, &mut r).unwrap();
    let m = |i: i32, j: i32| *r.at_2d::<f64>(i, j).unwrap();
    let t = |i: i32| *tvec.at::<f64>(i).unwrap();
    // rows of R: the camera's right, down and forward axes in east, north, up
    let right = [m(0, 0), m(0, 1), m(0, 2)];
    let forward = [m(2, 0), m(2, 1), m(2, 2)];
    let centre: Vec<f64> = (0..3)
        .map(|j| -(0..3).map(|i| m(i, j) * t(i)).sum::<f64>())
        .collect();
    let pitch = forward[2].asin();
    let heading = forward[0].atan2(forward[1]);
    let (hs, hc, ps, pc) = (heading.sin(), heading.cos(), pitch.sin(), pitch.cos());
    let right0 = [hc, -hs, 0.0];
    let up0 = [-hs * ps, -hc * ps, pc];
    let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    let roll = (-dot(right, up0)).atan2(dot(right, right0));
    let at = frame.to_latlon(centre[0], centre[1]);
    let pose = DronePose {
        time: UNIX_EPOCH,
        lat: at.lat,
        lon: at.lon,
        alt_agl: centre[2],
        heading: heading.to_degrees().rem_euclid(360.0),
        pitch: pitch.to_degrees(),
        roll: roll.to_degrees(),
    };
    (pose, hfov, err.sqrt())
}

/// What the drone at `pose` sees of the street frame `street`.
pub fn render(cal: &Calibration, cam: &DroneCamera, pose: &DronePose, street: &Frame) -> Frame {
    let (mut from, mut to) = (Vector::<Point2f>::new(), Vector::<Point2f>::new());
    for y in (0..=H).step_by(48) {
        for x in (0..=W).step_by(64) {
            let Ok(g) = cam.pixel_to_ground(pose, x as f64, y as f64) else {
                continue;
            };
            let Some((sx, sy)) = cal.ground_to_image(g) else {
                continue;
            };
            // street pixel → drone pixel
            from.push(Point2f::new(sx as f32, sy as f32));
            to.push(Point2f::new(x as f32, y as f32));
        }
    }
    let h = opencv::calib3d::find_homography(&from, &to, &mut Mat::default(), 0, 3.0).unwrap();
    let mut out = Frame::default();
    gridwatch::geo::view::warp(street, &h, core::BORDER_CONSTANT, &mut out).unwrap();
    out
}

/// The pose `metres` to the right of `pose` (along its right axis, level).
pub fn beside(pose: &DronePose, metres: f64) -> DronePose {
    let h = pose.heading.to_radians();
    let at = gridwatch::geo::LocalFrame::new(gridwatch::geo::LatLon {
        lat: pose.lat,
        lon: pose.lon,
    })
    .to_latlon(metres * h.cos(), -metres * h.sin());
    DronePose {
        lat: at.lat,
        lon: at.lon,
        ..*pose
    }
}

/// The street clip as the drone at `pose` sees it, `fps` frames a second, encoded
/// as a camera would (x264's defaults: B-frames, a long GOP) into `out`.
pub fn render_clip(cal: &Calibration, cam: &DroneCamera, pose: &DronePose, fps: u32, out: &Path) {
    let mut ffmpeg = Command::new("ffmpeg")
        .args([
            "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
        ])
        .args(["-s", &format!("{W}x{H}"), "-r", &fps.to_string(), "-i", "-"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    let mut stdin = ffmpeg.stdin.take().unwrap();
    let mut dec = FileDecoder::open(&super::path("samples/street.mp4")).unwrap();
    let mut sampler = Sampler::new(Sampling::Every(Duration::from_millis(1000 / fps as u64)));
    let mut street = Frame::default();
    while dec.next_sampled(&mut sampler, &mut street).unwrap() {
        stdin
            .write_all(&render(cal, cam, pose, &street).data)
            .unwrap();
    }
    drop(stdin);
    assert!(
        ffmpeg.wait().unwrap().success(),
        "ffmpeg encodes the drone clip"
    );
}

/// Sends `pose`, stamped with the time of sending, to `to` as a JSON line in a UDP
/// datagram ten times a second until the returned guard is dropped.
pub fn telemetry(to: std::net::SocketAddr, pose: DronePose) -> impl Drop {
    struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            let now = std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let line = serde_json::json!({
                "time": now, "lat": pose.lat, "lon": pose.lon, "alt_agl": pose.alt_agl,
                "heading": pose.heading, "pitch": pose.pitch, "roll": pose.roll,
            });
            let _ = sock.send_to(format!("{line}\n").as_bytes(), to);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Stop(stop)
}

//! Two streams per camera, end to end over a real RTSP server: the camera is detected
//! on its D1 substream (720x576) and each new case gets a close-up cut from its 1080p
//! main stream, read only then — the same scene encoded twice by FFmpeg as a camera's
//! encoder would (x264 defaults: B-frames; a keyframe every 2 s), and the main stream
//! again in H.265 (x265 defaults). A main stream that
//! shows another view is caught by registration, and the case keeps the substream's
//! close-up with a note. The close-up is chained with the case's other evidence
//! (`gridwatch cases verify` passes) and counted in the metrics.

mod common;

use std::path::Path;
use std::time::Duration;

use common::node::{eventually, get, get_bytes, Node};
use common::rtsp::RtspServer;
use common::{ffmpeg, path};
use gridwatch::rules::caption::Captioner;
use opencv::core::{Mat, Rect, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};
use serde_json::Value;

/// `input` (FFmpeg input options and file) at `w`x`h`, H.264 with x264's defaults
/// (B-frames) but a 2 s GOP at 10 fps.
fn h264_at(input: &[&str], w: u32, h: u32, out: &Path) {
    encode_at("h264", input, w, h, out)
}

/// `input` at `w`x`h` in `codec`: `h264` (x264's defaults, B-frames) or `h265` (x265's
/// defaults, B-frames), a 2 s GOP at 10 fps either way.
fn encode_at(codec: &str, input: &[&str], w: u32, h: u32, out: &Path) {
    let scale = format!("scale={w}:{h}");
    let encoder: &[&str] = match codec {
        "h264" => &["-c:v", "libx264", "-g", "20"],
        _ => &[
            "-c:v",
            "libx265",
            "-x265-params",
            "keyint=20:min-keyint=20:log-level=error",
        ],
    };
    let rest = [
        "-vf",
        &scale,
        "-preset",
        "veryfast",
        "-an",
        out.to_str().unwrap(),
    ];
    ffmpeg(&[input, encoder, &rest].concat());
}

/// The street sample at `w`x`h`.
fn street_at(w: u32, h: u32, out: &Path) {
    h264_at(
        &["-i", path("samples/street.mp4").to_str().unwrap()],
        w,
        h,
        out,
    );
}

/// The street calibration for the D1 substream (its points scaled from 768 to 720
/// pixels across).
fn d1_calibration(out: &Path) {
    let text = std::fs::read_to_string(path("calibration/street.toml")).unwrap();
    let mut lines = Vec::new();
    for line in text.lines() {
        let line = line.replace("image_width = 768", "image_width = 720");
        match line.split_once("x = ") {
            Some((head, rest)) if line.trim_start().starts_with('{') => {
                let (x, tail) = rest.split_once(',').unwrap();
                let x: f64 = x.trim().parse().unwrap();
                lines.push(format!("{head}x = {:.2},{tail}", x * 720.0 / 768.0));
            }
            _ => lines.push(line),
        }
    }
    std::fs::write(out, lines.join("\n")).unwrap();
}

fn config(dir: &Path, sub: &url::Url, main: &url::Url, cal: &Path) -> std::path::PathBuf {
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
source = "{sub}"
main_source = "{main}"
every = "1s"
calibration = "{cal}"
"#,
        data = dir.join("data").display(),
        zones = path("samples/geo/zones.geojson").display(),
        grid = path("samples/geo/grid.geojson").display(),
        cal = cal.display(),
    );
    let p = dir.join("g.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// The RTSP server with the substream at `/sub` and the main stream at `/main`, and
/// the service detecting on the one with the other as its `main_source`.
fn serve(dir: &Path, sub: &Path, main: &Path) -> (RtspServer, Node) {
    serve_main(dir, sub, "h264", main)
}

/// [`serve`] with the main stream in `codec` (`h264`, `h265`).
fn serve_main(dir: &Path, sub: &Path, codec: &str, main: &Path) -> (RtspServer, Node) {
    let cal = dir.join("d1.toml");
    d1_calibration(&cal);
    let server = RtspServer::start(
        &[
            &format!("sub=h264:{}", sub.display()),
            &format!("main={codec}:{}", main.display()),
        ],
        0,
    );
    let cfg = config(dir, &server.url("sub"), &server.url("main"), &cal);
    let node = Node::start("n1", &cfg, "", dir);
    (server, node)
}

fn decode(jpeg: &[u8]) -> Mat {
    imgcodecs::imdecode(&Vector::from_slice(jpeg), imgcodecs::IMREAD_COLOR).unwrap()
}

/// The parking case's evidence once its close-up from the main stream is there.
fn evidence_with_detail(node: &Node) -> (i64, Vec<Value>) {
    let case = eventually("a parking case", node, Duration::from_secs(120), || {
        let d = get(&format!("{}/api/cases?kind=illegal_parking", node.url))?;
        d["cases"].as_array()?.first().cloned()
    });
    let id = case["id"].as_i64().unwrap();
    let ev = eventually("its detail photo", node, Duration::from_secs(40), || {
        let d = get(&format!("{}/api/cases/{id}", node.url))?;
        d["evidence"]
            .as_array()
            .filter(|l| l.iter().any(|e| e["role"] == "detail"))
            .cloned()
    });
    (id, ev)
}

fn photo(node: &Node, ev: &[Value], role: &str) -> Mat {
    let e = ev.iter().find(|e| e["role"] == role).unwrap();
    decode(&get_bytes(&format!("{}{}", node.url, e["url"].as_str().unwrap())).unwrap())
}

fn metric(node: &Node, outcome: &str) -> f64 {
    node.metric(&format!(
        "gridwatch_detail_closeups_total{{outcome=\"{outcome}\"}}"
    ))
}

/// The close-up's picture: without its strip (four lines) and the band it is set on.
fn picture_of(detail: &Mat, width: i32) -> Mat {
    let strip = Captioner::strip_height(detail.cols() as u32, 4) as i32;
    let h = detail.rows() - strip;
    let x = (detail.cols() - width).max(0) / 2;
    Mat::roi(detail, Rect::new(x, 0, width.min(detail.cols()), h))
        .unwrap()
        .try_clone()
        .unwrap()
}

#[test]
fn a_case_found_on_the_d1_substream_gets_its_close_up_from_the_1080p_main_stream() {
    close_up_from_a_main_stream_in("h264");
}

/// Cameras' main streams are often H.265: the close-up comes from its next IRAP
/// picture the same way.
#[test]
fn an_h265_main_stream_gives_the_close_up_too() {
    close_up_from_a_main_stream_in("h265");
}

fn close_up_from_a_main_stream_in(codec: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (sub, main) = (dir.join("d1.mp4"), dir.join("main.mp4"));
    street_at(720, 576, &sub);
    let street = path("samples/street.mp4");
    encode_at(codec, &["-i", street.to_str().unwrap()], 1920, 1080, &main);
    let (server, node) = serve_main(dir, &sub, codec, &main);
    let (id, ev) = evidence_with_detail(&node);
    // the sequence, then the close-up from the main stream
    let roles: Vec<&str> = ev.iter().map(|e| e["role"].as_str().unwrap()).collect();
    let crop_at = roles.iter().position(|&r| r == "crop").unwrap();
    assert_eq!(roles[crop_at - 1], "violation", "{roles:?}");
    assert!(roles[crop_at + 1..].contains(&"detail"), "{roles:?}");
    // the main stream was read for it (and only then: detection reads the substream)
    assert_eq!(metric(&node, "main_stream"), 1.0, "{}", node.log());
    let plays = server.events.lock().unwrap().clone();
    assert!(plays.iter().any(|e| e == "PLAY /main"), "{plays:?}");
    let crop = photo(&node, &ev, "crop");
    let detail = photo(&node, &ev, "detail");
    // at the main stream's resolution: the crop's height × 1080 / 576 (its margins
    // clipped at the same frame edges), under a strip of four lines
    let (sx, sy) = (1920.0 / 720.0, 1080.0 / 576.0);
    let want_w = (crop.cols() as f64 * sx).round() as i32;
    let want_h = crop.rows() as f64 * sy;
    let pic = picture_of(&detail, want_w);
    assert!(
        (pic.rows() as f64 - want_h).abs() <= 6.0,
        "detail {}x{}, crop {}x{}",
        detail.cols(),
        detail.rows(),
        crop.cols(),
        crop.rows()
    );
    // and it shows what the substream's close-up shows (the parked van)
    let mut small = Mat::default();
    imgproc::resize(
        &pic,
        &mut small,
        Size::new(crop.cols(), crop.rows()),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .unwrap();
    let mut d = Mat::default();
    opencv::core::absdiff(&small, &crop, &mut d).unwrap();
    let m = opencv::core::mean_def(&d).unwrap();
    let diff = (m[0] + m[1] + m[2]) / 3.0;
    assert!(
        diff < 30.0,
        "mean difference {diff:.1} from the substream's close-up"
    );
    // chained with the rest: the store verifies
    drop(node);
    let out = common::gridwatch(&[
        "cases",
        "verify",
        "--data",
        dir.join("data").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "case {id}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_main_stream_of_another_view_leaves_the_substream_close_up_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (sub, other) = (dir.join("d1.mp4"), dir.join("other.mp4"));
    street_at(720, 576, &sub);
    // the wrong channel: another camera's picture at 1080p
    let kite = path("samples/kite.jpg");
    let still = [
        "-loop",
        "1",
        "-i",
        kite.to_str().unwrap(),
        "-t",
        "60",
        "-r",
        "10",
    ];
    h264_at(&still, 1920, 1080, &other);
    let (_server, node) = serve(dir, &sub, &other);
    let (_, ev) = evidence_with_detail(&node);
    assert_eq!(metric(&node, "mismatch"), 1.0, "{}", node.log());
    assert_eq!(metric(&node, "main_stream"), 0.0);
    assert!(
        node.log().contains("does not show the detection view"),
        "{}",
        node.log()
    );
    // the detail photo is the substream's close-up again, on a band with its strip
    let crop = photo(&node, &ev, "crop");
    let detail = photo(&node, &ev, "detail");
    let pic = picture_of(&detail, crop.cols());
    assert_eq!((pic.cols(), pic.rows()), (crop.cols(), crop.rows()));
    let mut d = Mat::default();
    opencv::core::absdiff(&pic, &crop, &mut d).unwrap();
    let m = opencv::core::mean_def(&d).unwrap();
    assert!((m[0] + m[1] + m[2]) / 3.0 < 4.0, "{m:?}");
}

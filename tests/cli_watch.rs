//! `gridwatch watch`: the pool from the command line, status as JSON lines, clean exit.

mod common;

use common::{expect_clean_failure, gridwatch, run};

#[test]
fn watch_reports_each_camera_and_stops() {
    let (o, stdout, stderr) = run(&mut gridwatch(&[
        "watch",
        "--camera",
        "demo=samples/street.mp4",
        "--camera",
        "gone=rtsp://127.0.0.1:1/stream",
        "--every",
        "keyframes",
        "--for",
        "3s",
        "--interval",
        "1s",
        "--json",
    ]));
    assert!(o.status.success(), "{stderr}");
    let last: Vec<serde_json::Value> = stdout
        .lines()
        .rev()
        .take(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let demo = last.iter().find(|v| v["id"] == "demo").unwrap();
    let gone = last.iter().find(|v| v["id"] == "gone").unwrap();
    assert_eq!(demo["state"], "streaming");
    assert!(demo["handed_on"].as_u64().unwrap() >= 1, "{demo}");
    assert_eq!(demo["url"], "file:samples/street.mp4");
    assert!(
        gone["state"] == "backing_off" || gone["state"] == "connecting",
        "{gone}"
    );
    assert!(
        gone["last_error"].as_str().unwrap().contains("refused"),
        "{gone}"
    );
}

#[test]
fn watch_refuses_bad_camera_specs() {
    expect_clean_failure(
        &mut gridwatch(&["watch", "--camera", "nodelimiter"]),
        &["ID=SOURCE"],
    );
    expect_clean_failure(
        &mut gridwatch(&["watch", "--camera", "x=/nonexistent/clip.mp4"]),
        &["camera `x`", "/nonexistent/clip.mp4"],
    );
    expect_clean_failure(
        &mut gridwatch(&[
            "watch",
            "--camera",
            "x=samples/street.mp4",
            "--telemetry",
            "y=pose.jsonl",
        ]),
        &["telemetry for `y`", "no camera"],
    );
}

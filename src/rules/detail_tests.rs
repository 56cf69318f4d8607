use super::*;

/// The sample street photo (BGR).
fn street() -> Mat {
    let p = crate::source_dir().join("samples/dog.jpg");
    imgcodecs::imread(p.to_str().unwrap(), imgcodecs::IMREAD_COLOR).unwrap()
}

fn resized(img: &Mat, w: i32, h: i32) -> Mat {
    let mut out = Mat::default();
    imgproc::resize(
        img,
        &mut out,
        Size::new(w, h),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .unwrap();
    out
}

/// `img` moved right by `dx` and down by `dy` pixels (edges repeated).
fn moved(img: &Mat, dx: f64, dy: f64) -> Mat {
    let m = Mat::from_slice_2d(&[[1.0f64, 0.0, dx], [0.0, 1.0, dy]]).unwrap();
    let mut out = Mat::default();
    imgproc::warp_affine(
        img,
        &mut out,
        &m,
        img.size().unwrap(),
        imgproc::INTER_LINEAR,
        core::BORDER_REPLICATE,
        Scalar::default(),
    )
    .unwrap();
    out
}

fn request(sub: &Mat, bbox: [f32; 4], blur: Vec<[f32; 4]>) -> DetailRequest {
    let fallback = Photo {
        role: PhotoRole::Crop,
        at_ms: 1_000,
        jpeg: crate::draw::encode_mat(
            &Mat::roi(sub, Rect::new(10, 10, 100, 80))
                .unwrap()
                .try_clone()
                .unwrap(),
            90,
        )
        .unwrap(),
        original: None,
    };
    let words = [
        "parking  zone z1".into(),
        "camera c1".into(),
        "cell A".into(),
    ];
    let main = std::sync::Arc::new(MainStream {
        url: "rtsp://cam/main".parse().unwrap(),
        udp: false,
    });
    DetailRequest::new(main, sub, 1_000, bbox, blur, fallback, words).unwrap()
}

fn decode(jpeg: &[u8]) -> Mat {
    imgcodecs::imdecode(&Vector::from_slice(jpeg), imgcodecs::IMREAD_COLOR).unwrap()
}

/// Mean absolute difference of two BGR images of one size, over `r`.
fn diff(a: &Mat, b: &Mat, r: Rect) -> f64 {
    let mut d = Mat::default();
    core::absdiff(&Mat::roi(a, r).unwrap(), &Mat::roi(b, r).unwrap(), &mut d).unwrap();
    let m = core::mean_def(&d).unwrap();
    (m[0] + m[1] + m[2]) / 3.0
}

#[test]
fn a_1080p_main_stream_registers_on_a_d1_substream_and_maps_the_box() {
    let scene = street();
    // a D1 substream of a 16:9 camera is anamorphic: each axis has its own scale
    let sub = resized(&scene, 720, 576);
    let main = moved(&resized(&scene, 1920, 1080), 24.0, -12.0);
    let req = request(&sub, [100.0, 200.0, 300.0, 400.0], Vec::new());
    let reg = register(&req, &main).unwrap();
    assert!(reg.matched(), "{reg:?}");
    assert!(reg.similarity > 0.9, "{reg:?}");
    assert!((reg.scale.0 - 1920.0 / 720.0).abs() < 1e-9);
    assert!((reg.scale.1 - 1080.0 / 576.0).abs() < 1e-9);
    assert!((reg.shift.0 - 24.0).abs() < 6.0, "{reg:?}");
    assert!((reg.shift.1 + 12.0).abs() < 6.0, "{reg:?}");
    let b = reg.map(req.bbox);
    let expect = [
        100.0 * 1920.0 / 720.0 + 24.0,
        200.0 * 1080.0 / 576.0 - 12.0,
        300.0 * 1920.0 / 720.0 + 24.0,
        400.0 * 1080.0 / 576.0 - 12.0,
    ];
    for (got, want) in b.iter().zip(expect) {
        assert!((*got as f64 - want).abs() < 6.0, "{b:?} vs {expect:?}");
    }
    // the close-up is cut from the main stream, at its resolution: box plus margins
    let (photo, _) = detail_photo(&req, &main, 4_000).unwrap();
    assert_eq!(photo.role, PhotoRole::Detail);
    assert_eq!(photo.at_ms, 4_000);
    let img = decode(&photo.jpeg);
    let want_w = 1.5 * 200.0 * 1920.0 / 720.0;
    assert!((img.cols() as f64 - want_w).abs() < 12.0, "{}", img.cols());
    // and shows what the main stream shows there
    let cut = Mat::roi(
        &main,
        Rect::new(
            (b[0] - 0.25 * (b[2] - b[0])).round() as i32,
            (b[1] - 0.25 * (b[3] - b[1])).round() as i32,
            img.cols(),
            img.rows(),
        ),
    )
    .unwrap()
    .try_clone()
    .unwrap();
    let all = Rect::new(0, 0, img.cols(), img.rows());
    assert!(diff(&img, &cut, all) < 4.0, "{}", diff(&img, &cut, all));
}

#[test]
fn another_view_falls_back_to_the_substream_close_up_with_a_note() {
    let sub = resized(&street(), 720, 576);
    let p = crate::source_dir().join("samples/kite.jpg");
    let other = imgcodecs::imread(p.to_str().unwrap(), imgcodecs::IMREAD_COLOR).unwrap();
    let main = resized(&other, 1920, 1080);
    let req = request(&sub, [100.0, 200.0, 300.0, 400.0], Vec::new());
    let (photo, reg) = detail_photo(&req, &main, 4_000).unwrap();
    assert!(!reg.matched(), "{reg:?}");
    // the substream close-up again (no strip without captions), at the violation's time
    assert_eq!(photo.at_ms, 1_000);
    let img = decode(&photo.jpeg);
    assert_eq!((img.cols(), img.rows()), (100, 80));
    // a flat frame (a camera showing nothing) matches nothing either
    let grey =
        Mat::new_rows_cols_with_default(1080, 1920, core::CV_8UC3, Scalar::all(90.0)).unwrap();
    assert!(!register(&req, &grey).unwrap().matched());
}

#[test]
fn bystanders_are_pixelated_in_the_main_stream_close_up_and_nothing_else() {
    let scene = street();
    let sub = resized(&scene, 720, 576);
    let main = resized(&scene, 1920, 1080);
    // a bystander inside the close-up, 50 × 60 substream pixels
    let bystander = [270.0, 220.0, 320.0, 280.0];
    let req = request(&sub, [100.0, 200.0, 300.0, 400.0], vec![bystander]);
    let (photo, reg) = detail_photo(&req, &main, 4_000).unwrap();
    let (clear, _) = detail_photo(
        &request(&sub, [100.0, 200.0, 300.0, 400.0], Vec::new()),
        &main,
        4_000,
    )
    .unwrap();
    let (a, b) = (decode(&photo.jpeg), decode(&clear.jpeg));
    assert_eq!(a.size().unwrap(), b.size().unwrap());
    // where the bystander is in the close-up
    let m = reg.map(bystander);
    let origin = reg.map(req.bbox);
    let x0 = origin[0] - 0.25 * (origin[2] - origin[0]);
    let y0 = origin[1] - 0.25 * (origin[3] - origin[1]);
    let inside = Rect::new(
        (m[0] - x0) as i32 + 4,
        (m[1] - y0) as i32 + 4,
        (m[2] - m[0]) as i32 - 8,
        (m[3] - m[1]) as i32 - 8,
    );
    assert!(diff(&a, &b, inside) > 4.0, "{}", diff(&a, &b, inside));
    let left = Rect::new(0, 0, (m[0] - x0) as i32 - 8, a.rows());
    assert!(diff(&a, &b, left) < 1.0, "{}", diff(&a, &b, left));
    // no originals asked for: none kept
    assert!(photo.original.is_none());
    let mut keep = req.clone();
    keep.originals = true;
    let (kept, _) = detail_photo(&keep, &main, 4_000).unwrap();
    let o = decode(kept.original.as_ref().unwrap());
    assert!(diff(&o, &b, inside) < 1.0);
}

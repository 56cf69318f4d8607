//! Parity: gridwatch's detections on the sample photos and ten frames of the street
//! clip equal those of the independent Python reference (scripts/reference_detect.py),
//! whose output is committed in tests/golden/: same classes, boxes within 1 px,
//! scores within 1e-3. A detection may be missing on one side only when its score is
//! within 1e-3 of the threshold (where rounding decides).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{gridwatch, path, read_lines, run, Line};

const THRESHOLD: f64 = 0.35;

fn key(l: &Line) -> (String, u64) {
    let name = Path::new(&l.source)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (name, l.frame)
}

fn detect(args: &[&str], out: &Path) -> Vec<Line> {
    let out_s = out.to_str().unwrap();
    let mut full = vec!["detect"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--out", out_s, "--no-images"]);
    let (o, _, stderr) = run(&mut gridwatch(&full));
    assert!(o.status.success(), "gridwatch detect failed:\n{stderr}");
    read_lines(&out.join("detections.jsonl"))
}

#[test]
fn detections_match_the_python_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ours = detect(&["samples"], &tmp.path().join("images"));
    ours.extend(detect(
        &["samples/street.mp4", "--every", "8500ms"],
        &tmp.path().join("clip"),
    ));
    let golden = read_lines(&path("tests/golden/nanodet-coco-416.jsonl"));
    assert!(
        golden.len() > 100,
        "the golden file should hold the reference's detections"
    );

    let mut groups: BTreeMap<(String, u64), (Vec<Line>, Vec<Line>)> = BTreeMap::new();
    for l in &golden {
        groups.entry(key(l)).or_default().0.push(l.clone());
    }
    for l in &ours {
        groups.entry(key(l)).or_default().1.push(l.clone());
    }
    // the three photos and ten clip frames
    assert_eq!(
        groups.len(),
        13,
        "frames seen: {:?}",
        groups.keys().collect::<Vec<_>>()
    );

    let mut problems = Vec::new();
    let mut matched = 0;
    for (k, (gold, mut mine)) in groups {
        for g in gold {
            let pos = mine.iter().position(|m| {
                m.class_id == g.class_id
                    && m.class == g.class
                    && m.bbox.iter().zip(g.bbox).all(|(a, b)| (a - b).abs() <= 1.0)
            });
            match pos {
                Some(i) => {
                    let m = mine.remove(i);
                    if (m.score - g.score).abs() > 1e-3 {
                        problems.push(format!(
                            "{k:?}: {} score {} vs reference {}",
                            g.class, m.score, g.score
                        ));
                    }
                    if m.pts_ms != g.pts_ms {
                        problems.push(format!(
                            "{k:?}: pts {:?} vs reference {:?}",
                            m.pts_ms, g.pts_ms
                        ));
                    }
                    matched += 1;
                }
                None if (g.score - THRESHOLD).abs() <= 1e-3 => {}
                None => problems.push(format!("{k:?}: missing {g:?}")),
            }
        }
        for m in mine {
            if (m.score - THRESHOLD).abs() > 1e-3 {
                problems.push(format!("{k:?}: extra {m:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        matched >= golden.len() - 2,
        "matched {matched} of {}",
        golden.len()
    );
}

use super::*;

fn truth(text: &str) -> Truth {
    toml::from_str(text).unwrap()
}

fn report(kind: &str, zone: &str, at_s: i64, opened: bool) -> Reported {
    Reported {
        kind: kind.parse().unwrap(),
        zone: zone.into(),
        at_ms: at_s * 1000,
        opened,
        subject: None,
    }
}

const TWO: &str = r#"
[[expect]]
kind = "illegal_parking"
zone = "np"
from = "10s"
earliest = "30s"
latest = "60s"
[[expect]]
kind = "dumping"
zone = "lawn"
from = "20s"
latest = "90s"
[[forbid]]
kind = "dumping"
zone = "road"
note = "cones"
"#;

#[test]
fn in_time_is_a_hit_again_a_repeat_elsewhere_or_late_a_false_positive() {
    let t = truth(TWO);
    let s = score(
        &t,
        &[
            report("illegal_parking", "np", 40, true),
            // absorbed by the first one's case: not a second report
            report("illegal_parking", "np", 45, false),
            // a second case in the window: a repeat
            report("illegal_parking", "np", 55, true),
            // too late: a false positive
            report("illegal_parking", "np", 70, true),
            report("dumping", "road", 50, true),
        ],
    );
    let p = &s.by_kind["illegal_parking"];
    assert_eq!(
        (
            p.expected,
            p.true_positives,
            p.repeats,
            p.false_positives,
            p.misses
        ),
        (1, 1, 1, 1, 0)
    );
    assert_eq!(p.mean_delay_s, Some(30.0), "from 10 s to 40 s");
    assert_eq!(p.precision, Some(0.5));
    assert_eq!(p.recall, Some(1.0));
    assert!((p.f1.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    let d = &s.by_kind["dumping"];
    assert_eq!((d.true_positives, d.false_positives, d.misses), (0, 1, 1));
    assert_eq!(
        (d.precision, d.recall, d.f1),
        (Some(0.0), Some(0.0), Some(0.0))
    );
    assert_eq!(s.reports.len(), 4, "only reports that opened a case");
    assert_eq!(s.reports[1].1, Verdict::Repeat);

    let all = total([&s, &score(&t, &[report("dumping", "lawn", 20, true)])]);
    let a = &all["all"];
    assert_eq!((a.expected, a.true_positives, a.misses), (4, 2, 2));
    assert_eq!(all["dumping"].max_delay_s, Some(0.0));
    assert_eq!(all["illegal_parking"].mean_delay_s, Some(30.0));
}

#[test]
fn too_early_is_not_a_hit_and_nothing_reported_has_no_precision() {
    let t = truth(TWO);
    let s = score(&t, &[report("illegal_parking", "np", 20, true)]);
    assert_eq!(s.by_kind["illegal_parking"].false_positives, 1);
    let none = score(&t, &[]);
    assert_eq!(none.by_kind["dumping"].precision, None);
    assert_eq!(none.by_kind["dumping"].recall, Some(0.0));
    assert_eq!(none.by_kind["dumping"].f1, None);
}

#[test]
fn truth_files_are_checked_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cam.toml");
    std::fs::write(&p, TWO.replace("latest = \"60s\"", "latest = \"20s\"")).unwrap();
    let e = Truth::load(&p).unwrap_err().to_string();
    assert!(e.contains("cam.toml") && e.contains("expect[0]"), "{e}");
    std::fs::write(
        &p,
        TWO.replace("zone = \"np\"", "zone = \"np\"\ncolour = 1"),
    )
    .unwrap();
    let e = Truth::load(&p).unwrap_err().to_string();
    assert!(e.contains("cam.toml") && e.contains("colour"), "{e}");
    std::fs::write(&p, TWO.replace("illegal_parking", "loitering")).unwrap();
    let e = Truth::load(&p).unwrap_err().to_string();
    assert!(e.contains("loitering"), "{e}");
}

#[test]
fn a_report_on_another_object_than_the_box_is_a_wrong_object() {
    use crate::service::scene::Subject;
    let t = truth(
        r#"
min_iou = 0.5
[[expect]]
kind = "dumping"
zone = "lawn"
from = "10s"
latest = "60s"
box = [100, 100, 50, 40]
"#,
    );
    let on = |bbox: [f32; 4], at_s: i64| Reported {
        subject: Some(Subject {
            class: "object".into(),
            bbox,
        }),
        ..report("dumping", "lawn", at_s, true)
    };
    // the half beside it: IoU 1/3, under 0.5; then the object itself, shifted by 5 px
    let s = score(
        &t,
        &[
            on([125.0, 100.0, 175.0, 140.0], 40),
            on([105.0, 100.0, 155.0, 140.0], 41),
        ],
    );
    let verdicts: Vec<Verdict> = s.reports.iter().map(|(_, v)| *v).collect();
    assert_eq!(verdicts, [Verdict::WrongObject, Verdict::TruePositive]);
    let f = &s.by_kind["dumping"];
    assert_eq!(
        (
            f.true_positives,
            f.false_positives,
            f.wrong_object,
            f.misses
        ),
        (1, 1, 1, 0)
    );
    let iou = f.mean_iou.unwrap();
    assert!((iou - 45.0 * 40.0 / (55.0 * 40.0)).abs() < 1e-9, "{iou}");
    // a report without an object cannot be the boxed one
    let s = score(&t, &[report("dumping", "lawn", 40, true)]);
    assert_eq!(s.reports[0].1, Verdict::WrongObject);
    assert_eq!(s.by_kind["dumping"].misses, 1);
}

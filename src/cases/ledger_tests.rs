use super::*;

fn row(case_id: i64, camera: &str, verdict: Verdict, reason: Option<RejectReason>) -> VerdictRow {
    VerdictRow {
        case_id,
        kind: "illegal_parking".into(),
        camera: camera.into(),
        zone: "z1".into(),
        model: "m".into(),
        model_sha256: "ab".into(),
        verdict,
        reason,
        // 2026-12-04 12:00 UTC, ISO week 49
        at_ms: 1_796_385_600_000,
    }
}

#[test]
fn wilson_intervals_are_the_textbook_ones() {
    let [lo, hi] = wilson(8, 10);
    assert!(
        (lo - 0.4902).abs() < 1e-4 && (hi - 0.9433).abs() < 1e-4,
        "{lo} {hi}"
    );
    let [lo, hi] = wilson(10, 10);
    assert!(
        (lo - 0.7225).abs() < 1e-4 && (hi - 1.0).abs() < 1e-12,
        "{lo} {hi}"
    );
    assert_eq!(wilson(0, 0), [0.0, 1.0]);
    let [lo, _] = wilson(0, 5);
    assert_eq!(lo, 0.0);
}

#[test]
fn iso_weeks_cross_the_year_as_iso_says() {
    assert_eq!(iso_week(1_796_385_600_000), "2026-W49");
    // 2027-01-01 is a Friday: the last week of 2026, which has 53
    assert_eq!(iso_week(1_798_761_600_000), "2026-W53");
    // 2027-01-04, a Monday: week 1 of 2027
    assert_eq!(iso_week(1_799_020_800_000), "2027-W01");
}

#[test]
fn a_case_counts_once_by_its_latest_review_and_low_precision_is_flagged() {
    use RejectReason::*;
    let mut rows = Vec::new();
    // cam-a: 2 confirmed of 12, one of them first rejected
    rows.push(row(1, "cam-a", Verdict::Reject, Some(WrongObject)));
    rows.push(row(1, "cam-a", Verdict::Confirm, None));
    rows.push(row(2, "cam-a", Verdict::Confirm, None));
    for id in 3..13 {
        let why = if id % 2 == 0 { Some(CameraMoved) } else { None };
        rows.push(row(id, "cam-a", Verdict::Reject, why));
    }
    // cam-b: 3 of 3
    for id in 20..23 {
        rows.push(row(id, "cam-b", Verdict::Confirm, None));
    }
    let l = ledger(&rows, &[Dimension::Camera], Alert::default());
    assert_eq!(l.len(), 2);
    let a = &l[0];
    assert_eq!(a.camera.as_deref(), Some("cam-a"));
    assert_eq!((a.confirmed, a.rejected), (2, 10));
    assert!((a.precision - 2.0 / 12.0).abs() < 1e-12);
    assert_eq!(a.reasons.get("camera_moved"), Some(&5));
    assert_eq!(a.reasons.get("unspecified"), Some(&5));
    assert_eq!(
        a.reasons.get("wrong_object"),
        None,
        "superseded by the confirm"
    );
    assert!(a.flagged);
    assert!(a.kind.is_none() && a.week.is_none());
    let b = &l[1];
    assert_eq!((b.confirmed, b.rejected, b.flagged), (3, 0, false));
    assert!(!l[1].flagged, "three verdicts are too few to flag on");

    let all = ledger(&rows, &Dimension::ALL, Alert::default());
    assert_eq!(all[0].week.as_deref(), Some("2026-W49"));
    assert_eq!(all[0].model_sha256.as_deref(), Some("ab"));
    assert_eq!(all.len(), 2);
    let one = ledger(
        &rows,
        &[Dimension::Kind],
        Alert {
            below: 0.1,
            min_reviews: 1,
        },
    );
    assert_eq!((one.len(), one[0].confirmed, one[0].flagged), (1, 5, false));
}

#[test]
fn dimensions_parse_and_name_the_bad_one() {
    assert_eq!(Dimension::parse_list("").unwrap().len(), 5);
    assert_eq!(
        Dimension::parse_list("camera, kind,camera").unwrap(),
        vec![Dimension::Camera, Dimension::Kind]
    );
    let e = Dimension::parse_list("camera,colour").unwrap_err();
    assert!(e.contains("colour") && e.contains("week"), "{e}");
    assert_eq!(
        RejectReason::parse("duplicate"),
        Some(RejectReason::Duplicate)
    );
    assert_eq!(RejectReason::parse("bored"), None);
}

//! Who may call what, through `router(state)` on the real SQLite store and registry:
//! every endpoint × every kind of caller (none, a token not in force, a revoked one,
//! viewer, reviewer, admin, the config's token), allowed with the endpoint's status or
//! refused with 401 / 403 — and a refused write changes nothing. Then the same with
//! reads opened (`api.open_reads`) and with writes opened (`api.open_writes`).

use axum::http::StatusCode;
use gridwatch::registry::Role;

mod common;

use common::api::{call, fixture, Fixture, ROOT};

/// One endpoint: method, path, content type, body, the role it needs (`None`: open),
/// and its status when allowed.
struct Endpoint {
    method: &'static str,
    path: String,
    ctype: &'static str,
    body: String,
    need: Option<Role>,
    ok: StatusCode,
}

fn endpoints(viewer_id: &str) -> Vec<Endpoint> {
    let json = "application/json";
    let ep = |method, path: &str, ctype, body: &str, need, ok| Endpoint {
        method,
        path: path.to_string(),
        ctype,
        body: body.to_string(),
        need,
        ok,
    };
    let cam_b = r#"{"id":"cam-b","source":"rtsp://10.1.0.2/b","location":[31.2,121.4]}"#;
    let cam_a = r#"{"source":"rtsp://10.1.0.1/a2","location":[31.2,121.4]}"#;
    let zone = common::api::zone_feature(100.0).to_string();
    let cal = common::api::flat_calibration(0.1).to_string();
    use Role::*;
    use StatusCode as S;
    vec![
        ep("GET", "/api/whoami", "", "", None, S::OK),
        ep("GET", "/healthz", "", "", None, S::OK),
        ep("GET", "/api/cameras", "", "", Some(Viewer), S::OK),
        ep("GET", "/api/cameras/cam-a", "", "", Some(Viewer), S::OK),
        ep(
            "GET",
            "/api/cameras/cam-a/frame.jpg",
            "",
            "",
            Some(Viewer),
            S::OK,
        ),
        ep("GET", "/api/cases", "", "", Some(Viewer), S::OK),
        ep("GET", "/api/ledger?by=camera", "", "", Some(Viewer), S::OK),
        ep("GET", "/api/cases/1", "", "", Some(Viewer), S::OK),
        ep("GET", "/evidence/1/1.jpg", "", "", Some(Viewer), S::OK),
        ep("GET", "/api/cases/1/export", "", "", Some(Reviewer), S::OK),
        ep(
            "GET",
            "/api/cases/1/evidence/1/original",
            "",
            "",
            Some(Reviewer),
            S::OK,
        ),
        ep(
            "POST",
            "/api/cases/2/review",
            json,
            r#"{"verdict":"confirm"}"#,
            Some(Reviewer),
            S::OK,
        ),
        ep("POST", "/api/cameras", json, cam_b, Some(Admin), S::CREATED),
        ep("PUT", "/api/cameras/cam-a", json, cam_a, Some(Admin), S::OK),
        ep(
            "DELETE",
            "/api/cameras/cam-a",
            "",
            "",
            Some(Admin),
            S::NO_CONTENT,
        ),
        ep(
            "POST",
            "/api/cameras/cam-a/disable",
            "",
            "",
            Some(Admin),
            S::OK,
        ),
        ep(
            "POST",
            "/api/cameras/import",
            "text/csv",
            "id,source,lat,lon\ncam-c,rtsp://10.1.0.3/c,31.2,121.4\n",
            Some(Admin),
            S::OK,
        ),
        ep("GET", "/api/tokens", "", "", Some(Admin), S::OK),
        ep(
            "POST",
            "/api/tokens",
            json,
            r#"{"name":"new","role":"viewer"}"#,
            Some(Admin),
            S::CREATED,
        ),
        ep(
            "DELETE",
            &format!("/api/tokens/{viewer_id}"),
            "",
            "",
            Some(Admin),
            S::NO_CONTENT,
        ),
        ep("GET", "/api/audit", "", "", Some(Admin), S::OK),
        ep(
            "GET",
            "/api/map?lat=31.23&lon=121.47&radius_m=80",
            "",
            "",
            Some(Viewer),
            S::OK,
        ),
        ep("GET", "/api/zones", "", "", Some(Viewer), S::OK),
        ep("GET", "/api/zones/z1", "", "", Some(Viewer), S::OK),
        ep("GET", "/api/zones/z1/versions", "", "", Some(Viewer), S::OK),
        ep("PUT", "/api/zones/z2", json, &zone, Some(Admin), S::OK),
        ep(
            "DELETE",
            "/api/zones/z1",
            "",
            "",
            Some(Admin),
            S::NO_CONTENT,
        ),
        ep("GET", "/api/calibrations", "", "", Some(Viewer), S::OK),
        ep(
            "GET",
            "/api/calibrations/cam-a",
            "",
            "",
            Some(Viewer),
            S::OK,
        ),
        ep(
            "GET",
            "/api/calibrations/cam-a/versions",
            "",
            "",
            Some(Viewer),
            S::OK,
        ),
        ep(
            "POST",
            "/api/calibrations/cam-a/check",
            json,
            &cal,
            Some(Admin),
            S::OK,
        ),
        ep(
            "PUT",
            "/api/calibrations/cam-a",
            json,
            &cal,
            Some(Admin),
            S::OK,
        ),
        ep(
            "DELETE",
            "/api/calibrations/cam-a",
            "",
            "",
            Some(Admin),
            S::NO_CONTENT,
        ),
        ep(
            "POST",
            "/api/cameras/ptz/presets",
            json,
            r#"{"id":"p3"}"#,
            Some(Admin),
            S::CREATED,
        ),
        ep("GET", "/api/references", "", "", Some(Viewer), S::OK),
        ep("GET", "/api/references/ptz@p1", "", "", Some(Viewer), S::OK),
        // a capture of the live frame (an empty body)
        ep("POST", "/api/references/ptz@p2", "", "", Some(Admin), S::OK),
        ep(
            "DELETE",
            "/api/references/ptz@p1",
            "",
            "",
            Some(Admin),
            S::NO_CONTENT,
        ),
    ]
}

/// What a store write leaves behind: the registry's revision, the audit log's length,
/// the cases' statuses, the tokens.
fn footprint(f: &Fixture) -> String {
    let s = &f.state;
    let statuses: Vec<_> = s
        .store
        .cases(None, 100)
        .unwrap()
        .iter()
        .map(|c| c.status)
        .collect();
    format!(
        "{} {} {statuses:?} {:?}",
        s.registry.revision().unwrap(),
        s.registry.audit_log(None, 1, 0).unwrap().1,
        s.registry.tokens().unwrap()
    )
}

/// Every endpoint with every caller, on a fresh fixture each time (writes change it).
async fn matrix(open_reads: bool, open_writes: bool) {
    let probe = fixture(open_reads, open_writes);
    let n = endpoints(&probe.viewer_id).len();
    // callers: 0 none, 1 not in force, 2 revoked, 3 viewer, 4 reviewer, 5 admin, 6 root
    let mut checked = 0;
    for e in 0..n {
        for caller in 0..7 {
            let f = fixture(open_reads, open_writes);
            common::api::ptz_camera(&f);
            let ep = endpoints(&f.viewer_id).remove(e);
            let token = match caller {
                0 => None,
                1 => Some("gw_0badf00d_not-a-token".to_string()),
                2 => Some(f.tokens[3].clone()),
                3..=5 => Some(f.tokens[caller - 3].clone()),
                _ => Some(ROOT.to_string()),
            };
            let role = match caller {
                3 => Some(Role::Viewer),
                4 => Some(Role::Reviewer),
                5 | 6 => Some(Role::Admin),
                _ => None,
            };
            let anonymous_open = caller == 0
                && match ep.need {
                    Some(Role::Viewer) => open_reads || open_writes,
                    Some(Role::Reviewer) => open_writes,
                    _ => false,
                };
            let want = match (ep.need, role) {
                (None, _) if (1..=2).contains(&caller) && ep.path == "/api/whoami" => {
                    StatusCode::UNAUTHORIZED
                }
                (None, _) => ep.ok,
                _ if anonymous_open => ep.ok,
                (Some(_), None) => StatusCode::UNAUTHORIZED,
                (Some(need), Some(r)) if r < need => StatusCode::FORBIDDEN,
                (Some(_), Some(_)) => ep.ok,
            };
            let before = footprint(&f);
            let (got, body) = call(
                &f,
                ep.method,
                &ep.path,
                token.as_deref(),
                ep.ctype,
                ep.body.clone().into_bytes(),
            )
            .await;
            assert_eq!(
                got, want,
                "{} {} by caller {caller} (open_reads {open_reads}, open_writes {open_writes}): {body}",
                ep.method, ep.path
            );
            if !got.is_success() {
                assert_eq!(
                    footprint(&f),
                    before,
                    "a refused {} {} changed the store",
                    ep.method,
                    ep.path
                );
                assert!(body.contains("\"error\""), "{body}");
            } else if ep.path.ends_with("/check") {
                assert_eq!(footprint(&f), before, "a check saves nothing");
            } else if ep.method != "GET" {
                assert_ne!(
                    footprint(&f),
                    before,
                    "{} {} wrote nothing",
                    ep.method,
                    ep.path
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, n * 7);
}

#[tokio::test]
async fn every_endpoint_by_every_role() {
    matrix(false, false).await;
}

#[tokio::test]
async fn opened_reads_let_anyone_read_and_nothing_more() {
    matrix(true, false).await;
}

#[tokio::test]
async fn opened_writes_let_anyone_review_but_never_administer() {
    matrix(false, true).await;
}

#[tokio::test]
async fn every_write_is_in_the_audit_log_with_who_and_before_and_after() {
    let f = fixture(false, false);
    let admin = f.tokens[2].clone();
    let json = "application/json";
    let put = r#"{"source":"rtsp://u:pw@10.1.0.1/a2","location":[31.2,121.4],"every":"1s"}"#;
    for (m, p, ct, b) in [
        ("PUT", "/api/cameras/cam-a", json, put),
        ("POST", "/api/cameras/cam-a/disable", "", ""),
        ("DELETE", "/api/cameras/cam-a", "", ""),
    ] {
        let (s, body) = call(&f, m, p, Some(&admin), ct, b.into()).await;
        assert!(s.is_success(), "{m} {p}: {s} {body}");
    }
    let reviewer = f.tokens[1].clone();
    let (s, _) = call(
        &f,
        "POST",
        "/api/cases/1/review",
        Some(&reviewer),
        json,
        br#"{"verdict":"reject","note":"a delivery van"}"#.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(&f, "GET", "/api/audit?limit=10", Some(&admin), "", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    let log: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..4],
        [
            "case.review",
            "camera.delete",
            "camera.disable",
            "camera.update"
        ]
    );
    let update = &entries[3];
    assert_eq!(update["actor"], "someone");
    assert_eq!(update["role"], "admin");
    assert_eq!(update["target"], "camera/cam-a");
    assert_eq!(update["before"]["source"], "rtsp://10.1.0.1/cam-a");
    assert_eq!(update["after"]["every"], "1s");
    assert!(
        !body.contains("u:pw@"),
        "the audit log hides passwords: {body}"
    );
    assert_eq!(entries[0]["after"]["status"], "rejected");
    assert_eq!(entries[0]["role"], "reviewer");
    assert!(entries[1]["after"].is_null(), "a deletion has no after");
    // the review carries the token's name
    let (_, case) = call(&f, "GET", "/api/cases/1", Some(&reviewer), "", vec![]).await;
    assert!(case.contains("\"reviewer\":\"someone\""), "{case}");
}

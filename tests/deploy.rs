//! The Kubernetes manifests under deploy/kubernetes: valid against the Kubernetes API's
//! schemas (kubernetes-validate, strict, which scripts/setup.sh installs into .venv —
//! and which rejects a broken copy), and the fields that make a gridwatch cluster
//! work: the node name from the pod's name, the store URL from the Secret, probes on
//! /readyz and /healthz at the port the config listens on, a GPU per pod, Prometheus
//! annotations, and a ConfigMap holding a config gridwatch accepts.

mod common;

use std::path::PathBuf;
use std::process::Command;

use gridwatch::config::Config;
use serde_json::Value;

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::path("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(common::venv("kubernetes-validate"))
        .arg("--strict")
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every document of every manifest, as JSON (PyYAML reads the YAML).
fn documents() -> Vec<Value> {
    let out = Command::new(common::venv("python"))
        .args([
            "-c",
            "import json, sys, yaml\nprint(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]))",
        ])
        .args(manifests())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

#[test]
fn the_manifests_pass_the_kubernetes_schemas_and_a_broken_one_does_not() {
    let files = manifests();
    assert!(files.len() >= 5, "{files:?}");
    let (ok, out) = validate(&files);
    assert!(ok, "{out}");
    assert_eq!(out.matches("passed").count(), 10, "{out}");

    // the validator is not a rubber stamp: a wrong type and an unknown field fail
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::path("deploy/kubernetes/statefulset.yaml")).unwrap();
    for (from, to) in [
        ("replicas: 3", "replicas: three"),
        (
            "serviceName: gridwatch-nodes",
            "serviceNmae: gridwatch-nodes",
        ),
    ] {
        assert!(text.contains(from));
        let broken = tmp.path().join("statefulset.yaml");
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let (ok, out) = validate(&[broken]);
        assert!(!ok, "{to} passed: {out}");
    }
}

#[test]
fn the_statefulset_wires_node_names_store_probes_gpu_and_metrics() {
    let docs = documents();
    let sts = find(&docs, "StatefulSet", "gridwatch");
    let pod = &sts["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    let env = |name: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .clone()
    };
    // the pod's name is the node's name in the leases
    assert_eq!(
        env("GRIDWATCH_NODE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // the store URL from the Secret, which has that key
    let store = &env("GRIDWATCH_STORE_URL")["valueFrom"]["secretKeyRef"];
    let secret = find(&docs, "Secret", store["name"].as_str().unwrap());
    let url = secret["stringData"][store["key"].as_str().unwrap()]
        .as_str()
        .unwrap();
    assert!(url.starts_with("postgres://"), "{url}");
    // a GPU per pod
    assert_eq!(c["resources"]["requests"]["nvidia.com/gpu"], "1");
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
    // probes on the API's port
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    let port = &c["ports"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], port["name"]);
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], port["name"]);
    // Prometheus finds /metrics
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    assert_eq!(
        ann["prometheus.io/port"].as_str().unwrap(),
        port["containerPort"].to_string()
    );
    // the Services select these pods
    for svc in ["gridwatch", "gridwatch-nodes"] {
        let s = find(&docs, "Service", svc);
        for (k, v) in s["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&pod["metadata"]["labels"][k], v, "{svc} selects {k}");
        }
    }
    assert_eq!(sts["spec"]["serviceName"], "gridwatch-nodes");
    // every secret the pod reads is required and exists with that key; no credential
    // sits in the ConfigMap
    for e in c["env"].as_array().unwrap() {
        let r = &e["valueFrom"]["secretKeyRef"];
        if r.is_null() {
            continue;
        }
        assert!(r["optional"].is_null() || r["optional"] == false, "{e}");
        let s = find(&docs, "Secret", r["name"].as_str().unwrap());
        assert!(
            s["stringData"][r["key"].as_str().unwrap()].is_string(),
            "{e}"
        );
    }
    let cm = find(&docs, "ConfigMap", "gridwatch-config");
    let cfg_text = cm["data"]["gridwatch.toml"].as_str().unwrap();
    assert!(
        !cfg_text
            .lines()
            .any(|l| l.trim_start().starts_with("api_key =")),
        "the ConfigMap names api_key_env, holds no key"
    );
    assert!(cfg_text.contains("api_key_env = \"GRIDWATCH_DELIVERY_API_KEY\""));
    // the NetworkPolicy covers these pods and lets the API port in
    let np = find(&docs, "NetworkPolicy", "gridwatch");
    for (k, v) in np["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&pod["metadata"]["labels"][k], v);
    }
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], port["name"]);
    // it runs as the image's user, without root, on a read-only root filesystem with
    // the data folder and /tmp writable
    let image = std::fs::read_to_string(common::path("scripts/make-image.sh")).unwrap();
    let user = image
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("scripts/make-image.sh sets USER");
    let uid: i64 = user.split(':').next().unwrap().trim().parse().unwrap();
    let sec = &pod["spec"]["securityContext"];
    assert_eq!(sec["runAsNonRoot"], true);
    assert_eq!(sec["runAsUser"], uid);
    assert_eq!(sec["fsGroup"], uid);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/tmp"), "{mounts:?}");

    // the ConfigMap's config is one gridwatch accepts, and it matches the pod
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| config_path.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the config file is on a mounted volume");
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let cm = find(
        &docs,
        "ConfigMap",
        volume["configMap"]["name"].as_str().unwrap(),
    );
    let file = config_path.rsplit('/').next().unwrap();
    let text = cm["data"][file].as_str().unwrap();
    // every problem gridwatch finds is a path that only the image has or a variable
    // that only the pod sets
    let pod_env: Vec<String> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let (cfg, problems) =
        Config::parse_unchecked(text, file, std::path::Path::new("/etc/gridwatch")).unwrap();
    for m in &problems {
        let image_path = m.contains(": /opt/gridwatch/") || m.contains(": /etc/gridwatch/");
        let pod_var = pod_env
            .iter()
            .any(|v| m.contains(&format!("environment variable {v} is not set")));
        assert!(
            (image_path && m.ends_with("does not exist")) || pod_var,
            "{m}"
        );
    }
    // the geo files it names under the mount are in the ConfigMap, and gridwatch loads them
    let tmp = tempfile::tempdir().unwrap();
    let from_configmap = |p: &std::path::Path| {
        let key = p
            .strip_prefix(mount["mountPath"].as_str().unwrap())
            .unwrap_or_else(|_| panic!("{} is not on the config volume", p.display()));
        let body = cm["data"][key.to_str().unwrap()]
            .as_str()
            .unwrap_or_else(|| panic!("{} is not in the ConfigMap", key.display()));
        let local = tmp.path().join(key);
        std::fs::write(&local, body).unwrap();
        local
    };
    let tz = cfg.geo.timezone;
    let zones =
        gridwatch::geo::zones::ZoneSet::load(&from_configmap(cfg.geo.zones.as_ref().unwrap()), tz)
            .unwrap();
    assert_eq!(zones.zones().len(), 2);
    let grid =
        gridwatch::geo::grid::Grid::load(&from_configmap(cfg.geo.grid.as_ref().unwrap())).unwrap();
    // each camera stands in a grid cell
    for cam in &cfg.cameras {
        let [lat, lon] = cam.location.unwrap();
        assert!(
            grid.lookup(gridwatch::geo::LatLon { lat, lon }).is_some(),
            "{} is outside the example grid",
            cam.id
        );
    }
    assert_eq!(cfg.store_env.as_deref(), Some("GRIDWATCH_STORE_URL"));
    assert!(
        mounts
            .iter()
            .any(|m| std::path::Path::new(m) == cfg.data_dir),
        "data_dir {} is not a writable volume: {mounts:?}",
        cfg.data_dir.display()
    );
    assert_eq!(cfg.api.listen, format!("0.0.0.0:{}", port["containerPort"]));
    assert!(matches!(
        cfg.model.provider,
        gridwatch::detect::Provider::Cuda { .. } | gridwatch::detect::Provider::TensorRt { .. }
    ));
    assert!(cfg.cameras.len() >= 2);
    assert!(cfg.cameras.iter().all(|c| c.source.starts_with("rtsp://")));
    // nothing is read or written without a token, and the admin token the pods start
    // with comes from a Secret that has it
    assert!(!cfg.api.open_reads && !cfg.api.open_writes);
    let var = cfg.api.token_env.as_deref().expect("api.token_env");
    let token = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == var)
        .unwrap_or_else(|| panic!("the pod does not set {var}"));
    let r = &token["valueFrom"]["secretKeyRef"];
    assert_ne!(r["optional"], true, "the token must not be optional");
    let secret = find(&docs, "Secret", r["name"].as_str().unwrap());
    assert!(secret["stringData"][r["key"].as_str().unwrap()].is_string());
    // a clean stop (leases given back, last delivery round) fits the grace period
    assert!(
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap()
            > cfg.cluster.lease_ttl.as_secs()
    );
}

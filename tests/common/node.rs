//! A `gridwatch run` node for the multi-node tests: started with a config and a
//! PostgreSQL store URL (through `GW_TEST_STORE`) under a node name, its log in a
//! file, its address read from its first line of output; plain HTTP GETs against it.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

/// One `gridwatch run` node, its log in a file.
pub struct Node {
    pub name: String,
    pub child: Child,
    pub url: String,
    log: std::path::PathBuf,
}

impl Node {
    pub fn start(name: &str, cfg: &std::path::Path, store: &str, dir: &std::path::Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let mut child = super::gridwatch(&["run", "--config", cfg.to_str().unwrap()])
            .env("GW_TEST_STORE", store)
            .env(super::cases::INBOX_KEY_ENV, super::cases::INBOX_KEY)
            .env("GRIDWATCH_NODE", name)
            .env("GRIDWATCH_LOG", "gridwatch=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let (line, url) = super::first_url(&mut child);
        let url = url.unwrap_or_else(|| {
            panic!(
                "{name} did not start: {line}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Self {
            name: name.into(),
            child,
            url,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The cameras running on this node, from its /api/cameras (which must answer).
    pub fn running(&self) -> BTreeSet<String> {
        self.running_as(None)
    }

    /// As [`Node::running`], asked with a bearer token.
    pub fn running_as(&self, token: Option<&str>) -> BTreeSet<String> {
        let url = format!("{}/api/cameras?limit=1000", self.url);
        let v = call(reqwest::Method::GET, &url, token, None)
            .filter(|(s, _)| *s == 200)
            .and_then(|(_, b)| serde_json::from_slice::<Value>(&b).ok())
            .unwrap_or_else(|| {
                panic!(
                    "{}'s /api/cameras did not answer\n{}",
                    self.name,
                    self.log()
                )
            });
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["node"] == self.name.as_str()
                    && !["elsewhere", "error", "starting", "disabled", "unassigned"]
                        .contains(&c["state"].as_str().unwrap_or(""))
            })
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn metric(&self, name: &str) -> f64 {
        let text = get_text(&format!("{}/metrics", self.url)).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET with a 5 s limit: the status and the body, if an answer came back.
fn fetch(url: &str) -> Option<(u16, Vec<u8>)> {
    call(reqwest::Method::GET, url, None, None)
}

/// A request with a 5 s limit, a bearer token and a JSON body if given: the status
/// and the body, if an answer came back.
pub fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> Option<(u16, Vec<u8>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(method, url)
            .timeout(Duration::from_secs(5));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = json {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.bytes().await.ok()?.to_vec()))
    })
}

/// The body of a 200 answer.
pub fn get_bytes(url: &str) -> Option<Vec<u8>> {
    fetch(url).and_then(|(status, body)| (200..300).contains(&status).then_some(body))
}

/// The HTTP status of a GET, if one came back.
pub fn status(url: &str) -> Option<u16> {
    fetch(url).map(|(status, _)| status)
}

/// The body of a 200 answer, as text.
pub fn get_text(url: &str) -> Option<String> {
    String::from_utf8(get_bytes(url)?).ok()
}

/// The body of a 200 answer, as JSON.
pub fn get(url: &str) -> Option<Value> {
    serde_json::from_str(&get_text(url)?).ok()
}

/// `f`'s first `Some` within `wait`; else a panic with the node's log.
pub fn eventually<T>(what: &str, node: &Node, wait: Duration, f: impl FnMut() -> Option<T>) -> T {
    super::eventually_or(what, wait, || node.log(), f)
}

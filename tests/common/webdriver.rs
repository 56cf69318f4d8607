//! A small W3C WebDriver client for the browser tests: starts Debian's chromedriver on
//! a free port, opens a headless Chromium session, and offers the few commands the
//! tests use (navigate, find, click, type, keys, run a script). Blocking calls over
//! reqwest on a private runtime.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; the driver process is killed on drop.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/setup.sh installs chromium-driver)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut b = Self {
            rt,
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
            driver,
        };
        let t = Instant::now();
        loop {
            let ready = b
                .raw("GET", "/status", None)
                .ok()
                .and_then(|v| v["value"]["ready"].as_bool())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,900"]
            }
        }}});
        let v = b.raw("POST", "/session", Some(caps)).expect("a session");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b.base = format!("{}/session/{id}", b.base);
        b
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let req = match method {
                "GET" => self.http.get(&url),
                "DELETE" => self.http.delete(&url),
                _ => self
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.unwrap_or(json!({})).to_string()),
            };
            let r = req.send().await.map_err(|e| e.to_string())?;
            let status = r.status();
            let bytes = r.bytes().await.map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(v)
            } else {
                Err(format!("{status}: {v}"))
            }
        })
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))["value"]
            .clone()
    }

    /// Opens a URL.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// The first element matching a CSS selector, waiting up to `wait` for it.
    pub fn find(&self, css: &str, wait: Duration) -> String {
        let t = Instant::now();
        loop {
            let got = self.raw(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            if let Some(id) = got.as_ref().ok().and_then(|v| v["value"][ELEMENT].as_str()) {
                return id.to_string();
            }
            assert!(
                t.elapsed() < wait,
                "no element {css} after {wait:?}: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks an element.
    pub fn click(&self, el: &str) {
        self.cmd("POST", &format!("/element/{el}/click"), None);
    }

    /// Types into an element.
    pub fn type_into(&self, el: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// An element's visible text.
    pub fn text(&self, el: &str) -> String {
        self.cmd("GET", &format!("/element/{el}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Presses a key on the page (not in a field).
    pub fn key(&self, key: &str) {
        self.cmd(
            "POST",
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
                ]}]}),
            ),
        );
    }

    /// Evaluates an expression in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": format!("return ({script});"), "args": [] })),
        )
    }

    /// Waits until `script` returns true.
    pub fn wait_for(&self, script: &str, wait: Duration) {
        let t = Instant::now();
        while self.eval(script) != json!(true) {
            if t.elapsed() >= wait {
                let body = self.eval("document.body.innerText");
                panic!("timed out waiting for: {script}\npage text:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.raw("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

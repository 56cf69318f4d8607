//! The browser tests' WebDriver session: Debian's chromedriver on a free port, a
//! headless Chromium session through `fantoccini` (a maintained W3C WebDriver client),
//! and the few commands the tests use as blocking calls on a private runtime.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{
    InputSource, KeyAction, KeyActions, MouseActions, PointerAction, MOUSE_BUTTON_LEFT,
};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// A browser session; the session is closed and the driver process killed on drop.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
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
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,900"]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        // the driver takes a moment to listen
        let client = loop {
            let tried = rt.block_on(
                ClientBuilder::native()
                    .capabilities(caps.clone())
                    .connect(&url),
            );
            match tried {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        t.elapsed() < Duration::from_secs(20),
                        "no browser session from chromedriver: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        Self {
            rt,
            client: Some(client),
            driver,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Opens a URL.
    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.c().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The first element matching a CSS selector, waiting up to `wait` for it.
    pub fn find(&self, css: &str, wait: Duration) -> Element {
        let t = Instant::now();
        loop {
            match self.rt.block_on(self.c().find(Locator::Css(css))) {
                Ok(el) => return el,
                Err(e) => assert!(t.elapsed() < wait, "no element {css} after {wait:?}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks an element.
    pub fn click(&self, el: &Element) {
        self.rt
            .block_on(el.click())
            .unwrap_or_else(|e| panic!("click: {e}"));
    }

    /// Types into an element.
    pub fn type_into(&self, el: &Element, text: &str) {
        self.rt
            .block_on(el.send_keys(text))
            .unwrap_or_else(|e| panic!("typing: {e}"));
    }

    /// An element's visible text.
    pub fn text(&self, el: &Element) -> String {
        self.rt
            .block_on(el.text())
            .unwrap_or_else(|e| panic!("text: {e}"))
    }

    /// Presses a key on the page (not in a field).
    pub fn key(&self, key: &str) {
        let mut chars = key.chars();
        let (Some(value), None) = (chars.next(), chars.next()) else {
            panic!("one key at a time: {key:?}");
        };
        let press = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.rt
            .block_on(self.c().perform_actions(press))
            .unwrap_or_else(|e| panic!("key {key}: {e}"));
    }

    /// Presses the mouse on `el` at `from` (CSS pixels from its top left corner),
    /// moves it to `to` and lets go: a click where the two are the same.
    pub fn drag(&self, el: &Element, from: (f64, f64), to: (f64, f64)) {
        let (_, _, w, h) = self
            .rt
            .block_on(el.rectangle())
            .unwrap_or_else(|e| panic!("element size: {e}"));
        let to_centre = |(x, y): (f64, f64)| (x - w / 2.0, y - h / 2.0);
        let mv = |p: (f64, f64)| PointerAction::MoveToElement {
            element: el.clone(),
            duration: Some(Duration::from_millis(50)),
            x: to_centre(p).0,
            y: to_centre(p).1,
        };
        let mut acts = MouseActions::new("mouse".into())
            .then(mv(from))
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            });
        if from != to {
            acts = acts.then(mv(to));
        }
        acts = acts.then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
        self.rt
            .block_on(self.c().perform_actions(acts))
            .unwrap_or_else(|e| panic!("mouse at {from:?} → {to:?}: {e}"));
    }

    /// Clicks `el` at `at` (CSS pixels from its top left corner).
    pub fn click_at(&self, el: &Element, at: (f64, f64)) {
        self.drag(el, at, at);
    }

    /// Evaluates an expression in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.rt
            .block_on(self.c().execute(&format!("return ({script});"), vec![]))
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
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
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

//! A real RTSP server for the tests: scripts/rtsp-server.py (GStreamer's
//! gst-rtsp-server) on 127.0.0.1, serving clips without re-encoding.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::path;

/// A running server; killed when dropped.
pub struct RtspServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    mounts: Vec<String>,
    /// Lines it printed after `PORT`: `PLAY /x`, `TEARDOWN /x`, …
    pub events: Arc<Mutex<Vec<String>>>,
}

impl RtspServer {
    /// Starts a server with mounts `NAME=CODEC:FILE` (FILE relative to the checkout),
    /// on `port` (0: any free port).
    pub fn start(mounts: &[&str], port: u16) -> Self {
        Self::start_with(mounts, port, &[])
    }

    /// Like [`Self::start`], with more arguments for the script (e.g. `--auth u:p`).
    pub fn start_with(mounts: &[&str], port: u16, extra: &[&str]) -> Self {
        let mounts: Vec<String> = mounts
            .iter()
            .map(|m| {
                let (name, rest) = m.split_once('=').unwrap();
                let (codec, file) = rest.split_once(':').unwrap();
                format!("{name}={codec}:{}", path(file).display())
            })
            .collect();
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(path("scripts/rtsp-server.py"))
            .arg("--port")
            .arg(port.to_string());
        for m in &mounts {
            cmd.arg("--mount").arg(m);
        }
        cmd.args(extra);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("scripts/rtsp-server.py starts (scripts/setup.sh installs GStreamer)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line.strip_prefix("PORT ") {
                    let _ = tx.send(p.trim().parse::<u16>().unwrap());
                } else {
                    ev.lock().unwrap().push(line);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the RTSP server printed its port");
        Self {
            child,
            port,
            mounts,
            events,
        }
    }

    /// `rtsp://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> url::Url {
        format!("rtsp://127.0.0.1:{}/{name}", self.port)
            .parse()
            .unwrap()
    }

    /// Kills the server at once (no TEARDOWN, connections reset).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same mounts.
    pub fn restart(&mut self) {
        self.kill();
        let mounts: Vec<&str> = self.mounts.iter().map(String::as_str).collect();
        // give the kernel a moment to release the port
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok()
                || Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let fresh = RtspServer::start_with(&mounts, self.port, &[]);
        drop(std::mem::replace(self, fresh));
    }

    /// Freezes the process: connections stay open, nothing is sent (SIGSTOP).
    pub fn freeze(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        signal(self.child.id(), "CONT");
    }

    /// Whether it printed a line starting with `prefix`.
    pub fn saw(&self, prefix: &str) -> bool {
        self.events
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(prefix))
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{sig} {pid}");
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.thaw_quietly();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RtspServer {
    fn thaw_quietly(&self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
    }
}

/// A port nobody listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `cond` every 100 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

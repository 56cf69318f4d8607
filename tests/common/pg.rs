//! A throwaway PostgreSQL cluster on 127.0.0.1 for the tests: Debian's server binaries
//! (scripts/setup.sh installs `postgresql`), initdb into a temporary folder, started on
//! a free port with trust authentication, stopped and removed on drop. As root the
//! server runs as the `postgres` user (PostgreSQL refuses to run as root).

use std::path::PathBuf;
use std::process::Command;

/// A running cluster.
pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    next_db: std::sync::atomic::AtomicU32,
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Runs a server binary, as `postgres` when we are root.
fn run(bin: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

impl Pg {
    /// Starts a fresh cluster.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a fresh cluster that also takes TLS connections, with `pki`'s server
    /// certificate and key.
    pub fn start_tls(pki: &super::tls::Pki) -> Self {
        Self::start_with(Some(pki))
    }

    fn start_with(tls: Option<&super::tls::Pki>) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (scripts/setup.sh installs postgresql)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").is_file())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::Builder::new()
            .prefix("gridwatch-pg")
            .tempdir()
            .unwrap();
        let mut ssl = String::new();
        if let Some(pki) = tls {
            let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::copy(&pki.cert, &cert).unwrap();
            std::fs::copy(&pki.key, &key).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
        }
        if is_root() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "chown: {out:?}");
        }
        let data = dir.path().join("data");
        let out = run(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "gridwatch",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off{ssl}",
            dir.path().display()
        );
        let log = dir.path().join("log");
        let out = run(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Self {
            dir,
            bin,
            port,
            next_db: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// A fresh, empty database in the cluster; its URL.
    pub fn database(&self) -> String {
        let n = self
            .next_db
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("t{n}");
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url(&name)
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://gridwatch@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (fast) and starts it again on the same port and data.
    pub fn restart(&self) {
        let data = self.dir.path().join("data");
        // with its log file: a server left writing to pg_ctl's captured stdout would
        // keep that pipe open, and `output()` would wait for it forever
        let log = self.dir.path().join("log");
        let out = run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "restart",
            ],
        );
        assert!(out.status.success(), "pg_ctl restart: {out:?}");
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

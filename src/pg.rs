//! PostgreSQL connections, for the case store and the cluster's leases alike: TLS as
//! libpq does it (`sslmode`, `sslrootcert`), limits so that a dead server or a cut
//! network fails a call instead of hanging it, error texts with the server's message,
//! URLs shown without their password, and [`Db`]: one connection that is opened
//! again on the next call after it was lost.
//!
//! It uses the `postgres` crate's blocking client: call it from blocking threads,
//! never on an async worker thread.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use postgres::{Client, NoTls};

/// An error's text for messages: a PostgreSQL error with the server's message and
/// detail (the client's own text is only "db error"), or a connection error with its
/// cause.
pub trait Describe {
    /// The text.
    fn describe(&self) -> String;
}

impl Describe for postgres::Error {
    fn describe(&self) -> String {
        if let Some(db) = self.as_db_error() {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            return s;
        }
        let mut s = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            let more = e.to_string();
            if !s.contains(&more) {
                s.push_str(": ");
                s.push_str(&more);
            }
            source = e.source();
        }
        s
    }
}

impl Describe for String {
    fn describe(&self) -> String {
        self.clone()
    }
}

/// Connects to `url`, with limits so that a dead server or a cut network fails a call
/// instead of hanging it (and with it a detection loop or a heartbeat): unless the URL
/// sets them, 10 s to connect, TCP keepalives after 15 s idle, and 30 s for sent data
/// to be acknowledged. TLS as libpq does it ([`TlsParams`]). Errors are described
/// ([`Describe`]) and never hold the password.
pub fn connect(url: &str) -> Result<Client, String> {
    let (rest, tls) = TlsParams::split(url)?;
    let mut cfg: postgres::Config = rest.parse().map_err(|e: postgres::Error| e.describe())?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(10));
    }
    if cfg.get_tcp_user_timeout().is_none() {
        cfg.tcp_user_timeout(std::time::Duration::from_secs(30));
    }
    if !url.contains("keepalives_idle") {
        cfg.keepalives_idle(std::time::Duration::from_secs(15));
    }
    let connected = match tls.connector()? {
        None => cfg
            .ssl_mode(postgres::config::SslMode::Disable)
            .connect(NoTls),
        Some(connector) => {
            let mode = if tls.mode == SslMode::Prefer {
                postgres::config::SslMode::Prefer
            } else {
                postgres::config::SslMode::Require
            };
            cfg.ssl_mode(mode)
                .connect(postgres_native_tls::MakeTlsConnector::new(connector))
        }
    };
    connected.map_err(|e| e.describe())
}

/// libpq's `sslmode`, which the `postgres` crate knows only in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, certificate not checked (libpq's default;
    /// `allow` is taken as this).
    Prefer,
    /// TLS or no connection; the certificate is checked against `sslrootcert` when
    /// one is given (as libpq does), else not.
    Require,
    /// TLS, the certificate signed by a trusted CA (the system's or `sslrootcert`).
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

/// The TLS settings of a PostgreSQL URL, in libpq's words: `sslmode` (disable, allow,
/// prefer — the default —, require, verify-ca, verify-full) and `sslrootcert` (a PEM
/// file of CA certificates trusted besides the system's), in the URL's query
/// (`postgres://…/db?sslmode=verify-full&sslrootcert=/etc/gridwatch/db-ca.pem`) or as
/// `key=value` words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    /// The mode.
    pub mode: SslMode,
    /// Extra trusted CAs.
    pub root_cert: Option<PathBuf>,
}

impl TlsParams {
    /// Takes `sslmode` and `sslrootcert` out of `url`: the rest (for the `postgres`
    /// crate) and the settings.
    pub fn split(url: &str) -> Result<(String, Self), String> {
        let mut mode = None;
        let mut root_cert = None;
        let mut take = |key: &str, value: &str| -> Result<bool, String> {
            match key {
                "sslmode" => {
                    mode = Some(match value {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode={other}: expected disable, allow, prefer, require, verify-ca or verify-full"
                            ))
                        }
                    });
                    Ok(true)
                }
                "sslrootcert" => {
                    root_cert = Some(PathBuf::from(value));
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let rest = if is_url(url) {
            let mut u = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
            let mut kept = Vec::new();
            for (k, v) in u.query_pairs() {
                if !take(&k, &v)? {
                    kept.push((k.into_owned(), v.into_owned()));
                }
            }
            if kept.is_empty() {
                u.set_query(None);
            } else {
                u.query_pairs_mut().clear().extend_pairs(kept);
            }
            u.to_string()
        } else {
            let mut kept = Vec::new();
            for word in url.split_whitespace() {
                match word.split_once('=') {
                    Some((k, v)) if take(k.trim(), v.trim().trim_matches('\''))? => {}
                    _ => kept.push(word),
                }
            }
            kept.join(" ")
        };
        Ok((
            rest,
            Self {
                mode: mode.unwrap_or(SslMode::Prefer),
                root_cert,
            },
        ))
    }

    /// The TLS connector these settings ask for; `None` for `disable`.
    pub fn connector(&self) -> Result<Option<native_tls::TlsConnector>, String> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let mut b = native_tls::TlsConnector::builder();
        let roots = match &self.root_cert {
            Some(path) => read_pem_certificates(path)?,
            None => Vec::new(),
        };
        let checked = match self.mode {
            SslMode::Disable | SslMode::Prefer => false,
            SslMode::Require => !roots.is_empty(),
            SslMode::VerifyCa | SslMode::VerifyFull => true,
        };
        if !checked {
            b.danger_accept_invalid_certs(true);
        } else if self.mode != SslMode::VerifyFull {
            b.danger_accept_invalid_hostnames(true);
        }
        for c in roots {
            b.add_root_certificate(c);
        }
        b.build().map(Some).map_err(|e| format!("TLS: {e}"))
    }
}

/// The certificates of a PEM file, each `BEGIN CERTIFICATE` block; an error naming the
/// file when it cannot be read or holds none.
fn read_pem_certificates(path: &Path) -> Result<Vec<native_tls::Certificate>, String> {
    let what = |m: String| format!("sslrootcert {}: {m}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| what(e.to_string()))?;
    const END: &str = "-----END CERTIFICATE-----";
    let mut certs = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(len) = rest[start..].find(END) else {
            return Err(what("a certificate without its END line".into()));
        };
        let block = &rest[start..start + len + END.len()];
        certs.push(
            native_tls::Certificate::from_pem(block.as_bytes())
                .map_err(|e| what(format!("not a PEM certificate ({e})")))?,
        );
        rest = &rest[start + len + END.len()..];
    }
    if certs.is_empty() {
        return Err(what("no certificate in it".into()));
    }
    Ok(certs)
}

/// The URL without its password, for errors and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The connection. The blocking client owns a small runtime that must not be shut down
/// from inside an async context, so it is dropped on a thread of its own.
struct Conn(Option<Client>);

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("an open connection")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("an open connection")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = std::thread::spawn(move || drop(c)).join();
        }
    }
}

/// Whether `url` is a PostgreSQL URL (`postgres://` or `postgresql://`), the only
/// kind of store URL there is.
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether an error means the database could not be reached or could not take the
/// statement just now (a lost connection, a server shutting down, too many clients,
/// a serialisation failure or deadlock): worth trying again. Anything else is the
/// database refusing the statement itself.
pub fn unavailable(e: &postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            e.is_closed()
                || ["08", "40", "53", "57", "58"]
                    .iter()
                    .any(|class| c.starts_with(class))
        }
    }
}

/// One connection to a database, opened on first use and again on the next call after
/// it was lost (a server restart, a network cut): a call that failed with the old
/// connection returns its error, and the next one reconnects. Calls take turns.
pub struct Db {
    url: String,
    name: String,
    client: Mutex<Conn>,
}

/// A connection in use; see [`Db::lock`].
pub struct Guard<'a>(MutexGuard<'a, Conn>);

impl std::ops::Deref for Guard<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.0
    }
}

impl Db {
    /// A database at `url`, not connected yet.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            name: redacted(url),
            client: Mutex::new(Conn(None)),
        }
    }

    /// A database at `url` with a connection made now and handed in.
    pub fn with_client(url: &str, client: Client) -> Self {
        let db = Self::new(url);
        *db.client.lock().unwrap_or_else(|p| p.into_inner()) = Conn(Some(client));
        db
    }

    /// The URL without its password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection, made first when there is none or the last was lost; waits for
    /// another call using it. The error is the connection's, described.
    pub fn lock(&self) -> Result<Guard<'_>, String> {
        self.ready(self.client.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// As [`Db::lock`], but `None` at once when another call is using it.
    pub fn try_lock(&self) -> Option<Result<Guard<'_>, String>> {
        match self.client.try_lock() {
            Ok(g) => Some(self.ready(g)),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(self.ready(p.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    fn ready<'a>(&self, mut guard: MutexGuard<'a, Conn>) -> Result<Guard<'a>, String> {
        if guard.0.as_ref().is_none_or(|c| c.is_closed()) {
            let had = guard.0.is_some();
            // dropped on its own thread (see Conn)
            drop(Conn(guard.0.take()));
            guard.0 = Some(connect(&self.url)?);
            if had {
                tracing::info!("{}: connected again", self.name);
            }
        }
        Ok(Guard(guard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_come_out_of_the_url_and_the_rest_stays() {
        let (rest, t) = TlsParams::split(
            "postgres://gw:secret@db:5432/cases?sslmode=verify-full&application_name=gw&sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://gw:secret@db:5432/cases?application_name=gw"
        );
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));

        let (rest, t) = TlsParams::split("postgres://gw@db/cases?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://gw@db/cases");
        assert_eq!((t.mode, t.root_cert), (SslMode::Require, None));

        let (rest, t) = TlsParams::split("postgres://gw@db/cases").unwrap();
        assert_eq!(rest, "postgres://gw@db/cases");
        assert_eq!(t.mode, SslMode::Prefer, "libpq's default");

        let (rest, t) =
            TlsParams::split("host=db user=gw sslmode=verify-ca sslrootcert='/etc/ca.pem'")
                .unwrap();
        assert_eq!(rest, "host=db user=gw");
        assert_eq!(t.mode, SslMode::VerifyCa);
        assert_eq!(t.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));

        let e = TlsParams::split("postgres://db/x?sslmode=yes").unwrap_err();
        assert!(
            e.contains("sslmode=yes") && e.contains("verify-full"),
            "{e}"
        );
    }

    #[test]
    fn a_root_certificate_file_must_hold_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        let t = |p: &Path| TlsParams {
            mode: SslMode::VerifyFull,
            root_cert: Some(p.to_path_buf()),
        };
        let missing = tmp.path().join("missing.pem");
        let e = t(&missing).connector().unwrap_err();
        assert!(
            e.contains("sslrootcert") && e.contains("missing.pem"),
            "{e}"
        );
        let junk = tmp.path().join("junk.pem");
        std::fs::write(&junk, "no certificates here").unwrap();
        let e = t(&junk).connector().unwrap_err();
        assert!(
            e.contains("junk.pem") && e.contains("no certificate"),
            "{e}"
        );
        assert!(TlsParams {
            mode: SslMode::Disable,
            root_cert: None
        }
        .connector()
        .unwrap()
        .is_none());
    }
}

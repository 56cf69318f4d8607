//! The PostgreSQL case store: the same behaviour as the SQLite store, shared by many
//! gridwatch nodes. Dedup is atomic across nodes: the case row of a key is locked
//! (`SELECT … FOR UPDATE`) while a violation is decided, and a new case goes in with
//! `INSERT … ON CONFLICT DO NOTHING` on the partial unique index of active cases, so two
//! nodes opening the same key at once make one case (the loser absorbs into it).
//! Deliveries are claimed with `FOR UPDATE SKIP LOCKED` and a claim that expires, so one
//! node at a time delivers a case, and a node that dies mid-delivery leaves its claim to
//! run out. Migrations are versioned and run under an advisory lock.
//!
//! It uses the `postgres` crate's blocking client: call it from blocking threads (the
//! outbox and the API do, through `spawn_blocking`), never on an async worker thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use postgres::{Client, GenericClient, NoTls, Row};
use sha2::{Digest, Sha256};

use super::{
    now_ms, AfterAttempt, Attempt, Case, CaseQuery, CaseStatus, CaseStore, DedupConfig, Delivery,
    DeliveryCounts, DeliveryState, Event, Evidence, NewViolation, Outcome, Review, StoreError,
    Verdict,
};

/// How long a node's claim on a delivery lasts (longer than any request's timeout).
pub const CLAIM_MS: i64 = 120_000;

/// Migrations, in order; `gridwatch_schema` records how many ran.
const MIGRATIONS: &[&str] = &["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     INSERT INTO meta (key, value) VALUES ('install_id', substr(md5(random()::text || clock_timestamp()::text), 1, 12));
     CREATE TABLE cases (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        cell TEXT NOT NULL,
        admin_path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'confirmed', 'rejected', 'closed')),
        first_seen_ms BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL,
        count BIGINT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        closed_ms BIGINT,
        remote_id TEXT,
        remote_token TEXT
     );
     CREATE UNIQUE INDEX one_active_case ON cases (kind, cell) WHERE status IN ('open', 'confirmed');
     CREATE INDEX cases_by_key ON cases (kind, cell, closed_ms);
     CREATE INDEX cases_by_last_seen ON cases (last_seen_ms DESC, id DESC);
     CREATE TABLE violations (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        outcome TEXT NOT NULL,
        camera TEXT NOT NULL,
        zone TEXT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        at_ms BIGINT NOT NULL,
        since_ms BIGINT NOT NULL
     );
     CREATE INDEX violations_by_case ON violations (case_id);
     CREATE TABLE case_cameras (
        case_id BIGINT NOT NULL REFERENCES cases (id),
        camera TEXT NOT NULL,
        PRIMARY KEY (case_id, camera)
     );
     CREATE TABLE evidence (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        camera TEXT NOT NULL,
        at_ms BIGINT NOT NULL
     );
     CREATE INDEX evidence_by_case ON evidence (case_id);
     CREATE TABLE deliveries (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        event TEXT NOT NULL CHECK (event IN ('create', 'update', 'resolve')),
        idempotency_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'skipped')),
        attempts BIGINT NOT NULL DEFAULT 0,
        next_at_ms BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        done_ms BIGINT,
        last_error TEXT,
        claimed_until BIGINT
     );
     CREATE INDEX deliveries_pending ON deliveries (next_at_ms) WHERE state = 'pending';
     CREATE INDEX deliveries_by_case ON deliveries (case_id, state);
     CREATE TABLE delivery_attempts (
        id BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
        at_ms BIGINT NOT NULL,
        result TEXT NOT NULL,
        http_status BIGINT,
        detail TEXT NOT NULL
     );
     CREATE INDEX attempts_by_delivery ON delivery_attempts (delivery_id);
     CREATE TABLE reviews (
        id BIGSERIAL PRIMARY KEY,
        case_id BIGINT NOT NULL REFERENCES cases (id),
        verdict TEXT NOT NULL CHECK (verdict IN ('confirm', 'reject')),
        reviewer TEXT NOT NULL,
        note TEXT NOT NULL,
        at_ms BIGINT NOT NULL
     );
     CREATE INDEX reviews_by_case ON reviews (case_id);",
    // 2: nodes sharing the cameras (service/cluster.rs), evidence kept in the database
    // so that every node serves it, and evidence retention
    "CREATE TABLE cluster_nodes (
        node TEXT PRIMARY KEY,
        url TEXT,
        instance TEXT NOT NULL,
        cameras_digest TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        seen_ms BIGINT NOT NULL
     );
     CREATE TABLE camera_leases (
        camera TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        since_ms BIGINT NOT NULL
     );
     CREATE INDEX camera_leases_by_node ON camera_leases (node);
     CREATE TABLE evidence_jpeg (
        evidence_id BIGINT PRIMARY KEY REFERENCES evidence (id) ON DELETE CASCADE,
        jpeg BYTEA NOT NULL
     );"];

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

/// The PostgreSQL store.
pub struct PgStore {
    url: String,
    /// The URL as given (with its password), for reconnecting.
    connect_url: String,
    dir: PathBuf,
    client: Mutex<Conn>,
    dedup: DedupConfig,
}

const DELIVERY_COLUMNS: &str =
    "id, case_id, event, idempotency_key, state, attempts, next_at_ms, created_ms, done_ms, last_error";

fn read_delivery(r: &Row) -> Delivery {
    Delivery {
        id: r.get(0),
        case_id: r.get(1),
        event: Event::parse(r.get(2)),
        idempotency_key: r.get(3),
        state: DeliveryState::parse(r.get(4)),
        attempts: r.get::<_, i64>(5) as u32,
        next_at_ms: r.get(6),
        created_ms: r.get(7),
        done_ms: r.get(8),
        last_error: r.get(9),
    }
}

/// An error's text for messages: a PostgreSQL error with the server's message and
/// detail (the client's own text is only "db error"), or a connection error with its
/// cause.
pub(crate) trait Describe {
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
        let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
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
pub(crate) fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`), running pending
    /// migrations; evidence files go under `dir`.
    pub fn open(url: &str, dir: &Path, dedup: DedupConfig) -> Result<Self, StoreError> {
        let name = redacted(url);
        let err = |e: &dyn Describe| StoreError::Db {
            store: name.clone(),
            message: e.describe(),
        };
        let mut client = connect(url).map_err(|e| err(&e))?;
        {
            let mut tx = client.transaction().map_err(|e| err(&e))?;
            // one node migrates at a time
            tx.execute("SELECT pg_advisory_xact_lock(7310424)", &[])
                .map_err(|e| err(&e))?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS gridwatch_schema (version BIGINT NOT NULL)",
            )
            .map_err(|e| err(&e))?;
            let version: i64 = tx
                .query_opt("SELECT version FROM gridwatch_schema", &[])
                .map_err(|e| err(&e))?
                .map(|r| r.get(0))
                .unwrap_or(0);
            if version as usize > MIGRATIONS.len() {
                return Err(err(&format!(
                    "schema version {version} is newer than this gridwatch knows ({}); upgrade gridwatch",
                    MIGRATIONS.len()
                )));
            }
            for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.batch_execute(m)
                    .map_err(|e| err(&format!("migration {}: {}", i + 1, e.describe())))?;
            }
            tx.execute("DELETE FROM gridwatch_schema", &[])
                .map_err(|e| err(&e))?;
            tx.execute(
                "INSERT INTO gridwatch_schema (version) VALUES ($1)",
                &[&(MIGRATIONS.len() as i64)],
            )
            .map_err(|e| err(&e))?;
            tx.commit().map_err(|e| err(&e))?;
        }
        Ok(Self {
            url: name,
            connect_url: url.to_string(),
            dir: dir.to_path_buf(),
            client: Mutex::new(Conn(Some(client))),
            dedup,
        })
    }

    /// The connection, opened again first when the last one was lost (a server
    /// restart, a network cut): a call that failed with the old connection returns
    /// its error, and the next call reconnects. A connection that cannot be made is
    /// that call's error.
    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Conn>, StoreError> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0.as_ref().is_none_or(|c| c.is_closed()) {
            // dropped on its own thread (see Conn)
            drop(Conn(guard.0.take()));
            let client = connect(&self.connect_url)
                .map_err(|e| self.err(format!("reconnecting: {}", e.describe())))?;
            tracing::info!("case store {}: connected again", self.url);
            guard.0 = Some(client);
        }
        Ok(guard)
    }

    fn err(&self, e: impl Describe) -> StoreError {
        StoreError::Db {
            store: self.url.clone(),
            message: e.describe(),
        }
    }

    fn read_case(&self, c: &mut impl GenericClient, id: i64) -> Result<Case, StoreError> {
        let r = c
            .query_opt(
                "SELECT id, kind, cell, admin_path, status, first_seen_ms, last_seen_ms, count, lat, lon, closed_ms
                 FROM cases WHERE id = $1",
                &[&id],
            )
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(id))?;
        let cameras = c
            .query(
                "SELECT camera FROM case_cameras WHERE case_id = $1 ORDER BY camera",
                &[&id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Case {
            id: r.get(0),
            kind: r.get(1),
            cell: r.get(2),
            admin_path: r.get(3),
            status: CaseStatus::parse(r.get(4)).unwrap_or(CaseStatus::Closed),
            first_seen_ms: r.get(5),
            last_seen_ms: r.get(6),
            count: r.get(7),
            cameras,
            lat: r.get(8),
            lon: r.get(9),
            closed_ms: r.get(10),
        })
    }

    /// Queues a delivery (the caller holds the case row's lock).
    fn enqueue(
        &self,
        c: &mut impl GenericClient,
        case_id: i64,
        event: Event,
        next_at_ms: i64,
    ) -> Result<(), StoreError> {
        let seq: i64 = c
            .query_one(
                "SELECT count(*) + 1 FROM deliveries WHERE case_id = $1",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .get(0);
        c.execute(
            "INSERT INTO deliveries (case_id, event, idempotency_key, state, next_at_ms, created_ms)
             VALUES ($1, $2, $3, 'pending', $4, $5)",
            &[
                &case_id,
                &event.as_str(),
                &super::new_idempotency_key(case_id, seq),
                &next_at_ms,
                &now_ms(),
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn transition(
        &self,
        c: &mut impl GenericClient,
        id: i64,
        status: CaseStatus,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let current: String = c
            .query_opt("SELECT status FROM cases WHERE id = $1 FOR UPDATE", &[&id])
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(id))?
            .get(0);
        let current = CaseStatus::parse(&current).unwrap_or(CaseStatus::Closed);
        if !current.can_become(status) {
            return Err(StoreError::BadTransition {
                id,
                from: current.as_str(),
                to: status.as_str(),
            });
        }
        let closed = matches!(status, CaseStatus::Rejected | CaseStatus::Closed).then_some(at_ms);
        c.execute(
            "UPDATE cases SET status = $2, closed_ms = coalesce($3, closed_ms) WHERE id = $1",
            &[&id, &status.as_str(), &closed],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl CaseStore for PgStore {
    fn record(&self, v: &NewViolation) -> Result<(i64, Outcome), StoreError> {
        let mut client = self.conn()?;
        let mut tx = client.transaction().map_err(|e| self.err(e))?;
        let window = self.dedup.window.as_millis() as i64;
        let cooldown = self.dedup.cooldown.as_millis() as i64;
        let (case_id, outcome) = loop {
            let active = tx
                .query_opt(
                    "SELECT id, last_seen_ms FROM cases WHERE kind = $1 AND cell = $2
                     AND status IN ('open', 'confirmed') FOR UPDATE",
                    &[&v.kind, &v.cell],
                )
                .map_err(|e| self.err(e))?
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
            match active {
                Some((id, last)) if v.at_ms - last <= window => {
                    tx.execute(
                        "UPDATE cases SET last_seen_ms = greatest(last_seen_ms, $2),
                         first_seen_ms = least(first_seen_ms, $2), count = count + 1 WHERE id = $1",
                        &[&id, &v.at_ms],
                    )
                    .map_err(|e| self.err(e))?;
                    let waiting: bool = tx
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE case_id = $1 AND state = 'pending' AND event = 'update')",
                            &[&id],
                        )
                        .map_err(|e| self.err(e))?
                        .get(0);
                    if !waiting {
                        let at = now_ms() + self.dedup.followup_delay.as_millis() as i64;
                        self.enqueue(&mut tx, id, Event::Update, at)?;
                    }
                    break (id, Outcome::Absorbed);
                }
                other => {
                    if let Some((id, last)) = other {
                        tx.execute(
                            "UPDATE cases SET status = 'closed', closed_ms = $2 WHERE id = $1",
                            &[&id, &(last + window)],
                        )
                        .map_err(|e| self.err(e))?;
                    }
                    let cooling: Option<i64> = tx
                        .query_opt(
                            "SELECT id FROM cases WHERE kind = $1 AND cell = $2 AND status IN ('rejected', 'closed')
                             AND closed_ms IS NOT NULL AND $3 - closed_ms < $4
                             ORDER BY closed_ms DESC LIMIT 1",
                            &[&v.kind, &v.cell, &v.at_ms, &cooldown],
                        )
                        .map_err(|e| self.err(e))?
                        .map(|r| r.get(0));
                    if let Some(id) = cooling {
                        break (id, Outcome::Suppressed);
                    }
                    let inserted: Option<i64> = tx
                        .query_opt(
                            "INSERT INTO cases (kind, cell, admin_path, status, first_seen_ms, last_seen_ms, count, lat, lon)
                             VALUES ($1, $2, $3, 'open', $4, $4, 1, $5, $6)
                             ON CONFLICT (kind, cell) WHERE status IN ('open', 'confirmed') DO NOTHING
                             RETURNING id",
                            &[&v.kind, &v.cell, &v.admin_path, &v.at_ms, &v.lat, &v.lon],
                        )
                        .map_err(|e| self.err(e))?
                        .map(|r| r.get(0));
                    match inserted {
                        Some(id) => {
                            self.enqueue(&mut tx, id, Event::Create, 0)?;
                            break (id, Outcome::Opened);
                        }
                        // another node opened this key a moment ago: absorb into it
                        None => continue,
                    }
                }
            }
        };
        let outcome_name = match outcome {
            Outcome::Opened => "opened",
            Outcome::Absorbed => "absorbed",
            Outcome::Suppressed => "suppressed",
        };
        tx.execute(
            "INSERT INTO violations (case_id, outcome, camera, zone, lat, lon, at_ms, since_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &case_id,
                &outcome_name,
                &v.camera,
                &v.zone,
                &v.lat,
                &v.lon,
                &v.at_ms,
                &v.since_ms,
            ],
        )
        .map_err(|e| self.err(e))?;
        if outcome != Outcome::Suppressed {
            tx.execute(
                "INSERT INTO case_cameras (case_id, camera) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&case_id, &v.camera],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok((case_id, outcome))
    }

    fn case(&self, id: i64) -> Result<Case, StoreError> {
        let mut client = self.conn()?;
        self.read_case(&mut **client, id)
    }

    fn cases(&self, status: Option<CaseStatus>, limit: usize) -> Result<Vec<Case>, StoreError> {
        let q = CaseQuery {
            status,
            limit,
            ..CaseQuery::default()
        };
        let mut client = self.conn()?;
        let ids: Vec<i64> = client
            .query(
                "SELECT id FROM cases WHERE $1::TEXT IS NULL OR status = $1 ORDER BY id DESC LIMIT $2",
                &[&q.status.map(|s| s.as_str()), &(q.limit as i64)],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.into_iter()
            .map(|id| self.read_case(&mut **client, id))
            .collect()
    }

    fn case_counts(&self) -> Result<Vec<(String, CaseStatus, u64)>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                "SELECT kind, status, count(*) FROM cases GROUP BY kind, status ORDER BY kind, status",
                &[],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    CaseStatus::parse(r.get(1)).unwrap_or(CaseStatus::Closed),
                    r.get::<_, i64>(2) as u64,
                )
            })
            .collect())
    }

    fn find(&self, q: &CaseQuery) -> Result<(Vec<Case>, u64), StoreError> {
        let mut client = self.conn()?;
        const WHERE: &str =
            "WHERE ($1::TEXT IS NULL OR kind = $1) AND ($2::TEXT IS NULL OR cell = $2)
             AND ($3::TEXT IS NULL OR status = $3) AND ($4::BIGINT IS NULL OR last_seen_ms >= $4)
             AND ($5::BIGINT IS NULL OR first_seen_ms <= $5)";
        let status = q.status.map(|s| s.as_str());
        let total: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM cases {WHERE}"),
                &[&q.kind, &q.cell, &status, &q.since_ms, &q.until_ms],
            )
            .map_err(|e| self.err(e))?
            .get(0);
        let ids: Vec<i64> = client
            .query(
                &format!(
                    "SELECT id FROM cases {WHERE} ORDER BY last_seen_ms DESC, id DESC LIMIT $6 OFFSET $7"
                ),
                &[
                    &q.kind,
                    &q.cell,
                    &status,
                    &q.since_ms,
                    &q.until_ms,
                    &(q.limit as i64),
                    &(q.offset as i64),
                ],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let cases = ids
            .into_iter()
            .map(|id| self.read_case(&mut **client, id))
            .collect::<Result<_, _>>()?;
        Ok((cases, total as u64))
    }

    fn set_status(&self, id: i64, status: CaseStatus, at_ms: i64) -> Result<(), StoreError> {
        let mut client = self.conn()?;
        let mut tx = client.transaction().map_err(|e| self.err(e))?;
        self.transition(&mut tx, id, status, at_ms)?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn add_evidence(
        &self,
        case_id: i64,
        camera: &str,
        at_ms: i64,
        jpeg: &[u8],
        limit: usize,
    ) -> Result<Option<Evidence>, StoreError> {
        let mut client = self.conn()?;
        let mut tx = client.transaction().map_err(|e| self.err(e))?;
        // the case row's lock keeps two nodes from passing the limit together
        tx.query_opt("SELECT id FROM cases WHERE id = $1 FOR UPDATE", &[&case_id])
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(case_id))?;
        let have: i64 = tx
            .query_one(
                "SELECT count(*) FROM evidence WHERE case_id = $1",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .get(0);
        if have as usize >= limit {
            return Ok(None);
        }
        let sha256 = format!("{:x}", Sha256::digest(jpeg));
        let id: i64 = tx
            .query_one(
                "INSERT INTO evidence (case_id, file, sha256, camera, at_ms) VALUES ($1, '', $2, $3, $4) RETURNING id",
                &[&case_id, &sha256, &camera, &at_ms],
            )
            .map_err(|e| self.err(e))?
            .get(0);
        // the bytes go into the database, so that every node's API serves them
        let file = format!("evidence/{case_id}/{id}.jpg");
        tx.execute(
            "INSERT INTO evidence_jpeg (evidence_id, jpeg) VALUES ($1, $2)",
            &[&id, &jpeg],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("UPDATE evidence SET file = $2 WHERE id = $1", &[&id, &file])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some(Evidence {
            id,
            case_id,
            file,
            sha256,
            camera: camera.to_string(),
            at_ms,
        }))
    }

    fn evidence(&self, case_id: i64) -> Result<Vec<Evidence>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                "SELECT id, case_id, file, sha256, camera, at_ms FROM evidence WHERE case_id = $1 ORDER BY id",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Evidence {
                id: r.get(0),
                case_id: r.get(1),
                file: r.get(2),
                sha256: r.get(3),
                camera: r.get(4),
                at_ms: r.get(5),
            })
            .collect())
    }

    fn review(&self, review: &Review) -> Result<(), StoreError> {
        let mut client = self.conn()?;
        let mut tx = client.transaction().map_err(|e| self.err(e))?;
        let status = match review.verdict {
            Verdict::Confirm => CaseStatus::Confirmed,
            Verdict::Reject => CaseStatus::Rejected,
        };
        self.transition(&mut tx, review.case_id, status, review.at_ms)?;
        tx.execute(
            "INSERT INTO reviews (case_id, verdict, reviewer, note, at_ms) VALUES ($1, $2, $3, $4, $5)",
            &[
                &review.case_id,
                &review.verdict.as_str(),
                &review.reviewer,
                &review.note,
                &review.at_ms,
            ],
        )
        .map_err(|e| self.err(e))?;
        let moved = tx
            .execute(
                "UPDATE deliveries SET next_at_ms = least(next_at_ms, $2)
                 WHERE case_id = $1 AND state = 'pending' AND event = 'update'",
                &[&review.case_id, &now_ms()],
            )
            .map_err(|e| self.err(e))?;
        if moved == 0 {
            self.enqueue(&mut tx, review.case_id, Event::Update, 0)?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn reviews(&self, case_id: i64) -> Result<Vec<Review>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                "SELECT case_id, verdict, reviewer, note, at_ms FROM reviews WHERE case_id = $1 ORDER BY id",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Review {
                case_id: r.get(0),
                verdict: Verdict::parse(r.get(1)).unwrap_or(Verdict::Reject),
                reviewer: r.get(2),
                note: r.get(3),
                at_ms: r.get(4),
            })
            .collect())
    }

    /// Claims the due deliveries for this node: each is skipped by the other nodes
    /// until it is finished or its claim runs out ([`CLAIM_MS`]).
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut client = self.conn()?;
        let mut rows: Vec<Delivery> = client
            .query(
                &format!(
                    "UPDATE deliveries SET claimed_until = $1 + $3
                     WHERE id IN (
                       SELECT d.id FROM deliveries d
                       WHERE d.state = 'pending' AND d.next_at_ms <= $1
                         AND (d.claimed_until IS NULL OR d.claimed_until < $1)
                         AND NOT EXISTS (
                           SELECT 1 FROM deliveries e
                           WHERE e.case_id = d.case_id AND e.state = 'pending' AND e.id != d.id
                             AND ((e.id < d.id AND NOT (d.event = 'resolve' AND e.event = 'update'))
                                  OR (e.event = 'resolve' AND d.event = 'update')))
                       ORDER BY d.next_at_ms, d.id LIMIT $2
                       FOR UPDATE SKIP LOCKED)
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[&now_ms, &(limit as i64), &CLAIM_MS],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(read_delivery)
            .collect();
        rows.sort_by_key(|d| (d.next_at_ms, d.id));
        Ok(rows)
    }

    fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query_one(
                "SELECT min(greatest(next_at_ms, coalesce(claimed_until, 0))) FROM deliveries WHERE state = 'pending'",
                &[],
            )
            .map_err(|e| self.err(e))?
            .get(0))
    }

    fn finish(
        &self,
        delivery_id: i64,
        attempt: &Attempt,
        after: &AfterAttempt,
    ) -> Result<(), StoreError> {
        let mut client = self.conn()?;
        let mut tx = client.transaction().map_err(|e| self.err(e))?;
        let r = tx
            .query_opt(
                "SELECT case_id, event FROM deliveries WHERE id = $1",
                &[&delivery_id],
            )
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("no delivery {delivery_id}")))?;
        let (case_id, event): (i64, String) = (r.get(0), r.get(1));
        // the case row's lock orders this with the case's other deliveries
        tx.execute("SELECT 1 FROM cases WHERE id = $1 FOR UPDATE", &[&case_id])
            .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO delivery_attempts (delivery_id, at_ms, result, http_status, detail)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &delivery_id,
                &attempt.at_ms,
                &attempt.result,
                &attempt.http_status.map(i64::from),
                &attempt.detail,
            ],
        )
        .map_err(|e| self.err(e))?;
        let at = attempt.at_ms;
        let (state, next, error) = match after {
            AfterAttempt::Delivered { remote_id, token } => {
                if remote_id.is_some() || token.is_some() {
                    tx.execute(
                        "UPDATE cases SET remote_id = coalesce($2, remote_id), remote_token = coalesce($3, remote_token)
                         WHERE id = $1",
                        &[&case_id, remote_id, token],
                    )
                    .map_err(|e| self.err(e))?;
                }
                if remote_id.is_none() && token.is_some() {
                    self.enqueue(&mut tx, case_id, Event::Resolve, at)?;
                }
                (DeliveryState::Delivered, None, None)
            }
            AfterAttempt::Retry { at_ms, error } => {
                (DeliveryState::Pending, Some(*at_ms), Some(error.as_str()))
            }
            AfterAttempt::Failed(why) => (DeliveryState::Failed, None, Some(why.as_str())),
            AfterAttempt::Skipped(why) => (DeliveryState::Skipped, None, Some(why.as_str())),
        };
        tx.execute(
            "UPDATE deliveries SET state = $2, attempts = attempts + 1, next_at_ms = coalesce($3, next_at_ms),
             done_ms = $4, last_error = coalesce($5, last_error), claimed_until = NULL WHERE id = $1",
            &[
                &delivery_id,
                &state.as_str(),
                &next,
                &(state != DeliveryState::Pending).then_some(at),
                &error,
            ],
        )
        .map_err(|e| self.err(e))?;
        if state == DeliveryState::Failed && event != "update" {
            tx.execute(
                "UPDATE deliveries SET state = 'failed', done_ms = $2, last_error = $3
                 WHERE case_id = $1 AND state = 'pending'",
                &[
                    &case_id,
                    &at,
                    &format!(
                        "the case was not filed ({event} failed: {})",
                        error.unwrap_or("")
                    ),
                ],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn deliveries(&self, case_id: Option<i64>) -> Result<Vec<Delivery>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE $1::BIGINT IS NULL OR case_id = $1 ORDER BY id"
                ),
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(read_delivery)
            .collect())
    }

    fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                "SELECT delivery_id, at_ms, result, http_status, detail FROM delivery_attempts
                 WHERE delivery_id = $1 ORDER BY id",
                &[&delivery_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Attempt {
                delivery_id: r.get(0),
                at_ms: r.get(1),
                result: r.get(2),
                http_status: r.get::<_, Option<i64>>(3).map(|s| s as u16),
                detail: r.get(4),
            })
            .collect())
    }

    fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let mut client = self.conn()?;
        let mut counts = DeliveryCounts::default();
        for r in client
            .query("SELECT state, count(*) FROM deliveries GROUP BY state", &[])
            .map_err(|e| self.err(e))?
        {
            let n = r.get::<_, i64>(1) as u64;
            match DeliveryState::parse(r.get(0)) {
                DeliveryState::Pending => counts.pending = n,
                DeliveryState::Delivered => counts.delivered = n,
                DeliveryState::Failed => counts.failed = n,
                DeliveryState::Skipped => counts.skipped = n,
            }
        }
        Ok(counts)
    }

    fn remote(&self, case_id: i64) -> Result<(Option<String>, Option<String>), StoreError> {
        let mut client = self.conn()?;
        let r = client
            .query_opt(
                "SELECT remote_id, remote_token FROM cases WHERE id = $1",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(case_id))?;
        Ok((r.get(0), r.get(1)))
    }

    fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn evidence_jpeg(&self, case_id: i64, evidence_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = {
            let mut client = self.conn()?;
            client
                .query_opt(
                    "SELECT j.jpeg FROM evidence e LEFT JOIN evidence_jpeg j ON j.evidence_id = e.id
                     WHERE e.id = $1 AND e.case_id = $2",
                    &[&evidence_id, &case_id],
                )
                .map_err(|e| self.err(e))?
        };
        match row {
            None => Ok(None),
            Some(r) => match r.get::<_, Option<Vec<u8>>>(0) {
                Some(b) => Ok(Some(b)),
                // written as a file by a node before schema 2: on that node's disk
                None => super::read_evidence_file(&self.dir, case_id, evidence_id),
            },
        }
    }

    fn prune_evidence(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut client = self.conn()?;
        let files: Vec<String> = client
            .query(
                "DELETE FROM evidence e USING cases c
                 WHERE e.case_id = c.id AND c.last_seen_ms < $1
                 RETURNING e.file",
                &[&before_ms],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(client);
        // files written before schema 2 by this node
        super::remove_evidence_files(&self.dir, &files);
        Ok(files.len() as u64)
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

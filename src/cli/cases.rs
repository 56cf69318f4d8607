//! `gridwatch cases ...` (the case store and its outbox) and `gridwatch inbox` (the
//! built-in Open311 receiver).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::cases::config::{DeliveryConfig, TargetKind};
use crate::cases::inbox::{Inbox, InboxConfig, InboxStore};
use crate::cases::outbox::{Client, Outbox};
use crate::cases::{
    now_ms, CaseStatus, CaseStore, DedupConfig, NewViolation, Outcome, Review, Verdict,
};

/// Where the store lives.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory (holds cases.sqlite and evidence/).
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// A PostgreSQL store instead of the data directory's SQLite file:
    /// postgres://user:password@host/db (the service's `store`).
    #[arg(long, value_name = "URL", conflicts_with = "store_env")]
    pub store: Option<String>,
    /// The environment variable holding the PostgreSQL URL (keeps the password off
    /// the command line; the service's `store_env`).
    #[arg(long, value_name = "VAR")]
    pub store_env: Option<String>,
}

impl DataArgs {
    /// Opens the store these arguments name.
    pub(super) fn open(&self, dedup: DedupConfig) -> anyhow::Result<Arc<dyn CaseStore>> {
        let url = self.url()?;
        Ok(crate::cases::open(url.as_deref(), &self.data, dedup)?)
    }

    /// The camera registry of the store these arguments name (its migrations run).
    pub(super) fn registry(&self) -> anyhow::Result<crate::registry::Registry> {
        self.open(DedupConfig::default())?;
        Ok(crate::registry::Registry::open(
            self.url()?.as_deref(),
            &self.data,
        )?)
    }

    /// The PostgreSQL URL, if one is given.
    fn url(&self) -> anyhow::Result<Option<String>> {
        let url = match &self.store_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| anyhow::anyhow!("--store-env {var}: the variable is not set"))?,
            ),
            None => self.store.clone(),
        };
        if let Some(u) = &url {
            if !crate::pg::is_url(u) {
                bail!("--store: only postgres:// URLs (leave it out for the data directory's SQLite store)");
            }
        }
        Ok(url)
    }
}

/// `gridwatch cases` subcommands.
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Record violations from JSON Lines (a file or - for stdin): dedup, store, queue
    /// new cases for delivery. Fields: kind, cell, lat, lon, camera, at_ms, and
    /// optionally admin_path, zone, since_ms.
    Record(RecordArgs),
    /// List cases, newest first.
    List(ListArgs),
    /// One case with its evidence, reviews, deliveries and every delivery attempt.
    Show(ShowArgs),
    /// Record a reviewer's decision (confirm or reject); a follow-up is queued.
    Review(ReviewArgs),
    /// Deliver queued cases to the workflow API (Open311 GeoReport v2 or a webhook).
    Deliver(DeliverArgs),
    /// The outbox: totals, and every delivery that failed or is waiting, with why.
    Outbox(DataArgs),
    /// Check every evidence image of a case (or all cases) against its SHA-256 and the
    /// case's evidence chain; names what does not match and fails if anything does.
    Verify(super::cases_verify::VerifyArgs),
    /// Write one case as a zip for an enforcement archive: the case JSON, its images,
    /// the evidence chain and a manifest of every file's SHA-256 (refused if its
    /// evidence does not verify).
    Export(super::cases_export::ExportArgs),
}

/// Arguments of `cases record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    data: DataArgs,
    /// JSON Lines file of violations, or - for stdin.
    input: PathBuf,
    /// An open case absorbs violations seen within this of its last one.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    window: Duration,
    /// After a case is closed or rejected, its key opens no new case for this long.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    cooldown: Duration,
    /// A filed case that absorbs new violations sends one follow-up at most this often.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    followup_delay: Duration,
}

/// Arguments of `cases list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Only cases of this status: open, confirmed, rejected, closed.
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cases show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Case id.
    id: i64,
}

/// Arguments of `cases review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Case id.
    id: i64,
    /// confirm or reject.
    #[arg(value_parser = ["confirm", "reject"])]
    verdict: String,
    /// Who decides.
    #[arg(long = "by", default_value = "cli")]
    reviewer: String,
    /// Why.
    #[arg(long, default_value = "")]
    note: String,
    /// Why a rejection, for the reviewers' ledger: wrong_object, not_a_violation,
    /// duplicate, camera_moved or other.
    #[arg(long)]
    reason: Option<String>,
}

/// Arguments of `cases deliver`.
#[derive(Debug, Args)]
#[command(
    after_help = "The receiver comes from --config FILE (its [delivery] table, see \
docs/cases.md) or, for a quick start, --open311 URL.\n\nExamples:\n  \
gridwatch cases deliver --open311 http://127.0.0.1:8311/open311/v2 --until-idle\n  \
gridwatch cases deliver --config gridwatch.toml"
)]
pub struct DeliverArgs {
    #[command(flatten)]
    data: DataArgs,
    /// A TOML file with a [delivery] table.
    #[arg(long, value_name = "FILE", conflicts_with = "open311")]
    config: Option<PathBuf>,
    /// An Open311 GeoReport v2 base URL, every other setting default.
    #[arg(long, value_name = "URL")]
    open311: Option<String>,
    /// With --open311: the environment variable holding the receiver's api_key.
    #[arg(long, value_name = "VAR", requires = "open311")]
    api_key_env: Option<String>,
    /// Exit once nothing is pending (exit status 1 if --for runs out first).
    #[arg(long)]
    until_idle: bool,
    /// Stop after this long.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Override the config's first retry wait (e.g. 100ms in drills).
    #[arg(long, value_parser = humantime::parse_duration)]
    retry_initial: Option<Duration>,
    /// Override the config's request timeout.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

/// Arguments of `gridwatch inbox`.
#[derive(Debug, Args)]
#[command(
    after_help = "Serves GET services.json, POST requests.json, GET requests.json, \
GET requests/{id}.json, GET tokens/{token}.json and POST requests/{id}/updates.json under \
/open311/v2. Prints `inbox: http://ADDR/open311/v2` once listening.\n\n\
Writes need the API key of a client (the form's api_key, X-Api-Key or Authorization: Bearer); \
idempotency keys are scoped to the client, and a client may update only its own requests. \
Reads are open.\n\nExamples:\n  \
gridwatch inbox --new-client gridwatch          # a new key, and the --client line for it\n  \
GW_INBOX_KEY=… gridwatch inbox --data data/inbox --client-env gridwatch=GW_INBOX_KEY\n  \
gridwatch inbox --client gridwatch:9f86d081884c7d65…  (the key's SHA-256)"
)]
pub struct InboxArgs {
    /// Data directory for inbox.sqlite.
    #[arg(long, value_name = "DIR", default_value = "data/inbox")]
    data: PathBuf,
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8311")]
    listen: String,
    /// Answer POSTs with a token to resolve later instead of a request id.
    #[arg(long)]
    token: bool,
    /// A client that may write: NAME:SHA256, the SHA-256 of its API key in hex
    /// (repeat for more).
    #[arg(long = "client", value_name = "NAME:SHA256")]
    clients: Vec<String>,
    /// A client whose API key is in an environment variable: NAME=VAR (repeat for
    /// more).
    #[arg(long = "client-env", value_name = "NAME=VAR")]
    client_envs: Vec<String>,
    /// Print a new random API key for client NAME and the --client line to start the
    /// inbox with, then exit.
    #[arg(long, value_name = "NAME")]
    new_client: Option<String>,
    /// Answer each POST this much later, after storing it (drills).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    response_delay: Duration,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_body: usize,
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Runs a `cases` subcommand.
pub fn run(cmd: CasesCommand) -> anyhow::Result<()> {
    match cmd {
        CasesCommand::Record(a) => record(a),
        CasesCommand::List(a) => list(a),
        CasesCommand::Show(a) => show(a),
        CasesCommand::Review(a) => review(a),
        CasesCommand::Deliver(a) => deliver(a),
        CasesCommand::Outbox(a) => outbox(a),
        CasesCommand::Verify(a) => super::cases_verify::verify(a),
        CasesCommand::Export(a) => super::cases_export::export(a),
    }
}

fn record(a: RecordArgs) -> anyhow::Result<()> {
    let dedup = DedupConfig {
        window: a.window,
        cooldown: a.cooldown,
        followup_delay: a.followup_delay,
    };
    let store = a.data.open(dedup)?;
    let name = a.input.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&a.input).with_context(|| format!("opening {name}"))?,
        ))
    };
    // every line is read and checked before anything is stored: a bad line anywhere
    // stores nothing
    let violations = read_violations(reader, &name)?;
    let (mut opened, mut absorbed, mut suppressed) = (0, 0, 0);
    for v in &violations {
        match store.record(v)?.1 {
            Outcome::Opened => opened += 1,
            Outcome::Absorbed => absorbed += 1,
            Outcome::Suppressed => suppressed += 1,
        }
    }
    println!(
        "{} violations: {opened} opened a case, {absorbed} absorbed, {suppressed} suppressed (cool-down); store {}",
        opened + absorbed + suppressed,
        store.name()
    );
    Ok(())
}

/// Earliest violation time taken (2000-01-01), ms.
const EARLIEST_MS: i64 = 946_684_800_000;

/// Reads and checks every line of a violations file (JSON Lines): each error names the
/// file and the line.
fn read_violations(mut reader: impl BufRead, name: &str) -> anyhow::Result<Vec<NewViolation>> {
    let latest = crate::cases::now_ms() + 24 * 3600 * 1000;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {name}"))?
            == 0
        {
            break;
        }
        let at = || format!("{name} line {n}");
        let line = std::str::from_utf8(&buf)
            .map_err(|e| anyhow::anyhow!("{}: not UTF-8 (byte {})", at(), e.valid_up_to() + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut v: NewViolation =
            serde_json::from_str(line).with_context(|| format!("{}: not a violation", at()))?;
        if v.cell.is_empty() || v.camera.is_empty() {
            bail!("{}: cell and camera must not be empty", at());
        }
        for (field, value) in [
            ("cell", &v.cell),
            ("camera", &v.camera),
            ("zone", &v.zone),
            ("admin_path", &v.admin_path),
        ] {
            crate::cases::text::check(field, value, 200, false)
                .map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
        }
        if !(v.lat.is_finite() && v.lat.abs() <= 90.0 && v.lon.is_finite() && v.lon.abs() <= 180.0)
        {
            bail!("{}: lat/lon out of range", at());
        }
        if v.since_ms == 0 {
            v.since_ms = v.at_ms;
        }
        if !(EARLIEST_MS..=latest).contains(&v.at_ms) {
            bail!(
                "{}: at_ms {} is not a time between 2000 and tomorrow (ms since 1970)",
                at(),
                v.at_ms
            );
        }
        if !(EARLIEST_MS..=v.at_ms).contains(&v.since_ms) {
            bail!(
                "{}: since_ms {} must be after 2000 and not after at_ms",
                at(),
                v.since_ms
            );
        }
        out.push(v);
    }
    Ok(out)
}

fn list(a: ListArgs) -> anyhow::Result<()> {
    let store = a.data.open(DedupConfig::default())?;
    let status = match &a.status {
        None => None,
        Some(s) => Some(CaseStatus::parse(s).with_context(|| {
            format!("--status {s}: expected open, confirmed, rejected or closed")
        })?),
    };
    let cases = store.cases(status, a.limit)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        for c in &cases {
            writeln!(out, "{}", serde_json::to_string(c)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<22} {:<18} {:<10} {:>6}  {:<19}  cameras",
        "case", "kind", "cell", "status", "count", "last seen (UTC)"
    )?;
    for c in &cases {
        writeln!(
            out,
            "{:>6}  {:<22} {:<18} {:<10} {:>6}  {:<19}  {}",
            c.id,
            c.kind,
            c.cell,
            c.status.as_str(),
            c.count,
            when(c.last_seen_ms),
            c.cameras.join(",")
        )?;
    }
    Ok(())
}

fn show(a: ShowArgs) -> anyhow::Result<()> {
    let store = a.data.open(DedupConfig::default())?;
    let c = store.case(a.id)?;
    let (remote_id, token) = store.remote(a.id)?;
    let deliveries = store.deliveries(Some(a.id))?;
    let mut attempts = Vec::new();
    for d in &deliveries {
        attempts.extend(store.attempts(d.id)?);
    }
    let doc = serde_json::json!({
        "case": c,
        "remote_id": remote_id,
        "remote_token": token,
        "evidence": store.evidence(a.id)?,
        "reviews": store.reviews(a.id)?,
        "deliveries": deliveries,
        "attempts": attempts,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

fn review(a: ReviewArgs) -> anyhow::Result<()> {
    let store = a.data.open(DedupConfig::default())?;
    let verdict = Verdict::parse(&a.verdict).expect("clap checked");
    crate::cases::text::check("--by", &a.reviewer, 100, false).map_err(|e| anyhow::anyhow!(e))?;
    crate::cases::text::check("--note", &a.note, 2000, true).map_err(|e| anyhow::anyhow!(e))?;
    if a.reviewer.trim().is_empty() {
        bail!("--by: the reviewer's name must not be empty");
    }
    let reason = crate::cases::ledger::reason_of(verdict, a.reason.as_deref())
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    store.review(&Review {
        case_id: a.id,
        verdict,
        reviewer: a.reviewer,
        note: a.note,
        reason,
        at_ms: now_ms(),
    })?;
    println!(
        "case {}: {}ed; a follow-up is queued",
        a.id,
        verdict.as_str()
    );
    Ok(())
}

fn delivery_config(a: &DeliverArgs) -> anyhow::Result<DeliveryConfig> {
    let mut cfg = match (&a.config, &a.open311) {
        (Some(path), _) => DeliveryConfig::load(path)?,
        (None, Some(url)) => {
            let mut cfg = DeliveryConfig::open311(url);
            cfg.api_key_env = a.api_key_env.clone();
            cfg.check().map_err(|e| anyhow::anyhow!("--open311: {e}"))?;
            cfg
        }
        (None, None) => bail!("say where to deliver: --config FILE or --open311 URL"),
    };
    if let Some(d) = a.retry_initial {
        cfg.retry_initial = d;
    }
    if let Some(d) = a.timeout {
        cfg.timeout = d;
    }
    Ok(cfg)
}

fn deliver(a: DeliverArgs) -> anyhow::Result<()> {
    let cfg = delivery_config(&a)?;
    let store = a.data.open(DedupConfig::default())?;
    let client = Client::from_config(&cfg).map_err(|e| anyhow::anyhow!(e))?;
    let rt = tokio::runtime::Runtime::new()?;
    let target = match cfg.target {
        TargetKind::Open311 => "Open311",
        TargetKind::Webhook => "webhook",
    };
    eprintln!(
        "delivering cases from {} to {target} {}",
        store.name(),
        cfg.url
    );
    let outbox = Outbox::new(store.clone(), client, cfg.retry(), cfg.concurrency);
    let deadline = a.duration.map(|d| Instant::now() + d);
    let emptied = rt.block_on(async {
        if a.until_idle {
            return outbox.drain(deadline).await;
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stopper = tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                _ = sleep => {}
            }
            let _ = tx.send(true);
        });
        let r = outbox.run(rx).await;
        stopper.abort();
        r.map(|_| true)
    })?;
    let counts = store.delivery_counts()?;
    println!(
        "deliveries: {} delivered, {} pending, {} failed, {} skipped",
        counts.delivered, counts.pending, counts.failed, counts.skipped
    );
    if a.until_idle && !emptied {
        bail!(
            "{} deliveries still pending when --for ran out (see `gridwatch cases outbox`)",
            counts.pending
        );
    }
    Ok(())
}

fn outbox(a: DataArgs) -> anyhow::Result<()> {
    let store = a.open(DedupConfig::default())?;
    let c = store.delivery_counts()?;
    println!(
        "deliveries: {} delivered, {} pending, {} failed, {} skipped",
        c.delivered, c.pending, c.failed, c.skipped
    );
    for d in store.deliveries(None)? {
        if matches!(
            d.state,
            crate::cases::DeliveryState::Pending | crate::cases::DeliveryState::Failed
        ) {
            println!(
                "case {:>6}  {:<7} {:<8} attempts {:>3}  next {}  {}",
                d.case_id,
                d.event.as_str(),
                d.state.as_str(),
                d.attempts,
                when(d.next_at_ms),
                d.last_error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// Runs `gridwatch inbox`.
pub fn inbox(a: InboxArgs) -> anyhow::Result<()> {
    use crate::cases::inbox::clients::{check_name, new_key};
    use crate::cases::inbox::InboxClient;
    if let Some(name) = &a.new_client {
        check_name(name).map_err(|e| anyhow::anyhow!(e))?;
        let key = new_key();
        println!("api key: {key}");
        println!(
            "start the inbox with: --client {}",
            InboxClient::with_key(name, &key).spec()
        );
        return Ok(());
    }
    let mut clients = Vec::new();
    for spec in &a.clients {
        clients.push(InboxClient::parse(spec).map_err(|e| anyhow::anyhow!("--client: {e}"))?);
    }
    for spec in &a.client_envs {
        let (name, var) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--client-env: `{spec}` is not NAME=VAR"))?;
        check_name(name).map_err(|e| anyhow::anyhow!("--client-env: {e}"))?;
        let key = std::env::var(var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--client-env {spec}: the environment variable {var} is not set or empty"
                )
            })?;
        clients.push(InboxClient::with_key(name, key.trim()));
    }
    if clients.is_empty() {
        tracing::warn!(
            "inbox: no --client given: every write will be refused (gridwatch inbox --new-client NAME makes one)"
        );
    }
    let store = InboxStore::open(&a.data)?;
    let inbox = Arc::new(Inbox {
        store,
        cfg: InboxConfig {
            answer_with_token: a.token,
            response_delay: a.response_delay,
            clients,
            max_body: a.max_body,
            ..InboxConfig::default()
        },
    });
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("inbox: cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        println!("inbox: http://{addr}/open311/v2");
        std::io::stdout().flush()?;
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        crate::cases::inbox::serve(listener, inbox, shutdown).await?;
        anyhow::Ok(())
    })
}

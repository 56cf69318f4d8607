//! The service (`gridwatch run`): cameras → ingest pool → detection, batched across
//! cameras on one thread → per-camera scene (tracker, rules, evidence, geo) → case
//! store → outbox → workflow API; and one HTTP server for the API, the review page,
//! evidence and (by default) the built-in Open311 inbox.

mod cameras;
pub mod check;
pub mod clip;
pub mod detail;
pub mod recorder;
pub mod replay;
pub mod scene;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::{watch, Notify};

use crate::api::ApiState;
use crate::cases::config::DeliveryConfig;
use crate::cases::inbox::{Inbox, InboxConfig, InboxStore};
use crate::cases::outbox::{Client, Outbox};
use crate::cases::{CaseStore, DedupConfig, ViolationKind};
use crate::cluster;
use crate::config::{CameraSource, Config};
use crate::detect::{Detector, EngineOptions, ModelManifest};
use crate::geo::grid::{CellLocator, Grid};
use crate::geo::zones::ZoneSet;
use crate::ingest::handoff::CameraFrame;
use crate::ingest::{Pool, PoolOptions};
use crate::metrics::Metrics;
use crate::registry::access::Tokens;
use crate::registry::view::View;
use crate::registry::Registry;
use cameras::{Controller, SceneChange, SceneFactory};
use clip::Clips;
use detail::Details;
use recorder::Recorder;

/// With `[delivery] media = "attach"`, how long a new case's create waits for its clip.
const CLIP_WAIT: Duration = Duration::from_secs(10);

/// How long a camera's main stream has to connect, and again to send a keyframe, for a
/// case's close-up.
const DETAIL_LIMIT: Duration = Duration::from_secs(10);
use scene::{Scene, SceneRules};

/// One retention pass: `prune(store, before)`, with `before` `keep` ago, logging what
/// went (`what`, kept for `keep`).
async fn prune_older(
    store: &Arc<dyn CaseStore>,
    keep: Duration,
    what: &'static str,
    prune: fn(&dyn CaseStore, i64) -> Result<u64, crate::cases::StoreError>,
) {
    let before = crate::cases::now_ms() - keep.as_millis() as i64;
    let s = store.clone();
    match tokio::task::spawn_blocking(move || prune(&*s, before)).await {
        Ok(Ok(0)) | Err(_) => {}
        Ok(Ok(n)) => tracing::info!("retention: deleted {n} {what} for {keep:?}"),
        Ok(Err(e)) => tracing::warn!("retention of {what}: {e}"),
    }
}

fn scene_rules(cfg: &Config) -> anyhow::Result<SceneRules> {
    let captions = cfg.cases.captions.load().map_err(anyhow::Error::msg)?;
    let mut r = SceneRules {
        captions: captions.map(|c| crate::rules::evidence::Captions {
            captioner: Arc::new(c),
            tz: cfg.geo.timezone,
        }),
        override_zone_dwell: cfg.rules.override_zone_dwell,
        view: cfg.rules.view_check.then(|| crate::geo::view::ViewConfig {
            every: cfg.rules.view_every.max(1),
            ..crate::geo::view::ViewConfig::default()
        }),
        fault_after: (cfg.rules.view_check && !cfg.rules.view_fault_after.is_zero())
            .then_some(cfg.rules.view_fault_after),
        privacy: cfg.cases.privacy.clone(),
        originals: cfg.cases.originals.keep,
        clip: cfg.cases.clip.clone(),
        plates: match &cfg.cases.privacy.plates {
            Some(p) => Some(Arc::new(
                crate::rules::plates::Plates::load(p).map_err(anyhow::Error::msg)?,
            )),
            None => None,
        },
        ..SceneRules::default()
    };
    if let Some(d) = cfg.rules.parking.dwell {
        r.parking.dwell = d;
    }
    r.parking.warn_after = cfg.rules.parking.warn_after;
    if let Some(d) = cfg.rules.vending.dwell {
        r.vending.dwell = d;
    }
    r.vending.warn_after = cfg.rules.vending.warn_after;
    if let Some(d) = cfg.rules.dumping.dwell {
        r.dumping.dwell = d;
    }
    if let Some(d) = cfg.rules.construction.dwell {
        r.construction.min_duration = d;
    }
    let rv = &cfg.rules.revisit;
    if let Some(c) = rv.cell_m {
        r.revisit.cell_m = c;
    }
    if let Some(d) = rv.pass_gap {
        r.revisit.pass_gap = d;
    }
    if let Some(d) = rv.max_pass {
        r.revisit.max_pass = d;
    }
    Ok(r)
}

/// Everything loaded before the service starts: a bad file stops it here, named.
struct Loaded {
    /// The detection workers (each gets its scenes from the camera controller).
    detectors: Vec<Detector>,
    /// What the cameras' scenes are built from.
    factory: SceneFactory,
}

fn load(cfg: &Config) -> anyhow::Result<Loaded> {
    load_for(cfg, &cfg.cameras.iter().collect::<Vec<_>>())
}

/// As [`load`], checking `cameras` (the config's, or those a replay runs).
fn load_for(cfg: &Config, cameras: &[&crate::config::CameraEntry]) -> anyhow::Result<Loaded> {
    let manifest_path = cfg
        .model
        .manifest
        .clone()
        .unwrap_or_else(crate::detect::default_model);
    let mut manifest = ModelManifest::load(&manifest_path)?;
    // every violation names the model file that found it (the reviewers' ledger)
    if manifest.sha256.is_none() {
        manifest.sha256 = Some(manifest.file_sha256()?);
    }
    let opts = EngineOptions {
        provider: cfg.model.provider.clone(),
        intra_threads: (cfg.model.threads > 0).then_some(cfg.model.threads),
        spin: cfg.model.spin,
    };
    let mut detectors = Vec::new();
    for _ in 0..cfg.model.workers.max(1) {
        let mut detector = Detector::load(manifest.clone(), &opts)?;
        detector.set_batch_size(cfg.model.batch);
        detector.warm_up()?;
        detectors.push(detector);
    }
    let tz = cfg.geo.timezone;
    let zones = Arc::new(match &cfg.geo.zones {
        Some(p) => ZoneSet::load(p, tz)?,
        None => ZoneSet::empty(tz),
    });
    let cells = Arc::new(match &cfg.geo.grid {
        Some(p) => CellLocator::Grid(Grid::load(p)?),
        None => CellLocator::H3(
            h3o::Resolution::try_from(cfg.geo.h3_resolution.unwrap_or(10))
                .map_err(|e| anyhow::anyhow!("geo.h3_resolution: {e}"))?,
        ),
    });
    let factory = SceneFactory {
        zones: std::sync::RwLock::new(zones),
        calibrations: Default::default(),
        references: Default::default(),
        cells,
        rules: scene_rules(cfg)?,
    };
    // the config's cameras are checked here, so that a bad one stops the start named
    // (cameras added later through the registry are checked when they are)
    for c in cameras {
        factory
            .build(c, None)
            .and_then(|_| cameras::camera_config(c))
            .with_context(|| format!("camera {}", c.id))?;
    }
    Ok(Loaded { detectors, factory })
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The detection loop: takes the newest frame of every camera, detects in batches,
/// steps each camera's scene, and hands what it finds to the recorder (which stores
/// it on a thread of its own: this loop never waits on the store). Runs on its own
/// thread until `stop`.
fn detection_loop(
    mut detector: Detector,
    changes: std::sync::mpsc::Receiver<SceneChange>,
    state: Arc<ApiState>,
    recorder: Arc<Recorder>,
    gather: Duration,
    rt: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) {
    let classes = detector.manifest().classes.clone();
    let model = detector.manifest().name.clone();
    let model_sha256 = detector.manifest().sha256.clone().unwrap_or_default();
    let mut frames: Vec<CameraFrame> = Vec::new();
    let mut dets = Vec::new();
    let m = state.metrics.clone();
    let mut scenes: HashMap<String, Scene> = HashMap::new();
    let take = |frames: &mut Vec<CameraFrame>, scenes: &HashMap<String, Scene>| {
        state
            .pool
            .take_frames_of(frames, |id| scenes.contains_key(id))
    };
    while !stop.load(Ordering::Relaxed) {
        // cameras started, restarted or stopped by the controller since the last batch
        // (a restarted camera's scene starts afresh)
        while let Ok(change) = changes.try_recv() {
            match change {
                SceneChange::Insert(scene) => {
                    scenes.insert(scene.camera().to_string(), *scene);
                }
                SceneChange::Remove(id) => {
                    scenes.remove(&id);
                    m.forget_view(&id);
                }
                SceneChange::Zones(id, zones) => {
                    if let Some(scene) = scenes.get_mut(&id) {
                        scene.set_zones(zones);
                    }
                }
            }
        }
        // a model that takes several frames per call gets the frames of cameras that
        // arrive within the gather window together (a model of fixed batch 1 never
        // waits)
        let want = detector.batch_size().min(scenes.len()).max(1);
        // frames that arrived while the last batch ran are taken at once
        take(&mut frames, &scenes);
        if frames.is_empty() {
            rt.block_on(state.pool.frames_ready(Duration::from_millis(200)));
            take(&mut frames, &scenes);
            if frames.is_empty() {
                continue;
            }
        }
        if frames.len() < want && !gather.is_zero() {
            let until = Instant::now() + gather;
            while frames.len() < want {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                rt.block_on(state.pool.frames_ready(left));
                take(&mut frames, &scenes);
            }
        }
        let before = detector.times();
        let t0 = Instant::now();
        if let Err(e) = detector.detect(&frames, &mut dets) {
            tracing::error!("detection failed on {} frames: {e}", frames.len());
            m.errors.fetch_add(1, Ordering::Relaxed);
            state.pool.recycle(frames.drain(..));
            continue;
        }
        let after = detector.times();
        let n = frames.len() as u32;
        let calls = (after.calls - before.calls).max(1) as u32;
        m.stages[0].observe((after.preprocess - before.preprocess) / n);
        for _ in 0..calls {
            m.stages[1].observe((after.inference - before.inference) / calls);
        }
        m.stages[2].observe((after.postprocess - before.postprocess) / n);
        m.frames.fetch_add(n as u64, Ordering::Relaxed);
        m.batches.fetch_add(calls as u64, Ordering::Relaxed);
        tracing::trace!("{n} frames detected in {:?}", t0.elapsed());
        for (cf, d) in frames.iter().zip(&dets) {
            let Some(scene) = scenes.get_mut(&*cf.camera) else {
                continue;
            };
            let t_rules = Instant::now();
            let t = ms(cf.received);
            let found = match scene.step_posed(t, &cf.frame, cf.pose.as_ref(), d, &classes) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(camera = &*cf.camera, "rules failed: {e}");
                    m.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            m.stages[3].observe(t_rules.elapsed());
            if let Some(v) = scene.view_report() {
                m.set_view(&cf.camera, v);
            }
            if let Some(r) = scene.drone_report() {
                m.set_drone(&cf.camera, r);
            }
            if m.last_frame_due(&cf.camera) {
                if let Ok(jpeg) = crate::draw::encode_jpeg(&cf.frame, 80) {
                    m.set_last_frame(&cf.camera, jpeg);
                }
            }
            for mut f in found {
                m.found.fetch_add(1, Ordering::Relaxed);
                if f.violation.kind != ViolationKind::CameraFault {
                    f.violation.model.clone_from(&model);
                    f.violation.model_sha256.clone_from(&model_sha256);
                }
                recorder.push(cf.camera.clone(), f);
            }
        }
        state.pool.recycle(frames.drain(..));
    }
}

/// Renews this node's camera leases: a heartbeat every third of the lease TTL, then
/// the camera controller is woken to bring the pool in line with the leases (cameras
/// taken are started, cameras lost or handed over are stopped). Until `stop`.
async fn cluster_loop(
    membership: Arc<cluster::Membership>,
    controller: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    // a heartbeat still waiting on the database (it is not started twice)
    let mut beating: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
    loop {
        let mut task = beating.take().unwrap_or_else(|| {
            let m = membership.clone();
            tokio::task::spawn_blocking(move || m.beat())
        });
        // a database that does not answer must not keep cameras running past their
        // leases: give the heartbeat a third of the TTL at most, and never past the
        // moment the first lease held runs out; then go on without it
        let mut budget = membership.heartbeat();
        if let Some(t) = membership.next_expiry() {
            budget = budget.min(t.saturating_duration_since(std::time::Instant::now()));
        }
        let outcome = tokio::time::timeout(budget, &mut task).await;
        let err = match outcome {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e),
            Ok(Err(_)) => Some("cluster: the heartbeat task panicked".to_string()),
            Err(_) => {
                beating = Some(task);
                Some(format!(
                    "cluster: the heartbeat got no answer within {budget:?}"
                ))
            }
        };
        match err {
            None if failing => {
                tracing::info!("cluster: heartbeat works again");
                failing = false;
            }
            None => {}
            Some(e) => {
                if !failing {
                    tracing::warn!("{e}; cameras run on until their leases run out");
                }
                failing = true;
            }
        }
        // the controller stops cameras whose leases are gone and starts those taken
        controller.notify_one();
        // the next heartbeat, or sooner when a lease runs out unrenewed before it, so
        // that the camera stops before another node may take it
        let mut wait = membership.heartbeat();
        if let Some(t) = membership.next_expiry() {
            wait = wait.min(t.saturating_duration_since(std::time::Instant::now()));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// How long shutdown may take after the signal before the process exits anyway: a
/// camera stuck in a call that never returns, or a store that does not answer, must
/// not keep a stopped service running.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_millis(3500);

/// Runs the service until `shutdown` resolves; prints the review page's address once
/// listening. Everything is loaded and checked before anything starts.
pub async fn run(
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cfg2 = cfg.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&cfg2))
        .await
        .expect("loading panicked")?;
    let dedup = DedupConfig {
        window: cfg.cases.window,
        cooldown: cfg.cases.cooldown,
        followup_delay: cfg.cases.followup_delay,
    };
    let (url, dir) = (cfg.store_url(), cfg.data_dir.clone());
    let store: Arc<dyn CaseStore> =
        tokio::task::spawn_blocking(move || crate::cases::open(url.as_deref(), &dir, dedup))
            .await
            .expect("store task panicked")?;
    let listener = tokio::net::TcpListener::bind(&cfg.api.listen)
        .await
        .with_context(|| format!("api.listen: cannot listen on {}", cfg.api.listen))?;
    let addr = listener.local_addr()?;
    let public = cfg
        .api
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let (delivery, inbox) = match &cfg.delivery {
        Some(d) => (d.clone(), None),
        None => {
            // the built-in inbox takes writes from this process only: a key made for it
            // at start, known to nobody else
            let key = crate::cases::inbox::clients::new_key();
            let inbox = Arc::new(Inbox {
                store: InboxStore::open(&cfg.data_dir.join("inbox"))?,
                cfg: InboxConfig::default().with_client("gridwatch", &key),
            });
            let mut d = DeliveryConfig::open311(&format!("http://{addr}/open311/v2"));
            d.api_key = Some(key);
            d.public_url = Some(public.clone());
            (d, Some(inbox))
        }
    };
    let mut delivery = delivery;
    if delivery.public_url.is_none() {
        delivery.public_url = Some(public.clone());
    }
    let client = Client::from_config(&delivery).map_err(|e| anyhow::anyhow!("delivery: {e}"))?;
    let mut outbox = Outbox::new(
        store.clone(),
        client,
        delivery.retry(),
        delivery.concurrency,
    );
    if cfg.cases.clip.on() {
        outbox = outbox.expecting_clips(CLIP_WAIT);
    }
    let outbox = Arc::new(outbox);
    let pool = Arc::new(Pool::new(PoolOptions::default()));
    let metrics = Arc::new(Metrics::default());
    let node = cfg.cluster.node_name();
    // the camera list: the registry's (seeded from the config the first time), or
    // the config's, read-only
    let (url, dir) = (cfg.store_url(), cfg.data_dir.clone());
    let registry = Arc::new(
        tokio::task::spawn_blocking(move || Registry::open(url.as_deref(), &dir))
            .await
            .expect("registry task panicked")?,
    );
    let from_store = cfg.registry.cameras == CameraSource::Store;
    // the zones: the registry's (seeded from geo.zones the first time), or the file's
    let zones_from_store = cfg.registry.zones == CameraSource::Store;
    if zones_from_store {
        let (r, file) = (registry.clone(), cfg.geo.zones.clone());
        let seeded = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<usize>> {
            let features = match &file {
                Some(p) => crate::geo::zones::file_features(p)?,
                None => Vec::new(),
            };
            Ok(r.seed_zones(&features)?)
        })
        .await
        .expect("registry task panicked")?;
        match seeded {
            Some(n) => tracing::info!("registry: zones seeded with geo.zones' {n} zone(s)"),
            None if cfg.geo.zones.is_some() => tracing::info!(
                "registry: the zones are the store's; geo.zones only seeds an empty one (registry.zones = \"config\" makes the file the zones)"
            ),
            None => {}
        }
    }
    let view = Arc::new(if from_store {
        let (r, seed) = (registry.clone(), cfg.cameras.clone());
        match tokio::task::spawn_blocking(move || r.seed(&seed))
            .await
            .expect("registry task panicked")?
        {
            Some(n) => tracing::info!("registry: seeded with the config's {n} camera(s)"),
            None if !cfg.cameras.is_empty() => tracing::info!(
                "registry: the camera list is the store's; the config's [[camera]] entries only seed an empty one (registry.cameras = \"config\" makes the file the list)"
            ),
            None => {}
        }
        View::of_registry()
    } else {
        View::from_config(&cfg.cameras)
    });
    let tokens = Arc::new(Tokens::new(cfg.api_token().as_deref()));
    let cameras_changed = Arc::new(Notify::new());
    let state = Arc::new(ApiState {
        store: store.clone(),
        pool: pool.clone(),
        metrics,
        outbox_waker: outbox.waker(),
        ready: AtomicBool::new(false),
        access: crate::api::auth::Access {
            tokens: tokens.clone(),
            open_reads: cfg.api.open_reads,
            open_writes: cfg.api.open_writes,
        },
        registry: registry.clone(),
        view: view.clone(),
        zones_writable: zones_from_store,
        file_zones: loaded
            .factory
            .zones
            .read()
            .map(|z| z.clone())
            .unwrap_or_else(|p| p.into_inner().clone()),
        cells: loaded.factory.cells.clone(),
        max_rms_m: cfg.geo.max_rms_m,
        cameras_changed: cameras_changed.clone(),
        data_dir: cfg.data_dir.clone(),
        node: node.clone(),
        cluster: cfg.store_url().map(|url| {
            let m = cluster::Membership::new(
                &url,
                &node,
                Some(public.clone()),
                view.enabled_ids(),
                cfg.cluster.lease_ttl,
            );
            Arc::new(if from_store { m.with_registry() } else { m })
        }),
        allowed_hosts: {
            let mut extra = cfg.api.allowed_hosts.clone();
            if let Some(u) = cfg
                .api
                .public_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
            {
                if let Some(h) = u.host_str() {
                    extra.push(h.to_string());
                }
            }
            crate::api::allowed_hosts(&addr.to_string(), &extra)
        },
    });
    let mut app = crate::api::router(state.clone());
    if let Some(inbox) = inbox {
        app = app.merge(crate::api::protect(
            crate::cases::inbox::router(inbox),
            state.clone(),
        ));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let limits = crate::serve::Limits {
        header_timeout: cfg.api.header_timeout,
        max_connections: cfg.api.max_connections,
    };
    let server = tokio::spawn(crate::serve::serve(listener, app, limits, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    let outbox_task = {
        let outbox = outbox.clone();
        let rx = stop_rx.clone();
        tokio::spawn(async move { outbox.run(rx).await })
    };
    let retention_task = {
        let store = store.clone();
        let keep = cfg.cases.evidence_retention;
        let originals = cfg.cases.originals.retention;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                prune_older(&store, keep, "evidence images of cases not seen", |s, t| {
                    s.prune_evidence(t)
                })
                .await;
                prune_older(&store, originals, "unblurred originals", |s, t| {
                    s.prune_originals(t)
                })
                .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        })
    };
    let recorder = Recorder::new(state.metrics.clone());
    let details = Details::new(
        store.clone(),
        cfg.cases.evidence_per_case,
        DETAIL_LIMIT,
        state.metrics.clone(),
        tokio::runtime::Handle::current(),
        stop_rx.clone(),
    );
    let clips = Clips::new(
        store.clone(),
        cfg.cases.evidence_per_case,
        state.metrics.clone(),
    );
    let clip_thread = {
        let clips = clips.clone();
        std::thread::Builder::new()
            .name("clips".into())
            .spawn(move || clips.run())?
    };
    let recorder_thread = {
        let (recorder, store) = (recorder.clone(), store.clone());
        let (per_case, waker) = (cfg.cases.evidence_per_case, state.outbox_waker.clone());
        let after = recorder::Followups {
            details: Some(details),
            clips: Some(clips.clone()),
        };
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || recorder.run(store, per_case, waker, after))?
    };
    let stop_loop = Arc::new(AtomicBool::new(false));
    let mut detect_threads = Vec::new();
    let mut workers = Vec::new();
    for (i, detector) in loaded.detectors.into_iter().enumerate() {
        let (state, recorder) = (state.clone(), recorder.clone());
        let stop = stop_loop.clone();
        let rt = tokio::runtime::Handle::current();
        let gather = cfg.model.gather;
        let (tx, rx) = std::sync::mpsc::channel();
        workers.push(tx);
        detect_threads.push(
            std::thread::Builder::new()
                .name(format!("detect-{i}"))
                .spawn(move || detection_loop(detector, rx, state, recorder, gather, rt, stop))?,
        );
    }
    let factory = Arc::new(loaded.factory);
    let zones_tz = factory.zones.read().map_or(chrono_tz::Tz::UTC, |z| z.tz());
    let controller = Controller::new(
        pool.clone(),
        view.clone(),
        registry.clone(),
        tokens,
        state.cluster.clone(),
        factory,
        workers,
        cameras_changed,
        cfg.registry.poll,
    );
    let controller = Arc::new(match zones_from_store {
        true => controller.with_registry_zones(zones_tz),
        false => controller,
    });
    // the cameras there are now start before the service says it is ready
    controller.sync().await;
    controller.apply().await;
    let (cluster_stop_tx, cluster_stop) = watch::channel(false);
    let controller_task = tokio::spawn(controller.clone().run(cluster_stop.clone()));
    let cluster_task = match &state.cluster {
        Some(membership) => {
            tracing::info!(
                node = membership.node(),
                "sharing {} cameras with the other nodes of the store (lease {:?})",
                view.enabled_ids().len(),
                cfg.cluster.lease_ttl
            );
            Some(tokio::spawn(cluster_loop(
                membership.clone(),
                controller.wake.clone(),
                cluster_stop,
            )))
        }
        None => None,
    };
    state.ready.store(true, Ordering::Relaxed);
    println!("gridwatch: review page http://{addr}/  (API http://{addr}/api/cases, metrics http://{addr}/metrics)");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    shutdown.await;
    tracing::info!("shutting down: stopping cameras, finishing the frame in hand");
    state.ready.store(false, Ordering::Relaxed);
    let graceful = async {
        let _ = cluster_stop_tx.send(true);
        if let Some(t) = cluster_task {
            let _ = t.await;
        }
        let _ = controller_task.await;
        pool.shutdown().await;
        if let Some(membership) = state.cluster.clone() {
            // the cameras are stopped: hand them over now rather than after the TTL
            match tokio::task::spawn_blocking(move || membership.leave()).await {
                Ok(Err(e)) => tracing::warn!("giving back the camera leases: {e}"),
                _ => tracing::info!("camera leases given back"),
            }
        }
        stop_loop.store(true, Ordering::Relaxed);
        let rec = recorder.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for t in detect_threads {
                let _ = t.join();
            }
            // what the scenes found last is recorded before the outbox's last round
            rec.close();
            let _ = recorder_thread.join();
            // the clip in hand is finished; those waiting are dropped
            clips.close();
            let _ = clip_thread.join();
        })
        .await;
        // one last round so cases recorded just now are not left for the next start
        let _ = tokio::time::timeout(Duration::from_secs(2), outbox.round()).await;
    };
    if tokio::time::timeout(SHUTDOWN_LIMIT, graceful)
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown took longer than {SHUTDOWN_LIMIT:?}: exiting anyway (deliveries still \
             pending go out at the next start)"
        );
    }
    let unrecorded = recorder.waiting();
    if unrecorded > 0 {
        tracing::error!(
            "{unrecorded} violation(s) found while the case store was unavailable are not recorded"
        );
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = outbox_task.await;
        let _ = retention_task.await;
        let _ = server.await;
    })
    .await;
    let counts_store = store.clone();
    let c = tokio::task::spawn_blocking(move || counts_store.delivery_counts())
        .await
        .expect("store task panicked")?;
    tracing::info!(
        "stopped; deliveries: {} delivered, {} pending (kept for the next start), {} failed",
        c.delivered,
        c.pending,
        c.failed
    );
    Ok(())
}

//! The camera controller: keeps the cameras running on this node in line with the
//! camera list and, with several nodes, with the leases this node holds.
//!
//! Every `registry.poll` (and at once when the API changed a camera here, or a
//! heartbeat changed the leases) it reads the registry's changes into the node's
//! copy of the list ([`View::sync`]) and the tokens in force, then brings the pool
//! and the detection workers' scenes in line: a camera wanted and not running
//! starts (its scene — calibration, zones — built first, off the detection threads,
//! and handed to the worker with the fewest cameras); a running camera whose
//! settings changed restarts with the new ones; one deleted, disabled or handed to
//! another node stops (its cases stay in the store). A camera that cannot start
//! (a calibration that does not load) is reported on `/api/cameras` and tried
//! again when its settings change; the others are not held up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Mutex, Notify};

use super::scene::{Scene, SceneRules, ViewSpec};
use crate::cluster::Membership;
use crate::config::{view_key, CameraEntry};
use crate::geo::calib::Calibration;
use crate::geo::grid::CellLocator;
use crate::geo::zones::ZoneSet;
use crate::geo::LatLon;
use crate::ingest::{CameraConfig, Pool, Source};
use crate::registry::access::Tokens;
use crate::registry::calibrations::Fitted;
use crate::registry::view::View;
use crate::registry::Registry;

/// A change to a detection worker's scenes, applied between two batches.
pub(crate) enum SceneChange {
    /// Start (or replace) a camera's scene.
    Insert(Box<Scene>),
    /// Drop a camera's scene.
    Remove(String),
    /// New zones for a camera's scene, one set per view (an operator saved a zone).
    Zones(String, Vec<Arc<ZoneSet>>),
}

/// What scenes are built from.
pub(crate) struct SceneFactory {
    /// Every zone (the file's, or the registry's as last read).
    pub zones: std::sync::RwLock<Arc<ZoneSet>>,
    /// The registry's calibrations, by view, as last read: a view with one here uses
    /// it instead of its camera's calibration file.
    pub calibrations: std::sync::RwLock<Arc<BTreeMap<String, Fitted>>>,
    /// The versions of the reference pictures captured in the registry, by view, as
    /// last read: a preset with one here is recognised by it instead of its file.
    pub references: std::sync::RwLock<Arc<BTreeMap<String, i64>>>,
    pub cells: Arc<CellLocator>,
    pub rules: SceneRules,
}

impl SceneFactory {
    /// A camera's scene (blocking: reads its calibrations and preset pictures, the
    /// captured ones from `registry`).
    pub fn build(&self, c: &CameraEntry, registry: Option<&Registry>) -> anyhow::Result<Scene> {
        let mut scene = self.build_views(c, registry)?;
        scene.set_main_stream(c.main_stream().map(Arc::new));
        Ok(scene)
    }

    fn build_views(&self, c: &CameraEntry, registry: Option<&Registry>) -> anyhow::Result<Scene> {
        let saved = self.saved_calibrations();
        let calibration = |key: &str, p: &Option<std::path::PathBuf>| -> anyhow::Result<_> {
            if let Some(f) = saved.get(key) {
                return Ok(Some(f.calibration.clone()));
            }
            p.as_deref()
                .map(Calibration::load)
                .transpose()
                .context("calibration")
        };
        let location = c.location.map(|[lat, lon]| LatLon { lat, lon });
        let mut zones = self.view_zones(c)?.into_iter();
        if let Some(d) = &c.drone {
            return Ok(Scene::drone(
                Arc::from(c.id.as_str()),
                super::scene::DroneView::new(d.hfov_deg, d.gimbal_pitch),
                zones.next().expect("one view, one set"),
                self.cells.clone(),
                &self.rules,
            ));
        }
        if c.presets.is_empty() {
            return Ok(Scene::new(
                Arc::from(c.id.as_str()),
                calibration(&c.id, &c.calibration)?,
                location,
                zones.next().expect("one view, one set"),
                self.cells.clone(),
                &self.rules,
            ));
        }
        let captured = self.captured_references();
        let mut views = Vec::new();
        for (p, zones) in c.presets.iter().zip(zones) {
            let at = || format!("preset {}", p.id);
            let key = view_key(&c.id, Some(&p.id));
            views.push(ViewSpec {
                name: Some(Arc::from(p.id.as_str())),
                reference: self
                    .reference(&key, p, captured.contains_key(&key), registry)
                    .with_context(at)?,
                calibration: calibration(&key, &p.calibration).with_context(at)?,
                zones,
            });
        }
        Scene::with_views(
            Arc::from(c.id.as_str()),
            views,
            location,
            self.cells.clone(),
            &self.rules,
        )
        .map_err(anyhow::Error::msg)
    }

    /// A preset's picture: the one captured in the registry, else its file's, else
    /// none yet.
    fn reference(
        &self,
        key: &str,
        p: &crate::config::PresetEntry,
        captured: bool,
        registry: Option<&Registry>,
    ) -> anyhow::Result<Option<crate::decode::Frame>> {
        let mut frame = crate::decode::Frame::default();
        if let Some(reg) = registry.filter(|_| captured) {
            if let Some((r, jpeg)) = reg.reference(key)? {
                crate::decode::image::decode_image(&jpeg, &mut frame).map_err(|e| {
                    anyhow::anyhow!("reference picture {} (version {}): {e}", r.id, r.version)
                })?;
                return Ok(Some(frame));
            }
        }
        let Some(file) = &p.reference else {
            return Ok(None);
        };
        crate::decode::image::read_image(file, &mut frame)
            .with_context(|| format!("reference {}", file.display()))?;
        Ok(Some(frame))
    }

    fn captured_references(&self) -> Arc<BTreeMap<String, i64>> {
        self.references
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn saved_calibrations(&self) -> Arc<BTreeMap<String, Fitted>> {
        self.calibrations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The versions of what the registry holds for each of a camera's views: its
    /// calibration and its reference picture (`None`: its files'). A camera whose
    /// versions moved is started again with them.
    pub fn view_versions(&self, c: &CameraEntry) -> Vec<[Option<i64>; 2]> {
        let saved = self.saved_calibrations();
        let captured = self.captured_references();
        let versions = |key: &str| {
            [
                saved.get(key).map(|f| f.version),
                captured.get(key).copied(),
            ]
        };
        if c.presets.is_empty() {
            return vec![versions(&c.id)];
        }
        c.presets
            .iter()
            .map(|p| versions(&view_key(&c.id, Some(&p.id))))
            .collect()
    }

    /// The zones of each of a camera's views (one, or one per preset), as they are now.
    pub fn view_zones(&self, c: &CameraEntry) -> anyhow::Result<Vec<Arc<ZoneSet>>> {
        if c.presets.is_empty() {
            return Ok(vec![self.zones_of(&c.zones)?]);
        }
        c.presets
            .iter()
            .map(|p| {
                let ids = if p.zones.is_empty() {
                    &c.zones
                } else {
                    &p.zones
                };
                self.zones_of(ids)
                    .with_context(|| format!("preset {}", p.id))
            })
            .collect()
    }

    /// The zones of `ids` (all of them when empty).
    fn zones_of(&self, ids: &[String]) -> anyhow::Result<Arc<ZoneSet>> {
        let all = self.zones.read().unwrap_or_else(|p| p.into_inner()).clone();
        if ids.is_empty() {
            return Ok(all);
        }
        let (only, unknown) = all.only(ids);
        if !unknown.is_empty() {
            anyhow::bail!("zones: {unknown:?} are not zones of geo.zones");
        }
        Ok(Arc::new(only))
    }
}

/// The ingest settings of a camera.
pub(crate) fn camera_config(c: &CameraEntry) -> anyhow::Result<CameraConfig> {
    let source = if c.source.starts_with("rtsp://") {
        Source::Rtsp {
            url: c.source.parse().context("source is not a valid URL")?,
            transport: c.transport,
        }
    } else {
        let path = std::path::PathBuf::from(&c.source);
        if path.is_dir() {
            Source::Images {
                dir: path,
                interval: Duration::from_secs(1),
                looping: c.looping,
            }
        } else {
            Source::File {
                path,
                realtime: true,
                looping: c.looping,
            }
        }
    };
    let mut cc = CameraConfig::with_source(c.id.clone(), source, c.every);
    cc.stall_timeout = c.stall_timeout;
    if let Some(d) = &c.drone {
        cc.telemetry = Some(
            d.source()
                .map_err(|e| anyhow::anyhow!("drone.telemetry: {e}"))?,
        );
        cc.telemetry_max_gap = d.max_gap;
        cc.video_latency = d.video_latency;
    }
    Ok(cc)
}

/// A camera running here: the settings it runs with, the versions of the registry
/// calibrations and reference pictures its views use, and its detection worker.
struct Running {
    camera: CameraEntry,
    versions: Vec<[Option<i64>; 2]>,
    worker: usize,
}

/// A camera's settings and the versions of the registry calibrations and pictures of
/// its views.
type Settings = (CameraEntry, Vec<[Option<i64>; 2]>);

/// The controller.
pub(crate) struct Controller {
    pub pool: Arc<Pool>,
    pub view: Arc<View>,
    pub registry: Arc<Registry>,
    pub tokens: Arc<Tokens>,
    pub membership: Option<Arc<Membership>>,
    pub factory: Arc<SceneFactory>,
    pub workers: Vec<Sender<SceneChange>>,
    pub wake: Arc<Notify>,
    pub poll: Duration,
    running: Mutex<BTreeMap<String, Running>>,
    /// Cameras that could not start, with the settings (and calibrations) they failed
    /// with.
    failed: Mutex<BTreeMap<String, Settings>>,
    /// Zones read from the registry (in this time zone), and the zone revision
    /// read last (`-1`: none yet); the scenes are told when it moved.
    zones_tz: Option<chrono_tz::Tz>,
    zones_revision: std::sync::atomic::AtomicI64,
    zones_moved: std::sync::atomic::AtomicBool,
    /// The calibration revision read last (`-1`: none yet).
    calibrations_revision: std::sync::atomic::AtomicI64,
    /// The reference pictures' revision read last (`-1`: none yet).
    references_revision: std::sync::atomic::AtomicI64,
}

impl Controller {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: Arc<Pool>,
        view: Arc<View>,
        registry: Arc<Registry>,
        tokens: Arc<Tokens>,
        membership: Option<Arc<Membership>>,
        factory: Arc<SceneFactory>,
        workers: Vec<Sender<SceneChange>>,
        wake: Arc<Notify>,
        poll: Duration,
    ) -> Self {
        Self {
            pool,
            view,
            registry,
            tokens,
            membership,
            factory,
            workers,
            wake,
            poll,
            running: Mutex::default(),
            failed: Mutex::default(),
            zones_tz: None,
            zones_revision: std::sync::atomic::AtomicI64::new(-1),
            zones_moved: std::sync::atomic::AtomicBool::new(false),
            calibrations_revision: std::sync::atomic::AtomicI64::new(-1),
            references_revision: std::sync::atomic::AtomicI64::new(-1),
        }
    }

    /// Zones kept in the registry, in time zone `tz`: read again whenever a zone
    /// changes, and handed to the running scenes.
    pub fn with_registry_zones(mut self, tz: chrono_tz::Tz) -> Self {
        self.zones_tz = Some(tz);
        self
    }

    /// Reads the zones again if one changed since the last read (blocking).
    fn sync_zones(&self) -> Result<(), crate::cases::StoreError> {
        let Some(tz) = self.zones_tz else {
            return Ok(());
        };
        let reg = &self.registry;
        let moved = refresh(
            &self.zones_revision,
            reg.zones_revision()?,
            || reg.zone_set(tz),
            &self.factory.zones,
            |set, rev| {
                tracing::info!(
                    "zones: {} from the registry, revision {rev}",
                    set.zones().len()
                )
            },
        )?;
        if moved {
            self.zones_moved
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }

    /// Reads the calibrations again if one changed since the last read (blocking);
    /// the cameras they belong to start again with them at the next apply.
    fn sync_calibrations(&self) -> Result<(), crate::cases::StoreError> {
        let reg = &self.registry;
        refresh(
            &self.calibrations_revision,
            reg.calibrations_revision()?,
            || reg.fitted_calibrations(),
            &self.factory.calibrations,
            |all, rev| {
                tracing::info!(
                    "calibrations: {} from the registry, revision {rev}",
                    all.len()
                )
            },
        )?;
        Ok(())
    }

    /// Reads the versions of the captured reference pictures again if one changed
    /// (blocking); the cameras they belong to start again with them at the next
    /// apply (the pictures themselves are read when a scene is built).
    fn sync_references(&self) -> Result<(), crate::cases::StoreError> {
        let reg = &self.registry;
        refresh(
            &self.references_revision,
            reg.references_revision()?,
            || reg.reference_versions(),
            &self.factory.references,
            |all, rev| {
                tracing::info!(
                    "reference pictures: {} captured in the registry, revision {rev}",
                    all.len()
                )
            },
        )?;
        Ok(())
    }

    /// Reads the registry's changes and the tokens (blocking calls on a blocking
    /// thread); tells the membership the cameras to share.
    pub async fn sync(self: &Arc<Self>) {
        let me = self.clone();
        let r = tokio::task::spawn_blocking(move || {
            let touched = me.view.sync(&me.registry);
            let tokens = me.tokens.refresh(&me.registry);
            if let Err(e) = me.sync_zones() {
                tracing::warn!("registry: reading the zones: {e}");
            }
            if let Err(e) = me.sync_calibrations() {
                tracing::warn!("registry: reading the calibrations: {e}");
            }
            if let Err(e) = me.sync_references() {
                tracing::warn!("registry: reading the reference pictures: {e}");
            }
            (touched, tokens)
        })
        .await;
        match r {
            Ok((touched, tokens)) => {
                match touched {
                    Ok(t) if !t.is_empty() => {
                        tracing::info!(
                            "registry: {} camera(s) changed; revision {}",
                            t.len(),
                            self.view.revision()
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("registry: reading the camera changes: {e}"),
                }
                if let Err(e) = tokens {
                    tracing::warn!("registry: reading the tokens: {e}");
                }
            }
            Err(_) => tracing::error!("registry: the sync task panicked"),
        }
        if let Some(m) = &self.membership {
            m.set_cameras(self.view.enabled_ids());
        }
    }

    /// The cameras this node should run now.
    fn wanted(&self) -> BTreeSet<String> {
        let enabled = self.view.enabled_ids().into_iter();
        match &self.membership {
            Some(m) => {
                let held = m.held();
                enabled.filter(|id| held.contains(id)).collect()
            }
            None => enabled.collect(),
        }
    }

    /// Brings the pool and the scenes in line with the list and the leases.
    pub async fn apply(&self) {
        let wanted = self.wanted();
        let mut running = self.running.lock().await;
        // zones that changed reach the running scenes in place (their tracks and dwell
        // go on); a camera that names a zone no longer there stops, and fails to start
        // with the reason
        let mut unzoned = BTreeSet::new();
        if self
            .zones_moved
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            for (id, r) in running.iter() {
                match self.factory.view_zones(&r.camera) {
                    Ok(z) => {
                        let _ = self.workers[r.worker].send(SceneChange::Zones(id.clone(), z));
                    }
                    Err(_) => {
                        unzoned.insert(id.clone());
                    }
                }
            }
        }
        // stop what is no longer wanted here, or runs with settings that changed
        let stop: Vec<String> = running
            .iter()
            .filter(|(id, r)| {
                !wanted.contains(*id)
                    || unzoned.contains(*id)
                    || self.view.get(id).is_none_or(|v| v.camera != r.camera)
                    || self.factory.view_versions(&r.camera) != r.versions
            })
            .map(|(id, _)| id.clone())
            .collect();
        futures::future::join_all(stop.iter().map(|id| self.pool.remove(id))).await;
        for id in &stop {
            if let Some(r) = running.remove(id) {
                let _ = self.workers[r.worker].send(SceneChange::Remove(id.clone()));
            }
            if !wanted.contains(id) {
                tracing::info!(camera = id.as_str(), "camera stopped on this node");
            }
        }
        let mut failed = self.failed.lock().await;
        failed.retain(|id, _| wanted.contains(id));
        let start: Vec<&String> = wanted
            .iter()
            .filter(|id| !running.contains_key(*id))
            .collect();
        for id in start {
            let Some(rec) = self.view.get(id) else {
                continue;
            };
            let versions = self.factory.view_versions(&rec.camera);
            if failed
                .get(id)
                .is_some_and(|(c, v)| *c == rec.camera && *v == versions)
            {
                continue;
            }
            let camera = rec.camera;
            // calibration files are read on a blocking thread, not on the detection
            // threads
            let (c, f, reg) = (camera.clone(), self.factory.clone(), self.registry.clone());
            let built = tokio::task::spawn_blocking(move || {
                f.build(&c, Some(&reg))
                    .and_then(|scene| Ok((scene, camera_config(&c)?)))
            })
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("building its scene panicked")));
            let (scene, cc) = match built {
                Ok(b) => b,
                Err(e) => {
                    let msg = format!("{e:#}");
                    tracing::error!(camera = id.as_str(), "cannot start: {msg}");
                    self.view.set_problem(id, Some(msg));
                    failed.insert(id.clone(), (camera, versions));
                    continue;
                }
            };
            let worker = (0..self.workers.len())
                .min_by_key(|w| running.values().filter(|r| r.worker == *w).count())
                .unwrap_or(0);
            let _ = self.workers[worker].send(SceneChange::Insert(Box::new(scene)));
            match self.pool.add(cc) {
                Ok(()) => {
                    self.view.set_problem(id, None);
                    failed.remove(id);
                    running.insert(
                        id.clone(),
                        Running {
                            camera,
                            versions,
                            worker,
                        },
                    );
                }
                Err(e) => {
                    let _ = self.workers[worker].send(SceneChange::Remove(id.clone()));
                    tracing::error!(camera = id.as_str(), "starting: {e}");
                }
            }
        }
    }

    /// Syncs and applies every poll, at every wake, until `stop`. A store that does
    /// not answer must not hold up the cameras (a lease that runs out must stop its
    /// camera whatever the registry does): a sync runs on its own, waited for a
    /// moment, and the cameras are brought in line with what is known meanwhile.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut pending: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = self.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let mut task = pending.take().unwrap_or_else(|| {
                let me = self.clone();
                tokio::spawn(async move { me.sync().await })
            });
            if tokio::time::timeout(SYNC_WAIT, &mut task).await.is_err() {
                pending = Some(task);
            }
            self.apply().await;
        }
    }
}

/// Reads what the registry keeps of a resource again (`read`, into `into`) when its
/// revision is no longer the one `seen` last, and says so (`said`); whether it did.
fn refresh<T>(
    seen: &std::sync::atomic::AtomicI64,
    revision: i64,
    read: impl FnOnce() -> Result<T, crate::cases::StoreError>,
    into: &std::sync::RwLock<Arc<T>>,
    said: impl FnOnce(&T, i64),
) -> Result<bool, crate::cases::StoreError> {
    use std::sync::atomic::Ordering;
    if revision == seen.load(Ordering::Acquire) {
        return Ok(false);
    }
    let value = read()?;
    said(&value, revision);
    *into.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    seen.store(revision, Ordering::Release);
    Ok(true)
}

/// How long the controller waits for a registry sync before it applies what it knows.
const SYNC_WAIT: Duration = Duration::from_millis(500);

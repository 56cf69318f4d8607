//! A node's copy of the camera list: read from the registry and kept up to date with
//! its changes ([`View::sync`]), or the config's `[[camera]]` entries (read-only).
//! The API lists and filters cameras from it, without a question to the store per
//! request; the service runs the cameras it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};

use super::{CameraEntry, CameraRecord, Registry};
use crate::cases::StoreError;

/// Which cameras a listing wants.
#[derive(Debug, Clone, Default)]
pub struct CameraQuery {
    /// Only enabled (`Some(true)`) or disabled ones.
    pub enabled: Option<bool>,
    /// Only cameras with each of these labels (`key`, `value`).
    pub labels: Vec<(String, String)>,
    /// Only cameras whose id contains this (any case).
    pub search: Option<String>,
    /// At most this many.
    pub limit: usize,
    /// After skipping this many (in id order).
    pub offset: usize,
}

impl CameraQuery {
    fn matches(&self, c: &CameraEntry) -> bool {
        self.enabled.is_none_or(|e| e == c.enabled)
            && self
                .labels
                .iter()
                .all(|(k, v)| c.labels.get(k).is_some_and(|x| x == v))
            && self
                .search
                .as_ref()
                .is_none_or(|s| c.id.to_ascii_lowercase().contains(&s.to_ascii_lowercase()))
    }
}

#[derive(Default)]
struct Inner {
    /// The registry revision this copy is at (`None`: not read yet).
    revision: Option<i64>,
    cameras: BTreeMap<String, CameraRecord>,
}

/// The camera list as this node knows it.
pub struct View {
    inner: RwLock<Inner>,
    /// One sync at a time.
    syncing: Mutex<()>,
    /// Whether the list is the registry's (`false`: the config's, read-only).
    writable: bool,
    /// Cameras that could not be started here, with why.
    problems: RwLock<BTreeMap<String, String>>,
}

impl View {
    /// The config's cameras, as a read-only list.
    pub fn from_config(cameras: &[CameraEntry]) -> Self {
        let cameras = cameras
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    CameraRecord {
                        camera: c.clone(),
                        revision: 0,
                        created_ms: 0,
                        updated_ms: 0,
                    },
                )
            })
            .collect();
        Self {
            inner: RwLock::new(Inner {
                revision: Some(0),
                cameras,
            }),
            syncing: Mutex::new(()),
            writable: false,
            problems: RwLock::default(),
        }
    }

    /// The registry's cameras, empty until the first [`View::sync`].
    pub fn of_registry() -> Self {
        Self {
            inner: RwLock::default(),
            syncing: Mutex::new(()),
            writable: true,
            problems: RwLock::default(),
        }
    }

    /// Whether cameras change through the registry (else the config is the list).
    pub fn writable(&self) -> bool {
        self.writable
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the registry's changes since this copy's revision (blocking); returns
    /// the ids of the cameras created, changed or deleted. A read-only list does not
    /// change.
    pub fn sync(&self, registry: &Registry) -> Result<BTreeSet<String>, StoreError> {
        if !self.writable {
            return Ok(BTreeSet::new());
        }
        let _one = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        let since = self.read().revision;
        let changes = registry.changes_since(since.unwrap_or(0))?;
        if since == Some(changes.revision) {
            return Ok(BTreeSet::new());
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut touched = BTreeSet::new();
        if since.is_none() {
            touched.extend(inner.cameras.keys().cloned());
            inner.cameras.clear();
        }
        for id in changes.deleted {
            inner.cameras.remove(&id);
            touched.insert(id);
        }
        for c in changes.changed {
            touched.insert(c.camera.id.clone());
            inner.cameras.insert(c.camera.id.clone(), c);
        }
        inner.revision = Some(changes.revision);
        Ok(touched)
    }

    /// The registry revision this copy is at (0 for the config's list).
    pub fn revision(&self) -> i64 {
        self.read().revision.unwrap_or(0)
    }

    /// One camera.
    pub fn get(&self, id: &str) -> Option<CameraRecord> {
        self.read().cameras.get(id).cloned()
    }

    /// Whether a camera of this id is listed.
    pub fn contains(&self, id: &str) -> bool {
        self.read().cameras.contains_key(id)
    }

    /// One page of the cameras a query wants, in id order, and how many it wants.
    pub fn list(&self, q: &CameraQuery) -> (Vec<CameraRecord>, usize) {
        let inner = self.read();
        let mut total = 0;
        let mut page = Vec::with_capacity(q.limit.min(1000));
        for c in inner.cameras.values().filter(|c| q.matches(&c.camera)) {
            if total >= q.offset && page.len() < q.limit {
                page.push(c.clone());
            }
            total += 1;
        }
        (page, total)
    }

    /// The enabled cameras' ids.
    pub fn enabled_ids(&self) -> Vec<String> {
        self.read()
            .cameras
            .values()
            .filter(|c| c.camera.enabled)
            .map(|c| c.camera.id.clone())
            .collect()
    }

    /// How many cameras are listed.
    pub fn len(&self) -> usize {
        self.read().cameras.len()
    }

    /// Whether no camera is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notes why a camera could not start here (`None`: it started).
    pub fn set_problem(&self, id: &str, problem: Option<String>) {
        let mut p = self.problems.write().unwrap_or_else(|p| p.into_inner());
        match problem {
            Some(m) => {
                p.insert(id.to_string(), m);
            }
            None => {
                p.remove(id);
            }
        }
    }

    /// Why a camera could not start here, if it could not.
    pub fn problem(&self, id: &str) -> Option<String> {
        self.problems
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

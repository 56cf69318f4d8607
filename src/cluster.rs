//! Sharing the cameras among gridwatch nodes that use one PostgreSQL store.
//!
//! Every node shares the same camera list: the registry's enabled cameras (each node
//! follows the registry's changes, [`Membership::set_cameras`]), or with
//! `registry.cameras = "config"` the config's. Each heartbeat (a third of the lease
//! TTL) a node, in one transaction on the database's clock:
//!
//! 1. marks itself alive in `cluster_nodes`;
//! 2. reads the nodes seen within the TTL with the same kind of list (the live nodes;
//!    with config lists, nodes whose lists differ, as during a rolling config change,
//!    share among themselves; the registry's list is one for all, though a node may
//!    be a poll behind; either way the leases keep any camera on one node at a time);
//! 3. works out which cameras prefer it: rendezvous (highest-random-weight) hashing of
//!    (node, camera) over the live nodes, so every node computes the same answer, the
//!    shares stay balanced, and a node joining or leaving moves only its own share;
//! 4. gives back the leases it holds on cameras that no longer prefer it;
//! 5. claims or renews a lease on each camera that prefers it, with
//!    `INSERT … ON CONFLICT DO UPDATE … WHERE` the lease is its own or has expired —
//!    the lease is the guard: a camera is never held by two nodes, even while two
//!    nodes briefly disagree about who is alive.
//!
//! The node runs exactly the cameras it holds. It keeps a camera only while its lease
//! is valid by its own monotonic clock (renewal time + 5/6 of the TTL, inside the
//! lease's expiry in the database), so a node cut off from the database stops its
//! cameras before anyone else can take them. A node that dies (even by SIGKILL) stops renewing;
//! its leases expire after at most one TTL and the other nodes take its cameras at
//! their next heartbeat. On a clean stop a node gives its leases back at once.
//!
//! Node names must be unique: a node that finds its name alive under another process
//! (another instance id seen within the TTL) refuses to beat, and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::Client;
use serde::Serialize;

use crate::pg::{Db, Describe, Guard};

/// The cluster's tables in the shared PostgreSQL database: the nodes seen and the
/// camera leases. Created by the case store's migration 2, with the rest of the schema.
pub const TABLES: &str = "CREATE TABLE cluster_nodes (
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
     CREATE INDEX camera_leases_by_node ON camera_leases (node);";

/// A camera's holder, as last read from the lease table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Holder {
    /// The node holding the camera.
    pub node: String,
    /// That node's API (its `api.public_url`), where the camera's live state is.
    pub node_url: Option<String>,
    /// Milliseconds until the lease runs out unless renewed.
    pub expires_in_ms: i64,
}

/// The rendezvous weight of `camera` on `node`: FNV-1a over both names, then a 64-bit
/// finaliser so that similar names spread. Stable across builds and platforms: every
/// node must compute the same weights.
pub fn weight(node: &str, camera: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0u8]).chain(camera.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finaliser
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The node `camera` prefers among `nodes` (ties: the smaller name).
pub fn preferred<'a>(camera: &str, nodes: &'a [String]) -> Option<&'a str> {
    nodes
        .iter()
        .max_by(|a, b| {
            weight(a, camera)
                .cmp(&weight(b, camera))
                .then_with(|| b.cmp(a))
        })
        .map(String::as_str)
}

/// This node's membership: its leases and what it knows of the others.
pub struct Membership {
    db: Db,
    node: String,
    node_url: Option<String>,
    ttl: Duration,
    /// The cameras shared (the enabled ones), and a count of the lists set.
    cameras: Mutex<(u64, Vec<String>)>,
    /// Identifies this camera list among the nodes.
    digest: String,
    /// Identifies this process (two processes must not share a node name).
    instance: String,
    /// Cameras held, with when each lease runs out by this node's clock.
    held: Mutex<BTreeMap<String, Instant>>,
    /// Every camera's holder, read on demand and kept for a heartbeat.
    holders: Mutex<Option<(Instant, BTreeMap<String, Holder>)>>,
    /// The cameras that prefer this node, for the live set and the camera list they
    /// were computed from (computed again only when either changes).
    preferred: Mutex<(Vec<String>, u64, Vec<String>)>,
    /// Live nodes at the last heartbeat.
    live: Mutex<Vec<String>>,
    /// When the last heartbeat went through.
    last_ok: Mutex<Option<Instant>>,
}

impl Membership {
    /// A membership for `node` over the store at `url` (whose migrations made the
    /// tables), sharing `cameras`. Connects at the first heartbeat.
    pub fn new(
        url: &str,
        node: &str,
        node_url: Option<String>,
        cameras: Vec<String>,
        ttl: Duration,
    ) -> Self {
        let mut sorted = cameras.clone();
        sorted.sort();
        let digest = format!("{:016x}", weight("", &sorted.join("\n")));
        let instance = format!(
            "{:016x}",
            weight(
                &std::process::id().to_string(),
                &format!("{:?}", std::time::SystemTime::now())
            )
        );
        Self {
            db: Db::new(url),
            node: node.to_string(),
            node_url,
            ttl,
            cameras: Mutex::new((0, cameras)),
            digest,
            instance,
            held: Mutex::new(BTreeMap::new()),
            holders: Mutex::new(None),
            preferred: Mutex::new((Vec::new(), u64::MAX, Vec::new())),
            live: Mutex::new(Vec::new()),
            last_ok: Mutex::new(None),
        }
    }

    /// A membership whose camera list is the shared registry's: every node has the
    /// same list (or one a poll behind), so every node is in the live set whatever
    /// its list; the leases keep a camera on one node while the lists differ.
    pub fn with_registry(mut self) -> Self {
        self.digest = "registry".into();
        self
    }

    /// Sets the cameras to share (the registry's enabled cameras, after a change).
    pub fn set_cameras(&self, mut cameras: Vec<String>) {
        cameras.sort();
        let mut c = self.cameras.lock().unwrap_or_else(|p| p.into_inner());
        if c.1 != cameras {
            *c = (c.0 + 1, cameras);
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How often to beat: a third of the TTL.
    pub fn heartbeat(&self) -> Duration {
        self.ttl / 3
    }

    /// The cameras this node may run now (leases valid by its own clock); leases
    /// run out are forgotten.
    pub fn held(&self) -> BTreeSet<String> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, until| *until > now);
        held.keys().cloned().collect()
    }

    /// When the first lease held runs out unless renewed (by this node's clock); in
    /// the past for a lease run out that [`Membership::held`] has not yet dropped.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .min()
            .copied()
    }

    /// Every camera's holder (absent: nobody holds it), read from the lease table at
    /// most once a heartbeat (blocking: call from a blocking thread). Never waits
    /// behind a heartbeat stuck on an unanswering database: then the last reading is
    /// returned, or an error.
    pub fn holders(&self) -> Result<BTreeMap<String, Holder>, String> {
        // (the cache's lock is not held while the database is asked)
        let cached = self
            .holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((at, h)) = &cached {
            if at.elapsed() < self.heartbeat() {
                return Ok(h.clone());
            }
        }
        let Some(guard) = self.db.try_lock() else {
            return match cached {
                Some((_, h)) => Ok(h),
                None => Err(format!(
                    "cluster: {}: busy with a heartbeat",
                    self.db.name()
                )),
            };
        };
        let holders: BTreeMap<String, Holder> = self.with_guard(guard, |c| {
            Ok(c.query(
                "SELECT l.camera, l.node, n.url, l.expires_ms - now_ms.t
                 FROM camera_leases l LEFT JOIN cluster_nodes n ON n.node = l.node,
                      (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t) now_ms
                 WHERE l.expires_ms > now_ms.t",
                &[],
            )?
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    Holder {
                        node: r.get(1),
                        node_url: r.get(2),
                        expires_in_ms: r.get(3),
                    },
                )
            })
            .collect())
        })?;
        *self.holders.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), holders.clone()));
        Ok(holders)
    }

    /// The last reading of [`Membership::holders`], however old (empty before the
    /// first): for callers that cannot wait on the database.
    pub fn last_holders(&self) -> BTreeMap<String, Holder> {
        self.holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    }

    /// The cameras that prefer this node among `live`.
    fn preferred_among(&self, live: &[String]) -> Vec<String> {
        let cams = self.cameras.lock().unwrap_or_else(|p| p.into_inner());
        let mut p = self.preferred.lock().unwrap_or_else(|p| p.into_inner());
        if p.0 != live || p.1 != cams.0 {
            let want = cams
                .1
                .iter()
                .filter(|cam| preferred(cam, live) == Some(self.node.as_str()))
                .cloned()
                .collect();
            *p = (live.to_vec(), cams.0, want);
        }
        p.2.clone()
    }

    /// The live nodes at the last heartbeat.
    pub fn live_nodes(&self) -> Vec<String> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        self.with_guard(self.db.lock(), f)
    }

    fn with_guard<T>(
        &self,
        guard: Result<Guard<'_>, String>,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        let mut client = guard.map_err(|e| format!("cluster: {}: {e}", self.db.name()))?;
        f(&mut client).map_err(|e| format!("cluster: {}: {}", self.db.name(), e.describe()))
    }

    /// One heartbeat (blocking: call from a blocking thread). On an error the leases
    /// held stay valid until their local expiry, and the error says what failed.
    pub fn beat(&self) -> Result<(), String> {
        let started = Instant::now();
        let ttl_ms = self.ttl.as_millis() as i64;
        let (node, node_url) = (self.node.clone(), self.node_url.clone());
        let (instance, digest) = (self.instance.clone(), self.digest.clone());
        let mut clash = None;
        let (live, got) = self.with_client(|c| {
            let mut tx = c.transaction()?;
            let now: i64 = tx
                .query_one(
                    "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                    &[],
                )?
                .get(0);
            if let Some(r) = tx.query_opt(
                "SELECT instance, url FROM cluster_nodes WHERE node = $1 AND seen_ms > $2 FOR UPDATE",
                &[&node, &(now - ttl_ms)],
            )? {
                let (other, url): (String, Option<String>) = (r.get(0), r.get(1));
                if other != instance {
                    clash = Some(url.unwrap_or_default());
                    return Ok((Vec::new(), BTreeSet::new()));
                }
            }
            tx.execute(
                "INSERT INTO cluster_nodes (node, url, instance, cameras_digest, started_ms, seen_ms)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (node) DO UPDATE SET url = EXCLUDED.url, instance = EXCLUDED.instance,
                    cameras_digest = EXCLUDED.cameras_digest, seen_ms = EXCLUDED.seen_ms",
                &[&node, &node_url, &instance, &digest, &now],
            )?;
            let live: Vec<String> = tx
                .query(
                    "SELECT node FROM cluster_nodes WHERE seen_ms > $1 AND cameras_digest = $2 ORDER BY node",
                    &[&(now - ttl_ms), &digest],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let want = self.preferred_among(&live);
            tx.execute(
                "DELETE FROM camera_leases WHERE node = $1 AND NOT (camera = ANY($2))",
                &[&node, &want],
            )?;
            let got: BTreeSet<String> = tx
                .query(
                    "INSERT INTO camera_leases (camera, node, expires_ms, since_ms)
                     SELECT cam, $2::text, $3::bigint + $4::bigint, $3::bigint FROM unnest($1::text[]) AS cam
                     ON CONFLICT (camera) DO UPDATE
                        SET node = EXCLUDED.node, expires_ms = EXCLUDED.expires_ms,
                            since_ms = CASE WHEN camera_leases.node = EXCLUDED.node
                                            THEN camera_leases.since_ms ELSE EXCLUDED.since_ms END
                        WHERE camera_leases.node = EXCLUDED.node OR camera_leases.expires_ms < $3::bigint
                     RETURNING camera",
                    &[&want, &node, &now, &ttl_ms],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            // nodes gone for a day are forgotten
            tx.execute(
                "DELETE FROM cluster_nodes WHERE seen_ms < $1",
                &[&(now - 86_400_000)],
            )?;
            tx.commit()?;
            Ok((live, got))
        })?;
        if let Some(url) = clash {
            return Err(format!(
                "cluster: another gridwatch process is running as node {:?} (its API: {url}), or one that stopped less than {:?} ago; give every node its own cluster.node (or GRIDWATCH_NODE) — a restarted node takes over once the old one's TTL has passed",
                self.node, self.ttl
            ));
        }
        // a sixth of the TTL short of the lease's expiry in the database: the margin in
        // which a node that can no longer renew stops its cameras before another node
        // may take them
        let until = started + self.ttl - self.ttl / 6;
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            for lost in held.keys().filter(|c| !got.contains(*c)) {
                tracing::info!(camera = lost.as_str(), "camera handed to another node");
            }
            held.retain(|c, _| got.contains(c));
            for c in got {
                if held.insert(c.clone(), until).is_none() {
                    tracing::info!(camera = c.as_str(), node = %self.node, "camera lease taken");
                }
            }
        }
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = live;
        *self.last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Some(started);
        Ok(())
    }

    /// Whether a heartbeat went through within the last two heartbeat periods: the
    /// shared store answers this node (readiness).
    pub fn healthy(&self) -> bool {
        self.last_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < 2 * self.heartbeat())
    }

    /// Gives back every lease and leaves the live set (blocking), so the other nodes
    /// take the cameras at their next heartbeat instead of after the TTL.
    pub fn leave(&self) -> Result<(), String> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let node = self.node.clone();
        self.with_client(|c| {
            c.execute("DELETE FROM camera_leases WHERE node = $1", &[&node])?;
            c.execute("DELETE FROM cluster_nodes WHERE node = $1", &[&node])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_balanced_and_a_leaving_node_moves_only_its_share() {
        let cams: Vec<String> = (0..3000).map(|i| format!("cam-{i:04}")).collect();
        let three: Vec<String> = ["gw-0", "gw-1", "gw-2"].map(String::from).to_vec();
        let mut count = BTreeMap::new();
        for c in &cams {
            *count.entry(preferred(c, &three).unwrap()).or_insert(0) += 1;
        }
        for (n, k) in &count {
            assert!((900..=1100).contains(k), "{n}: {k} of 3000");
        }
        let two: Vec<String> = ["gw-0", "gw-2"].map(String::from).to_vec();
        for c in &cams {
            let before = preferred(c, &three).unwrap();
            let after = preferred(c, &two).unwrap();
            if before != "gw-1" {
                assert_eq!(before, after, "{c} moved though its node stayed");
            }
        }
        // a joining node takes about a quarter, each from whoever had it
        let four: Vec<String> = ["gw-0", "gw-1", "gw-2", "gw-3"].map(String::from).to_vec();
        let moved = cams
            .iter()
            .filter(|c| preferred(c, &three) != preferred(c, &four))
            .inspect(|c| assert_eq!(preferred(c, &four), Some("gw-3")))
            .count();
        assert!((600..=900).contains(&moved), "{moved}");
    }

    #[test]
    fn weights_are_stable() {
        // pinned: nodes built from other versions must agree on every camera's node
        // (values from an independent Python implementation of the same hash)
        assert_eq!(weight("gw-0", "cam-1"), 0xb7ae_4961_f10f_bfa5);
        assert_eq!(weight("gw-1", "cam-1"), 0xbed0_5cb6_efdc_eebc);
        assert_ne!(weight("gw-0", "cam-1"), weight("gw-0cam-1", ""));
        assert_eq!(preferred("x", &[]), None);
    }
}

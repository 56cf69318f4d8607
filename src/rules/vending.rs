//! Street vending: people staying with stall props in a `no_vending` zone. A prop track
//! (umbrella, table, chair, suitcase, or a model's own vending classes) that has stood
//! in the zone for at least the dwell, with a person who has stood near it for at least
//! half the dwell, is a violation. Passers-by (moving, so no dwell), people waiting
//! without props, and props carried through (moving) never trigger. One violation per
//! prop and zone.

use std::collections::HashMap;
use std::time::Duration;

use super::{next_stage, track_event, RuleEvent, Stage, TrackRule, ViolationKind, ZoneHit};
use crate::geo::zones::ZoneKind;
use crate::track::Track;

/// Vending rule settings.
#[derive(Debug, Clone)]
pub struct VendingConfig {
    /// Classes that are people.
    pub people: Vec<String>,
    /// Classes that are stall props.
    pub props: Vec<String>,
    /// Default dwell of the prop before a violation.
    pub dwell: Duration,
    /// How long a person must have stood near the prop, as a share of the dwell.
    pub person_share: f64,
    /// Near: within this many metres (ground points) …
    pub near_m: f64,
    /// … or, without ground points, centres within this many box heights.
    pub near_heights: f32,
    /// Dwell before a warning; `None`: no warning stage.
    pub warn_after: Option<Duration>,
}

impl Default for VendingConfig {
    fn default() -> Self {
        Self {
            people: vec!["person".into()],
            props: [
                "umbrella",
                "dining table",
                "chair",
                "suitcase",
                "cart",
                "stall",
                "vendor_goods",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            dwell: Duration::from_secs(300),
            person_share: 0.5,
            near_m: 3.0,
            near_heights: 1.5,
            warn_after: None,
        }
    }
}

/// The rule's state for one camera.
#[derive(Debug, Default)]
pub struct VendingRule {
    config: VendingConfig,
    stages: HashMap<(u64, String), Stage>,
}

fn near(cfg: &VendingConfig, a: &Track, b: &Track) -> bool {
    match (a.ground, b.ground) {
        (Some(p), Some(q)) => ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt() <= cfg.near_m,
        _ => {
            let c = |t: &Track| ((t.bbox[0] + t.bbox[2]) / 2.0, (t.bbox[1] + t.bbox[3]) / 2.0);
            let (ca, cb) = (c(a), c(b));
            let h = (a.bbox[3] - a.bbox[1]).max(b.bbox[3] - b.bbox[1]).max(1.0);
            ((ca.0 - cb.0).powi(2) + (ca.1 - cb.1).powi(2)).sqrt() <= cfg.near_heights * h
        }
    }
}

impl VendingRule {
    /// A rule with the settings.
    pub fn new(config: VendingConfig) -> Self {
        Self {
            config,
            stages: HashMap::new(),
        }
    }
}

impl TrackRule for VendingRule {
    fn step<'z>(
        &mut self,
        t: i64,
        tracks: &[Track],
        zones_of: &mut dyn FnMut(&Track) -> Vec<ZoneHit<'z>>,
        out: &mut Vec<RuleEvent>,
    ) {
        let cfg = &self.config;
        for prop in tracks
            .iter()
            .filter(|tr| tr.seen_at(t) && cfg.props.contains(&tr.class))
        {
            for z in zones_of(prop)
                .into_iter()
                .filter(|z| *z.kind == ZoneKind::NoVending)
            {
                let dwell = z.dwell.unwrap_or(cfg.dwell).as_millis() as i64;
                let person_needed = (dwell as f64 * cfg.person_share) as i64;
                let d = prop.dwell_ms();
                let vendor = tracks.iter().any(|p| {
                    cfg.people.contains(&p.class)
                        && t - p.last_seen <= 60_000
                        && p.dwell_ms() >= person_needed.min(d)
                        && near(cfg, prop, p)
                });
                if !vendor {
                    continue;
                }
                let key = (prop.id, z.id.to_string());
                let reached = self.stages.get(&key).copied();
                if let Some(stage) = next_stage(reached, d, dwell, cfg.warn_after) {
                    self.stages.insert(key, stage);
                    out.push(track_event(
                        ViolationKind::StreetVending,
                        stage,
                        z.id,
                        prop,
                        t,
                    ));
                }
            }
        }
        self.stages
            .retain(|(id, _), _| tracks.iter().any(|tr| tr.id == *id));
    }
}

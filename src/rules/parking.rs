//! Illegal parking: a vehicle stationary in a `no_parking` zone for at least the dwell
//! time (the zone's `dwell` parameter, else the rule's default of 5 minutes), with an
//! optional warning stage before. Moving traffic restarts the tracker's stationary clock,
//! so it never accumulates dwell; a brief stop ends before the dwell. One violation per
//! track and zone.

use std::collections::HashMap;
use std::time::Duration;

use super::{next_stage, track_event, RuleEvent, Stage, TrackRule, ViolationKind, ZoneHit};
use crate::geo::zones::ZoneKind;
use crate::track::Track;

/// Parking rule settings.
#[derive(Debug, Clone)]
pub struct ParkingConfig {
    /// Classes that count as vehicles.
    pub vehicles: Vec<String>,
    /// Default dwell before a violation.
    pub dwell: Duration,
    /// Dwell before a warning (reminder); `None`: no warning stage.
    pub warn_after: Option<Duration>,
}

impl Default for ParkingConfig {
    fn default() -> Self {
        Self {
            vehicles: ["car", "truck", "bus", "motorcycle"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            dwell: Duration::from_secs(300),
            warn_after: None,
        }
    }
}

/// The rule's state for one camera.
#[derive(Debug, Default)]
pub struct ParkingRule {
    config: ParkingConfig,
    stages: HashMap<(u64, String), Stage>,
}

impl ParkingRule {
    /// A rule with the settings.
    pub fn new(config: ParkingConfig) -> Self {
        Self {
            config,
            stages: HashMap::new(),
        }
    }
}

impl TrackRule for ParkingRule {
    fn step<'z>(
        &mut self,
        t: i64,
        tracks: &[Track],
        zones_of: &mut dyn FnMut(&Track) -> Vec<ZoneHit<'z>>,
        out: &mut Vec<RuleEvent>,
    ) {
        for tr in tracks.iter().filter(|tr| tr.seen_at(t)) {
            if !self.config.vehicles.contains(&tr.class) {
                continue;
            }
            for z in zones_of(tr)
                .into_iter()
                .filter(|z| *z.kind == ZoneKind::NoParking)
            {
                let dwell = z.dwell.unwrap_or(self.config.dwell).as_millis() as i64;
                let key = (tr.id, z.id.to_string());
                let reached = self.stages.get(&key).copied();
                if let Some(stage) =
                    next_stage(reached, tr.dwell_ms(), dwell, self.config.warn_after)
                {
                    self.stages.insert(key, stage);
                    out.push(track_event(
                        ViolationKind::IllegalParking,
                        stage,
                        z.id,
                        tr,
                        t,
                    ));
                }
            }
        }
        // forget tracks the tracker dropped
        self.stages
            .retain(|(id, _), _| tracks.iter().any(|tr| tr.id == *id));
    }
}

//! Rules: one per violation kind, each a pure state machine fed tracks, the zones each
//! track stands in, and time; emitting warnings and violations. Today: illegal parking
//! ([`parking`]), street vending ([`vending`]), dumping ([`dumping`]) and illegal
//! construction ([`construction`]).

pub mod caption;
pub mod clip;
pub mod construction;
pub mod detail;
pub mod dumping;
pub mod evidence;
pub mod parking;
pub mod plates;
pub mod privacy;
pub mod revisit;
pub mod vending;

use std::time::Duration;

use serde::Serialize;

use crate::geo::zones::ZoneKind;

pub use crate::cases::ViolationKind;

/// A warning (reminder) or the violation itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Before the case stage: a reminder may be sent.
    Warning,
    /// A case should be filed.
    Violation,
}

/// A zone a track stands in, as a rule needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneHit<'a> {
    /// Zone id.
    pub id: &'a str,
    /// Zone kind.
    pub kind: &'a ZoneKind,
    /// The zone's own dwell time (its `dwell` parameter), if it sets one.
    pub dwell: Option<Duration>,
}

/// What a rule emits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleEvent {
    /// The violation kind.
    pub kind: ViolationKind,
    /// Warning or violation.
    pub stage: Stage,
    /// The zone broken.
    pub zone: String,
    /// The track that broke it.
    pub track: u64,
    /// Its class.
    pub class: String,
    /// Since when the condition has held, ms.
    pub since_ms: i64,
    /// When it was emitted, ms.
    pub at_ms: i64,
    /// The track's box at that moment.
    pub bbox: [f32; 4],
    /// Another track involved (for dumping: the person or vehicle last seen next to the
    /// object before it appeared), with its class.
    pub related: Option<(u64, String)>,
    /// Where it is on the ground, when the rule knows it better than the box's foot
    /// (a change found on a drone's ground raster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ground: Option<crate::geo::LatLon>,
}

/// One sample of a camera's scene, as every rule sees it: the frame, the tracks, and
/// where they stand (each track's zones found once per frame, for all rules).
pub struct Sample<'a, 'z> {
    /// When, ms since the epoch.
    pub t_ms: i64,
    /// The picture.
    pub frame: &'a crate::decode::Frame,
    /// The camera's tracks after this sample.
    pub tracks: &'a [crate::track::Track],
    /// The zones each of `tracks` stands in, in the same order (empty for a track not
    /// seen in this sample: rules look at the tracks seen now).
    pub track_zones: &'a [Vec<ZoneHit<'z>>],
    /// The zones a box (frame pixels) stands in: for regions that are not tracks.
    pub box_zones: &'a dyn Fn(&[f32; 4]) -> Vec<ZoneHit<'z>>,
}

impl<'z> Sample<'_, 'z> {
    /// The zones a track of this sample stands in.
    pub fn zones_of(&self, tr: &crate::track::Track) -> &[ZoneHit<'z>] {
        self.tracks
            .iter()
            .position(|t| t.id == tr.id)
            .and_then(|i| self.track_zones.get(i))
            .map_or(&[], Vec::as_slice)
    }
}

/// What rules hand back from a sample.
#[derive(Debug, Default)]
pub struct RuleOutput {
    /// Warnings and violations.
    pub events: Vec<RuleEvent>,
    /// Subjects that are not tracks (a left object, a change) whose first sight the
    /// evidence keeper should keep: kind, id, box.
    pub remember: Vec<(ViolationKind, u64, [f32; 4])>,
    /// Such subjects that went: their evidence can go.
    pub forget: Vec<(ViolationKind, u64)>,
}

impl RuleOutput {
    /// Empties it for the next sample (keeping its buffers).
    pub fn clear(&mut self) {
        self.events.clear();
        self.remember.clear();
        self.forget.clear();
    }
}

/// A violation kind's rule, as a camera's scene runs it: fed each sample, it hands back
/// warnings, violations and the evidence to keep. Every kind implements it, so a new
/// kind is a new rule and not an edit to the scene.
pub trait Rule: Send {
    /// Evaluates one sample.
    fn step(&mut self, s: &Sample<'_, '_>, out: &mut RuleOutput) -> opencv::Result<()>;
}

/// A rule over tracks and their zones only (parking, vending): every such rule is a
/// [`Rule`].
pub trait TrackRule: Send {
    /// Evaluates the tracks at `t` ms; appends warnings and violations to `out`.
    fn step<'z>(
        &mut self,
        t: i64,
        tracks: &[crate::track::Track],
        zones_of: &mut dyn FnMut(&crate::track::Track) -> Vec<ZoneHit<'z>>,
        out: &mut Vec<RuleEvent>,
    );
}

impl<T: TrackRule> Rule for T {
    fn step(&mut self, s: &Sample<'_, '_>, out: &mut RuleOutput) -> opencv::Result<()> {
        let mut zones_of = |tr: &crate::track::Track| s.zones_of(tr).to_vec();
        TrackRule::step(self, s.t_ms, s.tracks, &mut zones_of, &mut out.events);
        Ok(())
    }
}

/// The stage a dwell has newly reached, if any: a violation once past `dwell_ms` (unless
/// already reported), a warning once past `warn_after` (only before anything else).
pub(crate) fn next_stage(
    reached: Option<Stage>,
    d: i64,
    dwell_ms: i64,
    warn_after: Option<Duration>,
) -> Option<Stage> {
    if d >= dwell_ms && reached != Some(Stage::Violation) {
        Some(Stage::Violation)
    } else if reached.is_none()
        && warn_after.is_some_and(|w| d >= w.as_millis() as i64 && d < dwell_ms)
    {
        Some(Stage::Warning)
    } else {
        None
    }
}

/// An event about a track, at `t`, since its stay began.
pub(crate) fn track_event(
    kind: ViolationKind,
    stage: Stage,
    zone: &str,
    tr: &crate::track::Track,
    t: i64,
) -> RuleEvent {
    RuleEvent {
        kind,
        stage,
        zone: zone.to_string(),
        track: tr.id,
        class: tr.class.clone(),
        since_ms: tr.stationary_since,
        at_ms: t,
        bbox: tr.bbox,
        related: None,
        ground: None,
    }
}

/// Reads a duration parameter: a string like `"5m"` or a number of seconds.
pub fn duration_param(v: &serde_json::Value) -> Option<Duration> {
    match v {
        serde_json::Value::String(s) => humantime::parse_duration(s).ok(),
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|s| *s >= 0.0)
            .map(Duration::from_secs_f64),
        _ => None,
    }
}

//! Which compressed units get decoded: the pure core of sampling, for files and live
//! streams alike.
//!
//! Units arrive in decode order; with B-frames their presentation times do not rise
//! one by one, and the decoder gives pictures back in presentation order, some units
//! later. So the planner never decides which *picture* is taken — the decoder-side
//! [`Sampler`](super::Sampler) does that on the pictures as they come out, which is the
//! rule a user expects (the first picture at or after each grid time, as a full
//! decode shows it). The planner decides which *units* the decoder must see for that
//! picture to come out right:
//!
//! - `all`: every unit.
//! - `keyframes`: only random-access units, each followed by a drain (the decoder
//!   hands the picture out at once instead of holding it for reordering).
//! - `every = d`: units since the last keyframe are *kept compressed*. The first unit
//!   whose time reaches the due time is fed with the kept chain before it, and so is
//!   every later unit that reaches it, until the sampler reports the picture taken
//!   ([`Planner::sampled`]): the due picture may be a B-frame that arrives after the
//!   unit that first reached the due time. A keyframe that arrives before the due time
//!   starts a new
//!   chain: what was kept is dropped undecoded. Disposable units (nothing references
//!   them) whose time is before the due time are dropped on arrival. A due time that
//!   falls exactly on a keyframe, with keyframes no further apart than the interval,
//!   feeds that keyframe alone and drains the decoder; the keyframe is kept as an
//!   anchor and fed again only if a later due time comes before the next keyframe.
//!   The kept units are bounded (count and bytes); past the bound they are fed
//!   without output to carry the references.
//!
//! Nothing is fed before the first keyframe. A chain dropped while the decoder holds
//! pictures of the old one is followed by a drain before the next feed, so leading
//! pictures of an open GOP (H.265 RASL) are discarded by the decoder rather than
//! decoded against the wrong references.

use super::Sampling;

/// What the planner needs to know of a compressed unit.
pub trait Unit: Clone {
    /// Presentation time in ms, when the container or stream says.
    fn pts_ms(&self) -> Option<i64>;
    /// Decode time in ms, when known (an estimate of the time when pts is not).
    fn dts_ms(&self) -> Option<i64> {
        None
    }
    /// A random-access point.
    fn keyframe(&self) -> bool;
    /// Nothing references it.
    fn disposable(&self) -> bool;
    /// Compressed size in bytes.
    fn bytes(&self) -> usize;
}

/// One thing for the decoder to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<U> {
    /// Send this unit.
    Feed(U),
    /// Signal the end of input, take every picture still inside, then flush: the
    /// decoder starts clean at the next keyframe.
    Drain,
}

/// Bounds on the compressed units kept while waiting for a due frame.
const MAX_KEPT_UNITS: usize = 600;
const MAX_KEPT_BYTES: usize = 32 << 20;

/// What the decoder holds, as far as the planner knows.
#[derive(Debug, Clone)]
enum Held<U> {
    /// Pictures continuing the units fed so far: the next unit may follow on.
    Warm,
    /// A chain was dropped after the last feed: drain before feeding again.
    Stale,
    /// Empty (new, or drained). A keyframe that was fed and drained is kept as the
    /// anchor to feed again before units that reference it.
    Cold(Option<U>),
}

/// Counters of what the planner did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanStats {
    /// Units before the first keyframe (or after a reset), skipped.
    pub skipped_before_keyframe: u64,
    /// Units never fed: kept then made obsolete by a keyframe, or disposable.
    pub dropped: u64,
    /// Units fed to the decoder (anchors fed again count again).
    pub fed: u64,
    /// Drains asked for.
    pub drains: u64,
}

/// The planner for one stream.
#[derive(Debug)]
pub struct Planner<U> {
    sampling: Sampling,
    every_ms: Option<i64>,
    /// The time the next picture is due (None: the first picture).
    due: Option<i64>,
    kept: Vec<U>,
    kept_bytes: usize,
    seen_keyframe: bool,
    held: Held<U>,
    last_key_pts: Option<i64>,
    /// Spacing of the last two keyframes.
    gop_ms: Option<i64>,
    /// Every unit is fed: the stream's units carry no presentation times.
    everything: bool,
    stats: PlanStats,
}

impl<U: Unit> Planner<U> {
    /// A planner for the sampling rule.
    pub fn new(sampling: Sampling) -> Self {
        Self {
            sampling,
            every_ms: match sampling {
                Sampling::Every(d) => Some((d.as_millis() as i64).max(1)),
                _ => None,
            },
            due: None,
            kept: Vec::new(),
            kept_bytes: 0,
            seen_keyframe: false,
            held: Held::Cold(None),
            last_key_pts: None,
            gop_ms: None,
            everything: false,
            stats: PlanStats::default(),
        }
    }

    /// The rule this planner follows.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// What it did so far.
    pub fn stats(&self) -> PlanStats {
        self.stats
    }

    /// Units kept compressed now.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// Forgets everything since the last keyframe and waits for the next one. The
    /// caller flushes the decoder (after a dropped backlog, or a decoder reopened).
    pub fn reset(&mut self) {
        self.stats.dropped += self.kept.len() as u64;
        self.kept.clear();
        self.kept_bytes = 0;
        self.seen_keyframe = false;
        self.held = Held::Cold(None);
    }

    /// The sampler took a picture; `next_due` is its next due time.
    pub fn sampled(&mut self, next_due: Option<i64>) {
        if let Some(d) = next_due {
            if self.due.is_none_or(|old| d > old) {
                self.due = Some(d);
            }
        }
    }

    /// From now on every unit is fed, what was kept first: for streams whose units carry
    /// no presentation time (AVI), only the decoder knows which picture is which.
    pub fn feed_everything(&mut self, out: &mut Vec<Step<U>>) {
        if !self.everything {
            self.everything = true;
            let kept = std::mem::take(&mut self.kept);
            self.kept_bytes = 0;
            for k in kept {
                self.feed(k, out);
            }
        }
    }

    /// Takes a received unit and appends what the decoder must do now to `out`.
    pub fn push(&mut self, unit: U, out: &mut Vec<Step<U>>) {
        if unit.keyframe() {
            if let (Some(last), Some(p)) = (self.last_key_pts, unit.pts_ms()) {
                if p > last {
                    self.gop_ms = Some(p - last);
                }
            }
            self.last_key_pts = unit.pts_ms().or(self.last_key_pts);
        }
        if !self.seen_keyframe {
            if !unit.keyframe() {
                self.stats.skipped_before_keyframe += 1;
                return;
            }
            self.seen_keyframe = true;
        }
        if self.everything {
            return self.feed(unit, out);
        }
        match self.sampling {
            Sampling::All => self.feed(unit, out),
            Sampling::Keyframes => {
                if unit.keyframe() {
                    self.feed(unit, out);
                    self.drain(out);
                } else {
                    self.stats.dropped += 1;
                }
            }
            Sampling::Every(_) => self.push_every(unit, out),
        }
    }

    fn push_every(&mut self, unit: U, out: &mut Vec<Step<U>>) {
        let time = unit.pts_ms().or(unit.dts_ms());
        let due_now = match (self.due, time) {
            (None, _) => true,
            (Some(d), Some(t)) => t >= d,
            (Some(_), None) => false,
        };
        // a disposable unit whose time is known to be before the due time is never
        // the picture sampling wants, and nothing needs it
        let droppable = unit.disposable() && !due_now && unit.pts_ms().is_some();
        if due_now {
            // a keyframe exactly at the due time is the due picture: what was kept
            // (the previous GOP's tail) is then not needed even for leading pictures,
            // which come before it
            let on_key = unit.keyframe() && self.due.is_some() && unit.pts_ms() == self.due;
            if on_key {
                self.drop_kept();
            } else {
                let kept = std::mem::take(&mut self.kept);
                self.kept_bytes = 0;
                for k in kept {
                    self.feed(k, out);
                }
            }
            let every = self.every_ms.unwrap_or(i64::MAX);
            if on_key && self.gop_ms.is_some_and(|g| g <= every) {
                // the due picture is this keyframe: nothing can come between the due
                // time and it. Take it out now; later units start from it again only
                // if they are needed before the next keyframe.
                let anchor = unit.clone();
                self.feed(unit, out);
                self.drain(out);
                self.held = Held::Cold(Some(anchor));
                self.due = self.due.map(|d| d + every);
            } else {
                self.feed(unit, out);
            }
            return;
        }
        if unit.keyframe() {
            // a new chain: the kept units are not needed any more
            self.drop_kept();
            self.keep(unit, out);
        } else if droppable {
            self.stats.dropped += 1;
        } else {
            self.keep(unit, out);
        }
    }

    /// Drops the kept units: a keyframe starts a new chain.
    fn drop_kept(&mut self) {
        if !self.kept.is_empty() {
            self.stats.dropped += self.kept.len() as u64;
            self.kept.clear();
            self.kept_bytes = 0;
            if matches!(self.held, Held::Warm) {
                self.held = Held::Stale;
            }
        }
        if let Held::Cold(anchor) = &mut self.held {
            *anchor = None;
        }
    }

    fn keep(&mut self, unit: U, out: &mut Vec<Step<U>>) {
        self.kept_bytes += unit.bytes();
        self.kept.push(unit);
        if self.kept.len() > MAX_KEPT_UNITS || self.kept_bytes > MAX_KEPT_BYTES {
            // a very long GOP: feed what is kept to carry the references
            let kept = std::mem::take(&mut self.kept);
            self.kept_bytes = 0;
            for k in kept {
                self.feed(k, out);
            }
        }
    }

    fn feed(&mut self, unit: U, out: &mut Vec<Step<U>>) {
        match std::mem::replace(&mut self.held, Held::Warm) {
            Held::Warm => {}
            Held::Stale => {
                self.stats.drains += 1;
                out.push(Step::Drain);
            }
            Held::Cold(Some(anchor)) if !unit.keyframe() => {
                self.stats.fed += 1;
                out.push(Step::Feed(anchor));
            }
            Held::Cold(_) => {}
        }
        self.stats.fed += 1;
        out.push(Step::Feed(unit));
    }

    fn drain(&mut self, out: &mut Vec<Step<U>>) {
        self.stats.drains += 1;
        out.push(Step::Drain);
        self.held = Held::Cold(None);
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

//! Sampling: which frames of a source are worth decoding and detecting on.
//!
//! Violations last minutes, not frames, so most work is one frame every few seconds.
//! The rule for `every = d`: samples sit on a grid `t0, t0 + d, t0 + 2d, …` from the
//! first frame's time `t0`; the first frame at or after each grid time is taken, and a
//! grid time with no frame of its own (a gap in the stream) is skipped, not made up.
//!
//! ```
//! use gridwatch::decode::{Sampler, Sampling};
//!
//! let mut s = Sampler::new("1s".parse::<Sampling>().unwrap());
//! // a 4 fps stream: frames every 250 ms
//! let taken: Vec<i64> = (0..10).map(|i| i * 250).filter(|&t| s.take(t, false)).collect();
//! assert_eq!(taken, [0, 1000, 2000]);
//! ```

use std::time::Duration;

/// Which frames to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampling {
    /// Every frame.
    #[default]
    All,
    /// Random-access (key) frames only: nothing else is decoded at all.
    Keyframes,
    /// One frame per interval.
    Every(Duration),
}

impl std::fmt::Display for Sampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Keyframes => f.write_str("keyframes"),
            Self::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
        }
    }
}

impl std::str::FromStr for Sampling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => return Ok(Self::All),
            "keyframes" | "keyframe" | "key" => return Ok(Self::Keyframes),
            _ => {}
        }
        let d = humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not a duration like 500ms, 1s or 2m: {e}"))?;
        if d.is_zero() {
            return Err("the interval must be longer than zero".into());
        }
        Ok(Self::Every(d))
    }
}

/// The sampling rule as a small state machine over frame times.
#[derive(Debug, Clone)]
pub struct Sampler {
    sampling: Sampling,
    every_ms: Option<i64>,
    due_ms: Option<i64>,
}

impl Sampler {
    /// A sampler for the rule.
    pub fn new(sampling: Sampling) -> Self {
        Self {
            sampling,
            every_ms: match sampling {
                Sampling::All | Sampling::Keyframes => None,
                Sampling::Every(d) => Some((d.as_millis() as i64).max(1)),
            },
            due_ms: None,
        }
    }

    /// The rule this sampler applies.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Whether the frame at `pts_ms` is taken; advances the grid when it is.
    pub fn take(&mut self, pts_ms: i64, keyframe: bool) -> bool {
        let Some(every) = self.every_ms else {
            return self.sampling != Sampling::Keyframes || keyframe;
        };
        let due = *self.due_ms.get_or_insert(pts_ms);
        if pts_ms < due {
            return false;
        }
        let steps = (pts_ms - due) / every + 1;
        self.due_ms = Some(due + steps * every);
        true
    }

    /// The earliest time a frame would be taken, once the first frame is seen; `None`
    /// when every frame is taken or nothing was seen yet.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.every_ms.and(self.due_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_takes_the_first_frame_at_or_after_each_grid_time() {
        let mut s = Sampler::new("1s".parse().unwrap());
        let taken: Vec<i64> = (0..40)
            .map(|i| i * 100 + 30) // 10 fps starting at 30 ms
            .filter(|&t| s.take(t, false))
            .collect();
        assert_eq!(taken, [30, 1030, 2030, 3030]);
    }

    #[test]
    fn a_gap_skips_grid_times_without_inventing_frames() {
        let mut s = Sampler::new(Sampling::Every(Duration::from_millis(500)));
        assert!(s.take(0, true));
        assert!(!s.take(400, false));
        assert!(s.take(2600, false)); // 500..2500 had no frames
        assert_eq!(s.next_due_ms(), Some(3000));
        assert!(!s.take(2900, false));
        assert!(s.take(3000, false));
    }

    #[test]
    fn all_takes_everything_and_bad_intervals_are_refused() {
        let mut s = Sampler::new(Sampling::All);
        assert!((0..5).all(|t| s.take(t, false)));
        assert_eq!(s.next_due_ms(), None);
        let mut s = Sampler::new("keyframes".parse().unwrap());
        assert!(s.take(0, true) && !s.take(1, false) && s.take(2, true));
        assert_eq!(s.next_due_ms(), None);
        assert!("0s".parse::<Sampling>().is_err());
        assert!("soon".parse::<Sampling>().unwrap_err().contains("soon"));
        assert_eq!("all".parse::<Sampling>().unwrap(), Sampling::All);
    }
}

//! Which access units of a live stream get decoded: the pure core of sampling.
//!
//! - `keyframes`: only random-access frames go to the decoder; each decodes on its own.
//! - `every = d`: access units since the last keyframe are *kept compressed*, not
//!   decoded. When a frame falls due (the grid rule of [`crate::decode::Sampler`]), the
//!   kept units from the keyframe up to that frame are decoded in one go and only the
//!   last is converted and handed on. Units after the last sample of a GOP that a new
//!   keyframe makes obsolete are dropped undecoded; disposable (non-reference) frames
//!   that are not due are never kept. When a due time falls on a keyframe, that
//!   keyframe alone is decoded. The kept units are bounded (count and bytes); past the
//!   bound they are decoded without conversion to keep the reference chain.
//! - `all`: everything is decoded and handed on.
//!
//! Nothing is decoded before the first keyframe.

use std::time::SystemTime;

use crate::decode::{Sampler, Sampling};

/// One access unit as received.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// Annex B data with in-band parameter sets on keyframes.
    pub data: Vec<u8>,
    /// Stream time in milliseconds from the first frame.
    pub pts_ms: i64,
    /// A random-access point (IDR).
    pub keyframe: bool,
    /// Nothing references it (may be skipped without harm).
    pub disposable: bool,
    /// Wall-clock time it was received.
    pub received: SystemTime,
    /// Index of the frame in the session (counting every frame received).
    pub index: u64,
}

/// One unit for the decoder, and whether its picture is wanted.
#[derive(Debug, Clone)]
pub struct DecodeStep {
    /// The access unit.
    pub unit: AccessUnit,
    /// Convert and hand on the picture it yields.
    pub output: bool,
}

/// Bounds on the compressed units kept while waiting for a due frame.
const MAX_KEPT_UNITS: usize = 600;
const MAX_KEPT_BYTES: usize = 32 << 20;

/// The planner for one camera session.
#[derive(Debug)]
pub struct Planner {
    sampler: Sampler,
    kept: Vec<AccessUnit>,
    kept_bytes: usize,
    seen_keyframe: bool,
    /// Units received before the first keyframe (or after a reset) and skipped.
    pub skipped_before_keyframe: u64,
}

impl Planner {
    /// A planner for the sampling rule.
    pub fn new(sampling: Sampling) -> Self {
        Self {
            sampler: Sampler::new(sampling),
            kept: Vec::new(),
            kept_bytes: 0,
            seen_keyframe: false,
            skipped_before_keyframe: 0,
        }
    }

    /// Forgets everything since the last keyframe: the decoder will start again at the
    /// next keyframe (after a dropped backlog).
    pub fn reset(&mut self) {
        self.kept.clear();
        self.kept_bytes = 0;
        self.seen_keyframe = false;
    }

    /// Takes a received unit and appends what must be decoded now to `steps`.
    pub fn push(&mut self, unit: AccessUnit, steps: &mut Vec<DecodeStep>) {
        if unit.keyframe {
            self.seen_keyframe = true;
            self.kept.clear();
            self.kept_bytes = 0;
        }
        if !self.seen_keyframe {
            self.skipped_before_keyframe += 1;
            return;
        }
        match self.sampler.sampling() {
            Sampling::All => steps.push(DecodeStep { unit, output: true }),
            Sampling::Keyframes => {
                if unit.keyframe {
                    self.sampler.take(unit.pts_ms, true);
                    steps.push(DecodeStep { unit, output: true });
                }
            }
            Sampling::Every(_) => {
                let due = self.sampler.take(unit.pts_ms, unit.keyframe);
                if due {
                    steps.extend(self.kept.drain(..).map(|unit| DecodeStep {
                        unit,
                        output: false,
                    }));
                    self.kept_bytes = 0;
                    steps.push(DecodeStep { unit, output: true });
                } else if !unit.disposable {
                    self.kept_bytes += unit.data.len();
                    self.kept.push(unit);
                    if self.kept.len() > MAX_KEPT_UNITS || self.kept_bytes > MAX_KEPT_BYTES {
                        // a very long GOP: decode what is kept to carry the references
                        steps.extend(self.kept.drain(..).map(|unit| DecodeStep {
                            unit,
                            output: false,
                        }));
                        self.kept_bytes = 0;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A 10 fps stream, keyframe every `gop` frames, `n` frames.
    fn stream(n: u64, gop: u64) -> Vec<AccessUnit> {
        (0..n)
            .map(|i| AccessUnit {
                data: vec![0; 100],
                pts_ms: i as i64 * 100,
                keyframe: i % gop == 0,
                disposable: false,
                received: SystemTime::UNIX_EPOCH,
                index: i,
            })
            .collect()
    }

    fn run(sampling: Sampling, units: Vec<AccessUnit>) -> (Vec<u64>, Vec<u64>) {
        let mut p = Planner::new(sampling);
        let mut steps = Vec::new();
        for u in units {
            p.push(u, &mut steps);
        }
        let decoded = steps.iter().map(|s| s.unit.index).collect();
        let output = steps
            .iter()
            .filter(|s| s.output)
            .map(|s| s.unit.index)
            .collect();
        (decoded, output)
    }

    #[test]
    fn keyframes_mode_decodes_exactly_the_keyframes() {
        let (decoded, output) = run(Sampling::Keyframes, stream(100, 20));
        assert_eq!(decoded, [0, 20, 40, 60, 80]);
        assert_eq!(output, decoded);
    }

    #[test]
    fn every_on_the_gop_decodes_only_keyframes() {
        let (decoded, output) = run(Sampling::Every(Duration::from_secs(2)), stream(100, 20));
        assert_eq!(decoded, [0, 20, 40, 60, 80]);
        assert_eq!(output, decoded);
    }

    #[test]
    fn every_mid_gop_decodes_the_chain_once_and_drops_the_rest() {
        let (decoded, output) = run(Sampling::Every(Duration::from_secs(1)), stream(40, 20));
        // samples at 0, 10, 20, 30: frames 1..=10 decoded once for 10; 11..19 never
        let mut want: Vec<u64> = vec![0];
        want.extend(1..=10);
        want.push(20);
        want.extend(21..=30);
        assert_eq!(decoded, want);
        assert_eq!(output, [0, 10, 20, 30]);
    }

    #[test]
    fn disposable_frames_that_are_not_due_are_never_decoded() {
        let mut units = stream(20, 20);
        for u in units.iter_mut().filter(|u| u.index % 2 == 1) {
            u.disposable = true;
        }
        let (decoded, output) = run(Sampling::Every(Duration::from_millis(1500)), units);
        assert_eq!(output, [0, 15]);
        assert_eq!(decoded, [0, 2, 4, 6, 8, 10, 12, 14, 15]);
    }

    #[test]
    fn nothing_before_the_first_keyframe_and_after_a_reset() {
        let mut units = stream(30, 20);
        units.drain(..5); // join mid-GOP
        let mut p = Planner::new(Sampling::All);
        let mut steps = Vec::new();
        for u in units {
            p.push(u, &mut steps);
        }
        assert_eq!(steps.first().unwrap().unit.index, 20);
        assert_eq!(p.skipped_before_keyframe, 15);
        p.reset();
        steps.clear();
        p.push(stream(31, 20).pop().unwrap(), &mut steps);
        assert!(steps.is_empty(), "after a reset, wait for a keyframe");
    }

    #[test]
    fn a_huge_gop_is_decoded_in_bounded_chunks() {
        let (decoded, output) = run(
            Sampling::Every(Duration::from_secs(1000)),
            stream(2000, 100_000),
        );
        assert_eq!(output, [0]);
        assert!(
            decoded.len() > 1 && decoded.len() < 2000,
            "kept units are bounded"
        );
    }

    #[test]
    fn all_decodes_everything_from_the_first_keyframe() {
        let (decoded, output) = run(Sampling::All, stream(50, 20));
        assert_eq!(decoded.len(), 50);
        assert_eq!(output.len(), 50);
    }
}

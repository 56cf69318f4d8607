//! The planner against a model of an encoder and a decoder: GOPs with B-frames
//! (flat or pyramid), closed or open, decoded with the reorder delay the structure
//! needs. Whatever the planner feeds, the pictures the sampler takes must be the ones a
//! full sequential decode gives for the same rule, and every one must have been
//! decoded from complete references.

use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::decode::Sampler;

const FRAME_MS: i64 = 40;

#[derive(Debug, Clone, PartialEq)]
struct U {
    /// Decode order index.
    i: usize,
    pts: i64,
    key: bool,
    disposable: bool,
    /// Decode indices of the pictures it predicts from.
    refs: Vec<usize>,
}

impl Unit for U {
    fn pts_ms(&self) -> Option<i64> {
        Some(self.pts)
    }
    fn keyframe(&self) -> bool {
        self.key
    }
    fn disposable(&self) -> bool {
        self.disposable
    }
    fn bytes(&self) -> usize {
        if self.key {
            10_000
        } else {
            1_000
        }
    }
}

/// How the model encoder lays out frames.
#[derive(Debug, Clone, Copy)]
struct Layout {
    frames: usize,
    gop: usize,
    bframes: usize,
    pyramid: bool,
    open_gop: bool,
    /// Keyframes besides the GOP grid's (scene cuts): the GOP length varies.
    cuts: &'static [usize],
}

impl Layout {
    fn is_key(&self, d: usize) -> bool {
        d.is_multiple_of(self.gop) || self.cuts.contains(&d)
    }
}

/// Decode-order units for `l` (display index × 40 ms is the pts).
///
/// Anchors (I and P) sit every `bframes + 1` frames from each keyframe; with closed
/// GOPs the last frame of each GOP is an anchor too, with open GOPs the B-frames before
/// a keyframe predict from it and from the previous GOP (H.265 RASL, x264 open-gop).
/// Each anchor is decoded before the B-frames between it and the previous anchor.
fn encode(l: Layout) -> Vec<U> {
    let mut anchors = Vec::new();
    let mut since_key = 0;
    for d in 0..l.frames {
        if l.is_key(d) {
            since_key = 0;
        }
        let closes_gop = !l.open_gop && l.is_key(d + 1);
        if since_key % (l.bframes + 1) == 0 || closes_gop || d == l.frames - 1 {
            anchors.push(d);
        }
        since_key += 1;
    }
    // (display, refs in display indices, key, disposable), in decode order
    let mut order: Vec<(usize, Vec<usize>, bool, bool)> = vec![(0, vec![], true, false)];
    for w in anchors.windows(2) {
        let (a, b) = (w[0], w[1]);
        let key = l.is_key(b);
        order.push((b, if key { vec![] } else { vec![a] }, key, false));
        push_bs(&mut order, a + 1, b, a, b, l.pyramid);
    }
    let decode_of: std::collections::HashMap<usize, usize> =
        order.iter().enumerate().map(|(d, o)| (o.0, d)).collect();
    order
        .iter()
        .enumerate()
        .map(|(d, (disp, refs, key, disposable))| U {
            i: d,
            pts: *disp as i64 * FRAME_MS,
            key: *key,
            disposable: *disposable,
            refs: refs.iter().map(|r| decode_of[r]).collect(),
        })
        .collect()
}

/// B-frames between anchors `a` and `b` (display indices `from..to`), in decode order.
fn push_bs(
    order: &mut Vec<(usize, Vec<usize>, bool, bool)>,
    from: usize,
    to: usize,
    a: usize,
    b: usize,
    pyramid: bool,
) {
    if from >= to {
        return;
    }
    if pyramid && to - from >= 3 {
        let mid = (from + to) / 2;
        order.push((mid, vec![a, b], false, false));
        push_bs(order, from, mid, a, mid, pyramid);
        push_bs(order, mid + 1, to, mid, b, pyramid);
    } else {
        for x in from..to {
            order.push((x, vec![a, b], false, true));
        }
    }
}

/// The reorder delay a decoder needs for `units`: the most pictures that come before
/// one in decode order and after it in presentation order.
fn reorder_delay(units: &[U]) -> usize {
    (0..units.len())
        .map(|i| units[..i].iter().filter(|u| u.pts > units[i].pts).count())
        .max()
        .unwrap_or(0)
}

/// A decoder: pictures decode right only when their references did; pictures come out
/// in presentation order once more than `delay` wait. After a drain (or at the start)
/// a keyframe's leading pictures, which predict from before it, are discarded, as
/// FFmpeg does for RASL pictures after a flush.
struct Model {
    delay: usize,
    good: HashSet<usize>,
    waiting: Vec<(i64, bool)>,
    /// The keyframe decoding (re)started at, after a drain.
    restart: Option<usize>,
    fresh: bool,
}

impl Model {
    fn new(delay: usize) -> Self {
        Self {
            delay,
            good: HashSet::new(),
            waiting: Vec::new(),
            restart: None,
            fresh: true,
        }
    }

    fn feed(&mut self, u: &U, out: &mut Vec<(i64, bool)>) {
        if self.fresh {
            self.fresh = false;
            self.restart = u.key.then_some(u.i);
        }
        if let Some(k) = self.restart {
            if u.refs.iter().any(|&r| r < k) {
                return; // leading picture of the keyframe decoding started at
            }
        }
        let ok = u.refs.iter().all(|r| self.good.contains(r));
        if ok && !u.disposable {
            self.good.insert(u.i);
        }
        self.waiting.push((u.pts, ok));
        if self.waiting.len() > self.delay {
            out.push(self.pop());
        }
    }

    fn pop(&mut self) -> (i64, bool) {
        let at = (0..self.waiting.len())
            .min_by_key(|&i| self.waiting[i].0)
            .unwrap();
        self.waiting.remove(at)
    }

    fn drain(&mut self, out: &mut Vec<(i64, bool)>) {
        while !self.waiting.is_empty() {
            out.push(self.pop());
        }
        self.good.clear();
        self.fresh = true;
    }
}

/// What a full decode takes for `sampling`: (pts, decoded right).
fn reference(units: &[U], sampling: Sampling) -> Vec<i64> {
    let mut m = Model::new(reorder_delay(units));
    let mut pics = Vec::new();
    for u in units {
        m.feed(u, &mut pics);
    }
    m.drain(&mut pics);
    let mut s = Sampler::new(sampling);
    let key_pts: HashSet<i64> = units.iter().filter(|u| u.key).map(|u| u.pts).collect();
    pics.iter()
        .filter(|p| s.take(p.0, key_pts.contains(&p.0)))
        .map(|p| p.0)
        .collect()
}

/// After which unit (decode order; `units.len()` for the final drain) a full decode
/// puts each picture out, by pts.
fn full_decode_output_times(units: &[U]) -> std::collections::HashMap<i64, usize> {
    let mut m = Model::new(reorder_delay(units));
    let mut at = std::collections::HashMap::new();
    let mut pics = Vec::new();
    for (n, u) in units.iter().enumerate() {
        m.feed(u, &mut pics);
        at.extend(pics.drain(..).map(|p| (p.0, n)));
    }
    m.drain(&mut pics);
    at.extend(pics.drain(..).map(|p| (p.0, units.len())));
    at
}

/// Runs the planner over `units`; decode work is done in jobs after `lag` more units
/// arrived (0: as a file is read). Returns what the sampler took and how many units
/// were fed. Checks on the way that no picture came out broken (taken or not), and,
/// with no lag, that each taken picture came out no later than a full sequential
/// decode puts it out (counted in units arrived).
fn planned(units: &[U], sampling: Sampling, lag: usize) -> (Vec<(i64, bool)>, u64) {
    let delay = reorder_delay(units);
    let mut p = Planner::new(sampling);
    let mut m = Model::new(delay);
    let mut s = Sampler::new(sampling);
    let key_pts: HashSet<i64> = units.iter().filter(|u| u.key).map(|u| u.pts).collect();
    let full_out = full_decode_output_times(units);
    let mut backlog: Vec<Step<U>> = Vec::new();
    let mut steps = Vec::new();
    let mut taken = Vec::new();
    let mut since = 0;
    let run = |backlog: &mut Vec<Step<U>>,
               m: &mut Model,
               s: &mut Sampler,
               p: &mut Planner<U>,
               taken: &mut Vec<(i64, bool)>,
               now: usize| {
        let mut pics = Vec::new();
        for step in backlog.drain(..) {
            match step {
                Step::Feed(u) => m.feed(&u, &mut pics),
                Step::Drain => m.drain(&mut pics),
            }
        }
        for pic in pics {
            assert!(pic.1, "the picture at {} ms came out broken", pic.0);
            if s.take(pic.0, key_pts.contains(&pic.0)) {
                if lag == 0 {
                    let full = full_out[&pic.0];
                    assert!(
                        now <= full,
                        "the picture at {} ms came out after unit {now}, a full decode \
                         puts it out after unit {full}",
                        pic.0
                    );
                }
                taken.push(pic);
            }
        }
        p.sampled(s.next_due_ms());
    };
    for (n, u) in units.iter().enumerate() {
        p.push(u.clone(), &mut steps);
        backlog.append(&mut steps);
        since += 1;
        if since > lag {
            since = 0;
            run(&mut backlog, &mut m, &mut s, &mut p, &mut taken, n);
        }
    }
    backlog.push(Step::Drain);
    run(
        &mut backlog,
        &mut m,
        &mut s,
        &mut p,
        &mut taken,
        units.len(),
    );
    (taken, p.stats().fed)
}

fn layout(gop: usize, bframes: usize, pyramid: bool, open_gop: bool) -> Layout {
    Layout {
        frames: 250,
        gop,
        bframes,
        pyramid,
        open_gop,
        cuts: &[],
    }
}

fn every(ms: u64) -> Sampling {
    Sampling::Every(Duration::from_millis(ms))
}

#[test]
fn the_model_encoder_reorders_like_x264() {
    // I0 P4 B2 b1 b3 P8 … with pyramid; I0 P3 B1 B2 … flat
    let u = encode(layout(50, 3, true, false));
    let pts: Vec<i64> = u.iter().take(5).map(|u| u.pts / FRAME_MS).collect();
    assert_eq!(pts, [0, 4, 2, 1, 3]);
    assert!(!u[2].disposable && u[3].disposable);
    assert_eq!(reorder_delay(&u), 2);
    let u = encode(layout(50, 2, false, false));
    let pts: Vec<i64> = u.iter().take(4).map(|u| u.pts / FRAME_MS).collect();
    assert_eq!(pts, [0, 3, 1, 2]);
    // open GOP: the frames before keyframe 50 come after it and predict from 48
    let u = encode(layout(50, 3, false, true));
    let k = u.iter().position(|u| u.pts == 50 * FRAME_MS).unwrap();
    assert!(u[k].key);
    assert_eq!(u[k + 1].pts, 49 * FRAME_MS);
    assert!(u[k + 1].refs.iter().any(|&r| r < k));
}

#[test]
fn every_takes_what_a_full_decode_takes_with_b_frames() {
    for l in [
        layout(50, 3, true, false),
        layout(50, 3, false, false),
        layout(50, 0, false, false),
        layout(25, 2, true, true),
        layout(250, 3, true, false),
        Layout {
            cuts: &[20, 33, 120, 121, 190],
            ..layout(50, 3, true, false)
        },
        Layout {
            cuts: &[20, 33, 120, 121, 190],
            ..layout(50, 2, false, true)
        },
    ] {
        let units = encode(l);
        for ms in [40, 500, 1000, 1960, 2000, 3000, 4000] {
            for lag in [0, 3, 20] {
                let want = reference(&units, every(ms));
                let (got, _) = planned(&units, every(ms), lag);
                let pts: Vec<i64> = got.iter().map(|g| g.0).collect();
                assert_eq!(pts, want, "{l:?} every {ms} ms, lag {lag}");
                assert!(
                    got.iter().all(|g| g.1),
                    "{l:?} every {ms}: a broken picture"
                );
            }
        }
    }
}

#[test]
fn keyframes_and_all_match_a_full_decode() {
    for l in [layout(50, 3, true, false), layout(25, 2, true, true)] {
        let units = encode(l);
        for sampling in [Sampling::Keyframes, Sampling::All] {
            let (got, _) = planned(&units, sampling, 0);
            let pts: Vec<i64> = got.iter().map(|g| g.0).collect();
            assert_eq!(pts, reference(&units, sampling), "{l:?} {sampling}");
            assert!(got.iter().all(|g| g.1));
        }
    }
}

#[test]
fn a_grid_on_the_keyframes_feeds_only_the_keyframes() {
    // 2 s GOP at 25 fps, one sample every 2 s: each sample is its GOP's keyframe
    let units = encode(layout(50, 3, true, false));
    let (got, fed) = planned(&units, every(2000), 0);
    assert_eq!(got.len(), 5);
    // the first sample needs its reorder delay fed; then one keyframe per sample
    assert!(fed <= 5 + 4, "fed {fed} units for 5 keyframe samples");
}

#[test]
fn samples_mid_gop_feed_the_chain_up_to_them_and_no_further() {
    let units = encode(layout(50, 3, true, false));
    let (_, fed) = planned(&units, every(1000), 0);
    // every 1 s of a 2 s GOP: the first half of each GOP, not the second
    assert!(
        fed < units.len() as u64 * 3 / 5,
        "fed {fed} of {}",
        units.len()
    );
}

#[test]
fn nothing_is_fed_before_the_first_keyframe_and_after_a_reset() {
    let units = encode(layout(50, 0, false, false));
    let mut p = Planner::new(Sampling::All);
    let mut steps = Vec::new();
    for u in units[5..60].iter().cloned() {
        p.push(u, &mut steps);
    }
    assert_eq!(steps.first(), Some(&Step::Feed(units[50].clone())));
    assert_eq!(p.stats().skipped_before_keyframe, 45);
    p.reset();
    steps.clear();
    p.push(units[60].clone(), &mut steps);
    assert!(steps.is_empty(), "after a reset, wait for a keyframe");
}

#[test]
fn a_huge_gop_is_fed_in_bounded_chunks() {
    let units = encode(Layout {
        frames: 2000,
        gop: 100_000,
        bframes: 0,
        pyramid: false,
        open_gop: false,
        cuts: &[],
    });
    let mut p = Planner::new(every(1_000_000));
    let mut steps = Vec::new();
    for u in units {
        p.push(u, &mut steps);
        p.sampled(Some(1_000_000));
        assert!(p.kept() <= MAX_KEPT_UNITS);
    }
    assert!(steps.len() > 1 && steps.len() < 2000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_layout_and_interval_matches_a_full_decode(
        gop in 1usize..80,
        bframes in 0usize..6,
        pyramid: bool,
        open_gop: bool,
        ms in 1u64..5000,
        lag in 0usize..30,
        frames in 1usize..300,
        cut_set in 0usize..4,
    ) {
        const CUTS: [&[usize]; 4] = [&[], &[7, 61], &[30, 31, 95, 160], &[2, 50, 51, 52, 200]];
        let l = Layout { frames, gop, bframes, pyramid, open_gop, cuts: CUTS[cut_set] };
        let units = encode(l);
        let want = reference(&units, every(ms));
        let (got, _) = planned(&units, every(ms), lag);
        let pts: Vec<i64> = got.iter().map(|g| g.0).collect();
        prop_assert_eq!(pts, want);
        prop_assert!(got.iter().all(|g| g.1));
    }
}

//! Replays a config's file cameras through the code `run` uses — the model, each
//! camera's scene (tracker, rules, evidence) and the case store's dedup — as fast as
//! decoding allows, the clip's own timestamps as the clock: what `gridwatch eval
//! rules` scores against truth files.

use std::path::Path;

use anyhow::Context;

use crate::cases::sqlite::SqliteStore;
use crate::cases::{CaseStore, DedupConfig, Outcome, ViolationKind};
use crate::config::{CameraEntry, Config};
use crate::decode::{FileDecoder, Frame, Sampler};

/// One violation a replayed camera's rules gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// Its kind.
    pub kind: ViolationKind,
    /// The zone.
    pub zone: String,
    /// When, ms into the clip.
    pub at_ms: i64,
    /// Whether it opened that case (false: an open case absorbed it, or a closed one's
    /// cool-down kept it from opening one).
    pub opened: bool,
    /// The object the rule fired on, in the frame it fired in.
    pub subject: Option<super::scene::Subject>,
}

/// What a replay gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The model's manifest name.
    pub model: String,
    /// Per camera, in the order given.
    pub clips: Vec<Clip>,
}

/// One camera's replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Its violations, in order.
    pub reported: Vec<Reported>,
    /// The file's length as its container says, ms.
    pub duration_ms: Option<i64>,
}

/// The cameras of `cfg` named in `cameras`, each replayed from its file source from
/// `start_ms` (the clock the zones' schedules see) to the end of the file once, with
/// `progress(camera index, camera, t_ms)` after each sampled frame. A camera's
/// violations go into a case store of their own (in `scratch`), so that one clip's
/// cases do not absorb another's.
pub fn replay(
    cfg: &Config,
    cameras: &[&CameraEntry],
    start_ms: i64,
    scratch: &Path,
    mut progress: impl FnMut(usize, &str, i64),
) -> anyhow::Result<Replay> {
    let loaded = super::load_for(cfg, cameras)?;
    let mut detector = loaded
        .detectors
        .into_iter()
        .next()
        .context("no detector loaded")?;
    let classes = detector.manifest().classes.clone();
    let dedup = DedupConfig {
        window: cfg.cases.window,
        cooldown: cfg.cases.cooldown,
        followup_delay: cfg.cases.followup_delay,
    };
    let mut clips = Vec::with_capacity(cameras.len());
    let mut frame = Frame::default();
    let mut dets = Vec::new();
    for (i, c) in cameras.iter().enumerate() {
        let clip = Path::new(&c.source);
        let mut scene = loaded
            .factory
            .build(c, None)
            .with_context(|| format!("camera {}", c.id))?;
        let store = SqliteStore::open(&scratch.join(format!("camera-{i}")), dedup)
            .with_context(|| format!("camera {}: a scratch case store", c.id))?;
        let mut dec = FileDecoder::open(clip).with_context(|| format!("camera {}", c.id))?;
        let mut sampler = Sampler::new(c.every);
        let mut reported = Vec::new();
        while dec
            .next_sampled(&mut sampler, &mut frame)
            .with_context(|| format!("camera {}: {}", c.id, clip.display()))?
        {
            let pts = frame.pts_ms.unwrap_or(0);
            detector.detect(std::slice::from_ref(&frame), &mut dets)?;
            let found = scene
                .step(start_ms + pts, &frame, &dets[0], &classes)
                .with_context(|| format!("camera {}: rules at {pts} ms", c.id))?;
            for mut f in found {
                f.violation.model.clone_from(&detector.manifest().name);
                let (_, outcome) = store.record(&f.violation)?;
                reported.push(Reported {
                    kind: f.violation.kind,
                    zone: f.violation.zone.clone(),
                    at_ms: f.violation.at_ms - start_ms,
                    opened: outcome == Outcome::Opened,
                    subject: f.subject,
                });
            }
            progress(i, &c.id, pts);
        }
        clips.push(Clip {
            reported,
            duration_ms: dec.info().duration_ms,
        });
    }
    Ok(Replay {
        model: detector.manifest().name.clone(),
        clips,
    })
}

//! `gridwatch eval rules`: a config's file cameras replayed through the service's
//! model, scenes and dedup, their cases scored against truth files per rule; several
//! configs side by side in one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::eval::write;
use crate::eval::rules::{score, total, RuleFigures, Scored, Truth, Verdict};

/// Arguments of `gridwatch eval rules`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each camera of the config whose source is a file and that has a truth \
file DIR/<camera id>.toml is replayed once from the start of the file, as fast as decoding and \
the model allow, through the same model, scene (tracker, rules, evidence) and case dedup as \
`gridwatch run`, the clip's own timestamps as the clock (from --start, which zone schedules \
see). Its cases are judged against the truth file: a case of an expected violation's kind and \
zone within its earliest..latest window is a true positive (the first) or a repeat (later ones); \
any other case is a false positive (a wrong object when it is in time for an expected violation \
whose `box` its object does not overlap by `min_iou`); an expected violation without one is a \
miss. Delay is the report time after the violation's `from`; IoU the mean box overlap of the true \
positives whose truth has a box.\n\n\
Truth file:\n  [[expect]]\n  kind = \"illegal_parking\"\n  zone = \"np-service-road\"\n  \
from = \"0s\"\n  earliest = \"30s\"\n  latest = \"75s\"\n  box = [412, 170, 96, 60]\n  [[forbid]]\n  kind = \"dumping\"\n  \
zone = \"nd-grass\"\n  note = \"people crossing the lawn\"\n\n\
Examples:\n  gridwatch eval rules\n  gridwatch eval rules --config a.toml --config b.toml \
--truth scenes/truth --json out/rules.json"
)]
pub struct RulesArgs {
    /// A service config (repeat to compare configs side by side; default: the built-in
    /// demo's).
    #[arg(long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// The folder of truth files, one per camera id (default: the bundled
    /// samples/truth).
    #[arg(long, value_name = "DIR")]
    pub truth: Option<PathBuf>,
    /// The wall-clock time the clips start at (RFC 3339): what zone schedules see.
    #[arg(long, default_value = "2026-06-01T10:00:00Z", value_name = "TIME")]
    pub start: String,
    /// Also write the figures and every case with its verdict as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also draw precision, recall and F1 per rule and config as an SVG chart.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
}

/// One config's run.
#[derive(Serialize)]
struct ConfigRun {
    config: String,
    model: String,
    clips: usize,
    clip_seconds: f64,
    wall_seconds: f64,
    /// Clip time over wall time.
    speed: f64,
    rules: BTreeMap<String, RuleFigures>,
    cases: Vec<CaseLine>,
}

#[derive(Serialize)]
struct CaseLine {
    camera: String,
    kind: String,
    zone: String,
    at_s: f64,
    verdict: Verdict,
    /// The object's class and box (frame pixels `[x, y, w, h]`, as truth files write
    /// them).
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<String>,
    #[serde(rename = "box", skip_serializing_if = "Option::is_none")]
    bbox: Option<[f32; 4]>,
}

pub(super) fn eval_rules(a: RulesArgs) -> anyhow::Result<()> {
    let start_ms = chrono::DateTime::parse_from_rfc3339(&a.start)
        .map_err(|e| anyhow::anyhow!("--start {:?}: {e}", a.start))?
        .timestamp_millis();
    let truth_dir = a
        .truth
        .clone()
        .unwrap_or_else(|| crate::source_dir().join("samples/truth"));
    let configs: Vec<Option<&Path>> = if a.config.is_empty() {
        vec![None]
    } else {
        a.config.iter().map(|p| Some(p.as_path())).collect()
    };
    let mut runs = Vec::new();
    for path in configs {
        let label = path.map_or("built-in".to_string(), |p| p.display().to_string());
        runs.push(run_config(path, &label, &truth_dir, start_ms)?);
    }
    print!("{}", table(&runs));
    if let Some(p) = &a.json {
        write(p, serde_json::to_string_pretty(&runs)? + "\n")?;
    }
    if let Some(p) = &a.chart {
        let bars: Vec<_> = runs
            .iter()
            .map(|r| {
                let rules = r
                    .rules
                    .iter()
                    .map(|(k, f)| (k.clone(), [f.precision, f.recall, f.f1]))
                    .collect();
                (format!("{} ({})", r.config, r.model), rules)
            })
            .collect();
        write(
            p,
            crate::eval::chart::rules_chart("Violations found on clips, per rule", &bars),
        )?;
    }
    Ok(())
}

fn run_config(
    path: Option<&Path>,
    label: &str,
    truth_dir: &Path,
    start_ms: i64,
) -> anyhow::Result<ConfigRun> {
    let cfg = super::run::config_of(path)?;
    let mut cameras = Vec::new();
    let mut truths = Vec::new();
    for c in &cfg.cameras {
        let t = truth_dir.join(format!("{}.toml", c.id));
        if !t.is_file() {
            tracing::info!(
                "eval rules: camera {} has no truth file {}",
                c.id,
                t.display()
            );
            continue;
        }
        if !Path::new(&c.source).is_file() {
            anyhow::bail!(
                "camera {}: eval rules replays files; its source {} is not one",
                c.id,
                c.source
            );
        }
        truths.push(Truth::load(&t)?);
        cameras.push(c);
    }
    if cameras.is_empty() {
        anyhow::bail!(
            "{label}: no camera has a truth file in {} (<camera id>.toml)",
            truth_dir.display()
        );
    }
    let scratch = tempfile::tempdir().context("a scratch folder")?;
    let bar = super::detect::progress(cameras.len() as u64, "clips");
    let t0 = Instant::now();
    let replay =
        crate::service::replay::replay(&cfg, &cameras, start_ms, scratch.path(), |i, cam, t| {
            bar.set_position(i as u64);
            bar.set_message(format!("{cam} {:.0} s", t as f64 / 1000.0));
        })?;
    bar.finish_and_clear();
    let wall = t0.elapsed().as_secs_f64();
    let scored: Vec<Scored> = truths
        .iter()
        .zip(&replay.clips)
        .map(|(t, c)| score(t, &c.reported))
        .collect();
    let cases = cameras
        .iter()
        .zip(&scored)
        .flat_map(|(c, s)| {
            s.reports.iter().map(|(r, v)| CaseLine {
                camera: c.id.clone(),
                kind: r.kind.to_string(),
                zone: r.zone.clone(),
                at_s: r.at_ms as f64 / 1000.0,
                verdict: *v,
                class: r.subject.as_ref().map(|s| s.class.clone()),
                bbox: r.subject.as_ref().map(|s| {
                    let [x1, y1, x2, y2] = s.bbox;
                    [x1, y1, x2 - x1, y2 - y1].map(|v| v.round())
                }),
            })
        })
        .collect();
    let clip_seconds = replay
        .clips
        .iter()
        .map(|c| c.duration_ms.unwrap_or(0) as f64 / 1000.0)
        .sum::<f64>();
    Ok(ConfigRun {
        config: label.to_string(),
        model: replay.model,
        clips: cameras.len(),
        clip_seconds,
        wall_seconds: wall,
        speed: clip_seconds / wall.max(1e-9),
        rules: total(&scored),
        cases,
    })
}

fn table(runs: &[ConfigRun]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for r in runs {
        let _ = writeln!(
            s,
            "{}: {} clips, {:.0} s of video in {:.1} s ({:.1}x real time), model {}",
            r.config, r.clips, r.clip_seconds, r.wall_seconds, r.speed, r.model
        );
        let _ = writeln!(
            s,
            "{:<22} {:>8} {:>4} {:>4} {:>5} {:>6} {:>6} {:>8} {:>6} {:>5} {:>5} {:>5} {:>5}",
            "rule",
            "expected",
            "TP",
            "FP",
            "wrong",
            "miss",
            "repeat",
            "delay s",
            "max s",
            "IoU",
            "P",
            "R",
            "F1"
        );
        for (kind, x) in &r.rules {
            let _ = writeln!(
                s,
                "{:<22} {:>8} {:>4} {:>4} {:>5} {:>6} {:>6} {:>8} {:>6} {:>5} {:>5} {:>5} {:>5}",
                kind,
                x.expected,
                x.true_positives,
                x.false_positives,
                x.wrong_object,
                x.misses,
                x.repeats,
                x.mean_delay_s.map_or("-".into(), |v| format!("{v:.1}")),
                x.max_delay_s.map_or("-".into(), |v| format!("{v:.1}")),
                f(x.mean_iou),
                f(x.precision),
                f(x.recall),
                f(x.f1)
            );
        }
    }
    s
}

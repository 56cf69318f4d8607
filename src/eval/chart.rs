//! Charts of evaluation figures as standalone SVG: precision against recall, one
//! line per class.

use std::fmt::Write;

/// Line colours, in turn (Okabe–Ito, readable by colour-blind readers).
const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

/// Text escaped for XML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG of `w` x `h` on white with `title` at `left`: its opening, to be closed.
fn open(w: f64, h: f64, left: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/><text x="{left}" y="22" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    s
}

/// A precision–recall chart: `curves` are (name, precision at recall 0, 0.01, …, 1).
pub fn pr_chart(title: &str, curves: &[(String, &[f64])]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 420.0;
    const LEFT: f64 = 56.0;
    const TOP: f64 = 36.0;
    const PLOT: f64 = 340.0;
    let x = |r: f64| LEFT + r * PLOT;
    let y = |p: f64| TOP + (1.0 - p) * PLOT;
    let mut s = open(W, H, LEFT, title);
    for i in 0..=10 {
        let v = i as f64 / 10.0;
        let _ = write!(
            s,
            r##"<line x1="{:.1}" y1="{TOP}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            x(v),
            x(v),
            TOP + PLOT,
            y(v),
            LEFT + PLOT,
            y(v)
        );
        if i % 2 == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.1}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text>"#,
                x(v),
                TOP + PLOT + 16.0,
                LEFT - 6.0,
                y(v) + 4.0
            );
        }
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">recall</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">precision</text>"#,
        x(0.5),
        TOP + PLOT + 34.0,
        y(0.5)
    );
    for (i, (name, points)) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let n = points.len().saturating_sub(1).max(1) as f64;
        let path: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(k, p)| format!("{:.1},{:.1}", x(k as f64 / n), y(*p)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + 8.0 + i as f64 * 18.0;
        let lx = LEFT + PLOT + 20.0;
        let _ = write!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One run's bars: its name, and (rule, [precision, recall, F1]) per rule.
pub type RunBars = (String, Vec<(String, [Option<f64>; 3])>);

/// A bar chart of rule figures: for each rule, precision, recall and F1 side by side,
/// one group of bars per run (config) — `runs` are (run name, [(rule, P, R, F1)]), a
/// figure that does not exist (`None`) drawn as no bar.
pub fn rules_chart(title: &str, runs: &[RunBars]) -> String {
    const LEFT: f64 = 56.0;
    const TOP: f64 = 36.0;
    const PLOT_H: f64 = 260.0;
    const BAR: f64 = 12.0;
    let rules: Vec<&String> = {
        let mut r: Vec<&String> = runs
            .iter()
            .flat_map(|(_, rs)| rs.iter().map(|(k, _)| k))
            .collect();
        r.sort();
        r.dedup();
        r
    };
    let group = (3.0 * BAR * runs.len().max(1) as f64 + 24.0).max(120.0);
    let plot_w = group * rules.len().max(1) as f64;
    let w = LEFT + plot_w + 420.0;
    let h = TOP + PLOT_H + 70.0;
    let y = |v: f64| TOP + (1.0 - v) * PLOT_H;
    let mut s = open(w, h, LEFT, title);
    for i in 0..=10 {
        let v = i as f64 / 10.0;
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            y(v),
            LEFT + plot_w,
            y(v)
        );
        if i % 2 == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text>"#,
                LEFT - 6.0,
                y(v) + 4.0
            );
        }
    }
    for (g, rule) in rules.iter().enumerate() {
        let gx = LEFT + g as f64 * group + 12.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + 3.0 * BAR * runs.len() as f64 / 2.0,
            TOP + PLOT_H + 18.0,
            escape(rule)
        );
        for (ri, (_, figures)) in runs.iter().enumerate() {
            let Some((_, values)) = figures.iter().find(|(k, _)| k == *rule) else {
                continue;
            };
            for (m, v) in values.iter().enumerate() {
                let Some(v) = v else { continue };
                let x = gx + (ri * 3 + m) as f64 * BAR;
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="{}"><title>{:.2}</title></rect>"#,
                    y(*v),
                    BAR - 2.0,
                    v * PLOT_H,
                    COLOURS[ri % COLOURS.len()],
                    [1.0, 0.65, 0.35][m],
                    v
                );
            }
        }
    }
    let lx = LEFT + plot_w + 20.0;
    for (ri, (name, _)) in runs.iter().enumerate() {
        let ly = TOP + 8.0 + ri as f64 * 18.0;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{:.1}" width="14" height="10" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            ly - 5.0,
            COLOURS[ri % COLOURS.len()],
            lx + 20.0,
            ly + 4.0,
            escape(name)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{:.1}">bars in each group, per run: precision (solid), recall, F1 (palest)</text>"#,
        TOP + PLOT_H + 44.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_class_with_escaped_names() {
        let a = vec![1.0; 101];
        let b: Vec<f64> = (0..101).map(|k| 1.0 - k as f64 / 100.0).collect();
        let svg = pr_chart("AP <test>", &[("person".into(), &a), ("a&b".into(), &b)]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("AP &lt;test&gt;") && svg.contains("a&amp;b"));
        // the falling curve ends at precision 0, the bottom of the plot
        assert!(svg.contains("396.0,376.0"), "{svg}");
    }

    #[test]
    fn rule_bars_per_run_and_none_drawn_as_nothing() {
        let runs = vec![
            (
                "a".to_string(),
                vec![("dumping".to_string(), [Some(1.0), Some(0.5), None])],
            ),
            (
                "b<".to_string(),
                vec![("dumping".to_string(), [Some(0.25), None, None])],
            ),
        ];
        let svg = rules_chart("rules", &runs);
        // 3 figures drawn: a's P and R, b's P; plus 2 legend swatches
        assert_eq!(svg.matches("<rect x=").count(), 5, "{svg}");
        assert!(svg.contains("<title>0.25</title>") && svg.contains("b&lt;"));
        // precision 1 reaches the top of the plot
        assert!(
            svg.contains(r#"y="36.0" width="10.0" height="260.0""#),
            "{svg}"
        );
    }
}

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

/// A precision–recall chart: `curves` are (name, precision at recall 0, 0.01, …, 1).
pub fn pr_chart(title: &str, curves: &[(String, &[f64])]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 420.0;
    const LEFT: f64 = 56.0;
    const TOP: f64 = 36.0;
    const PLOT: f64 = 340.0;
    let x = |r: f64| LEFT + r * PLOT;
    let y = |p: f64| TOP + (1.0 - p) * PLOT;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
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
}

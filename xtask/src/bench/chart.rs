//! A small SVG bar chart, written by hand so that the benchmark needs no plotting tool: two panels side
//! by side (requests/s and p99 latency), one bar per measured target, values printed on the bars.

use std::fmt::Write as _;

/// One bar of each panel.
pub struct Bar<'a> {
    /// Label under the bar.
    pub label: &'a str,
    /// Requests per second.
    pub rps: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
}

const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 260.0;
const TOP: f64 = 70.0;
const LEFT: f64 = 40.0;
const GAP: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e",
];

/// The chart as an SVG document: `title` on top, `note` (one line) under it.
pub fn svg(title: &str, note: &str, bars: &[Bar<'_>]) -> String {
    let width = LEFT * 2.0 + PANEL_W * 2.0 + GAP;
    let height = TOP + PANEL_H + 70.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="16" text-anchor="middle" font-weight="bold">{}</text><text x="{}" y="44" text-anchor="middle" fill="#555">{}</text>"##,
        width / 2.0,
        escape(title),
        width / 2.0,
        escape(note)
    );
    let rps: Vec<f64> = bars.iter().map(|b| b.rps).collect();
    let p99: Vec<f64> = bars.iter().map(|b| b.p99_ms).collect();
    panel(
        &mut s,
        LEFT,
        "requests/s (higher is better)",
        bars,
        &rps,
        |v| format!("{:.0}k", v / 1000.0),
    );
    panel(
        &mut s,
        LEFT + PANEL_W + GAP,
        "p99 latency, ms (lower is better)",
        bars,
        &p99,
        |v| format!("{v:.2}"),
    );
    s.push_str("</svg>\n");
    s
}

fn panel(
    s: &mut String,
    x0: f64,
    title: &str,
    bars: &[Bar<'_>],
    values: &[f64],
    fmt: impl Fn(f64) -> String,
) {
    let max = values.iter().cloned().fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let base = TOP + PANEL_H;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text><line x1="{x0}" y1="{base}" x2="{}" y2="{base}" stroke="black"/>"#,
        x0 + PANEL_W / 2.0,
        TOP - 8.0,
        escape(title),
        x0 + PANEL_W
    );
    let slot = PANEL_W / bars.len().max(1) as f64;
    for (i, (bar, &v)) in bars.iter().zip(values).enumerate() {
        let h = (v / max * PANEL_H).max(0.0);
        let x = x0 + slot * i as f64 + slot * 0.15;
        let w = slot * 0.7;
        let colour = COLOURS[i % COLOURS.len()];
        // Labels are long for a bar's width: the part before " (" on one line, the rest under it.
        let (first, second) = match bar.label.split_once(" (") {
            Some((a, b)) => (a.to_owned(), format!("({b}")),
            None => (bar.label.to_owned(), String::new()),
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11"><tspan x="{:.1}">{}</tspan><tspan x="{:.1}" dy="14">{}</tspan></text>"#,
            base - h,
            x + w / 2.0,
            base - h - 4.0,
            escape(&fmt(v)),
            x + w / 2.0,
            base + 16.0,
            x + w / 2.0,
            escape(&first),
            x + w / 2.0,
            escape(&second)
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_bar_per_target_in_each_panel() {
        let bars = [
            Bar {
                label: "direct",
                rps: 100_000.0,
                p99_ms: 1.0,
            },
            Bar {
                label: "a<b",
                rps: 50_000.0,
                p99_ms: 2.0,
            },
        ];
        let svg = svg("t", "n", &bars);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<rect x=").count(), 4);
        assert!(svg.contains(">100k<") && svg.contains(">50k<") && svg.contains(">2.00<"));
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }
}

//! Small SVG charts for the benchmark reports (line and bar charts), with no dependency.

use std::fmt::Write;

/// One line of a line chart.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points (x, y).
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (reference lines such as a bound).
    pub dashed: bool,
}

const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"];
const W: f64 = 860.0;
const H: f64 = 440.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" tick step for a range.
fn step(range: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    mag * if norm < 1.5 {
        1.0
    } else if norm < 3.5 {
        2.0
    } else if norm < 7.5 {
        5.0
    } else {
        10.0
    }
}

/// Formats a tick value compactly (k, M).
pub fn short(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| s.trim_end_matches('0').trim_end_matches('.').to_string();
    if a >= 1e6 {
        trim(format!("{:.3}", v / 1e6)) + "M"
    } else if a >= 1e3 {
        trim(format!("{:.3}", v / 1e3)) + "k"
    } else if a >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn frame(out: &mut String, title: &str, xlabel: &str, ylabel: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>
"#,
        (LEFT + W - RIGHT) / 2.0,
        esc(title),
        (LEFT + W - RIGHT) / 2.0,
        H - 14.0,
        esc(xlabel),
        (TOP + H - BOTTOM) / 2.0,
        esc(ylabel)
    );
}

fn axes(out: &mut String, (x0, x1): (f64, f64), (y0, y1): (f64, f64), xticks: bool) {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let _ = writeln!(out, r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##);
    let ys = step(y1 - y0);
    let mut y = (y0 / ys).ceil() * ys;
    while y <= y1 + ys * 1e-9 {
        let py = TOP + ph - (y - y0) / (y1 - y0) * ph;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            short(y)
        );
        y += ys;
    }
    if xticks {
        let xs = step(x1 - x0);
        let mut x = (x0 / xs).ceil() * xs;
        while x <= x1 + xs * 1e-9 {
            let px = LEFT + (x - x0) / (x1 - x0) * pw;
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 18.0,
                short(x)
            );
            x += xs;
        }
    }
}

fn legend(out: &mut String, names: &[(&str, &str, bool)]) {
    for (i, (name, color, dashed)) in names.iter().enumerate() {
        let y = TOP + 10.0 + i as f64 * 20.0;
        let x = W - RIGHT + 15.0;
        let dash = if *dashed { r#" stroke-dasharray="6,4""# } else { "" };
        let _ = writeln!(
            out,
            r#"<line x1="{x}" x2="{}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="2.5"{dash}/><text x="{}" y="{}">{}</text>"#,
            x + 26.0,
            x + 32.0,
            y + 4.0,
            esc(name)
        );
    }
}

/// A line chart of several series over a shared x axis.
pub fn line_chart(title: &str, xlabel: &str, ylabel: &str, series: &[Series]) -> String {
    let pts = || series.iter().flat_map(|s| s.points.iter().copied()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x0, mut x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y1 = pts().fold(0.0f64, |m, p| m.max(p.1)) * 1.08;
    let y1 = if y1 > 0.0 { y1 } else { 1.0 };
    if x1 <= x0 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let mut out = String::new();
    frame(&mut out, title, xlabel, ylabel);
    axes(&mut out, (x0, x1), (0.0, y1), true);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let mut names = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", LEFT + (x - x0) / (x1 - x0) * pw, TOP + ph - y / y1 * ph))
            .collect();
        let dash = if s.dashed { r#" stroke-dasharray="6,4""# } else { "" };
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        if !s.dashed {
            for p in &path {
                let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(out, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>"#);
            }
        }
        names.push((s.name.as_str(), color, s.dashed));
    }
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// A grouped bar chart: one group per label, one bar per series.
pub fn bar_chart(title: &str, ylabel: &str, labels: &[String], series: &[(String, Vec<f64>)]) -> String {
    let y1 = series.iter().flat_map(|s| s.1.iter().copied()).filter(|v| v.is_finite()).fold(0.0f64, f64::max) * 1.1;
    let y1 = if y1 > 0.0 { y1 } else { 1.0 };
    let mut out = String::new();
    frame(&mut out, title, "", ylabel);
    axes(&mut out, (0.0, 1.0), (0.0, y1), false);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let group = pw / labels.len().max(1) as f64;
    let bar = group * 0.8 / series.len().max(1) as f64;
    for (g, label) in labels.iter().enumerate() {
        let gx = LEFT + g as f64 * group + group * 0.1;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + group * 0.4,
            TOP + ph + 18.0,
            esc(label)
        );
        for (i, (_, values)) in series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0.0);
            let h = if v.is_finite() { v / y1 * ph } else { 0.0 };
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"/>"#,
                gx + i as f64 * bar,
                TOP + ph - h,
                bar * 0.95,
                COLORS[i % COLORS.len()]
            );
        }
    }
    let names: Vec<(&str, &str, bool)> =
        series.iter().enumerate().map(|(i, s)| (s.0.as_str(), COLORS[i % COLORS.len()], false)).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

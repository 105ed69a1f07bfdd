//! The benchmark charts (line and grouped bar charts) as SVG, drawn with plotters' SVG backend.
//! Owns the look: every series has its own colour, marker and dash, so series that coincide
//! stay visible; integer axes have integer ticks; byte axes are scaled to B, KiB or MiB. Owns
//! no data (the benches pass their points) and writes no files.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// How an axis is scaled and ticked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Plain numbers, "nice" ticks.
    Plain,
    /// Whole numbers (a prefetch distance, a count): ticks only at integers.
    Integer,
    /// Bytes: shown in B, KiB or MiB (whichever keeps the largest value between 1 and 2048),
    /// the unit appended to the label.
    Bytes,
}

/// One axis: its label and scale.
#[derive(Debug, Clone, Copy)]
pub struct Axis<'a> {
    /// The label (the unit of a byte axis is appended).
    pub label: &'a str,
    /// How it is scaled.
    pub scale: Scale,
    /// A y axis fitted to the data instead of starting at 0 (for differences of a few percent).
    pub fit: bool,
}

impl<'a> Axis<'a> {
    /// A plain axis.
    pub fn plain(label: &'a str) -> Self {
        Self { label, scale: Scale::Plain, fit: false }
    }
    /// An integer axis.
    pub fn integer(label: &'a str) -> Self {
        Self { label, scale: Scale::Integer, fit: false }
    }
    /// A byte axis.
    pub fn bytes(label: &'a str) -> Self {
        Self { label, scale: Scale::Bytes, fit: false }
    }
    /// The same axis fitted to the data (a y axis that need not start at 0).
    pub fn fit(self) -> Self {
        Self { fit: true, ..self }
    }
}

/// One line of a line chart.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points (x, y), in the axes' raw units (bytes for a byte axis).
    pub points: Vec<(f64, f64)>,
    /// A reference line (a bound, a target): long dashes, no markers.
    pub dashed: bool,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x7f, 0x7f, 0x7f),
];
const SIZE: (u32, u32) = (900, 460);

/// The divisor and unit name of a byte axis whose largest value is `max`.
pub fn byte_unit(max: f64) -> (f64, &'static str) {
    if max >= 2048.0 * 1024.0 {
        (1024.0 * 1024.0, "MiB")
    } else if max >= 2048.0 {
        (1024.0, "KiB")
    } else {
        (1.0, "B")
    }
}

/// A "nice" tick step for a range (1, 2 or 5 times a power of ten, about six ticks).
fn nice_step(range: f64) -> f64 {
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

/// The tick positions of `lo..hi` on a scale (an integer axis never gets a fractional tick).
pub fn ticks(lo: f64, hi: f64, scale: Scale) -> Vec<f64> {
    let mut step = nice_step(hi - lo);
    if scale == Scale::Integer {
        step = step.max(1.0).round();
    }
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 64 {
        out.push(if scale == Scale::Integer { t.round() } else { t });
        t += step;
    }
    out
}

/// A tick label: integers without a fraction, others with as few digits as they need.
fn label(v: f64) -> String {
    let v = v + 0.0; // -0.0 prints as 0
    if v == v.round() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// An axis ready to draw: the range in shown units, its ticks and its label with the unit.
struct Prepared {
    div: f64,
    range: (f64, f64),
    ticks: Vec<f64>,
    label: String,
}

impl Prepared {
    fn new(axis: &Axis<'_>, lo: f64, hi: f64, from_zero: bool) -> Self {
        let (div, unit) = match axis.scale {
            Scale::Bytes => byte_unit(hi.abs().max(lo.abs())),
            _ => (1.0, ""),
        };
        let (mut lo, mut hi) = (lo / div, hi / div);
        if from_zero {
            lo = lo.min(0.0);
            hi = if hi > 0.0 { hi * 1.08 } else { 1.0 };
        } else if hi <= lo {
            lo -= 1.0;
            hi += 1.0;
        } else {
            let pad = (hi - lo) * 0.03;
            lo -= pad;
            hi += pad;
        }
        let label = if unit.is_empty() { axis.label.to_string() } else { format!("{} ({unit})", axis.label) };
        Self { div, range: (lo, hi), ticks: ticks(lo, hi, axis.scale), label }
    }

    fn coord(&self) -> Ticked {
        Ticked { lo: self.range.0, hi: self.range.1, ticks: self.ticks.clone() }
    }
}

/// A linear f64 axis whose ticks are exactly the ones given (plotters' own f64 axis picks its
/// own, fractional ones on an integer axis included).
#[derive(Debug, Clone)]
pub struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = if self.hi > self.lo { (v - self.lo) / (self.hi - self.lo) } else { 0.5 };
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

fn draw_err<E: std::fmt::Debug>(e: E) -> String {
    format!("cannot draw the chart: {e:?}")
}

/// The dash of series `i` as (dash, gap) in pixels; solid for the first.
fn dash(i: usize) -> Option<(u32, u32)> {
    [None, Some((10, 5)), Some((3, 4)), Some((14, 4)), Some((6, 3)), Some((2, 6)), Some((18, 6)), Some((8, 8))][i % 8]
}

/// A line chart of several series over a shared x axis; the y axis starts at 0.
pub fn line_chart(title: &str, x: Axis<'_>, y: Axis<'_>, series: &[Series]) -> Result<String, String> {
    let pts = || series.iter().flat_map(|s| s.points.iter().copied()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (x0, x1) = if x0 > x1 { (0.0, 1.0) } else { (x0, x1) };
    let (y0, y1) = pts().fold((f64::MAX, 0.0f64), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let y0 = if y.fit && y0 <= y1 { y0 } else { 0.0 };
    let (px, py) = (Prepared::new(&x, x0, x1, false), Prepared::new(&y, y0, y1, !y.fit));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(72)
            .build_cartesian_2d(px.coord(), py.coord())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(px.label.as_str())
            .y_desc(py.label.as_str())
            .x_label_formatter(&|v| label(*v))
            .y_label_formatter(&|v| label(*v))
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_err)?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = color.stroke_width(2);
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&(a, b)| (a / px.div, b / py.div))
                .collect();
            let pattern = if s.dashed { Some((16, 6)) } else { dash(i) };
            let anno = match pattern {
                None => chart.draw_series(LineSeries::new(points.clone(), style)).map_err(draw_err)?,
                Some((d, g)) => {
                    chart.draw_series(DashedLineSeries::new(points.clone(), d, g, style)).map_err(draw_err)?
                }
            };
            let anno = anno.label(s.name.as_str());
            match pattern {
                None => anno.legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 24, ly)], style)),
                Some((d, g)) => anno.legend(move |(lx, ly)| {
                    DashedPathElement::new(vec![(lx, ly), (lx + 24, ly)], d as i32, g as i32, style)
                }),
            };
            if !s.dashed {
                draw_markers(&mut chart, &points, i, color)?;
            }
        }
        draw_legend(&mut chart)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;

/// The legend box, top right, over a light background.
fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(draw_err)
}

/// The markers of series `i`: circle, triangle, square, cross, then hollow circle, triangle,
/// square, and a dot.
fn draw_markers(chart: &mut Chart<'_, '_>, points: &[(f64, f64)], i: usize, color: RGBColor) -> Result<(), String> {
    let filled = color.filled();
    let hollow = color.stroke_width(2);
    let p = points.iter().copied();
    let r = match i % 8 {
        0 => chart.draw_series(p.map(|c| Circle::new(c, 4, filled))).map(|_| ()),
        1 => chart.draw_series(p.map(|c| TriangleMarker::new(c, 6, filled))).map(|_| ()),
        2 => chart.draw_series(p.map(|c| EmptyElement::at(c) + Rectangle::new([(-4, -4), (4, 4)], filled))).map(|_| ()),
        3 => chart.draw_series(p.map(|c| Cross::new(c, 5, hollow))).map(|_| ()),
        4 => chart.draw_series(p.map(|c| Circle::new(c, 5, hollow))).map(|_| ()),
        5 => chart.draw_series(p.map(|c| TriangleMarker::new(c, 7, hollow))).map(|_| ()),
        6 => chart.draw_series(p.map(|c| EmptyElement::at(c) + Rectangle::new([(-5, -5), (5, 5)], hollow))).map(|_| ()),
        _ => chart.draw_series(p.map(|c| Circle::new(c, 2, filled))).map(|_| ()),
    };
    r.map_err(draw_err)
}

/// A grouped bar chart: one group per label, one bar per series (each its own colour, and an
/// outline, so a zero-height bar still shows).
pub fn bar_chart(title: &str, y: Axis<'_>, labels: &[String], series: &[(String, Vec<f64>)]) -> Result<String, String> {
    let y1 = series.iter().flat_map(|s| s.1.iter().copied()).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let py = Prepared::new(&y, 0.0, y1, true);
    let groups = labels.len().max(1);
    let centres: Vec<f64> = (0..groups).map(|g| g as f64 + 0.5).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(Ticked { lo: 0.0, hi: groups as f64, ticks: centres }, py.coord())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .y_desc(py.label.as_str())
            .x_label_formatter(&|v| labels.get(v.floor() as usize).cloned().unwrap_or_default())
            .y_label_formatter(&|v| label(*v))
            .disable_x_mesh()
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_err)?;
        let width = 0.8 / series.len().max(1) as f64;
        for (i, (name, values)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(g, &v)| {
                let x = g as f64 + 0.1 + i as f64 * width;
                Rectangle::new([(x, 0.0), (x + width * 0.95, v / py.div)], color.filled())
            });
            chart
                .draw_series(bars)
                .map_err(draw_err)?
                .label(name.as_str())
                .legend(move |(lx, ly)| Rectangle::new([(lx, ly - 5), (lx + 14, ly + 5)], color.filled()));
            let outlines = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(g, &v)| {
                let x = g as f64 + 0.1 + i as f64 * width;
                Rectangle::new([(x, 0.0), (x + width * 0.95, v / py.div)], BLACK.stroke_width(1))
            });
            chart.draw_series(outlines).map_err(draw_err)?;
        }
        draw_legend(&mut chart)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_axes_tick_only_at_integers() {
        let t = ticks(-0.1, 3.1, Scale::Integer);
        assert_eq!(t, [0.0, 1.0, 2.0, 3.0]);
        assert!(ticks(0.0, 1.0, Scale::Integer).iter().all(|v| v.fract() == 0.0));
        assert!(ticks(0.0, 1.0, Scale::Plain).iter().any(|v| v.fract() != 0.0));
    }

    #[test]
    fn byte_axes_pick_the_unit_that_keeps_numbers_small() {
        assert_eq!(byte_unit(600.0), (1.0, "B"));
        assert_eq!(byte_unit(600.0 * 1024.0), (1024.0, "KiB"));
        assert_eq!(byte_unit(620.0 * 1024.0 * 1024.0), (1048576.0, "MiB"));
    }

    #[test]
    fn every_series_gets_its_own_marker_and_dash_and_is_drawn() {
        let series: Vec<Series> = (0..4)
            .map(|i| Series { name: format!("s{i}"), points: vec![(0.0, 1.0), (1.0, 2.0)], dashed: i == 3 })
            .collect();
        let svg = line_chart("t", Axis::integer("prefetch"), Axis::bytes("read"), &series).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("s0") && svg.contains("s3"));
        assert!(svg.contains("<circle") && svg.contains("<polygon") || svg.contains("<path"));
        assert!(svg.contains("read (B)"), "the unit is on the label");
        // Identical series still have distinct dash patterns.
        assert_ne!(dash(0), dash(1));
        let bars = bar_chart(
            "b",
            Axis::plain("hit rate (%)"),
            &["pin".into(), "lru".into()],
            &[("p0".into(), vec![1.0, 0.0])],
        )
        .unwrap();
        assert!(bars.contains("pin") && bars.contains("p0"));
    }
}

//! Line charts as SVG: a few polylines over time with a y scale from
//! zero, inline in the status page, and as a standalone file of stacked
//! panels for `ballast replay --chart`. Written by hand because this is
//! all either needs, and a plotting crate would bring fonts, image codecs
//! and a second drawing model for a few lines.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::page::Esc;
use crate::controller::status::Sample;

/// The drawing's coordinate system (the viewBox); the page scales it to
/// its column's width.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 150.0;
/// Room for the y labels on the left and the time labels below.
const LEFT: f64 = 40.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// One line of a chart: a CSS class (its colour and dash) and a value per
/// sample, `None` where there is a gap.
pub struct Series {
    pub class: &'static str,
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// The task-count chart of a service: running, ECS's desired count, and
/// the count ballast steered toward.
pub(super) fn tasks(samples: &[Sample]) -> String {
    let series = [
        Series { class: "running", label: "running".into(), values: values(samples, |s| s.running.map(f64::from)) },
        Series {
            class: "desired",
            label: "desired (ECS)".into(),
            values: values(samples, |s| s.desired.map(f64::from)),
        },
        Series {
            class: "target",
            label: "ballast's target".into(),
            values: values(samples, |s| s.target.map(f64::from)),
        },
    ];
    let top = series.iter().flat_map(|s| s.values.iter().flatten()).fold(1.0_f64, |m, v| m.max(*v));
    // Whole tasks: a scale to the next even count keeps labels integral.
    let top = (top * 1.1).ceil().max(2.0);
    let top = top + top % 2.0;
    page_chart("tasks", "tasks", samples, &series, top)
}

/// The CPU chart of a service: the CPU datapoints and the scale-out and
/// scale-in alarm thresholds.
pub(super) fn cpu(samples: &[Sample]) -> String {
    let series = [
        Series { class: "cpu", label: "CPU".into(), values: values(samples, |s| s.cpu) },
        Series { class: "high", label: "scale-out threshold".into(), values: values(samples, |s| s.high) },
        Series { class: "low", label: "scale-in threshold".into(), values: values(samples, |s| s.low) },
    ];
    // ECS reports more than 100 % for tasks without a hard CPU limit.
    let top = series.iter().flat_map(|s| s.values.iter().flatten()).fold(100.0_f64, |m, v| m.max(*v));
    // Up to a multiple of 25 for round labels; the epsilon keeps a float
    // just over 100 (a saturated average) on the 0..100 scale.
    let top = (top / 25.0 - 1e-6).ceil() * 25.0;
    page_chart("cpu", "CPU %", samples, &series, top)
}

fn values(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Vec<Option<f64>> {
    samples.iter().map(f).collect()
}

/// Where a sample at `at` with `value` goes, on a time axis from `start`
/// to `end` and a value axis from 0 to `top`. A single instant is drawn
/// at the right edge, where "now" is.
fn point(at: SystemTime, value: f64, start: SystemTime, end: SystemTime, top: f64) -> (f64, f64) {
    let span = end.duration_since(start).unwrap_or_default().as_secs_f64();
    let offset = at.duration_since(start).unwrap_or_default().as_secs_f64();
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = if span > 0.0 { LEFT + plot_w * offset / span } else { LEFT + plot_w };
    let y = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (value / top).clamp(0.0, 1.0));
    (x, y)
}

/// The runs of consecutive present values: each is one polyline.
fn runs(times: &[SystemTime], values: &[Option<f64>], top: f64) -> Vec<Vec<(f64, f64)>> {
    let (Some(first), Some(last)) = (times.first(), times.last()) else { return Vec::new() };
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false;
    for (at, v) in times.iter().zip(values) {
        match v {
            Some(v) => {
                let p = point(*at, *v, *first, *last, top);
                match out.last_mut() {
                    Some(run) if open => run.push(p),
                    _ => out.push(vec![p]),
                }
                open = true;
            }
            None => open = false,
        }
    }
    out
}

/// `3h 5m`, `12m`, `40s`: how long ago, to the unit that matters.
pub(super) fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

/// A chart of the status page: the drawing and its HTML legend.
fn page_chart(id: &str, unit: &str, samples: &[Sample], series: &[Series], top: f64) -> String {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return String::from(r#"<p class="muted">No pass has been recorded yet.</p>"#);
    };
    let shown = span(last.at.duration_since(first.at).unwrap_or_default());
    let times: Vec<SystemTime> = samples.iter().map(|s| s.at).collect();
    let axis =
        Axis { title: format!("{unit} over the last {shown}"), start: format!("{shown} ago"), end: "last pass".into() };
    let mut svg = draw(&format!(r#"class="chart chart-{id}""#), &axis, &times, series, top);
    let _ = write!(svg, r#"<p class="legend">"#);
    for s in series {
        let _ = write!(svg, r#"<span class="key {}">{}</span> "#, s.class, Esc(&s.label));
    }
    svg.push_str("</p>");
    svg
}

/// The words around a drawing: its title and the labels of both ends of
/// the time axis.
struct Axis {
    title: String,
    start: String,
    end: String,
}

/// One `<svg>` element: the grid, the time axis' labels and the lines.
/// `attributes` go on the element (its class, or its place in a larger one).
fn draw(attributes: &str, axis: &Axis, times: &[SystemTime], series: &[Series], top: f64) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg {attributes} viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><title>{}</title>"#,
        Esc(&axis.title),
        Esc(&axis.title),
    );
    let bottom = HEIGHT - BOTTOM;
    for frac in [0.0, 0.5, 1.0] {
        let y = TOP + (bottom - TOP) * (1.0 - frac);
        let label = top * frac;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0,
        );
    }
    let _ = write!(
        svg,
        r#"<text class="axis" x="{LEFT}" y="{}">{}</text><text class="axis" x="{}" y="{}" text-anchor="end">{}</text>"#,
        HEIGHT - 6.0,
        Esc(&axis.start),
        WIDTH - RIGHT,
        HEIGHT - 6.0,
        Esc(&axis.end),
    );
    for s in series {
        for run in runs(times, &s.values, top) {
            if let [(x, y)] = run[..] {
                // A lone point between gaps: a polyline of one point is invisible.
                let _ = write!(svg, r#"<circle class="line {}" cx="{x:.1}" cy="{y:.1}" r="2"/>"#, s.class);
            } else {
                let points: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(svg, r#"<polyline class="line {}" points="{}"/>"#, s.class, points.join(" "));
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One panel of a standalone chart: a title, a unit and its lines.
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// Colours of the lines of a standalone chart, by class: `load`, `happened`, then
/// `p0`, `p1`, … in order.
const STANDALONE_STYLE: &str = ".grid{stroke:#ddd;stroke-width:1}.axis{font:11px sans-serif;fill:#555}\
.line{fill:none;stroke-width:1.5}.load{stroke:#888;stroke-dasharray:4 3}.happened{stroke:#000;stroke-dasharray:2 2}.p0{stroke:#d62728}.p1{stroke:#1f77b4}\
.p2{stroke:#2ca02c}.p3{stroke:#ff7f0e}.p4{stroke:#9467bd}.p5{stroke:#8c564b}circle.line{fill:currentColor}\
.title{font:bold 13px sans-serif}.key{font:12px sans-serif}";

/// A standalone SVG document of stacked panels over the same times, each
/// with its title and a legend of its lines; the time axis runs from
/// `start` to `end` (their labels). For `ballast replay --chart`.
pub fn standalone(panels: &[Panel], times: &[SystemTime], start: &str, end: &str) -> String {
    let total: f64 = panels.iter().map(|p| TITLE + HEIGHT + LEGEND_LINE * legend_lines(&p.series) as f64).sum();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {total}" width="{}" height="{}"><style>{STANDALONE_STYLE}</style>"#,
        WIDTH * 1.5,
        total * 1.5
    );
    let mut y = 0.0;
    for p in panels {
        let _ = write!(svg, r#"<text class="title" x="{LEFT}" y="{:.1}">{}</text>"#, y + 15.0, Esc(&p.title));
        let top = p.series.iter().flat_map(|s| s.values.iter().flatten()).fold(1.0_f64, |m, v| m.max(*v));
        let top = nice_top(top * 1.05);
        let axis = Axis { title: p.title.clone(), start: start.into(), end: end.into() };
        let place = format!(r#"x="0" y="{:.1}" width="{WIDTH}" height="{HEIGHT}""#, y + TITLE);
        svg.push_str(&draw(&place, &axis, times, &p.series, top));
        let layout = legend_layout(&p.series);
        for (s, (x, line)) in p.series.iter().zip(&layout) {
            let (x, ly) = (*x, y + TITLE + HEIGHT + 12.0 + LEGEND_LINE * *line as f64);
            let _ = write!(
                svg,
                r#"<line class="line {}" x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><text class="key" x="{:.1}" y="{ly:.1}">{}</text>"#,
                s.class,
                ly - 4.0,
                x + 16.0,
                ly - 4.0,
                x + 20.0,
                Esc(&s.label)
            );
        }
        y += TITLE + HEIGHT + LEGEND_LINE * legend_lines(&p.series) as f64;
    }
    svg.push_str("</svg>\n");
    svg
}

/// Height of a standalone chart's panel title.
const TITLE: f64 = 20.0;

/// Height of one line of a standalone chart's legend.
const LEGEND_LINE: f64 = 18.0;

/// Where each key of a legend of `series` goes: its x and its line,
/// wrapping at the width of a chart.
fn legend_layout(series: &[Series]) -> Vec<(f64, usize)> {
    let (mut line, mut x) = (0, LEFT);
    let mut out = Vec::new();
    for s in series {
        let width = 28.0 + 7.0 * s.label.chars().count() as f64;
        if x > LEFT && x + width > WIDTH {
            (line, x) = (line + 1, LEFT);
        }
        out.push((x, line));
        x += width;
    }
    out
}

/// How many lines a legend of `series` takes.
fn legend_lines(series: &[Series]) -> usize {
    legend_layout(series).last().map_or(1, |(_, line)| line + 1)
}

/// The next round number at or above `v`: 1, 1.5, 2, 3, 4, 5, 6 or 8
/// times a power of ten.
fn nice_top(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.max(1.0).log10().floor());
    [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|t| *t >= v)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn sample(secs: u64, running: Option<u32>, cpu: Option<f64>) -> Sample {
        Sample { running, cpu, high: Some(66.0), low: Some(54.0), ..Sample::unobserved(at(secs)) }
    }

    /// The `points` of each polyline of `class`, parsed.
    fn polylines(svg: &str, class: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split(&format!(r#"<polyline class="line {class}" points=""#))
            .skip(1)
            .map(|rest| {
                rest.split('"')
                    .next()
                    .unwrap()
                    .split(' ')
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_points_are_the_samples_on_a_time_axis() {
        // Uneven spacing: x follows the time, not the index.
        let samples = [sample(0, Some(2), None), sample(60, Some(4), None), sample(240, Some(3), None)];
        let svg = tasks(&samples);
        let lines = polylines(&svg, "running");
        assert_eq!(lines.len(), 1, "{svg}");
        let xs: Vec<f64> = lines[0].iter().map(|p| p.0).collect();
        let plot_w = WIDTH - LEFT - RIGHT;
        assert_eq!(xs, [LEFT, LEFT + plot_w / 4.0, WIDTH - RIGHT].map(|x| (x * 10.0).round() / 10.0));
        // Scale 0..6 (4 tasks + 10 %, to the next even count): 4 tasks at
        // two thirds of the height, higher counts higher up.
        let ys: Vec<f64> = lines[0].iter().map(|p| p.1).collect();
        let plot_h = HEIGHT - TOP - BOTTOM;
        assert!((ys[1] - (TOP + plot_h / 3.0)).abs() < 0.1, "{ys:?}");
        assert!(ys[1] < ys[2] && ys[2] < ys[0], "{ys:?}");
    }

    #[test]
    fn a_gap_in_the_samples_breaks_the_line() {
        let samples = [
            sample(0, Some(2), Some(40.0)),
            sample(15, Some(2), Some(50.0)),
            sample(30, None, None),
            sample(45, Some(3), Some(70.0)),
            sample(60, Some(3), Some(65.0)),
        ];
        let svg = cpu(&samples);
        let lines = polylines(&svg, "cpu");
        assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2], "{svg}");
        // The thresholds are drawn at their values on a 0..100 scale.
        let high = polylines(&svg, "high");
        let expected = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - 0.66);
        assert!(high[0].iter().all(|p| (p.1 - expected).abs() < 0.1), "{high:?}");
        assert_eq!(high[0].len(), 5, "a threshold is known in every sample");
        // A saturated average a hair over 100 keeps the 0..100 scale; more
        // than that widens it to a round number.
        let saturated = cpu(&[sample(0, Some(2), Some(100.000_001))]);
        assert!(saturated.contains(">100</text>") && !saturated.contains(">101"), "{saturated}");
        let over = cpu(&[sample(0, Some(2), Some(137.0))]);
        assert!(over.contains(">150</text>") && over.contains(">75</text>"), "{over}");
    }

    #[test]
    fn a_standalone_chart_stacks_its_panels_with_their_legends() {
        let times: Vec<SystemTime> = (0..4).map(|i| at(i * 60)).collect();
        let line =
            |class, label: &str, v: [f64; 4]| Series { class, label: label.into(), values: v.map(Some).to_vec() };
        let long = "a policy with a long name that takes room";
        let panels = [
            Panel { title: "Load".into(), series: vec![line("load", "load", [200.0, 600.0, 600.0, 200.0])] },
            Panel {
                title: "Tasks".into(),
                series: vec![line("p0", long, [4.0, 7.0, 10.0, 4.0]), line("p1", long, [4.0, 4.0, 7.0, 10.0])],
            },
        ];
        let svg = standalone(&panels, &times, "0s", "3m");
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#) && svg.ends_with("</svg>\n"), "{svg}");
        assert!(svg.contains("<style>"), "a file carries its own colours");
        // Two drawings, each placed below the previous one's legend; the
        // second legend wraps to two lines, so the document is taller.
        assert_eq!(svg.matches(r#"<svg x="0""#).count(), 2, "{svg}");
        let one_line = TITLE + HEIGHT + LEGEND_LINE;
        assert!(svg.contains(&format!(r#"y="{:.1}""#, one_line + TITLE)), "the second panel below the first: {svg}");
        assert!(svg.contains(&format!("viewBox=\"0 0 {WIDTH} {}\"", 2.0 * one_line + LEGEND_LINE)), "{svg}");
        // Scales to a round number above the largest value: 600 -> 800, 10 -> 15.
        assert!(svg.contains(">800</text>") && svg.contains(">15</text>"), "{svg}");
        assert_eq!(polylines(&svg, "p0").len(), 1);
    }

    #[test]
    fn a_lone_point_is_a_dot_and_no_samples_is_a_sentence() {
        let svg = tasks(&[sample(0, Some(2), None)]);
        assert!(svg.contains(r#"<circle class="line running""#), "{svg}");
        assert!(tasks(&[]).contains("No pass has been recorded yet"));
    }
}

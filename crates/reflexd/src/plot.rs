//! `reflexd replay --plot FILE.svg`: what a replay saw and predicted, in one SVG.
//!
//! The replay records itself to a temporary MCAP file (the same recording as `run --record`);
//! this reads `/imu/samples` and `/reflex/predictions` back and draws two panels sharing the
//! time axis:
//!
//! * top: every input channel, z-scored over the replay (mean 0, std 1), so accelerations
//!   (~10 m/s²) and angular rates (~hundreds of deg/s) share one axis;
//! * bottom: the model's output values per window; for a classify model also a band along the
//!   top of the panel in the colour of each window's predicted label.
//!
//! The x axis is the samples' timestamps in seconds when every sample and record has one,
//! else the sample number.

use anyhow::{bail, Context};
use plotters::coord::Shift;
use plotters::prelude::*;
use reflex_io::mcap::McapFile;
use reflex_io::record::Prediction as Record;
use reflex_io::recording::{PREDICTIONS, SAMPLES};
use serde::Deserialize;
use std::path::Path;

const SIZE: (u32, u32) = (1400, 800);
/// Height of the title strip.
const TITLE: u32 = 56;
/// Width of the legend column to the right of each panel.
const LEGEND: u32 = 170;
/// Points per drawn line; longer lines are reduced to the min and max of each bucket.
const MAX_POINTS: usize = 3000;
const FONT: &str = "sans-serif";

/// Tableau 10: distinguishable, and readable on white.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// The `--plot` file must be an `.svg` in an existing directory: checked before the replay.
pub fn check_path(path: &Path) -> anyhow::Result<()> {
    let svg = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !svg {
        bail!("--plot {}: only SVG is supported: give a file name ending in .svg", path.display());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!("--plot {}: no such directory {}", path.display(), dir.display());
    }
    Ok(())
}

/// What the plot says about where the data came from.
pub struct Meta<'a> {
    /// The replayed log.
    pub log: &'a Path,
    /// The config, as given on the command line.
    pub config: &'a Path,
    /// `Some` for a classify model: `[output] labels`.
    pub labels: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Sample {
    sample: u64,
    t: Option<f64>,
    /// `null` where a value was not finite.
    values: Vec<Option<f64>>,
}

/// The samples and prediction records of a recording, in order.
pub struct Recording {
    samples: Vec<Sample>,
    records: Vec<Record>,
}

impl Recording {
    /// Reads `/imu/samples` and `/reflex/predictions` from an MCAP recording.
    pub fn read(path: &Path) -> anyhow::Result<Recording> {
        let shown = path.display();
        let file = McapFile::open(path)?;
        let (mut samples, mut records, mut malformed) = (Vec::new(), Vec::new(), 0u64);
        let mut messages = file.messages();
        while let Some(message) = messages.next() {
            match messages.topic(message.channel).unwrap_or_default() {
                SAMPLES => match serde_json::from_slice::<Sample>(message.data) {
                    Ok(s) => samples.push(s),
                    Err(_) => malformed += 1,
                },
                PREDICTIONS => match serde_json::from_slice::<Record>(message.data) {
                    Ok(r) => records.push(r),
                    Err(_) => malformed += 1,
                },
                _ => {}
            }
        }
        if let Some(damage) = messages.damage() {
            bail!("{shown}: {damage}");
        }
        if malformed > 0 {
            tracing::warn!(malformed, "{shown}: messages that are not samples or prediction records were skipped");
        }
        // Samples come from the reader, records from the inference thread: each in order, but
        // sort anyway so that nothing below depends on it.
        samples.sort_by_key(|s| s.sample);
        records.sort_by_key(|r| r.window);
        Ok(Recording { samples, records })
    }

    pub fn windows(&self) -> usize {
        self.records.len()
    }

    /// Samples missing between the first and the last recorded one.
    pub fn missing_samples(&self) -> u64 {
        match (self.samples.first(), self.samples.last()) {
            (Some(a), Some(b)) => (b.sample - a.sample + 1).saturating_sub(self.samples.len() as u64),
            _ => 0,
        }
    }
}

/// Where on the x axis a sample or record goes.
enum XAxis {
    /// Seconds, less `offset` (the first sample's time when it is a Unix time).
    Seconds { offset: f64 },
    /// The sample number (`last_sample` for a record).
    Samples,
}

impl XAxis {
    fn of(rec: &Recording) -> XAxis {
        let finite = |t: Option<f64>| t.is_some_and(f64::is_finite);
        if rec.samples.iter().all(|s| finite(s.t)) && rec.records.iter().all(|r| finite(r.t)) {
            let first = rec.samples.first().and_then(|s| s.t).unwrap_or(0.0);
            // Receive times (binary and witmotion sources) are Unix seconds: start those at 0.
            Self::Seconds { offset: if first.abs() >= 1e6 { first } else { 0.0 } }
        } else {
            Self::Samples
        }
    }

    fn sample(&self, s: &Sample) -> f64 {
        match self {
            Self::Seconds { offset } => s.t.unwrap_or(f64::NAN) - offset,
            Self::Samples => s.sample as f64,
        }
    }

    fn record(&self, r: &Record) -> f64 {
        match self {
            Self::Seconds { offset } => r.t.unwrap_or(f64::NAN) - offset,
            Self::Samples => r.last_sample as f64,
        }
    }

    /// A tick label: whole sample numbers; seconds to a precision that suits `span`, without
    /// trailing zeros.
    fn tick(&self, x: f64, span: f64) -> String {
        match self {
            Self::Seconds { .. } => {
                let decimals = (3.0 - span.log10().floor()).clamp(0.0, 9.0) as usize;
                let s = format!("{x:.decimals$}");
                let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
                if s == "-0" {
                    "0".into()
                } else {
                    s.into()
                }
            }
            Self::Samples => format!("{x:.0}"),
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Seconds { offset } if *offset != 0.0 => format!("time (s) since the first sample, t = {offset:.3}"),
            Self::Seconds { .. } => "time (s)".into(),
            Self::Samples => "sample".into(),
        }
    }
}

/// One named line, as runs of finite points (a non-finite value breaks the line).
struct Line {
    name: String,
    runs: Vec<Vec<(f64, f64)>>,
}

impl Line {
    fn new(name: String, points: impl Iterator<Item = (f64, Option<f64>)>) -> Line {
        let mut runs = Vec::new();
        let mut run = Vec::new();
        for (x, y) in points {
            match y {
                Some(y) if x.is_finite() && y.is_finite() => run.push((x, y)),
                _ if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                _ => {}
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        Line { name, runs: runs.into_iter().map(decimate).collect() }
    }

    fn points(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.runs.iter().flatten()
    }
}

/// At most about `MAX_POINTS` points: the min and the max of each bucket, in x order, so that
/// peaks survive.
fn decimate(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let bucket = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for chunk in points.chunks(bucket) {
        let lo = chunk.iter().enumerate().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
        let hi = chunk.iter().enumerate().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
        if let (Some((i, &a)), Some((j, &b))) = (lo, hi) {
            if i == j {
                out.push(a);
            } else if i < j {
                out.extend([a, b]);
            } else {
                out.extend([b, a]);
            }
        }
    }
    out
}

/// Mean and standard deviation of the finite values; std 1 when there is no spread.
fn mean_std(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut n, mut sum, mut sq) = (0.0, 0.0, 0.0);
    for v in values.filter(|v| v.is_finite()) {
        n += 1.0;
        sum += v;
        sq += v * v;
    }
    if n == 0.0 {
        return (0.0, 1.0);
    }
    let mean = sum / n;
    let std = (sq / n - mean * mean).max(0.0).sqrt();
    (mean, if std > 1e-12 && std.is_finite() { std } else { 1.0 })
}

/// The range of the values with a margin; never empty.
fn padded(values: impl Iterator<Item = f64>, margin: f64) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (-1.0, 1.0);
    }
    let pad = if hi - lo > 1e-12 { (hi - lo) * margin } else { lo.abs().max(1.0) * 0.5 };
    (lo - pad, hi + pad)
}

fn channel_names(n: usize) -> Vec<String> {
    if n == 6 {
        ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"].map(String::from).to_vec()
    } else {
        (0..n).map(|i| format!("ch{i}")).collect()
    }
}

/// Draws `rec` to `path` (an SVG file, replaced).
pub fn draw(rec: &Recording, meta: &Meta<'_>, path: &Path) -> anyhow::Result<()> {
    let log_name = meta.log.file_name().map_or_else(|| meta.log.display().to_string(), |n| n.to_string_lossy().into());
    if rec.samples.is_empty() {
        bail!("--plot {}: nothing to plot: the replay of {log_name} decoded no samples", path.display());
    }
    let axis = XAxis::of(rec);
    let inputs = input_lines(rec, &axis);
    let outputs = rec.records.iter().map(|r| r.values.len()).max().unwrap_or(0);
    let labels = meta.labels.as_ref().filter(|l| l.len() == outputs);
    let predictions = prediction_lines(rec, &axis, outputs, labels);
    let xs = rec.samples.iter().map(|s| axis.sample(s)).chain(rec.records.iter().map(|r| axis.record(r)));
    let x = padded(xs, 0.0);
    let title = format!(
        "{log_name}  —  {}  —  {} window{}",
        meta.config.display(),
        rec.records.len(),
        if rec.records.len() == 1 { "" } else { "s" }
    );

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (head, body) = root.split_vertically(TITLE);
        head.draw(&Text::new(title, (16, 10), (FONT, 22).into_font().color(&BLACK)))?;
        let note = format!(
            "{} samples; top: input channels z-scored over the replay; bottom: model output per window{}",
            rec.samples.len(),
            if labels.is_some() { ", band = predicted label" } else { "" }
        );
        head.draw(&Text::new(note, (16, 36), (FONT, 13).into_font().color(&RGBColor(90, 90, 90))))?;
        let (top, bottom) = body.split_vertically((SIZE.1 - TITLE) / 2);
        let inputs_panel =
            Panel { caption: "input channels (z-scored)", y_desc: "z-score", stroke: 1, band: false, empty: None };
        inputs_panel.draw(&top, rec, &axis, x, &inputs)?;
        let (caption, y_desc) = match labels {
            Some(_) => ("class scores per window", "score"),
            None => ("output values per window", "value"),
        };
        let empty =
            rec.records.is_empty().then_some("no predictions in this replay (is the log shorter than one window?)");
        let outputs_panel = Panel { caption, y_desc, stroke: 2, band: labels.is_some(), empty };
        outputs_panel.draw(&bottom, rec, &axis, x, &predictions)?;
        root.present()?;
    }
    std::fs::write(path, svg).with_context(|| format!("--plot {}: cannot write", path.display()))
}

/// Every input channel, z-scored over the replay.
fn input_lines(rec: &Recording, axis: &XAxis) -> Vec<Line> {
    let channels = rec.samples.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let value = |s: &Sample, c: usize| s.values.get(c).copied().flatten();
    channel_names(channels)
        .into_iter()
        .enumerate()
        .map(|(c, name)| {
            let (mean, std) = mean_std(rec.samples.iter().filter_map(|s| value(s, c)));
            let points = rec.samples.iter().map(|s| (axis.sample(s), value(s, c).map(|v| (v - mean) / std)));
            Line::new(name, points)
        })
        .collect()
}

/// Every output value per window, named by its label when there is one.
fn prediction_lines(rec: &Recording, axis: &XAxis, outputs: usize, labels: Option<&Vec<String>>) -> Vec<Line> {
    (0..outputs)
        .map(|o| {
            let name = labels.and_then(|l| l.get(o).cloned()).unwrap_or_else(|| format!("out{o}"));
            let value = |r: &Record| r.values.get(o).map(|v| f64::from(*v));
            Line::new(name, rec.records.iter().map(|r| (axis.record(r), value(r))))
        })
        .collect()
}

/// One of the two panels: a chart and its legend.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    stroke: u32,
    /// The predicted label as a band above the lines.
    band: bool,
    /// Said across the panel when it has nothing to show.
    empty: Option<&'a str>,
}

impl Panel<'_> {
    fn draw(
        &self,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        rec: &Recording,
        axis: &XAxis,
        (x0, x1): (f64, f64),
        lines: &[Line],
    ) -> anyhow::Result<()> {
        let (plot, legend) = area.split_horizontally(SIZE.0 - LEGEND);
        let (y0, mut y1) = padded(lines.iter().flat_map(Line::points).map(|p| p.1), 0.05);
        let band = self.band.then(|| {
            let h = y1 - y0;
            let band = (y1 + 0.02 * h, y1 + 0.08 * h);
            y1 += 0.10 * h;
            band
        });
        let mut chart = ChartBuilder::on(&plot)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .caption(self.caption, (FONT, 15))
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(axis.label())
            .x_label_formatter(&|x| axis.tick(*x, x1 - x0))
            .y_desc(self.y_desc)
            .x_max_light_lines(4)
            .y_max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .label_style((FONT, 14))
            .draw()?;
        if let Some((b0, b1)) = band {
            let runs = label_runs(rec, axis).into_iter();
            chart
                .draw_series(runs.map(|(xa, xb, class)| Rectangle::new([(xa, b0), (xb, b1)], color(class).filled())))?;
        }
        for (i, line) in lines.iter().enumerate() {
            for run in &line.runs {
                chart.draw_series(LineSeries::new(run.iter().copied(), color(i).stroke_width(self.stroke)))?;
            }
        }
        if let Some(empty) = self.empty {
            let red = (FONT, 16).into_font().color(&RGBColor(160, 0, 0));
            plot.draw(&Text::new(empty, (80, (SIZE.1 - TITLE) as i32 / 4), red))?;
        }
        draw_legend(&legend, lines, band.map(|_| "band: predicted label"))?;
        Ok(())
    }
}

/// The predicted label as runs of equal class: (from, to, class) in x, each window covering
/// half the way to its neighbours.
fn label_runs(rec: &Recording, axis: &XAxis) -> Vec<(f64, f64, usize)> {
    let marks: Vec<(f64, usize)> =
        rec.records.iter().filter_map(|r| Some((axis.record(r), r.index?))).filter(|(x, _)| x.is_finite()).collect();
    let mut steps: Vec<f64> = marks.windows(2).map(|w| w[1].0 - w[0].0).filter(|d| *d > 0.0).collect();
    steps.sort_by(f64::total_cmp);
    let step = steps.get(steps.len() / 2).copied().unwrap_or(1.0);
    let mut runs: Vec<(f64, f64, usize)> = Vec::new();
    for (k, &(x, class)) in marks.iter().enumerate() {
        let from = if k == 0 { x - step / 2.0 } else { (marks[k - 1].0 + x) / 2.0 };
        let to = marks.get(k + 1).map_or(x + step / 2.0, |next| (x + next.0) / 2.0);
        match runs.last_mut() {
            Some(last) if last.2 == class => last.1 = to,
            _ => runs.push((from, to, class)),
        }
    }
    runs
}

/// A legend column: a short line in each series' colour and its name.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Line],
    note: Option<&str>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = (FONT, 14).into_font().color(&BLACK);
    let mut y = 44;
    for (i, line) in lines.iter().enumerate() {
        area.draw(&PathElement::new(vec![(6, y), (34, y)], color(i).stroke_width(3)))?;
        area.draw(&Text::new(line.name.clone(), (42, y - 8), font.clone()))?;
        y += 22;
    }
    if let Some(note) = note {
        area.draw(&Text::new(note.to_string(), (6, y + 6), (FONT, 12).into_font().color(&RGBColor(90, 90, 90))))?;
    }
    Ok(())
}

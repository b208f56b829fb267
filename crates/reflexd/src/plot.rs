//! `reflexd replay --plot FILE.svg`: what a replay saw and predicted, in one SVG.
//!
//! The replay records itself to a temporary MCAP file (the same recording as `run --record`);
//! this reads `/imu/samples` and `/reflex/predictions` back and draws two panels sharing the
//! time axis:
//!
//! * one panel per sensor group — the channels sharing a unit (`[source] units`), else a name
//!   prefix (`acc_x`, `acc_y` → `acc`) — in the channels' own unit, named as the config or the
//!   csv header names them; the y range is robust (the 0.5th to 99.5th percentile, padded), so
//!   one spike does not flatten the rest: values beyond it are drawn at the edge and counted;
//! * bottom: the model's output values per window; for a classify model also a band along the
//!   top of the panel in the colour of each window's predicted label, and with more than 8
//!   classes a heat strip (one row per class) instead of lines.
//!
//! Every panel marks time jumps (a step over 5 times the median, or backwards), decode errors
//! (the recording's `decode_error` events) and hot swaps (where `generation` changes). The x axis
//! is the samples' timestamps in seconds when every sample and record has one — unless they
//! count samples (0, 1, 2, …: a sample index, as some loggers write) — else the sample number.

use anyhow::{bail, Context};
use plotters::coord::Shift;
use plotters::prelude::*;
use reflex_io::mcap::McapFile;
use reflex_io::record::Prediction as Record;
use reflex_io::recording::{EVENTS, METADATA, PREDICTIONS, SAMPLES};
use std::path::Path;

const WIDTH: u32 = 1400;
/// Height of one input panel, and of the output panel.
const GROUP_HEIGHT: u32 = 210;
const OUTPUT_HEIGHT: u32 = 300;
/// Width of the y labels left of every panel (the heat strip's class names), so that the
/// panels' x axes line up.
const Y_LABELS: u32 = 110;
/// More classes than this are drawn as a heat strip.
const MAX_LINES: usize = 8;
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

struct Sample {
    sample: u64,
    t: Option<f64>,
    /// `None` where a value was not finite.
    values: Vec<Option<f64>>,
}

impl Sample {
    /// A `/imu/samples` message: named values (`{"sample":…,"t":…,"acc_x":…}`), or the
    /// unnamed `values` array of older recordings.
    fn parse(data: &[u8], names: &[String]) -> Option<Sample> {
        let mut m: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(data).ok()?;
        let sample = m.get("sample")?.as_u64()?;
        let t = m.get("t").and_then(serde_json::Value::as_f64);
        let values = match m.remove("values") {
            Some(serde_json::Value::Array(v)) => v.iter().map(serde_json::Value::as_f64).collect(),
            _ => names.iter().map(|n| m.get(n).and_then(serde_json::Value::as_f64)).collect(),
        };
        Some(Sample { sample, t, values })
    }
}

/// The samples and prediction records of a recording, in order.
pub struct Recording {
    samples: Vec<Sample>,
    records: Vec<Record>,
    names: Vec<String>,
    units: Vec<String>,
    /// For each malformed line or frame skipped, the number of the sample decoded next.
    decode_errors: Vec<u64>,
}

impl Recording {
    /// Reads `/imu/samples` and `/reflex/predictions` from an MCAP recording.
    pub fn read(path: &Path) -> anyhow::Result<Recording> {
        let shown = path.display();
        let file = McapFile::open(path)?;
        let metadata = file.metadata(METADATA);
        let list = |key: &str| metadata.get(key).and_then(|v| serde_json::from_str::<Vec<String>>(v).ok());
        let channels = metadata.get("channels").and_then(|c| c.parse().ok()).unwrap_or(0);
        let names = list("channel_names").unwrap_or_else(|| reflex_io::recording::default_names(channels));
        let units = list("units").unwrap_or_default();
        let (mut samples, mut records, mut malformed, mut decode_errors) = (Vec::new(), Vec::new(), 0u64, Vec::new());
        let mut messages = file.messages();
        while let Some(message) = messages.next() {
            match message.topic.unwrap_or_default() {
                SAMPLES => match Sample::parse(message.data, &names) {
                    Some(s) => samples.push(s),
                    None => malformed += 1,
                },
                EVENTS => {
                    let event: serde_json::Value = serde_json::from_slice(message.data).unwrap_or_default();
                    if let ("decode_error", Some(n)) = (event["event"].as_str().unwrap_or(""), event["sample"].as_u64())
                    {
                        decode_errors.push(n);
                    }
                }
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
        Ok(Recording { samples, records, names, units, decode_errors })
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
    /// The log's time column, which counts samples (0, 1, 2, …) rather than seconds.
    Index,
}

impl XAxis {
    fn of(rec: &Recording) -> XAxis {
        let finite = |t: Option<f64>| t.is_some_and(f64::is_finite);
        if rec.samples.iter().all(|s| finite(s.t)) && rec.records.iter().all(|r| finite(r.t)) {
            let counts = rec.samples.len() > 1
                && rec.samples.windows(2).all(|w| matches!((w[0].t, w[1].t), (Some(a), Some(b)) if b - a == 1.0))
                && rec.samples[0].t.is_some_and(|t| t.fract() == 0.0);
            if counts {
                return Self::Index;
            }
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
            Self::Index => s.t.unwrap_or(f64::NAN),
        }
    }

    fn record(&self, r: &Record) -> f64 {
        match self {
            Self::Seconds { offset } => r.t.unwrap_or(f64::NAN) - offset,
            Self::Samples => r.last_sample as f64,
            Self::Index => r.t.unwrap_or(f64::NAN),
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
            Self::Samples | Self::Index => format!("{x:.0}"),
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Seconds { offset } if *offset != 0.0 => format!("time (s) since the first sample, t = {offset:.3}"),
            Self::Seconds { .. } => "time (s)".into(),
            Self::Samples => "sample (no timestamps)".into(),
            Self::Index => "sample (the log's time column counts samples)".into(),
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

/// Channels drawn in one panel: a unit, or a name prefix.
struct Group {
    title: String,
    unit: String,
    channels: Vec<usize>,
}

/// Channels sharing a unit share a panel; without units, a name prefix (`acc_x` → `acc`); else
/// one panel for up to 4 channels, panels of 3 beyond.
fn groups(names: &[String], units: &[String], channels: usize) -> Vec<Group> {
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| format!("ch{c}"));
    let unit = |c: usize| units.get(c).cloned().unwrap_or_default();
    let prefix = |c: usize| name(c).rsplit_once('_').map(|(p, _)| p.to_string());
    let key = |c: usize| -> Option<String> {
        let u = unit(c);
        if !u.is_empty() {
            Some(u)
        } else {
            prefix(c)
        }
    };
    let mut out: Vec<Group> = Vec::new();
    for c in 0..channels {
        let k = key(c).unwrap_or_else(|| if channels <= 4 { String::new() } else { format!("#{}", c / 3) });
        match out.iter_mut().find(|g| g.title == k) {
            Some(g) => g.channels.push(c),
            None => out.push(Group { title: k, unit: unit(c), channels: vec![c] }),
        }
    }
    for g in &mut out {
        let names: Vec<String> = g.channels.iter().map(|&c| name(c)).collect();
        g.title = if g.unit.is_empty() { names.join(", ") } else { format!("{} ({})", names.join(", "), g.unit) };
    }
    out
}

/// The 0.5th and 99.5th percentiles of the finite values, padded by 10 %: one spike does not
/// flatten the rest. Never empty.
fn robust(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut v: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return (-1.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    padded([at(0.005), at(0.995)].into_iter(), 0.1)
}

/// Where the x axis is marked: time jumps, decode errors (missing sample numbers), swaps.
struct Marks {
    jumps: Vec<f64>,
    errors: Vec<f64>,
    swaps: Vec<(f64, u64)>,
}

impl Marks {
    fn of(rec: &Recording, axis: &XAxis) -> Marks {
        let ts: Vec<f64> = rec.samples.iter().filter_map(|s| s.t).collect();
        let mut steps: Vec<f64> = ts.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).collect();
        steps.sort_by(f64::total_cmp);
        let median = steps.get(steps.len() / 2).copied().unwrap_or(0.0);
        let mut jumps = Vec::new();
        for w in rec.samples.windows(2) {
            if let (Some(a), Some(b)) = (w[0].t, w[1].t) {
                if median > 0.0 && (b - a > 5.0 * median || b < a) {
                    jumps.push(axis.sample(&w[1]));
                }
            }
        }
        // Each skipped line or frame, at the sample decoded after it (samples are sorted).
        let mut errors: Vec<f64> = rec
            .decode_errors
            .iter()
            .filter_map(|n| {
                let at = rec.samples.partition_point(|s| s.sample < *n);
                rec.samples.get(at).map(|s| axis.sample(s))
            })
            .collect();
        errors.dedup();
        let swaps = rec
            .records
            .windows(2)
            .filter(|w| w[1].generation != w[0].generation)
            .map(|w| (axis.record(&w[1]), w[1].generation))
            .collect();
        Marks { jumps, errors, swaps }
    }

    fn count(&self) -> usize {
        self.jumps.len() + self.errors.len() + self.swaps.len()
    }
}

const JUMP: RGBColor = RGBColor(200, 0, 0);
const ERROR: RGBColor = RGBColor(230, 140, 0);
const SWAP: RGBColor = RGBColor(110, 0, 160);

/// Draws `rec` to `path` (an SVG file, replaced).
pub fn draw(rec: &Recording, meta: &Meta<'_>, path: &Path) -> anyhow::Result<()> {
    let log_name = meta.log.file_name().map_or_else(|| meta.log.display().to_string(), |n| n.to_string_lossy().into());
    if rec.samples.is_empty() {
        bail!("--plot {}: nothing to plot: the replay of {log_name} decoded no samples", path.display());
    }
    let axis = XAxis::of(rec);
    let channels = rec.samples.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let groups = groups(&rec.names, &rec.units, channels);
    let outputs = rec.records.iter().map(|r| r.values.len()).max().unwrap_or(0);
    let labels = meta.labels.as_ref().filter(|l| l.len() == outputs);
    let predictions = prediction_lines(rec, &axis, outputs, labels);
    let marks = Marks::of(rec, &axis);
    let xs = rec.samples.iter().map(|s| axis.sample(s)).chain(rec.records.iter().map(|r| axis.record(r)));
    let x = padded(xs, 0.0);
    let title = format!(
        "{log_name}  —  {}  —  {} window{}",
        meta.config.display(),
        rec.records.len(),
        if rec.records.len() == 1 { "" } else { "s" }
    );
    let height = TITLE + GROUP_HEIGHT * groups.len() as u32 + OUTPUT_HEIGHT;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (head, mut body) = root.split_vertically(TITLE);
        head.draw(&Text::new(title, (16, 10), (FONT, 22).into_font().color(&BLACK)))?;
        let note = format!(
            "{} samples; one panel per sensor group, robust range (0.5–99.5 %); bottom: model output per window{}{}",
            rec.samples.len(),
            match labels {
                Some(_) if outputs > MAX_LINES => ", heat strip of class scores",
                Some(_) => ", band = predicted label",
                None => "",
            },
            if marks.count() > 0 { "; red: time jump, orange: decode error, purple: swap" } else { "" },
        );
        head.draw(&Text::new(note, (16, 36), (FONT, 13).into_font().color(&RGBColor(90, 90, 90))))?;
        for g in &groups {
            let (top, rest) = body.split_vertically(GROUP_HEIGHT);
            body = rest;
            let lines = input_lines(rec, &axis, &g.channels, &marks.jumps);
            let y = robust(lines.iter().flat_map(Line::points).map(|p| p.1));
            let clipped = lines.iter().flat_map(Line::points).filter(|p| p.1 < y.0 || p.1 > y.1).count();
            let lines: Vec<Line> = lines.into_iter().map(|l| l.clamp(y)).collect();
            let y_desc = if g.unit.is_empty() { "value".to_string() } else { g.unit.clone() };
            let note = (clipped > 0).then(|| {
                format!("{clipped} value{} beyond the\nrange: drawn at its edge", if clipped == 1 { "" } else { "s" })
            });
            let panel = Panel {
                caption: &g.title,
                y_desc: &y_desc,
                stroke: 1,
                band: false,
                empty: None,
                note: note.as_deref(),
            };
            panel.draw(&top, rec, &axis, x, Some(y), &lines, &marks)?;
        }
        let (caption, y_desc) = match labels {
            Some(_) => ("class scores per window", "score"),
            None => ("output values per window", "value"),
        };
        let empty =
            rec.records.is_empty().then_some("no predictions in this replay (is the log shorter than one window?)");
        if labels.is_some() && outputs > MAX_LINES {
            heat_strip(&body, rec, &axis, x, &predictions, &marks)?;
        } else {
            let outputs_panel = Panel { caption, y_desc, stroke: 2, band: labels.is_some(), empty, note: None };
            outputs_panel.draw(&body, rec, &axis, x, None, &predictions, &marks)?;
        }
        root.present()?;
    }
    std::fs::write(path, svg).with_context(|| format!("--plot {}: cannot write", path.display()))
}

/// The input channels `channels`, in their own unit; a line breaks at each time jump.
fn input_lines(rec: &Recording, axis: &XAxis, channels: &[usize], jumps: &[f64]) -> Vec<Line> {
    let value = |s: &Sample, c: usize| s.values.get(c).copied().flatten();
    channels
        .iter()
        .map(|&c| {
            let name = rec.names.get(c).cloned().unwrap_or_else(|| format!("ch{c}"));
            let points = rec.samples.iter().flat_map(|s| {
                let x = axis.sample(s);
                let gap = jumps.contains(&x).then_some((f64::NAN, None));
                gap.into_iter().chain([(x, value(s, c))])
            });
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

/// Class scores as a heat strip: one row per class, darker for a higher score (each window's
/// scores scaled from their minimum to their maximum), the predicted class outlined.
fn heat_strip(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    rec: &Recording,
    axis: &XAxis,
    (x0, x1): (f64, f64),
    lines: &[Line],
    marks: &Marks,
) -> anyhow::Result<()> {
    let (plot, legend) = area.split_horizontally(WIDTH - LEGEND);
    let rows = lines.len();
    let mut chart = ChartBuilder::on(&plot)
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(Y_LABELS)
        .caption("class scores per window (heat strip; outlined: predicted)", (FONT, 15))
        .build_cartesian_2d(x0..x1, 0.0..rows as f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(axis.label())
        .x_label_formatter(&|x| axis.tick(*x, x1 - x0))
        .y_labels(0)
        .label_style((FONT, 12))
        .draw()?;
    // A class name left of each row, class 0 at the top.
    let base = plot.get_base_pixel();
    let font = (FONT, 12).into_font().color(&BLACK);
    for (class, line) in lines.iter().enumerate() {
        let (_, y) = chart.backend_coord(&(x0, (rows - 1 - class) as f64 + 0.5));
        plot.draw(&Text::new(line.name.clone(), (8, y - base.1 - 6), font.clone()))?;
    }
    let xs: Vec<f64> = rec.records.iter().map(|r| axis.record(r)).collect();
    let mut steps: Vec<f64> = xs.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).collect();
    steps.sort_by(f64::total_cmp);
    let step = steps.get(steps.len() / 2).copied().unwrap_or(1.0);
    let mut cells = Vec::new();
    for (r, x) in rec.records.iter().zip(&xs) {
        let (lo, hi) = r.values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        for (class, v) in r.values.iter().enumerate() {
            let level = if hi > lo { f64::from((v - lo) / (hi - lo)) } else { 0.0 };
            let shade = (255.0 - 225.0 * level.clamp(0.0, 1.0)) as u8;
            let row = (rows - 1 - class) as f64;
            cells.push(Rectangle::new(
                [(*x - step / 2.0, row), (*x + step / 2.0, row + 1.0)],
                RGBColor(shade, shade, 255).filled(),
            ));
            if Some(class) == r.index {
                cells.push(Rectangle::new(
                    [(*x - step / 2.0, row + 0.1), (*x + step / 2.0, row + 0.9)],
                    BLACK.stroke_width(1),
                ));
            }
        }
    }
    chart.draw_series(cells)?;
    draw_marks(&mut chart, marks, (0.0, rows as f64))?;
    draw_legend(&legend, &[], Some("darker: higher score"))?;
    Ok(())
}

/// Vertical lines across a chart at each mark.
fn draw_marks(
    chart: &mut ChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    marks: &Marks,
    (y0, y1): (f64, f64),
) -> anyhow::Result<()> {
    let all = marks
        .jumps
        .iter()
        .map(|x| (*x, JUMP))
        .chain(marks.errors.iter().map(|x| (*x, ERROR)))
        .chain(marks.swaps.iter().map(|(x, _)| (*x, SWAP)));
    chart.draw_series(all.map(|(x, c)| PathElement::new(vec![(x, y0), (x, y1)], c.stroke_width(2))))?;
    let font = (FONT, 11).into_font().color(&SWAP);
    chart.draw_series(marks.swaps.iter().map(|(x, g)| Text::new(format!("gen {g}"), (*x, y1), font.clone())))?;
    Ok(())
}

impl Line {
    /// Values beyond `(lo, hi)` drawn at the edge.
    fn clamp(self, (lo, hi): (f64, f64)) -> Line {
        let runs = self.runs.into_iter().map(|r| r.into_iter().map(|(x, y)| (x, y.clamp(lo, hi))).collect()).collect();
        Line { name: self.name, runs }
    }
}

/// One panel: a chart and its legend.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    stroke: u32,
    /// The predicted label as a band above the lines.
    band: bool,
    /// Said across the panel when it has nothing to show.
    empty: Option<&'a str>,
    /// Said under the legend.
    note: Option<&'a str>,
}

impl Panel<'_> {
    #[allow(clippy::too_many_arguments, reason = "one panel of the figure: its area, data, axes and marks")]
    fn draw(
        &self,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        rec: &Recording,
        axis: &XAxis,
        (x0, x1): (f64, f64),
        y: Option<(f64, f64)>,
        lines: &[Line],
        marks: &Marks,
    ) -> anyhow::Result<()> {
        let (plot, legend) = area.split_horizontally(WIDTH - LEGEND);
        let (y0, mut y1) = y.unwrap_or_else(|| padded(lines.iter().flat_map(Line::points).map(|p| p.1), 0.05));
        let band = self.band.then(|| {
            let h = y1 - y0;
            let band = (y1 + 0.02 * h, y1 + 0.08 * h);
            y1 += 0.10 * h;
            band
        });
        let mut chart = ChartBuilder::on(&plot)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(Y_LABELS)
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
        draw_marks(&mut chart, marks, (y0, y1))?;
        if let Some(empty) = self.empty {
            let red = (FONT, 16).into_font().color(&RGBColor(160, 0, 0));
            plot.draw(&Text::new(empty, (80, OUTPUT_HEIGHT as i32 / 2), red))?;
        }
        let note = band.map(|_| "band: predicted label").or(self.note);
        draw_legend(&legend, lines, note)?;
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
        for (i, line) in note.lines().enumerate() {
            let at = (6, y + 6 + 16 * i as i32);
            area.draw(&Text::new(line.to_string(), at, (FONT, 12).into_font().color(&RGBColor(90, 90, 90))))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_by_name_and_in_the_old_unnamed_form() {
        let names = ["acc_x".to_string(), "acc_y".to_string()];
        let named = Sample::parse(br#"{"sample":3,"t":0.5,"acc_x":1.5,"acc_y":null}"#, &names).unwrap();
        assert_eq!((named.sample, named.t, named.values), (3, Some(0.5), vec![Some(1.5), None]));
        let old = Sample::parse(br#"{"sample":4,"t":null,"values":[2.0,3.0]}"#, &names).unwrap();
        assert_eq!((old.sample, old.t, old.values), (4, None, vec![Some(2.0), Some(3.0)]));
    }

    #[test]
    fn channels_group_by_unit_else_by_name_prefix() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let by_unit = groups(&s(&["ax", "ay", "wz"]), &s(&["g", "g", "deg/s"]), 3);
        assert_eq!(by_unit.iter().map(|g| g.channels.clone()).collect::<Vec<_>>(), [vec![0, 1], vec![2]]);
        assert_eq!(by_unit[0].title, "ax, ay (g)");
        let by_prefix = groups(&s(&["acc_x", "acc_y", "gyr_x", "gyr_y"]), &[], 4);
        assert_eq!(by_prefix.len(), 2);
        let nine = groups(&[], &[], 9);
        assert_eq!(nine.len(), 3, "nine unnamed channels: three panels, not one");
    }

    #[test]
    fn one_spike_does_not_set_the_range() {
        let values = (0..1000).map(|i| if i == 500 { 1e6 } else { f64::from(i % 10) });
        let (lo, hi) = robust(values);
        assert!(lo > -2.0 && hi < 11.0, "{lo}..{hi}");
    }
}

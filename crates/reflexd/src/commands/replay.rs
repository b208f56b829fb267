//! `reflexd replay`: a recorded log (an MCAP recording of `run --record`, or csv) through the
//! same decoder, windower and graph as `run`,
//! losslessly. Records go to `--out` (JSON lines, the file is replaced) or stdout; the
//! config's sinks are not used, so a replay never drives an actuator. `--plot FILE.svg` also
//! draws the inputs and predictions: the replay is recorded to a temporary MCAP file and read
//! back (see `crate::plot`).

use crate::daemon::{self, provenance, Input};
use crate::model::{self, Loaded};
use crate::reload::{self, Swap};
use anyhow::anyhow;
use reflex_config::{RecordFormat, SinkConfig, SinkKind, SourceConfig, Speed};
use reflex_io::mcap::McapFile;
use reflex_io::recording::{SwapEvent, EVENTS, METADATA, PREDICTIONS};
use reflex_io::sink::Delivery;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The config used without `--config`, for a log that is not a recording.
const DEFAULT_CONFIG: &str = "config/reflex.toml";

/// `max`, `realtime` or a positive factor.
pub fn parse_speed(s: &str) -> Result<Speed, String> {
    match s {
        "max" => Ok(Speed::Max),
        "realtime" => Ok(Speed::Realtime),
        _ => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f > 0.0)
            .map(Speed::Factor)
            .ok_or_else(|| format!("`{s}`: expected max, realtime or a positive factor such as 4")),
    }
}

pub fn run(
    config: Option<&Path>,
    speed: Speed,
    out: Option<&Path>,
    plot: Option<&Path>,
    log: &Path,
) -> anyhow::Result<()> {
    if let Some(p) = plot {
        crate::plot::check_path(p)?;
    }
    let is_mcap = log.extension().is_some_and(|e| e == "mcap");
    // A recording without --config replays with the configs it was recorded with, generation
    // by generation; with --config, that config throughout.
    let (loaded, scheduled) = match config {
        None if is_mcap => recorded_generations(log)?,
        _ => (model::load(config.unwrap_or(Path::new(DEFAULT_CONFIG)))?, Vec::new()),
    };
    let source = loaded.config.source.clone();
    let config = loaded.config.path.clone();
    let input = if is_mcap { Input::mcap(&loaded, log, speed)? } else { Input::log(&loaded, log, speed)? };
    let sink = output_sink(out, log, &config, &loaded, &input)?;
    let sinks = daemon::start_sinks(&[sink], loaded.graph.output_len(), Delivery::Lossless, &config)?;
    let Some(plot) = plot else {
        let options = daemon::Options { progress: true, scheduled, ..Default::default() };
        let summary = daemon::run(loaded, input, sinks, options)?;
        fits(&summary, &source, log)?;
        return complete(&summary, out);
    };
    let labels = crate::reload::labels(&loaded.config).map(|l| l.iter().map(|s| s.to_string()).collect());
    // The recording the plot is drawn from; the directory goes when `scratch` is dropped.
    let scratch = tempfile::Builder::new()
        .prefix("reflexd-plot-")
        .tempdir()
        .map_err(|e| anyhow::anyhow!("--plot: cannot create a temporary directory: {e}"))?;
    let recording = scratch.path().join("replay.mcap");
    let options = daemon::Options {
        progress: true,
        record: Some(recording.clone()),
        compression: reflex_io::mcap::Compression::None,
        scheduled,
        ..Default::default()
    };
    let summary = daemon::run(loaded, input, sinks, options)?;
    fits(&summary, &source, log)?;
    complete(&summary, out)?;
    draw(&recording, &summary, &crate::plot::Meta { log, config: &config, labels }, plot)
}

/// `--out FILE` (never the log or the config, and with its `.meta.json` sidecar), else stdout.
fn output_sink(
    out: Option<&Path>,
    log: &Path,
    config: &Path,
    loaded: &Loaded,
    input: &Input,
) -> anyhow::Result<SinkConfig> {
    let Some(path) = out else {
        return Ok(SinkConfig { kind: SinkKind::Stdout, format: RecordFormat::Json, template: None });
    };
    for (input, what) in [(log, "the log being replayed"), (config, "the config")] {
        if same_file(path, input) {
            anyhow::bail!("{}: --out is {what}; give another file", path.display());
        }
    }
    std::fs::File::create(path).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", path.display()))?;
    write_sidecar(path, loaded, input, log)?;
    Ok(SinkConfig { kind: SinkKind::File { path: path.to_path_buf() }, format: RecordFormat::Json, template: None })
}

/// Reads back the replay's own recording and draws it.
fn draw(recording: &Path, summary: &daemon::Summary, meta: &crate::plot::Meta<'_>, plot: &Path) -> anyhow::Result<()> {
    let rec = crate::plot::Recording::read(recording)
        .map_err(|e| anyhow::anyhow!("--plot: cannot read back the replay's recording: {e}"))?;
    let missing = rec.missing_samples();
    let lost = summary.predictions.saturating_sub(rec.windows() as u64);
    if missing > 0 || lost > 0 {
        tracing::warn!(
            missing_samples = missing,
            missing_windows = lost,
            "the plot's recording fell behind: gaps in the plot"
        );
    }
    crate::plot::draw(&rec, meta, plot)?;
    tracing::info!(windows = rec.windows(), "plot written to {}", plot.display());
    Ok(())
}

/// A log from which not one sample decoded does not fit the config: exit 1 saying why, not a
/// silent empty replay.
fn fits(summary: &daemon::Summary, source: &SourceConfig, log: &Path) -> anyhow::Result<()> {
    let size = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    if summary.samples > 0 || (summary.decode_errors == 0 && size == 0) {
        return Ok(());
    }
    let errors = summary.decode_errors;
    let why = match source.format {
        reflex_config::Format::Csv if log.extension().is_none_or(|e| e != "mcap") => csv_mismatch(source, log),
        f => format!(
            "{errors} malformed frames; the config expects the {} format with {} channels",
            format!("{f:?}").to_lowercase(),
            source.channels
        ),
    };
    anyhow::bail!("{}: not one sample decoded: {why}", log.display())
}

/// Why the lines of a csv log do not decode: their field count, or their content.
fn csv_mismatch(source: &SourceConfig, log: &Path) -> String {
    use std::io::Read;
    let expected = source.channels + usize::from(source.time_column);
    let what = if source.time_column {
        format!("a time column and {} channels", source.channels)
    } else {
        format!("{} channels", source.channels)
    };
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(log) {
        let _ = f.take(64 * 1024).read_to_end(&mut head);
    }
    let text = String::from_utf8_lossy(&head);
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).take(2).collect();
    // The first line may be a header: the second tells more.
    match lines.last().map(|l| l.split(',').count()) {
        Some(n) if n != expected => format!("csv lines have {n} fields; the config expects {expected}: {what}"),
        Some(_) => format!(
            "csv lines have the {expected} fields expected ({what}), but their values do not parse as finite numbers"
        ),
        None => format!("no csv lines; the config expects {expected} fields per line: {what}"),
    }
}

/// Whether `a` and `b` name the same existing file (links and `..` included).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A replay's output holds every record, or the replay fails saying how many are missing.
fn complete(summary: &daemon::Summary, out: Option<&Path>) -> anyhow::Result<()> {
    match summary.sink_lost {
        0 => Ok(()),
        n => {
            let to = out.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
            anyhow::bail!("{to}: {n} of {} records could not be written", summary.predictions)
        }
    }
}

/// The first window and generation of a prediction record.
#[derive(serde::Deserialize)]
struct Stamp {
    window: u64,
    generation: u64,
}

/// A recording's own config (its metadata's, read as if it were still at its recorded path, so
/// that its relative paths resolve as they did), and the graph of each later generation with
/// the first window it computed (from the `swap` events and the records' `generation`).
fn recorded_generations(log: &Path) -> anyhow::Result<(Loaded, Vec<(u64, Swap)>)> {
    let shown = log.display();
    let file = McapFile::open(log)?;
    let metadata = file.metadata(METADATA);
    let text = metadata
        .get("config")
        .ok_or_else(|| anyhow!("{shown}: the recording holds no config: name one with --config"))?;
    let path = PathBuf::from(metadata.get("config_path").map_or("reflex.toml", String::as_str));
    let loaded = model::load_text(&path, text).map_err(|e| anyhow!("{shown}: its recorded config: {e}"))?;
    tracing::info!(config = %path.display(), "replaying with the recording's own config (--config replaces it)");

    let (mut swaps, mut first) = (Vec::new(), BTreeMap::<u64, u64>::new());
    let mut messages = file.messages();
    while let Some(m) = messages.next() {
        match m.topic {
            Some(EVENTS) => match serde_json::from_slice::<SwapEvent>(m.data) {
                Ok(e) if e.event == "swap" => swaps.push(e),
                _ => {}
            },
            Some(PREDICTIONS) => {
                if let Ok(s) = serde_json::from_slice::<Stamp>(m.data) {
                    first.entry(s.generation).and_modify(|w| *w = (*w).min(s.window)).or_insert(s.window);
                }
            }
            _ => {}
        }
    }
    let mut scheduled = Vec::new();
    for e in swaps {
        // A swap with no record of its own (the recording ended first) changes nothing.
        let Some(&window) = first.get(&e.generation) else { continue };
        let generation = e.generation;
        let next = model::load_text(&path, &e.config)
            .map_err(|err| anyhow!("{shown}: the config of generation {generation}: {err}"))?;
        let now = provenance::swap_event(&next.config, &next.graph);
        if now.weights_sha256 != e.weights_sha256 || now.plugin_sha256 != e.plugin_sha256 {
            tracing::warn!(
                generation,
                "{shown}: its weights or plugins differ from the recorded ones: values may differ"
            );
        }
        let Loaded { config, mut graph } = next;
        // As the live reloader did: one window of zeros before the graph is used.
        graph.run(&vec![0.0; graph.input_len()]).map_err(|err| anyhow!("{shown}: generation {generation}: {err}"))?;
        tracing::info!(generation, window, "the recording swapped graphs here: so does the replay");
        scheduled.push((window, Swap { labels: reload::labels(&config), graph, noticed: Instant::now(), event: now }));
    }
    scheduled.sort_by_key(|(w, _)| *w);
    Ok((loaded, scheduled))
}

/// `FILE.meta.json` beside `--out FILE`: what the records' values and the inputs were, for
/// readers of the records (`reflex.read_records`).
fn write_sidecar(out: &Path, loaded: &Loaded, input: &Input, log: &Path) -> anyhow::Result<()> {
    let mut path = out.as_os_str().to_owned();
    path.push(".meta.json");
    let c = &loaded.config;
    let meta = serde_json::json!({
        "log": log.display().to_string(),
        "config": c.path.display().to_string(),
        "format": c.source.format.name(),
        "channels": c.source.channels,
        "channel_names": input.names,
        "units": input.units,
        "outputs": loaded.graph.output_len(),
        "kind": if reload::labels(c).is_some() { "classify" } else { "regress" },
        "labels": c.output.labels,
        "window": {"length": c.window.length, "hop": c.window.hop},
        "reflexd_version": env!("CARGO_PKG_VERSION"),
    });
    std::fs::write(&path, format!("{meta:#}\n"))
        .map_err(|e| anyhow!("{}: cannot write: {e}", Path::new(&path).display()))
}

//! `reflexd replay`: a recorded log (an MCAP recording of `run --record`, or csv) through the
//! same decoder, windower and graph as `run`,
//! losslessly. Records go to `--out` (JSON lines, the file is replaced) or stdout; the
//! config's sinks are not used, so a replay never drives an actuator. `--plot FILE.svg` also
//! draws the inputs and predictions: the replay is recorded to a temporary MCAP file and read
//! back (see `crate::plot`).

use crate::daemon::{self, Input};
use reflex_config::{RecordFormat, SinkConfig, SinkKind, Speed};
use reflex_io::sink::Delivery;
use std::path::Path;

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

pub fn run(config: &Path, speed: Speed, out: Option<&Path>, plot: Option<&Path>, log: &Path) -> anyhow::Result<()> {
    if let Some(p) = plot {
        crate::plot::check_path(p)?;
    }
    let loaded = crate::model::load(config)?;
    let input = if log.extension().is_some_and(|e| e == "mcap") {
        Input::mcap(&loaded, log, speed)?
    } else {
        Input::log(&loaded, log, speed)?
    };
    let kind = match out {
        Some(path) => {
            std::fs::File::create(path).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", path.display()))?;
            SinkKind::File { path: path.to_path_buf() }
        }
        None => SinkKind::Stdout,
    };
    let sink = SinkConfig { kind, format: RecordFormat::Json, template: None };
    let sinks = daemon::start_sinks(&[sink], loaded.graph.output_len(), Delivery::Lossless, config)?;
    let Some(plot) = plot else {
        let summary = daemon::run(loaded, input, sinks, daemon::Options { progress: true, ..Default::default() })?;
        return complete(&summary, out);
    };
    // The recording the plot is drawn from; the directory goes when `scratch` is dropped.
    let scratch = tempfile::Builder::new()
        .prefix("reflexd-plot-")
        .tempdir()
        .map_err(|e| anyhow::anyhow!("--plot: cannot create a temporary directory: {e}"))?;
    let recording = scratch.path().join("replay.mcap");
    let labels = crate::reload::labels(&loaded.config).map(|l| l.iter().map(|s| s.to_string()).collect());
    let options = daemon::Options {
        progress: true,
        record: Some(recording.clone()),
        compression: reflex_io::mcap::Compression::None,
        ..Default::default()
    };
    let summary = daemon::run(loaded, input, sinks, options)?;
    complete(&summary, out)?;
    let rec = crate::plot::Recording::read(&recording)
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
    crate::plot::draw(&rec, &crate::plot::Meta { log, config, labels }, plot)?;
    tracing::info!(windows = rec.windows(), "plot written to {}", plot.display());
    Ok(())
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

//! `reflexd replay`: a recorded log (an MCAP recording of `run --record`, or csv) through the
//! same decoder, windower and graph as `run`,
//! losslessly. Records go to `--out` (JSON lines, the file is replaced) or stdout; the
//! config's sinks are not used, so a replay never drives an actuator.

use crate::daemon::{self, Input};
use reflex_config::{RecordFormat, SinkConfig, SinkKind, Speed};
use std::path::{Path, PathBuf};

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

pub fn run(config: &Path, speed: Speed, out: Option<&Path>, log: &Path) -> anyhow::Result<()> {
    let loaded = crate::model::load(config)?;
    let input = if log.extension().is_some_and(|e| e == "mcap") {
        Input::mcap(&loaded, log, speed)?
    } else {
        Input::log(&loaded, PathBuf::from(log), speed)?
    };
    let kind = match out {
        Some(path) => {
            std::fs::File::create(path).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", path.display()))?;
            SinkKind::File { path: path.to_path_buf() }
        }
        None => SinkKind::Stdout,
    };
    let sink = SinkConfig { kind, format: RecordFormat::Json, template: None };
    let sinks = daemon::start_sinks(&[sink], loaded.graph.output_len(), config)?;
    daemon::run(loaded, input, sinks, daemon::Options { progress: true, ..Default::default() })?;
    Ok(())
}

//! `reflexd run`: the daemon.

use crate::daemon::{self, metrics, Input};
use reflex_io::mcap::Compression;
use reflex_io::sink::Delivery;
use std::path::Path;

pub fn run(config: &Path, record: Option<&Path>, compression: Compression) -> anyhow::Result<()> {
    if let Some(r) = record {
        // A recording, the running config, the log being replayed: whatever is there is kept.
        if std::fs::symlink_metadata(r).is_ok() {
            anyhow::bail!("{}: --record: the file already exists; recordings never replace a file", r.display());
        }
    }
    let loaded = crate::model::load(config)?;
    let input = Input::from_config(&loaded)?;
    // Before anything starts: a port in use is one line, and no recording is created.
    let labels = loaded.config.labels.as_ref().map(reflex_io::labels::bind).transpose();
    let labels = labels.map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let metrics = loaded.config.metrics.as_ref().map(|m| metrics::bind(m, config)).transpose()?;
    let sinks = daemon::default_sinks(&loaded.config.sinks);
    let sinks = daemon::start_sinks(&sinks, loaded.graph.output_len(), Delivery::DropOldest, config)?;
    let live = loaded.config.live.clone();
    let telemetry = metrics::Telemetry::default();
    // Serves until `run` has returned: through the shutdown and its `stopped` line.
    let _endpoint = metrics.map(|m| m.serve(telemetry.clone(), sinks.stats())).transpose()?;
    tracing::info!(config = %config.display(), layers = loaded.graph.layers().len(), "reflexd running");
    let record = record.map(Path::to_path_buf);
    let options = daemon::Options {
        reload: true,
        record,
        compression,
        labels,
        live,
        telemetry,
        notify: true,
        ..Default::default()
    };
    daemon::run(loaded, input, sinks, options)?;
    Ok(())
}

/// `zstd`, `lz4` or `none`.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::from_flag(s).ok_or_else(|| format!("`{s}`: expected zstd, lz4 or none"))
}

//! Config file → built graph, shared by every command.

use reflex_config::{Config, OutputKind, Problems};
use reflex_graph::{registry, Graph};
use reflex_plugin_sdk::Shape;
use std::path::{Path, PathBuf};

pub struct Loaded {
    pub config: Config,
    pub graph: Graph,
}

/// Where plugins are looked for: `model.plugin_dir`, else the directory holding `reflexd`.
pub fn plugin_dir(config: &Config) -> PathBuf {
    config.model.plugin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

/// Loads the config and builds its graph, collecting every problem.
pub fn load(path: &Path) -> Result<Loaded, Problems> {
    let config = reflex_config::load(path)?;
    let shown = path.display();
    let input = Shape::Seq { channels: config.source.channels, length: config.window.length };
    let mut graph = Graph::build(&config.model, input, &mut registry(), &plugin_dir(&config))
        .map_err(|errors| Problems(errors.iter().map(|e| format!("{shown}: {e}")).collect()))?;
    graph.set_hop(config.window.hop);
    let out = graph.output_len();
    if config.output.kind == OutputKind::Classify && config.output.labels.len() != out {
        return Err(Problems(vec![format!(
            "{shown}: [output] labels has {} entries but the model outputs {out} values",
            config.output.labels.len()
        )]));
    }
    Ok(Loaded { config, graph })
}

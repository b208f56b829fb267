//! Config file → built graph, shared by every command.

use reflex_config::{Config, OutputKind};
use reflex_graph::{registry, BuildErrors, Graph};
use reflex_plugin_sdk::Shape;
use std::fmt;
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

/// Why a config did not become a graph. The libraries' errors carry their context as data;
/// this is where the config file's name is put before each of their lines.
#[derive(Debug)]
pub enum LoadError {
    /// The config file itself (its errors already name the file).
    Config(reflex_config::Errors),
    /// The graph's problems, in config order.
    Graph { file: PathBuf, errors: BuildErrors },
    /// `[output] labels` does not match the model's output.
    Labels { file: PathBuf, labels: usize, outputs: usize },
    /// `[safety] neutral` does not match the model's output.
    Neutral { file: PathBuf, neutral: usize, outputs: usize },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Config(e) => write!(f, "{e}"),
            LoadError::Graph { file, errors } => {
                let lines: Vec<String> = errors.iter().map(|e| format!("{}: {e}", file.display())).collect();
                f.write_str(&lines.join("\n"))
            }
            LoadError::Labels { file, labels, outputs } => write!(
                f,
                "{}: [output] labels has {labels} entries but the model outputs {outputs} values",
                file.display()
            ),
            LoadError::Neutral { file, neutral, outputs } => write!(
                f,
                "{}: [safety] neutral has {neutral} entries but the model outputs {outputs} values",
                file.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Loads the config and builds its graph, collecting every problem.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let config = reflex_config::load(path).map_err(LoadError::Config)?;
    let input = Shape::Seq { channels: config.source.channels, length: config.window.length };
    let mut graph = Graph::build(&config.model, input, &mut registry(), &plugin_dir(&config))
        .map_err(|errors| LoadError::Graph { file: path.to_path_buf(), errors })?;
    graph.set_hop(config.window.hop);
    let outputs = graph.output_len();
    let labels = config.output.labels.len();
    if config.output.kind == OutputKind::Classify && labels != outputs {
        return Err(LoadError::Labels { file: path.to_path_buf(), labels, outputs });
    }
    if let Some(neutral) = config.safety.neutral.as_ref().map(Vec::len).filter(|n| *n != outputs) {
        return Err(LoadError::Neutral { file: path.to_path_buf(), neutral, outputs });
    }
    Ok(Loaded { config, graph })
}

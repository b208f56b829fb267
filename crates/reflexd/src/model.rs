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

/// Where the Debian package installs the plugin libraries (docs/install.md).
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/reflex/plugins";

/// Where plugins are looked for: `model.plugin_dir` when the config sets it; else the directory
/// holding `reflexd`, then [`SYSTEM_PLUGIN_DIR`] — the first that holds every plugin library the
/// config names (or, when none does, the one holding most of them; the executable's on a tie).
pub fn plugin_dir(config: &Config) -> PathBuf {
    if let Some(dir) = &config.model.plugin_dir {
        return dir.clone();
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let plugins: Vec<&str> = config.model.layers.iter().map(|l| l.plugin.as_str()).collect();
    search(&[beside, PathBuf::from(SYSTEM_PLUGIN_DIR)], &plugins)
}

/// The first of `dirs` holding a library for every one of `plugins` (built-in layers have none
/// anywhere, so they do not count), else the one holding most; `dirs[0]` on a tie.
pub fn search(dirs: &[PathBuf], plugins: &[&str]) -> PathBuf {
    let held = |d: &PathBuf| plugins.iter().filter(|p| d.join(format!("lib{p}.so")).is_file()).count();
    let mut best: Option<(&PathBuf, usize)> = None;
    for d in dirs {
        let n = held(d);
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((d, n));
        }
    }
    best.map_or_else(|| PathBuf::from("."), |(d, _)| d.clone())
}

#[cfg(test)]
mod tests {
    use super::search;

    #[test]
    fn plugins_are_looked_for_beside_reflexd_then_in_the_system_directory() {
        let root = tempfile::tempdir().unwrap();
        let (beside, system) = (root.path().join("bin"), root.path().join("plugins"));
        for d in [&beside, &system] {
            std::fs::create_dir(d).unwrap();
        }
        let dirs = [beside.clone(), system.clone()];
        let touch = |d: &std::path::Path, p: &str| std::fs::write(d.join(format!("lib{p}.so")), b"").unwrap();
        // Nowhere: beside reflexd (errors name it).
        assert_eq!(search(&dirs, &["conv_depthwise", "linear"]), beside);
        // Only installed: the system directory.
        touch(&system, "conv_depthwise");
        assert_eq!(search(&dirs, &["conv_depthwise", "linear"]), system);
        // Built beside reflexd too: beside wins.
        touch(&beside, "conv_depthwise");
        assert_eq!(search(&dirs, &["conv_depthwise", "linear"]), beside);
        // Beside holds only some: the directory holding them all.
        touch(&system, "residual");
        assert_eq!(search(&dirs, &["conv_depthwise", "residual"]), system);
    }
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
    /// The model gives NaN or ±inf on a plain window: every window would get a fallback.
    NotFinite { file: PathBuf, probe: &'static str, value: f32 },
    /// The model fails on a plain window.
    Probe { file: PathBuf, probe: &'static str, error: String },
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
            LoadError::NotFinite { file, probe, value } => write!(
                f,
                "{}: the model outputs {value} on a window of {probe}: its weights overflow f32 (every window would get a fallback record)",
                file.display()
            ),
            LoadError::Probe { file, probe, error } => {
                write!(f, "{}: the model fails on a window of {probe}: {error}", file.display())
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Loads the config and builds its graph, collecting every problem.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    build(reflex_config::load(path).map_err(LoadError::Config)?)
}

/// Builds the graph of a config read from `text` as if it were the file `path` (its relative
/// paths are relative to `path`'s directory): a recording's config.
pub fn load_text(path: &Path, text: &str) -> Result<Loaded, LoadError> {
    build(reflex_config::parse(path, text, std::env::vars()).map_err(LoadError::Config)?)
}

/// Builds a loaded config's graph.
fn build(config: Config) -> Result<Loaded, LoadError> {
    let path = config.path.clone();
    let path = path.as_path();
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
    probe(&mut graph, path)?;
    Ok(Loaded { config, graph })
}

/// Plain windows (normalised input of zeros, ones, minus ones) through the graph: weights that
/// pass every shape check but overflow f32 (values near 3e38) would make every window NaN or
/// infinite — refused here, by `check` as by `run`, not found out on the robot.
fn probe(graph: &mut Graph, path: &Path) -> Result<(), LoadError> {
    for (probe, value) in [("zeros", 0.0), ("ones", 1.0), ("minus ones", -1.0)] {
        let window = vec![value; graph.input_len()];
        let file = path.to_path_buf();
        let out =
            graph.run(&window).map_err(|e| LoadError::Probe { file: file.clone(), probe, error: e.to_string() })?;
        if let Some(&value) = out.iter().find(|v| !v.is_finite()) {
            return Err(LoadError::NotFinite { file, probe, value });
        }
    }
    Ok(())
}

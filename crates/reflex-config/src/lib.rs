//! The Reflex config file (SPEC §2): TOML read with the `config` crate, `REFLEX__SECTION__KEY`
//! environment variables on top, every relative path resolved against the file's directory.
//!
//! Loading never stops at the first mistake: it returns every problem it finds, one line each,
//! naming the file, the section and the key, so `reflexd check` can list them all at once.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("reflex.toml");
//! std::fs::write(&path, r#"
//!     [source]
//!     channels = 6
//!     [window]
//!     length = 128
//!     [model]
//!     [[model.layers]]
//!     name = "pool"
//!     plugin = "global_avg_pool"
//! "#)?;
//! let config = reflex_config::load(&path)?;
//! assert_eq!(config.window.hop, 1);
//! assert_eq!(config.model.layers[0].plugin, "global_avg_pool");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod model;
mod output;
mod sink;
mod source;
mod window;

pub use model::{LayerConfig, ModelConfig};
pub use output::{OutputConfig, OutputKind};
pub use sink::{RecordFormat, SinkConfig, SinkKind};
pub use source::{FrameFormat, SourceConfig, SourceKind, Speed};
pub use window::WindowConfig;

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// Every problem found, one line each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn push(&mut self, line: impl Into<String>) {
        self.0.push(line.into());
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }
    /// `Ok(value)` when nothing was found.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

/// A loaded, validated config.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// The file's text as read (recordings keep it for provenance).
    pub text: String,
    pub source: SourceConfig,
    pub window: WindowConfig,
    pub model: ModelConfig,
    pub output: OutputConfig,
    pub sinks: Vec<SinkConfig>,
}

const SECTIONS: [&str; 5] = ["source", "window", "model", "output", "sinks"];
const ENV_PREFIX: &str = "REFLEX";

/// Reads, merges with the environment, and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, Problems> {
    let shown = path.display().to_string();
    let one = |m: String| Problems(vec![format!("{shown}: {m}")]);
    let text = std::fs::read_to_string(path).map_err(|e| one(format!("cannot read: {e}")))?;
    parse(path, &text, std::env::vars())
}

/// Like [`load`], from text, with the environment given explicitly (for tests and fuzzing).
pub fn parse(path: &Path, text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, Problems> {
    let shown = path.display().to_string();
    let one = |m: String| Problems(vec![format!("{shown}: {m}")]);
    // The toml crate gives line and column; config's own message for the same error spans
    // several lines.
    if let Err(e) = text.parse::<toml::Table>() {
        let at = e.span().map(|s| line_col(text, s.start)).map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default();
        let message: Vec<&str> = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        return Err(Problems(vec![format!("{shown}{at}: {}", message.join(", "))]));
    }
    let env: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    let merged = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        )
        .build()
        .map_err(|e| one(e.to_string()))?;
    let doc: serde_json::Value = merged.try_deserialize().map_err(|e| one(e.to_string()))?;
    let serde_json::Value::Object(mut doc) = doc else {
        return Err(one("the file must be a TOML table".into()));
    };

    let mut problems = Problems::default();
    for key in doc.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.push(format!("{shown}: unknown section [{key}] (expected one of {})", SECTIONS.join(", ")));
        }
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut section = |name: &str, required: bool| -> Option<serde_json::Value> {
        match doc.remove(name) {
            Some(v) => Some(v),
            None if required => {
                problems.push(format!("{shown}: missing section [{name}]"));
                None
            }
            None => Some(serde_json::Value::Null),
        }
    };
    let (s, w, m, o, k) = (
        section("source", true),
        section("window", true),
        section("model", true),
        section("output", false),
        section("sinks", false),
    );
    let source = s.and_then(|v| typed::<SourceConfig>(&shown, "source", v, &mut problems));
    let window = w.and_then(|v| typed::<WindowConfig>(&shown, "window", v, &mut problems));
    let model = m.and_then(|v| model::parse(&shown, v, &mut problems));
    let output = o.and_then(|v| typed::<OutputConfig>(&shown, "output", null_to_empty(v), &mut problems));
    let sinks = k.and_then(|v| typed::<Vec<SinkConfig>>(&shown, "sinks", null_to_array(v), &mut problems));

    let report = |problems: &mut Problems, section: &str, r: Result<(), Vec<String>>| {
        for m in r.err().unwrap_or_default() {
            problems.push(format!("{shown}: [{section}] {m}"));
        }
    };
    if let Some(s) = &source {
        report(&mut problems, "source", s.validate());
    }
    if let (Some(w), Some(s)) = (&window, &source) {
        report(&mut problems, "window", w.validate(s.channels));
    }
    if let Some(o) = &output {
        report(&mut problems, "output", o.validate());
    }
    for (i, sink) in sinks.iter().flatten().enumerate() {
        report(&mut problems, &format!("sinks[{i}]"), sink.validate());
    }

    match (source, window, model, output, sinks) {
        (Some(mut source), Some(window), Some(mut model), Some(output), Some(mut sinks)) if problems.is_empty() => {
            source.resolve_paths(base);
            model.resolve_paths(base);
            for s in &mut sinks {
                s.resolve_paths(base);
            }
            Ok(Config { path: path.to_path_buf(), text: text.to_string(), source, window, model, output, sinks })
        }
        _ => Err(problems),
    }
}

fn null_to_empty(v: serde_json::Value) -> serde_json::Value {
    if v.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        v
    }
}

fn null_to_array(v: serde_json::Value) -> serde_json::Value {
    if v.is_null() {
        serde_json::Value::Array(Vec::new())
    } else {
        v
    }
}

/// Deserializes one section, reporting the failing key's path.
pub(crate) fn typed<T: DeserializeOwned>(
    file: &str,
    section: &str,
    v: serde_json::Value,
    problems: &mut Problems,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let at = e.path().to_string();
            let at = if at == "." { String::new() } else { format!(" {at}:") };
            problems.push(format!("{file}: [{section}]{at} {}", e.inner()));
            None
        }
    }
}

pub(crate) fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;

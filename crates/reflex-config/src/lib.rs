//! The Reflex config file (docs/config.md): TOML read with the `config` crate, `REFLEX__SECTION__KEY`
//! environment variables on top, every relative path resolved against the file's directory.
//!
//! Loading never stops at the first mistake: it returns every problem it finds as an [`Error`]
//! that holds the file and the place (line, section, key, layer) as data, so `reflexd check`
//! can list them all at once, one line each.
//!
//! | module | section |
//! | --- | --- |
//! | `source` | `[source]`: the device or log, its [`Format`] (the decoders' own type) |
//! | `window` | `[window]`: length, hop, queue, normalisation |
//! | `model` | `[model]` and `[[model.layers]]` |
//! | `output` | `[output]`: regress or classify |
//! | `sink` | `[[sinks]]` |
//! | `safety` | `[safety]`: fallback records |
//! | `labels` | `[labels]`: where the daemon takes activity marks for its recording |
//! | `live` | `[live]`: the Foxglove live view |
//! | `metrics` | `[metrics]`: the Prometheus endpoint |
//! | `error` | [`Error`], [`Place`], [`Errors`] |
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

mod address;
mod error;
mod labels;
mod live;
mod metrics;
mod model;
mod output;
mod runtime;
mod safety;
mod sink;
mod source;
mod swap;
mod window;

pub mod file;
pub use error::{Error, Errors, Place};
pub use labels::LabelsConfig;
pub use live::LiveConfig;
pub use metrics::MetricsConfig;
pub use model::{LayerConfig, ModelConfig};
pub use output::{OutputConfig, OutputKind};
pub use reflex_codecs::Format;
pub use runtime::RuntimeConfig;
pub use safety::{Fallback, SafetyConfig};
pub use sink::{RecordFormat, SinkConfig, SinkKind};
pub use source::{check_channel_names, SourceConfig, SourceKind, Speed, RESERVED_NAMES};
pub use swap::SwapConfig;
pub use window::WindowConfig;

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A loaded, validated config.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// The file's text as read (recordings keep it for provenance).
    pub text: String,
    /// `[source]`.
    pub source: SourceConfig,
    /// `[window]`.
    pub window: WindowConfig,
    /// `[model]`.
    pub model: ModelConfig,
    /// `[output]`.
    pub output: OutputConfig,
    /// `[[sinks]]`.
    pub sinks: Vec<SinkConfig>,
    /// `[safety]`.
    pub safety: SafetyConfig,
    /// `[swap]`.
    pub swap: SwapConfig,
    /// `[labels]`: activity marks for the recording (not `[output] labels`, the class names).
    pub labels: Option<LabelsConfig>,
    /// `[runtime]`.
    pub runtime: RuntimeConfig,
    /// `[live]`, when the daemon serves a live view.
    pub live: Option<LiveConfig>,
    /// `[metrics]`, when the file has it.
    pub metrics: Option<MetricsConfig>,
}

const SECTIONS: [&str; 11] =
    ["source", "window", "model", "output", "sinks", "safety", "swap", "labels", "runtime", "live", "metrics"];
const ENV_PREFIX: &str = "REFLEX";

/// Problems found so far in one file.
pub(crate) struct Found {
    file: PathBuf,
    errors: Vec<Error>,
}

impl Found {
    fn new(file: &Path) -> Found {
        Found { file: file.into(), errors: Vec::new() }
    }

    /// Notes a problem.
    pub(crate) fn at(&mut self, place: Place, what: impl Into<String>) {
        self.errors.push(Error { file: self.file.clone(), place, what: what.into() });
    }

    /// The one problem that ends loading.
    fn only(file: &Path, place: Place, what: impl Into<String>) -> Errors {
        Errors(vec![Error { file: file.into(), place, what: what.into() }])
    }

    fn len(&self) -> usize {
        self.errors.len()
    }
}

/// Reads, merges with the environment, and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, Errors> {
    let bytes =
        file::read_bounded(path, file::CONFIG_LIMIT).map_err(|e| Found::only(path, Place::File, e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| Found::only(path, Place::File, "not UTF-8 text".to_string()))?;
    parse(path, &text, std::env::vars())
}

/// Like [`load`], from text, with the environment given explicitly (for tests and fuzzing).
pub fn parse(path: &Path, text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, Errors> {
    let mut doc = merge(path, text, env)?;
    let mut found = Found::new(path);
    for key in doc.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            found.at(Place::File, format!("unknown section [{key}] (expected one of {})", SECTIONS.join(", ")));
        }
    }
    let mut section = |name: &str, required: bool, found: &mut Found| match doc.remove(name) {
        Some(v) => Some(v),
        None if required => {
            found.at(Place::File, format!("missing section [{name}]"));
            None
        }
        None => Some(serde_json::Value::Null),
    };
    let source = section("source", true, &mut found);
    let window = section("window", true, &mut found);
    let model = section("model", true, &mut found);
    let output = section("output", false, &mut found).map(null_to_empty);
    let sinks = section("sinks", false, &mut found).map(null_to_array);
    let source = source.and_then(|v| typed::<SourceConfig>("source", v, &mut found));
    let window = window.and_then(|v| typed::<WindowConfig>("window", v, &mut found));
    let model = model.and_then(|v| model::parse(v, &mut found));
    let output = output.and_then(|v| typed::<OutputConfig>("output", v, &mut found));
    let sinks = sinks.and_then(|v| typed::<Vec<SinkConfig>>("sinks", v, &mut found));
    validate(&mut found, source.as_ref(), window.as_ref(), output.as_ref(), sinks.as_deref());
    let safety = setting::<SafetyConfig>("safety", &mut doc, &mut found);
    let swap = setting::<SwapConfig>("swap", &mut doc, &mut found);
    let labels = setting::<Option<LabelsConfig>>("labels", &mut doc, &mut found);
    let runtime = setting::<RuntimeConfig>("runtime", &mut doc, &mut found);
    let live = setting::<Option<LiveConfig>>("live", &mut doc, &mut found);
    let metrics = setting::<Option<MetricsConfig>>("metrics", &mut doc, &mut found);
    // Every section typed: a config, unless a problem was found on the way.
    let config = (|| {
        let (path, text) = (path.into(), text.into());
        let (source, window, model, output, sinks) = (source?, window?, model?, output?, sinks?);
        let (safety, swap, labels, runtime) = (safety?, swap?, labels?, runtime?);
        let (live, metrics) = (live?, metrics?);
        Some(Config { path, text, source, window, model, output, sinks, safety, swap, labels, runtime, live, metrics })
    })();
    match config {
        Some(config) if found.errors.is_empty() => Ok(config.resolve_paths()),
        _ => Err(Errors(found.errors)),
    }
}

/// The TOML text with the environment's overrides on top, as one JSON table.
fn merge(
    path: &Path,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<serde_json::Map<String, serde_json::Value>, Errors> {
    // The toml crate gives line and column; config's own message for the same error spans
    // several lines.
    if let Err(e) = text.parse::<toml::Table>() {
        let message: Vec<&str> = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let place = e.span().map_or(Place::File, |s| line_col(text, s.start));
        return Err(Found::only(path, place, message.join(", ")));
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
        .map_err(|e| Found::only(path, Place::File, e.to_string()))?;
    let doc: serde_json::Value = merged.try_deserialize().map_err(|e| Found::only(path, Place::File, e.to_string()))?;
    match doc {
        serde_json::Value::Object(doc) => Ok(doc),
        _ => Err(Found::only(path, Place::File, "the file must be a TOML table")),
    }
}

/// Each section's own checks, and those across sections.
fn validate(
    found: &mut Found,
    source: Option<&SourceConfig>,
    window: Option<&WindowConfig>,
    output: Option<&OutputConfig>,
    sinks: Option<&[SinkConfig]>,
) {
    let mut report = |section: String, problems: Vec<String>| {
        for m in problems {
            found.at(Place::Section(section.clone()), m);
        }
    };
    if let Some(s) = source {
        report("source".into(), s.validate());
    }
    if let (Some(w), Some(s)) = (window, source) {
        report("window".into(), w.validate(s.channels));
    }
    if let Some(o) = output {
        report("output".into(), o.validate());
    }
    for (i, sink) in sinks.iter().copied().flatten().enumerate() {
        report(format!("sinks[{i}]"), sink.validate());
    }
}

impl Config {
    /// Relative paths are relative to the config file.
    fn resolve_paths(mut self) -> Config {
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        self.source.resolve_paths(&base);
        self.model.resolve_paths(&base);
        for s in &mut self.sinks {
            s.resolve_paths(&base);
        }
        self
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
pub(crate) fn typed<T: DeserializeOwned>(section: &str, v: serde_json::Value, found: &mut Found) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let key = e.path().to_string();
            let place =
                if key == "." { Place::Section(section.into()) } else { Place::Key { section: section.into(), key } };
            found.at(place, e.inner().to_string());
            None
        }
    }
}

/// An optional section of settings (`[safety]`, `[swap]`, `[labels]`, …): its type, its own
/// checks, and what it is when the file has none.
pub(crate) trait Setting: DeserializeOwned {
    /// The section's own checks: one line per problem.
    fn validate(&self) -> Vec<String>;
    /// An absent section reads as an empty table (every key's default)…
    const ABSENT: fn() -> serde_json::Value = || serde_json::Value::Object(Default::default());
}

/// …or, for a section that is off unless present, as nothing.
impl<T: Setting> Setting for Option<T> {
    fn validate(&self) -> Vec<String> {
        self.as_ref().map(T::validate).unwrap_or_default()
    }
    const ABSENT: fn() -> serde_json::Value = || serde_json::Value::Null;
}

/// Takes the optional section `name` out of `doc`, typed and checked.
fn setting<T: Setting>(
    name: &str,
    doc: &mut serde_json::Map<String, serde_json::Value>,
    found: &mut Found,
) -> Option<T> {
    let value = doc.remove(name).filter(|v| !v.is_null()).unwrap_or_else(T::ABSENT);
    let setting = typed::<T>(name, value, found)?;
    for m in setting.validate() {
        found.at(Place::Section(name.into()), m);
    }
    Some(setting)
}

pub(crate) fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

fn line_col(text: &str, offset: usize) -> Place {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Place::Line { line, column }
}

#[cfg(test)]
mod tests;

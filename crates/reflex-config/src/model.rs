//! `[model]` and its `[[model.layers]]`.
//!
//! A layer's table mixes the host's keys (`name`, `plugin`, `input`, `inputs`) with the
//! plugin's own; the plugin's keys are kept as JSON and checked by the plugin itself, which
//! alone knows them.

use crate::{Found, Place};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One `[[model.layers]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerConfig {
    /// Unique; prefixes the layer's tensor names (`{name}.weight`).
    pub name: String,
    /// A plugin or built-in layer name, e.g. `"conv_depthwise"`, `"linear"`.
    pub plugin: String,
    /// Reads this earlier layer's output (or `"input"`) instead of the previous layer's.
    pub input: Option<String>,
    /// The layers an `add` sums.
    pub inputs: Option<Vec<String>>,
    /// Every other key, for the plugin to interpret.
    pub params: Map<String, Value>,
}

/// `[model]`.
#[derive(Clone, Debug, Default)]
pub struct ModelConfig {
    /// The safetensors file with every layer's tensors.
    pub weights: Option<PathBuf>,
    /// Where plugin libraries live; default: the directory holding `reflexd`.
    pub plugin_dir: Option<PathBuf>,
    /// In execution order.
    pub layers: Vec<LayerConfig>,
}

impl ModelConfig {
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.weights, &mut self.plugin_dir].into_iter().flatten() {
            crate::resolve(base, p);
        }
    }
}

/// The keys of `[model]` other than `layers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelKeys {
    /// The safetensors file.
    #[serde(default)]
    weights: Option<PathBuf>,
    /// Where plugin libraries live.
    #[serde(default)]
    plugin_dir: Option<PathBuf>,
    /// Parsed separately, layer by layer.
    #[serde(default)]
    layers: Value,
}

pub(crate) fn parse(v: Value, found: &mut Found) -> Option<ModelConfig> {
    let keys: ModelKeys = crate::typed("model", v, found)?;
    let Value::Array(raw) = keys.layers else {
        found.at(Place::Section("model".into()), "needs [[model.layers]] entries");
        return None;
    };
    if raw.is_empty() {
        found.at(Place::Section("model".into()), "has no layers");
        return None;
    }
    let before = found.len();
    let layers: Vec<LayerConfig> = raw
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| match layer(v) {
            Ok(l) => Some(l),
            Err(Bad { name, what }) => {
                found.at(Place::Layer { number: i + 1, name }, what);
                None
            }
        })
        .collect();
    (found.len() == before).then_some(ModelConfig { weights: keys.weights, plugin_dir: keys.plugin_dir, layers })
}

/// What is wrong with one layer's table, and its name if it has one.
struct Bad {
    name: Option<String>,
    what: String,
}

impl Bad {
    fn new(name: Option<&str>, what: impl Into<String>) -> Bad {
        Bad { name: name.map(Into::into), what: what.into() }
    }
}

fn layer(v: Value) -> Result<LayerConfig, Bad> {
    let Value::Object(mut params) = v else {
        return Err(Bad::new(None, "a layer must be a table"));
    };
    let mut text = |key: &str| -> Result<Option<String>, Bad> {
        match params.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Bad::new(None, format!("`{key}` must be a string, not {other}"))),
        }
    };
    let name = text("name")?.ok_or_else(|| Bad::new(None, "missing key `name`"))?;
    let named = Some(name.as_str());
    let plugin = text("plugin")?.ok_or_else(|| Bad::new(named, "missing key `plugin`"))?;
    let input = text("input")?;
    let inputs = match params.remove("inputs") {
        None => None,
        Some(Value::Array(a)) => Some(
            a.into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(Bad::new(named, format!("`inputs` must list layer names, not {other}"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => return Err(Bad::new(named, format!("`inputs` must be a list of layer names, not {other}"))),
    };
    if name.is_empty() {
        return Err(Bad::new(None, "`name` is empty"));
    }
    Ok(LayerConfig { name, plugin, input, inputs, params })
}

//! What can go wrong, as data: the cause, wrapped in the context it happened in (the layer and
//! its plugin, the weights file, the tensor). `Display` gives the one line a user reads; the
//! caller adds the config file in front (`reflexd` does).

use crate::weights::WeightsError;
use crate::{INPUT, MAX_VALUES};
use reflex_plugin_host::{LoadError, PluginError};
use reflex_plugin_sdk::Shape;
use std::fmt;
use std::path::PathBuf;

/// Every problem [`Graph::build`](crate::Graph::build) found, in config order.
#[derive(Debug, Default)]
pub struct BuildErrors(pub Vec<BuildError>);

impl BuildErrors {
    /// The problems, one per line of the message.
    pub fn iter(&self) -> std::slice::Iter<'_, BuildError> {
        self.0.iter()
    }
}

impl fmt::Display for BuildErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One problem a line: reflexd prefixes each with `error: `.
        f.write_str(&self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    }
}

impl std::error::Error for BuildErrors {}

/// One problem with `[model]`, in its context.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A layer cannot be built as configured.
    #[error("layer {layer} ({plugin}): {cause}")]
    Layer {
        /// The layer's `name`.
        layer: String,
        /// The layer's `plugin`.
        plugin: String,
        /// What is wrong with it.
        cause: LayerError,
    },
    /// The weights file cannot be read.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The weights file holds a tensor no layer asks for.
    #[error("tensor `{tensor}` in {} is not used by any layer", file.display())]
    UnusedTensor {
        /// The weights file.
        file: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
    /// The weights file was saved from an unnamed `nn.Sequential`: none of its names can match.
    #[error(
        "{}: the tensors are named like a bare nn.Sequential state_dict ({}); Reflex names them after the config's layers ({expected} …): export the model with reflex.export(model, out_dir, channels=…, length=…) from the reflex Python package",
        file.display(),
        quoted(found)
    )]
    BareStateDict {
        /// The weights file.
        file: PathBuf,
        /// A few of its tensor names.
        found: Vec<String>,
        /// The first tensor name the config asks for.
        expected: String,
    },
}

/// `'0.weight', '1.running_mean', …`
fn quoted(names: &[String]) -> String {
    let mut s: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    s.push("…".into());
    s.join(", ")
}

/// Why one layer cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Layers are named after their outputs, and `input` is the graph's.
    #[error("the name `{INPUT}` is reserved for the graph's input")]
    ReservedName,
    /// Two layers have the same `name`.
    #[error("the name `{0}` is used twice")]
    DuplicateName(String),
    /// `add` given `input`.
    #[error("`add` takes `inputs = [\"A\", \"B\"]`, not `input`")]
    AddTakesInputs,
    /// `add` given fewer than two `inputs`.
    #[error("`add` needs `inputs` naming at least two layers")]
    AddNeedsTwoInputs,
    /// A one-input layer given `inputs`.
    #[error("`inputs` is for `add`; name one layer with `input`")]
    InputsIsForAdd,
    /// An input names no layer before this one.
    #[error("input `{0}` is not an earlier layer (or `{INPUT}`)")]
    UnknownInput(String),
    /// The keys of a graph-level layer (`add`) do not parse.
    #[error("{}", reflex_plugin_sdk::config_message(.0))]
    Keys(serde_json::Error),
    /// The plugin cannot be found or opened.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The layer refused its keys, input shape or tensors.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The inputs of `add` differ in shape.
    #[error("inputs have different shapes: {0} and {1}")]
    InputShapes(Shape, Shape),
    /// The layer's buffers could not be allocated.
    #[error("output {output} and scratch of {scratch} values: more than the {MAX_VALUES} a layer may use")]
    TooLarge {
        /// The layer's output shape.
        output: Shape,
        /// Its scratch, in values.
        scratch: usize,
    },
    /// The layer has tensors but `[model]` has no `weights`.
    #[error("needs tensor `{tensor}` but [model] names no weights file")]
    NoWeightsFile {
        /// The tensor's full name.
        tensor: String,
    },
    /// A tensor the layer needs is not in the weights file.
    #[error("tensor `{tensor}` {dims:?} is missing from {}", file.display())]
    MissingTensor {
        /// The weights file.
        file: PathBuf,
        /// The tensor's full name.
        tensor: String,
        /// Its expected shape.
        dims: Vec<usize>,
    },
    /// A tensor has another shape than the layer's.
    #[error("tensor `{tensor}` in {} has shape {found:?}, expected {expected:?}", file.display())]
    TensorShape {
        /// The weights file.
        file: PathBuf,
        /// The tensor's full name.
        tensor: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The shape the layer needs.
        expected: Vec<usize>,
    },
    /// The last layer keeps the time axis.
    #[error(
        "the final layer outputs {0}, but the model's output must be 1-D: end with global_avg_pool, flatten or linear"
    )]
    NotOneDimensional(Shape),
}

/// A forward pass failed for one window.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The window does not have the graph's input length.
    #[error("the window has {got} values, the graph takes {expected}")]
    InputLength {
        /// Values the graph takes.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A layer failed.
    #[error("layer {layer}: {cause}")]
    Layer {
        /// The layer's name.
        layer: String,
        /// What the plugin said.
        cause: PluginError,
    },
}

//! The built graph and what it tells about itself; building, planning and running are in
//! `build`, `plan` and `run`.

use crate::buffer::Value;
use crate::layer::Layer;
use crate::plan::{Keep, ReadField, Stream};
use reflex_plugin_host::Origin;
use reflex_plugin_sdk::Shape;

/// The most values one layer's output or scratch may hold (256 MiB of f32).
pub const MAX_VALUES: usize = 1 << 26;

/// The name of the graph's own input in `input = "…"`.
pub const INPUT: &str = "input";

/// What `inspect` shows of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    /// The layer's `name`.
    pub name: String,
    /// The plugin (or built-in) that computes it.
    pub plugin: String,
    /// The plugin's version.
    pub version: String,
    /// Where the plugin came from.
    pub origin: Origin,
    /// Its input shape (the first input's, for `add`).
    pub input: Shape,
    /// Its output shape.
    pub output: Shape,
    /// Weight values.
    pub params: u64,
    /// Multiply-accumulates per window.
    pub macs: u64,
    /// Input samples one output position sees; `None` once the time axis is gone.
    pub receptive_field: Option<u64>,
    /// What streaming inference does with this layer (set by [`Graph::set_hop`]).
    pub stream: Stream,
}

/// One layer in the graph.
pub(crate) struct Node {
    pub layer: Box<dyn Layer>,
    /// Indices into `Graph::values`; always below this node's own output index.
    pub inputs: Vec<usize>,
    pub scratch_len: usize,
    /// What one output position reads; `None` when the layer cannot compute part of its output.
    pub window: Option<ReadField>,
    pub output: Shape,
}

/// A built graph: every layer configured and loaded, every buffer allocated.
pub struct Graph {
    pub(crate) nodes: Vec<Node>,
    /// `values[0]` is the input window, `values[i + 1]` node i's output.
    pub(crate) values: Vec<Value>,
    /// Layers' scratch, from `scratch_at` (a cache line) on.
    pub(crate) scratch: Vec<f32>,
    pub(crate) scratch_at: usize,
    pub(crate) summary: Vec<LayerSummary>,
    pub(crate) input: Shape,
    /// SHA-256 of the weights file as it was loaded (`None` without one).
    pub(crate) weights_sha256: Option<String>,
    /// Samples between consecutive windows; 0 when streaming is off.
    pub(crate) hop: usize,
    /// Per node, for `hop`.
    pub(crate) plan: Vec<Option<Keep>>,
    /// `values` hold the complete activations of the last window (a failed run clears it).
    pub(crate) primed: bool,
    /// The last window reused the one before it.
    pub(crate) streamed: bool,
}

impl Graph {
    /// Lower-case hex SHA-256 of the weights file's bytes as they were loaded; `None` when
    /// `[model]` names none.
    pub fn weights_sha256(&self) -> Option<&str> {
        self.weights_sha256.as_deref()
    }

    /// Values in one window (`[C, L]` row-major).
    pub fn input_len(&self) -> usize {
        self.values[0].len
    }

    /// Values the final layer outputs.
    pub fn output_len(&self) -> usize {
        self.values.last().map_or(0, |v| v.len)
    }

    /// Whether the last window reused the previous window's activations (see [`Graph::set_hop`]).
    pub fn streamed(&self) -> bool {
        self.streamed
    }

    /// One entry per layer, in order.
    pub fn layers(&self) -> &[LayerSummary] {
        &self.summary
    }
}

/// The length of a `[channels, length]` shape; 0 once the time axis is gone.
pub(crate) fn seq_len(shape: Shape) -> usize {
    match shape {
        Shape::Seq { length, .. } => length,
        Shape::Flat(_) => 0,
    }
}

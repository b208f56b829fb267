//! The one interface the graph drives every layer through: plugin-backed layers and built-ins
//! (both behind the plugin ABI) and `add`, the layer with several inputs.

use crate::buffer::Value;
use crate::builtin::ADD;
use crate::error::LayerError;
use reflex_config::LayerConfig;
use reflex_plugin_host::{LayerInstance, Origin, PluginError, Registry};
use reflex_plugin_sdk::{LayerInfo, Shape, TensorSpec};
use std::ops::Range;
use std::path::Path;

/// Who provides a layer, for [`LayerSummary`](crate::LayerSummary).
pub(crate) struct Provider {
    pub name: String,
    pub version: String,
    pub origin: Origin,
}

/// A layer's inputs for one window: the values it reads, in `inputs = […]` order. Borrowed
/// from the graph's buffers, so handing them over allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a> {
    values: &'a [Value],
    at: &'a [usize],
}

impl<'a> Inputs<'a> {
    /// `at` indexes `values`.
    pub fn new(values: &'a [Value], at: &'a [usize]) -> Self {
        Inputs { values, at }
    }

    /// Input `i`.
    pub fn get(&self, i: usize) -> &'a [f32] {
        self.values[self.at[i]].get()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.at.len()
    }
}

/// A layer, from its keys to its forward pass. The build calls `configure`, `tensor_specs` and
/// `load` in that order, once; the forward pass calls `forward` or `forward_range` once per
/// window (one dynamic call per layer per window).
pub(crate) trait Layer: Send {
    /// Who provides it.
    fn provider(&self) -> Provider;
    /// Its output and costs for these input shapes (one per input).
    fn configure(&mut self, inputs: &[Shape]) -> Result<LayerInfo, LayerError>;
    /// The tensors it needs, named without the layer's prefix.
    fn tensor_specs(&self) -> Result<Vec<TensorSpec>, LayerError>;
    /// Takes the tensors of `tensor_specs`, in order.
    fn load(&mut self, tensors: &[&[f32]]) -> Result<(), LayerError>;
    /// `Some(pad_left)` when it can compute any range of output positions by itself.
    fn stream_offset(&mut self) -> Option<usize>;
    /// The whole output.
    fn forward(&mut self, inputs: Inputs<'_>, out: &mut [f32], scratch: &mut [f32]) -> Result<(), PluginError>;
    /// Output positions `range` of every row; the rest of `out` is left as it is.
    fn forward_range(
        &mut self,
        inputs: Inputs<'_>,
        out: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) -> Result<(), PluginError>;
}

/// The layer `plugin = "…"` names, with its keys, not yet configured.
pub(crate) fn create(
    layer: &LayerConfig,
    registry: &mut Registry,
    plugin_dir: &Path,
) -> Result<Box<dyn Layer>, LayerError> {
    let keys = serde_json::Value::Object(layer.params.clone());
    if layer.plugin == ADD {
        return Ok(Box::new(crate::add::Add::new(keys)?));
    }
    let plugin = registry.resolve(&layer.plugin, plugin_dir)?;
    Ok(Box::new(plugin.create(&keys.to_string())?))
}

/// Plugins and built-ins: one input, everything done across the ABI.
impl Layer for LayerInstance {
    fn provider(&self) -> Provider {
        let p = self.plugin();
        Provider { name: p.name.clone(), version: p.version.clone(), origin: p.origin.clone() }
    }

    fn configure(&mut self, inputs: &[Shape]) -> Result<LayerInfo, LayerError> {
        Ok(LayerInstance::configure(self, inputs[0])?)
    }

    fn tensor_specs(&self) -> Result<Vec<TensorSpec>, LayerError> {
        Ok(LayerInstance::tensor_specs(self)?)
    }

    fn load(&mut self, tensors: &[&[f32]]) -> Result<(), LayerError> {
        Ok(LayerInstance::load(self, tensors)?)
    }

    fn stream_offset(&mut self) -> Option<usize> {
        LayerInstance::stream_offset(self)
    }

    fn forward(&mut self, inputs: Inputs<'_>, out: &mut [f32], scratch: &mut [f32]) -> Result<(), PluginError> {
        LayerInstance::forward(self, inputs.get(0), out, scratch)
    }

    fn forward_range(
        &mut self,
        inputs: Inputs<'_>,
        out: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) -> Result<(), PluginError> {
        LayerInstance::forward_range(self, inputs.get(0), out, scratch, range)
    }
}

//! `add`: the element-wise sum of two or more values of one shape, then an activation. The
//! graph's own layer, since the plugin ABI passes one input.

use crate::error::LayerError;
use crate::layer::{Inputs, Layer, Provider};
use reflex_kernels::{add_activate, add_assign, Activation};
use reflex_plugin_host::{Origin, PluginError};
use reflex_plugin_sdk::conv::{default_negative_slope, ActivationName};
use reflex_plugin_sdk::{LayerInfo, Shape, TensorSpec};
use serde::Deserialize;
use std::ops::Range;

/// Keys of `add`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKeys {
    /// Applied to the sum.
    #[serde(default)]
    activation: ActivationName,
    /// Slope of `leaky_relu` for negative inputs.
    #[serde(default = "default_negative_slope")]
    negative_slope: f32,
}

pub(crate) struct Add {
    activation: Activation,
    /// Positions per row; 0 for a 1-D shape.
    length: usize,
}

impl Add {
    pub fn new(keys: serde_json::Value) -> Result<Add, LayerError> {
        let keys: AddKeys = serde_json::from_value(keys).map_err(LayerError::Keys)?;
        Ok(Add { activation: keys.activation.with(keys.negative_slope), length: 0 })
    }
}

impl Layer for Add {
    fn provider(&self) -> Provider {
        Provider { name: crate::builtin::ADD.into(), version: env!("CARGO_PKG_VERSION").into(), origin: Origin::Static }
    }

    fn configure(&mut self, inputs: &[Shape]) -> Result<LayerInfo, LayerError> {
        let shape = inputs[0];
        if let Some(other) = inputs.iter().find(|s| **s != shape) {
            return Err(LayerError::InputShapes(shape, *other));
        }
        if let Shape::Seq { length, .. } = shape {
            self.length = length;
        }
        Ok(LayerInfo::elementwise(shape))
    }

    fn tensor_specs(&self) -> Result<Vec<TensorSpec>, LayerError> {
        Ok(Vec::new())
    }

    fn load(&mut self, _: &[&[f32]]) -> Result<(), LayerError> {
        Ok(())
    }

    fn stream_offset(&mut self) -> Option<usize> {
        Some(0)
    }

    fn forward(&mut self, inputs: Inputs<'_>, out: &mut [f32], _: &mut [f32]) -> Result<(), PluginError> {
        let len = out.len();
        self.sum(out, inputs, 0..len);
        Ok(())
    }

    fn forward_range(
        &mut self,
        inputs: Inputs<'_>,
        out: &mut [f32],
        _: &mut [f32],
        range: Range<usize>,
    ) -> Result<(), PluginError> {
        let n = self.length;
        for (c, row) in out.chunks_exact_mut(n).enumerate() {
            self.sum(&mut row[range.clone()], inputs, c * n + range.start..c * n + range.end);
        }
        Ok(())
    }
}

impl Add {
    /// `dst` = the activation of the sum of the inputs at flat positions `at`; the last
    /// addition and the activation are one pass.
    fn sum(&self, dst: &mut [f32], inputs: Inputs<'_>, at: Range<usize>) {
        let last = inputs.len() - 1;
        dst.copy_from_slice(&inputs.get(0)[at.clone()]);
        for i in 1..last {
            add_assign(dst, &inputs.get(i)[at.clone()]);
        }
        if last > 0 {
            add_activate(dst, &inputs.get(last)[at], self.activation);
        } else {
            self.activation.apply(dst);
        }
    }
}

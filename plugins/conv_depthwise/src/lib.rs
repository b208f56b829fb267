//! `conv_depthwise`: MobileNet's depthwise-separable convolution. A per-channel
//! `Conv1d(in, in, k, groups=in)` mixes time, then a pointwise `Conv1d(in, out, 1)` mixes
//! channels: about `k` times fewer multiply-accumulates than a standard convolution.
//!
//! Tensors `{name}.depthwise.weight [in, 1, k]`, `{name}.depthwise.bias [in]`,
//! `{name}.pointwise.weight [out, in, 1]`, `{name}.pointwise.bias [out]`; BatchNorm (`{name}.bn.*`,
//! `out` channels) follows the pointwise convolution.

use reflex_plugin_sdk::conv::{default_one, positive, span, ActivationName, ConvStage};
use reflex_plugin_sdk::kernels::ConvGeometry;
use reflex_plugin_sdk::{conv_params, export_plugin, Error, Layer, LayerInfo, Shape, TensorSpec};
use std::ops::Range;

conv_params! {
    /// Keys of `conv_depthwise`.
    pub struct Params {
        /// Spacing between the depthwise taps.
        #[serde(default = "default_one")]
        dilation: usize,
        /// Applied between the depthwise and the pointwise convolution.
        #[serde(default)]
        mid_activation: ActivationName,
    }
}

/// A configured `conv_depthwise` layer.
pub struct ConvDepthwise {
    depthwise: ConvStage,
    /// Both stages apply their activations.
    pointwise: ConvStage,
}

impl ConvDepthwise {
    fn mid_len(&self) -> usize {
        self.depthwise.output().len()
    }
}

impl Layer for ConvDepthwise {
    const NAME: &'static str = "conv_depthwise";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Params = Params;

    fn configure(p: Params, input: Shape) -> Result<Self, Error> {
        let (channels, length) = input.seq()?;
        let spec = p.conv_spec(positive("dilation", p.dilation)?, channels, false);
        let k = positive("kernel_size", spec.kernel_size)?;
        let stride = positive("stride", spec.stride)?;
        let out_channels = positive("out_channels", spec.out_channels)?;
        let (pad_left, pad_right) = spec.padding.resolve(k, spec.dilation, stride)?;
        let dw = ConvGeometry {
            in_channels: channels,
            out_channels: channels,
            groups: channels,
            kernel_size: k,
            stride,
            dilation: spec.dilation,
            pad_left,
            pad_right,
            in_len: length,
        };
        // BatchNorm belongs to the pointwise convolution only (docs/layers.md).
        let depthwise =
            ConvStage::new("depthwise.", dw, spec.bias, None)?.with_activation(p.mid_activation.with(p.negative_slope));
        let pw = ConvGeometry {
            in_channels: channels,
            out_channels,
            groups: 1,
            kernel_size: 1,
            stride: 1,
            dilation: 1,
            pad_left: 0,
            pad_right: 0,
            in_len: depthwise.out_len(),
        };
        let pointwise = ConvStage::new("pointwise.", pw, spec.bias, spec.batch_norm.then_some("bn."))?
            .with_activation(spec.activation);
        Ok(ConvDepthwise { depthwise, pointwise })
    }

    fn info(&self) -> LayerInfo {
        let g = self.depthwise.geometry();
        LayerInfo {
            output: self.pointwise.output(),
            scratch_len: self.mid_len() + self.depthwise.scratch_len().max(self.pointwise.scratch_len()),
            params: self.depthwise.params() + self.pointwise.params(),
            macs: self.depthwise.macs() + self.pointwise.macs(),
            rf_span: Some(span(g.kernel_size, g.dilation) as u64),
            rf_stride: g.stride as u64,
        }
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        let mut v = self.depthwise.specs();
        v.extend(self.pointwise.specs());
        v
    }

    fn load(&mut self, tensors: &[&[f32]]) -> Result<(), Error> {
        let mut it = tensors.iter();
        self.depthwise.load(&mut it)?;
        self.pointwise.load(&mut it)
    }

    fn stream_offset(&self) -> Option<usize> {
        Some(self.depthwise.geometry().pad_left)
    }

    fn forward_range(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32], range: Range<usize>) -> Result<(), Error> {
        let (mid, rest) = scratch.split_at_mut(self.mid_len());
        // The pointwise convolution reads exactly its own positions of `mid`.
        self.depthwise.run_range(x, mid, rest, range.clone())?;
        self.pointwise.run_range(mid, y, rest, range)
    }

    fn forward(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        let (mid, rest) = scratch.split_at_mut(self.mid_len());
        self.depthwise.run(x, mid, rest)?;
        self.pointwise.run(mid, y, rest)
    }
}

export_plugin!(conv_depthwise, ConvDepthwise);

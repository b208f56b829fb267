//! `residual`: ResNet's bottleneck block, wide → narrow → wide.
//!
//! `h = act(reduce(x))` (1×1, in→mid); `h = act(conv(h))` (k, mid→mid, dilation, "same" or
//! "causal"); `h = expand(h)` (1×1, mid→out); `y = act(h + s)` with `s = x` when in = out, else
//! `s = shortcut(x)` (1×1, in→out). Each convolution may carry its own BatchNorm
//! (`{name}.reduce.bn.*`, …). The output keeps the input's length.

use reflex_plugin_sdk::conv::{
    default_negative_slope, default_one, default_true, positive, span, ActivationName, ConvStage, Padding,
};
use reflex_plugin_sdk::kernels::ConvGeometry;
use reflex_plugin_sdk::{export_plugin, Error, Layer, LayerInfo, Shape, TensorSpec};
use serde::Deserialize;
use std::ops::Range;

fn default_relu() -> ActivationName {
    ActivationName::Relu
}

/// Keys of `residual`. There is no `stride`: the shortcut needs the input's length.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Taps of the middle convolution.
    pub kernel_size: usize,
    /// Channels of the narrow middle.
    pub mid_channels: usize,
    /// Output channels; default: the input's (identity shortcut).
    #[serde(default)]
    pub out_channels: Option<usize>,
    /// Spacing between the middle convolution's taps.
    #[serde(default = "default_one")]
    pub dilation: usize,
    /// The middle convolution's padding: "same" or "causal".
    #[serde(default)]
    pub padding: Padding,
    /// Whether every convolution of the block has a bias.
    #[serde(default = "default_true")]
    pub bias: bool,
    /// After reduce, after the middle convolution, and after the sum.
    #[serde(default = "default_relu")]
    pub activation: ActivationName,
    /// Slope of `leaky_relu` for negative inputs.
    #[serde(default = "default_negative_slope")]
    pub negative_slope: f32,
    /// Eval-mode BatchNorm1d after each convolution.
    #[serde(default)]
    pub batch_norm: bool,
}

/// A configured `residual` block.
pub struct Residual {
    reduce: ConvStage,
    conv: ConvStage,
    expand: ConvStage,
    shortcut: Option<ConvStage>,
}

fn pointwise(in_channels: usize, out_channels: usize, length: usize) -> ConvGeometry {
    ConvGeometry {
        in_channels,
        out_channels,
        groups: 1,
        kernel_size: 1,
        stride: 1,
        dilation: 1,
        pad_left: 0,
        pad_right: 0,
        in_len: length,
    }
}

impl Residual {
    fn stages(&self) -> impl Iterator<Item = &ConvStage> {
        [&self.reduce, &self.conv, &self.expand].into_iter().chain(self.shortcut.as_ref())
    }
    fn mid_len(&self) -> usize {
        self.reduce.output().len()
    }
}

impl Layer for Residual {
    const NAME: &'static str = "residual";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Params = Params;

    fn configure(p: Params, input: Shape) -> Result<Self, Error> {
        let (channels, length) = input.seq()?;
        let k = positive("kernel_size", p.kernel_size)?;
        let mid = positive("mid_channels", p.mid_channels)?;
        let out = positive("out_channels", p.out_channels.unwrap_or(channels))?;
        let dilation = positive("dilation", p.dilation)?;
        if !matches!(p.padding, Padding::Same | Padding::Causal) {
            return Err(Error::config("padding must be \"same\" or \"causal\": the shortcut needs the input's length"));
        }
        let (pad_left, pad_right) = p.padding.resolve(k, dilation, 1)?;
        let bn = |prefix| p.batch_norm.then_some(prefix);
        let conv = ConvGeometry {
            in_channels: mid,
            out_channels: mid,
            groups: 1,
            kernel_size: k,
            stride: 1,
            dilation,
            pad_left,
            pad_right,
            in_len: length,
        };
        let activation = p.activation.with(p.negative_slope);
        Ok(Residual {
            reduce: ConvStage::new("reduce.", pointwise(channels, mid, length), p.bias, bn("reduce.bn."))?
                .with_activation(activation),
            conv: ConvStage::new("conv.", conv, p.bias, bn("conv.bn."))?.with_activation(activation),
            // Its activation comes after the shortcut is added (run_add).
            expand: ConvStage::new("expand.", pointwise(mid, out, length), p.bias, bn("expand.bn."))?
                .with_activation(activation),
            shortcut: (out != channels)
                .then(|| ConvStage::new("shortcut.", pointwise(channels, out, length), p.bias, bn("shortcut.bn.")))
                .transpose()?,
        })
    }

    fn info(&self) -> LayerInfo {
        let g = self.conv.geometry();
        let out = self.expand.output();
        let stage_scratch = self.stages().map(ConvStage::scratch_len).max().unwrap_or(0);
        let shortcut = if self.shortcut.is_some() { out.len() } else { 0 };
        LayerInfo {
            output: out,
            scratch_len: 2 * self.mid_len() + shortcut + stage_scratch,
            params: self.stages().map(ConvStage::params).sum(),
            macs: self.stages().map(ConvStage::macs).sum(),
            rf_span: Some(span(g.kernel_size, g.dilation) as u64),
            rf_stride: 1,
        }
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        self.stages().flat_map(ConvStage::specs).collect()
    }

    fn load(&mut self, tensors: &[&[f32]]) -> Result<(), Error> {
        let mut it = tensors.iter();
        self.reduce.load(&mut it)?;
        self.conv.load(&mut it)?;
        self.expand.load(&mut it)?;
        match &mut self.shortcut {
            Some(s) => s.load(&mut it),
            None => Ok(()),
        }
    }

    fn stream_offset(&self) -> Option<usize> {
        Some(self.conv.geometry().pad_left)
    }

    fn forward_range(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32], range: Range<usize>) -> Result<(), Error> {
        let (h1, rest) = scratch.split_at_mut(self.mid_len());
        let (h2, rest) = rest.split_at_mut(self.mid_len());
        // The 1×1 convolutions read their own positions; the middle one needs its kernel's
        // span of `h1` around the range.
        self.reduce.run_range(x, h1, rest, self.conv.input_range(&range))?;
        self.conv.run_range(h1, h2, rest, range.clone())?;
        match &self.shortcut {
            None => self.expand.run_range_add(h2, x, y, rest, range),
            Some(shortcut) => {
                let (s, rest) = rest.split_at_mut(y.len());
                shortcut.run_range(x, s, rest, range.clone())?;
                self.expand.run_range_add(h2, s, y, rest, range)
            }
        }
    }

    fn forward(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        let n = self.mid_len();
        let (h1, rest) = scratch.split_at_mut(n);
        let (h2, rest) = rest.split_at_mut(n);
        self.reduce.run(x, h1, rest)?;
        self.conv.run(h1, h2, rest)?;
        match &self.shortcut {
            None => self.expand.run_add(h2, x, y, rest),
            Some(shortcut) => {
                let (s, rest) = rest.split_at_mut(y.len());
                shortcut.run(x, s, rest)?;
                self.expand.run_add(h2, s, y, rest)
            }
        }
    }
}

export_plugin!(residual, Residual);

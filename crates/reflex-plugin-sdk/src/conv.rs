//! Building blocks for convolution plugins: the keys they share, padding rules, and a
//! convolution stage that loads its weights (folding BatchNorm) and runs on the kernels crate.

use crate::{Error, Layer, LayerInfo, Shape, TensorSpec};
use reflex_kernels::{fold_batch_norm, Activation, Conv1d, ConvGeometry};
use serde::Deserialize;
use std::marker::PhantomData;
use std::ops::Range;

/// BatchNorm1d's default epsilon, which docs/layers.md fixes.
pub const BN_EPS: f32 = 1e-5;

/// `padding = "same" | "valid" | "causal" | p`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    /// PyTorch `padding="same"`: total `dilation*(k-1)`, the smaller half on the left. Stride 1 only.
    #[default]
    Same,
    /// No padding.
    Valid,
    /// All `dilation*(k-1)` on the left: output `t` sees inputs up to `t` only.
    Causal,
    /// `p` zeros on both sides.
    Explicit(usize),
}

impl<'de> Deserialize<'de> for Padding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let bad =
            || serde::de::Error::custom("padding must be \"same\", \"valid\", \"causal\" or a non-negative integer");
        match Raw::deserialize(d).map_err(|_: D::Error| bad())? {
            Raw::Int(p) => usize::try_from(p).map(Padding::Explicit).map_err(|_| bad()),
            Raw::Text(s) => match s.as_str() {
                "same" => Ok(Padding::Same),
                "valid" => Ok(Padding::Valid),
                "causal" => Ok(Padding::Causal),
                _ => Err(bad()),
            },
        }
    }
}

impl Padding {
    /// `(left, right)` zeros for a kernel of `k` taps.
    pub fn resolve(self, k: usize, dilation: usize, stride: usize) -> Result<(usize, usize), Error> {
        let total = dilation.saturating_mul(k.saturating_sub(1));
        match self {
            Padding::Same if stride != 1 => Err(Error::config(format!(
                "padding \"same\" requires stride 1 (stride is {stride}): name another padding, e.g. \"valid\", \"causal\" or an integer"
            ))),
            Padding::Same => Ok((total / 2, total - total / 2)),
            Padding::Valid => Ok((0, 0)),
            Padding::Causal => Ok((total, 0)),
            Padding::Explicit(p) => Ok((p, p)),
        }
    }
}

/// Activation names of docs/layers.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationName {
    /// The identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` for positive `x`, else `negative_slope * x`.
    LeakyRelu,
    /// ELU with `alpha = 1`.
    Elu,
    /// `x * sigmoid(x)`.
    Silu,
    /// GELU (erf form).
    Gelu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x * relu6(x + 3) / 6`.
    Hardswish,
}

impl ActivationName {
    /// The kernel activation; `negative_slope` is the layer's key, used by `leaky_relu` only.
    pub fn with(self, negative_slope: f32) -> Activation {
        match self {
            ActivationName::None => Activation::None,
            ActivationName::Relu => Activation::Relu,
            ActivationName::Relu6 => Activation::Relu6,
            ActivationName::LeakyRelu => Activation::LeakyRelu { negative_slope },
            ActivationName::Elu => Activation::Elu { alpha: 1.0 },
            ActivationName::Silu => Activation::Silu,
            ActivationName::Gelu => Activation::Gelu,
            ActivationName::Tanh => Activation::Tanh,
            ActivationName::Sigmoid => Activation::Sigmoid,
            ActivationName::Hardswish => Activation::Hardswish,
        }
    }
}

/// PyTorch's default `negative_slope` (serde default).
pub fn default_negative_slope() -> f32 {
    0.01
}
/// 1 (serde default of `stride`, `dilation`).
pub fn default_one() -> usize {
    1
}
/// `true` (serde default of `bias`, `shuffle`).
pub fn default_true() -> bool {
    true
}

/// Declares a convolution plugin's keys: the keys every convolution shares (docs/layers.md), then the
/// plugin's own. The struct rejects unknown keys, so a typo is an error naming the key.
///
/// ```
/// reflex_plugin_sdk::conv_params! {
///     /// Keys of a made-up convolution.
///     pub struct MyParams {
///         /// Spacing between taps.
///         dilation: usize,
///     }
/// }
/// ```
#[macro_export]
macro_rules! conv_params {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, $crate::serde::Deserialize)]
        #[serde(deny_unknown_fields, crate = "reflex_plugin_sdk::serde")]
        pub struct $name {
            /// Output channels.
            pub out_channels: usize,
            /// Taps of the convolution kernel.
            pub kernel_size: usize,
            /// Samples between the starts of neighbouring outputs.
            #[serde(default = "reflex_plugin_sdk::conv::default_one")]
            pub stride: usize,
            /// `"same"` (stride 1 only), `"valid"`, `"causal"` or an integer.
            #[serde(default)]
            pub padding: $crate::conv::Padding,
            /// Whether the convolution has a bias.
            #[serde(default = "reflex_plugin_sdk::conv::default_true")]
            pub bias: bool,
            /// Applied after the convolution (and BatchNorm).
            #[serde(default)]
            pub activation: $crate::conv::ActivationName,
            /// Slope of `leaky_relu` for negative inputs.
            #[serde(default = "reflex_plugin_sdk::conv::default_negative_slope")]
            pub negative_slope: f32,
            /// Eval-mode BatchNorm1d after the convolution (`{name}.bn.*` tensors).
            #[serde(default)]
            pub batch_norm: bool,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            /// The common keys, completed with the plugin's own geometry.
            #[allow(dead_code)]
            pub fn conv_spec(&self, dilation: usize, groups: usize, shuffle: bool) -> $crate::conv::ConvSpec {
                $crate::conv::ConvSpec {
                    out_channels: self.out_channels,
                    kernel_size: self.kernel_size,
                    stride: self.stride,
                    padding: self.padding,
                    dilation,
                    groups,
                    bias: self.bias,
                    batch_norm: self.batch_norm,
                    activation: self.activation.with(self.negative_slope),
                    shuffle,
                }
            }
        }
    };
}

/// The largest channel count, length, kernel, stride or dilation a layer accepts. Far beyond
/// any model for a wearable robot, and small enough that no product of two sizes overflows.
pub const MAX_SIZE: usize = 1 << 20;

/// Checks a size key (at least 1, at most [`MAX_SIZE`]), naming it.
pub fn positive(key: &str, v: usize) -> Result<usize, Error> {
    if (1..=MAX_SIZE).contains(&v) {
        Ok(v)
    } else {
        Err(Error::config(format!("{key} = {v}: must be between 1 and {MAX_SIZE}")))
    }
}

/// Input samples one output of a kernel of `k` taps with `dilation` sees.
pub fn span(kernel_size: usize, dilation: usize) -> usize {
    dilation.saturating_mul(kernel_size.saturating_sub(1)).saturating_add(1)
}

/// One PyTorch `Conv1d` (+ optional BatchNorm folded into it), with its tensor names.
pub struct ConvStage {
    prefix: &'static str,
    geom: ConvGeometry,
    out_len: usize,
    bias: bool,
    /// Where the BatchNorm tensors are (`"bn."`, `"reduce.bn."`), if there is one.
    batch_norm: Option<&'static str>,
    /// Applied to every output (by the `Conv1d`, tile by tile, while the tile is in L1).
    activation: Activation,
    conv: Option<Conv1d>,
}

impl ConvStage {
    /// `prefix` is prepended to the weight and bias names (`""`, `"depthwise."`, `"reduce."`);
    /// `batch_norm` is the BatchNorm's own prefix (`"bn."`, `"reduce.bn."`), when there is one.
    pub fn new(
        prefix: &'static str,
        geom: ConvGeometry,
        bias: bool,
        batch_norm: Option<&'static str>,
    ) -> Result<Self, Error> {
        if !geom.in_channels.is_multiple_of(geom.groups) || !geom.out_channels.is_multiple_of(geom.groups) {
            return Err(Error::shape(format!(
                "{} input and {} output channels are not both divisible by groups = {}",
                geom.in_channels, geom.out_channels, geom.groups
            )));
        }
        let span = span(geom.kernel_size, geom.dilation);
        let out_len = geom.out_len().ok_or_else(|| {
            Error::shape(format!(
                "{}the kernel spans {span} samples but the padded input has only {}",
                stage_label(prefix),
                geom.in_len + geom.pad_left + geom.pad_right
            ))
        })?;
        Ok(ConvStage { prefix, geom, out_len, bias, batch_norm, activation: Activation::None, conv: None })
    }

    /// Applies `activation` to the output (after the residual of [`ConvStage::run_add`]).
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// The convolution's sizes and padding.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geom
    }

    /// Output positions per channel.
    pub fn out_len(&self) -> usize {
        self.out_len
    }

    /// The output shape `[out_channels, out_len]`.
    pub fn output(&self) -> Shape {
        Shape::Seq { channels: self.geom.out_channels, length: self.out_len }
    }

    /// The stage's tensors: weight, bias (if any), then BatchNorm's four (if any).
    pub fn specs(&self) -> Vec<TensorSpec> {
        let g = &self.geom;
        let p = self.prefix;
        let mut v =
            vec![TensorSpec::new(format!("{p}weight"), &[g.out_channels, g.in_channels / g.groups, g.kernel_size])];
        if self.bias {
            v.push(TensorSpec::new(format!("{p}bias"), &[g.out_channels]));
        }
        if let Some(bn) = self.batch_norm {
            for t in ["weight", "bias", "running_mean", "running_var"] {
                v.push(TensorSpec::new(format!("{bn}{t}"), &[g.out_channels]));
            }
        }
        v
    }

    /// Weight elements loaded, BatchNorm statistics included.
    pub fn params(&self) -> u64 {
        self.specs().iter().map(|s| s.len() as u64).sum()
    }

    /// Multiply-accumulates per window.
    pub fn macs(&self) -> u64 {
        self.geom.macs()
    }

    /// f32 elements of scratch a run needs.
    pub fn scratch_len(&self) -> usize {
        self.geom.scratch_len().unwrap_or(0)
    }

    /// Takes this stage's tensors (in `specs` order) from the front of `tensors`.
    pub fn load(&mut self, tensors: &mut std::slice::Iter<'_, &[f32]>) -> Result<(), Error> {
        let mut next = || tensors.next().copied().ok_or_else(|| Error::tensor("too few tensors"));
        let mut weight = next()?.to_vec();
        let mut bias = if self.bias { next()?.to_vec() } else { vec![0.0; self.geom.out_channels] };
        if let Some(bn) = self.batch_norm {
            let (gamma, beta, mean, var) = (next()?, next()?, next()?, next()?);
            if let Some(v) = var.iter().find(|v| v.is_nan() || **v + BN_EPS <= 0.0) {
                return Err(Error::tensor(format!("{bn}running_var holds {v}: a variance must be non-negative")));
            }
            fold_batch_norm(&mut weight, &mut bias, gamma, beta, mean, var, BN_EPS);
        }
        let has_bias = self.bias || self.batch_norm.is_some();
        let conv =
            Conv1d::new(self.geom, &weight, has_bias.then_some(&bias[..])).map_err(|e| Error::shape(e.to_string()))?;
        self.conv = Some(conv.with_activation(self.activation));
        Ok(())
    }

    /// `input [in, in_len]` → `output [out, out_len]`.
    pub fn run(&self, input: &[f32], output: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        self.run_part(input, None, output, scratch, 0..self.out_len)
    }

    /// `output = activation(conv(input) + add)`, `add` shaped as `output`: a residual block's
    /// sum in the same pass as its last convolution.
    pub fn run_add(&self, input: &[f32], add: &[f32], output: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        self.run_part(input, Some(add), output, scratch, 0..self.out_len)
    }

    /// Output positions `range` only, reading only the input positions they see
    /// ([`ConvStage::input_range`]); the rest of `output` is left as it is.
    pub fn run_range(
        &self,
        input: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) -> Result<(), Error> {
        self.run_part(input, None, output, scratch, range)
    }

    /// [`ConvStage::run_add`] for output positions `range` only, as [`ConvStage::run_range`].
    pub fn run_range_add(
        &self,
        input: &[f32],
        add: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) -> Result<(), Error> {
        self.run_part(input, Some(add), output, scratch, range)
    }

    fn run_part(
        &self,
        input: &[f32],
        add: Option<&[f32]>,
        output: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) -> Result<(), Error> {
        let conv = self.conv.as_ref().ok_or_else(|| Error::runtime("weights not loaded"))?;
        let scratch = &mut scratch[..conv.scratch_len()];
        conv.run_range_add(input, add, output, scratch, range);
        Ok(())
    }

    /// The input positions that output positions `range` read, clipped to the input: what a
    /// stage before this one must have computed for [`ConvStage::run_range`].
    pub fn input_range(&self, range: &Range<usize>) -> Range<usize> {
        let g = &self.geom;
        let cols = g.padded_columns(range);
        let first = cols.start.saturating_sub(g.pad_left).min(g.in_len);
        first..cols.end.saturating_sub(g.pad_left).clamp(first, g.in_len)
    }
}

fn stage_label(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{}: ", prefix.trim_end_matches('.'))
    }
}

/// Everything about a single convolution layer (standard, dilated or grouped).
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    /// Output channels.
    pub out_channels: usize,
    /// Taps of the kernel.
    pub kernel_size: usize,
    /// Input samples between neighbouring outputs.
    pub stride: usize,
    /// Zeros around the input.
    pub padding: Padding,
    /// Spacing between taps.
    pub dilation: usize,
    /// Channel groups (1: every output sees every input channel).
    pub groups: usize,
    /// Whether the convolution has a bias tensor.
    pub bias: bool,
    /// Whether eval-mode BatchNorm (`bn.*`) follows the convolution.
    pub batch_norm: bool,
    /// Applied after the convolution and BatchNorm.
    pub activation: Activation,
    /// ShuffleNet channel shuffle after the activation.
    pub shuffle: bool,
}

/// What makes `conv_standard`, `conv_dilated` and `conv_grouped` different: their name and
/// keys. Everything else is [`PlainConv`].
pub trait ConvFlavour: Send + 'static {
    /// As [`Layer::NAME`].
    const NAME: &'static str;
    /// As [`Layer::VERSION`].
    const VERSION: &'static str;
    /// As [`Layer::Params`].
    type Params: serde::de::DeserializeOwned;
    /// The convolution the keys describe.
    fn spec(params: &Self::Params) -> ConvSpec;
}

/// A convolution layer: conv (+BN) → activation → optional channel shuffle.
pub struct PlainConv<F> {
    /// Applies the activation too.
    stage: ConvStage,
    shuffle: bool,
    flavour: PhantomData<fn() -> F>,
}

impl<F: ConvFlavour> Layer for PlainConv<F> {
    const NAME: &'static str = F::NAME;
    const VERSION: &'static str = F::VERSION;
    type Params = F::Params;

    fn configure(params: F::Params, input: Shape) -> Result<Self, Error> {
        let spec = F::spec(&params);
        let (in_channels, in_len) = input.seq()?;
        let k = positive("kernel_size", spec.kernel_size)?;
        let stride = positive("stride", spec.stride)?;
        let dilation = positive("dilation", spec.dilation)?;
        let groups = positive("groups", spec.groups)?;
        positive("out_channels", spec.out_channels)?;
        let (pad_left, pad_right) = spec.padding.resolve(k, dilation, stride)?;
        let geom = ConvGeometry {
            in_channels,
            out_channels: spec.out_channels,
            groups,
            kernel_size: k,
            stride,
            dilation,
            pad_left,
            pad_right,
            in_len,
        };
        let stage =
            ConvStage::new("", geom, spec.bias, spec.batch_norm.then_some("bn."))?.with_activation(spec.activation);
        Ok(PlainConv { stage, shuffle: spec.shuffle && groups > 1, flavour: PhantomData })
    }

    fn info(&self) -> LayerInfo {
        let g = self.stage.geometry();
        let out = self.stage.output();
        LayerInfo {
            output: out,
            scratch_len: self.stage.scratch_len() + if self.shuffle { out.len() } else { 0 },
            params: self.stage.params(),
            macs: self.stage.macs(),
            rf_span: Some(span(g.kernel_size, g.dilation) as u64),
            rf_stride: g.stride as u64,
        }
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        self.stage.specs()
    }

    fn load(&mut self, tensors: &[&[f32]]) -> Result<(), Error> {
        self.stage.load(&mut tensors.iter())
    }

    fn stream_offset(&self) -> Option<usize> {
        Some(self.stage.geometry().pad_left)
    }

    fn forward_range(
        &self,
        input: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) -> Result<(), Error> {
        let n = self.stage.out_len();
        if !self.shuffle {
            return self.stage.run_range(input, output, scratch, range);
        }
        let (conv_out, rest) = scratch.split_at_mut(output.len());
        self.stage.run_range(input, conv_out, rest, range.clone())?;
        let g = self.stage.geometry();
        reflex_kernels::channel_shuffle_range(conv_out, output, g.groups, g.out_channels, n, range);
        Ok(())
    }

    fn forward(&self, input: &[f32], output: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        if !self.shuffle {
            return self.stage.run(input, output, scratch);
        }
        let (conv_out, rest) = scratch.split_at_mut(output.len());
        self.stage.run(input, conv_out, rest)?;
        let g = self.stage.geometry();
        reflex_kernels::channel_shuffle(conv_out, output, g.groups, g.out_channels, self.stage.out_len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_smaller_half_left() {
        assert_eq!(Padding::Same.resolve(4, 1, 1), Ok((1, 2)));
        assert_eq!(Padding::Same.resolve(5, 2, 1), Ok((4, 4)));
        assert_eq!(Padding::Causal.resolve(3, 3, 1), Ok((6, 0)));
        assert!(Padding::Same.resolve(3, 1, 2).unwrap_err().message.contains("stride 1"));
    }

    #[test]
    fn padding_parses_words_and_integers_only() {
        let p = |s: &str| serde_json::from_str::<Padding>(s);
        assert_eq!(p("\"causal\"").ok(), Some(Padding::Causal));
        assert_eq!(p("3").ok(), Some(Padding::Explicit(3)));
        assert!(p("-1").is_err());
        assert!(p("\"full\"").is_err());
    }
}

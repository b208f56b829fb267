//! The built-in layers of docs/layers.md. They are written against the plugin SDK like any plugin and
//! registered statically, so the graph drives them through the same ABI as plugins.
//!
//! `add` is not here: the plugin ABI passes a layer one input, so `add` is the graph's own
//! layer, driven through the same internal interface as these.

use reflex_kernels as k;
use reflex_plugin_sdk::abi::PluginDescriptor;
use reflex_plugin_sdk::conv::{default_negative_slope, default_true, positive, ActivationName};
use reflex_plugin_sdk::{descriptor_for, for_each_row_range, Error, Layer, LayerInfo, Shape, TensorSpec};
use serde::Deserialize;
use std::ops::Range;

/// Every built-in layer. Names must be unique and distinct from the bundled plugins' (tested).
pub static BUILTINS: [&PluginDescriptor; 9] =
    [&ACTIVATION, &BATCH_NORM, &MAX_POOL, &AVG_POOL, &GLOBAL_AVG_POOL, &GLOBAL_MAX_POOL, &FLATTEN, &LINEAR, &SOFTMAX];

/// The graph's own layer, with two or more inputs.
pub const ADD: &str = "add";

static ACTIVATION: PluginDescriptor = descriptor_for::<ActivationLayer>();
static BATCH_NORM: PluginDescriptor = descriptor_for::<BatchNorm>();
static MAX_POOL: PluginDescriptor = descriptor_for::<Pool<Max>>();
static AVG_POOL: PluginDescriptor = descriptor_for::<Pool<Avg>>();
static GLOBAL_AVG_POOL: PluginDescriptor = descriptor_for::<GlobalPool<Avg>>();
static GLOBAL_MAX_POOL: PluginDescriptor = descriptor_for::<GlobalPool<Max>>();
static FLATTEN: PluginDescriptor = descriptor_for::<Flatten>();
static LINEAR: PluginDescriptor = descriptor_for::<Linear>();
static SOFTMAX: PluginDescriptor = descriptor_for::<Softmax>();

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// For layers without keys: rejects any key given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoKeys {}

/// Keys of `activation`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationKeys {
    /// Which function.
    function: ActivationName,
    /// Slope of `leaky_relu` for negative inputs.
    #[serde(default = "default_negative_slope")]
    negative_slope: f32,
}

/// An activation function on its own, applied to every value.
pub struct ActivationLayer {
    f: k::Activation,
    shape: Shape,
}

impl Layer for ActivationLayer {
    const NAME: &'static str = "activation";
    const VERSION: &'static str = VERSION;
    type Params = ActivationKeys;
    fn configure(p: ActivationKeys, input: Shape) -> Result<Self, Error> {
        Ok(ActivationLayer { f: p.function.with(p.negative_slope), shape: input })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo::elementwise(self.shape)
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        Vec::new()
    }
    fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> {
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        y.copy_from_slice(x);
        self.f.apply(y);
        Ok(())
    }
    fn stream_offset(&self) -> Option<usize> {
        matches!(self.shape, Shape::Seq { .. }).then_some(0)
    }
    fn forward_range(&self, x: &[f32], y: &mut [f32], _: &mut [f32], range: Range<usize>) -> Result<(), Error> {
        position_wise(self.shape, x, y, range, |_, y| self.f.apply(y))
    }
}

/// `forward_range` of a layer that maps each value on its own: copies positions `range` of
/// every channel of `x` into `y` and applies `f(channel, values)` to them there.
fn position_wise(
    shape: Shape,
    x: &[f32],
    y: &mut [f32],
    range: Range<usize>,
    f: impl Fn(usize, &mut [f32]),
) -> Result<(), Error> {
    let (_, n) = shape.seq()?;
    for_each_row_range(y, n, range.clone(), |c, y| {
        y.copy_from_slice(&x[c * n + range.start..c * n + range.end]);
        f(c, y);
    });
    Ok(())
}

/// Eval-mode BatchNorm1d over `[C, L]` (or `[C]`), eps 1e-5.
pub struct BatchNorm {
    shape: Shape,
    channels: usize,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl Layer for BatchNorm {
    const NAME: &'static str = "batch_norm";
    const VERSION: &'static str = VERSION;
    type Params = NoKeys;
    fn configure(_: NoKeys, input: Shape) -> Result<Self, Error> {
        let channels = match input {
            Shape::Seq { channels, .. } => channels,
            Shape::Flat(n) => n,
        };
        Ok(BatchNorm { shape: input, channels, scale: Vec::new(), shift: Vec::new() })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo { params: 4 * self.channels as u64, ..LayerInfo::elementwise(self.shape) }
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        ["weight", "bias", "running_mean", "running_var"].map(|n| TensorSpec::new(n, &[self.channels])).to_vec()
    }
    fn load(&mut self, t: &[&[f32]]) -> Result<(), Error> {
        let [gamma, beta, mean, var] = t else {
            return Err(Error::tensor("expected 4 tensors"));
        };
        let eps = reflex_plugin_sdk::conv::BN_EPS;
        if let Some(v) = var.iter().find(|v| (**v + eps).is_nan() || **v + eps <= 0.0) {
            return Err(Error::tensor(format!("running_var holds {v}: a variance must be non-negative")));
        }
        (self.scale, self.shift) = k::batch_norm_scale_shift(gamma, beta, mean, var, reflex_plugin_sdk::conv::BN_EPS);
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        y.copy_from_slice(x);
        k::scale_shift(y, self.channels, x.len() / self.channels.max(1), &self.scale, &self.shift);
        Ok(())
    }
    fn stream_offset(&self) -> Option<usize> {
        matches!(self.shape, Shape::Seq { .. }).then_some(0)
    }
    fn forward_range(&self, x: &[f32], y: &mut [f32], _: &mut [f32], range: Range<usize>) -> Result<(), Error> {
        position_wise(self.shape, x, y, range, |c, y| {
            k::scale_shift(y, 1, y.len(), &self.scale[c..=c], &self.shift[c..=c])
        })
    }
}

/// Max or average: the reduction a pool applies.
pub trait Reduce: Send + 'static {
    /// The name of the windowed pool.
    const POOL: &'static str;
    /// The name of the global pool.
    const GLOBAL: &'static str;
    /// Reduces each run of `k` positions of each of `channels` rows of `len`.
    fn pool(x: &[f32], channels: usize, len: usize, k: usize, out: &mut [f32]);
    /// Reduces each of `channels` rows of `len` to one value.
    fn global(x: &[f32], channels: usize, len: usize, out: &mut [f32]);
}
/// The maximum.
pub struct Max;
/// The mean.
pub struct Avg;
impl Reduce for Max {
    const POOL: &'static str = "max_pool";
    const GLOBAL: &'static str = "global_max_pool";
    fn pool(x: &[f32], c: usize, l: usize, n: usize, out: &mut [f32]) {
        k::max_pool(x, c, l, n, out)
    }
    fn global(x: &[f32], c: usize, l: usize, out: &mut [f32]) {
        k::global_max_pool(x, c, l, out)
    }
}
impl Reduce for Avg {
    const POOL: &'static str = "avg_pool";
    const GLOBAL: &'static str = "global_avg_pool";
    fn pool(x: &[f32], c: usize, l: usize, n: usize, out: &mut [f32]) {
        k::avg_pool(x, c, l, n, out)
    }
    fn global(x: &[f32], c: usize, l: usize, out: &mut [f32]) {
        k::global_avg_pool(x, c, l, out)
    }
}

/// Keys of `max_pool` and `avg_pool`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolKeys {
    /// Window and stride of the pool.
    kernel_size: usize,
}

/// `MaxPool1d` / `AvgPool1d(k, stride=k)`, no padding, floor.
pub struct Pool<R> {
    channels: usize,
    len: usize,
    k: usize,
    reduce: std::marker::PhantomData<fn() -> R>,
}

impl<R: Reduce> Layer for Pool<R> {
    const NAME: &'static str = R::POOL;
    const VERSION: &'static str = VERSION;
    type Params = PoolKeys;
    fn configure(p: PoolKeys, input: Shape) -> Result<Self, Error> {
        let (channels, len) = input.seq()?;
        let k = positive("kernel_size", p.kernel_size)?;
        if len < k {
            return Err(Error::shape(format!("kernel_size {k} is longer than the input length {len}")));
        }
        Ok(Pool { channels, len, k, reduce: Default::default() })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo {
            output: Shape::Seq { channels: self.channels, length: self.len / self.k },
            rf_span: Some(self.k as u64),
            rf_stride: self.k as u64,
            ..LayerInfo::elementwise(Shape::Flat(0))
        }
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        Vec::new()
    }
    fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> {
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        R::pool(x, self.channels, self.len, self.k, y);
        Ok(())
    }
    fn stream_offset(&self) -> Option<usize> {
        Some(0)
    }
    fn forward_range(&self, x: &[f32], y: &mut [f32], _: &mut [f32], range: Range<usize>) -> Result<(), Error> {
        let (k, n) = (self.k, self.len / self.k);
        let seen = range.start * k..range.end * k;
        for_each_row_range(y, n, range, |c, y| {
            let row = &x[c * self.len..(c + 1) * self.len];
            R::pool(&row[seen.clone()], 1, seen.len(), k, y);
        });
        Ok(())
    }
}

/// `[C, L] → [C]`.
pub struct GlobalPool<R> {
    channels: usize,
    len: usize,
    reduce: std::marker::PhantomData<fn() -> R>,
}

impl<R: Reduce> Layer for GlobalPool<R> {
    const NAME: &'static str = R::GLOBAL;
    const VERSION: &'static str = VERSION;
    type Params = NoKeys;
    fn configure(_: NoKeys, input: Shape) -> Result<Self, Error> {
        let (channels, len) = input.seq()?;
        Ok(GlobalPool { channels, len, reduce: Default::default() })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo { rf_span: None, ..LayerInfo::elementwise(Shape::Flat(self.channels)) }
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        Vec::new()
    }
    fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> {
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        R::global(x, self.channels, self.len, y);
        Ok(())
    }
}

/// `[C, L] → [C*L]`, row-major.
pub struct Flatten {
    len: usize,
}

impl Layer for Flatten {
    const NAME: &'static str = "flatten";
    const VERSION: &'static str = VERSION;
    type Params = NoKeys;
    fn configure(_: NoKeys, input: Shape) -> Result<Self, Error> {
        Ok(Flatten { len: input.len() })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo { rf_span: None, ..LayerInfo::elementwise(Shape::Flat(self.len)) }
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        Vec::new()
    }
    fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> {
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        y.copy_from_slice(x);
        Ok(())
    }
}

/// Keys of `linear`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearKeys {
    /// Output features.
    out_features: usize,
    /// Whether the layer has a bias.
    #[serde(default = "default_true")]
    bias: bool,
}

/// `Linear(in, out_features)` on a 1-D input.
pub struct Linear {
    inputs: usize,
    outputs: usize,
    has_bias: bool,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Layer for Linear {
    const NAME: &'static str = "linear";
    const VERSION: &'static str = VERSION;
    type Params = LinearKeys;
    fn configure(p: LinearKeys, input: Shape) -> Result<Self, Error> {
        let inputs = input.flat()?;
        let outputs = positive("out_features", p.out_features)?;
        Ok(Linear { inputs, outputs, has_bias: p.bias, weight: Vec::new(), bias: Vec::new() })
    }
    fn info(&self) -> LayerInfo {
        let params = (self.inputs * self.outputs + if self.has_bias { self.outputs } else { 0 }) as u64;
        LayerInfo {
            params,
            macs: (self.inputs * self.outputs) as u64,
            rf_span: None,
            ..LayerInfo::elementwise(Shape::Flat(self.outputs))
        }
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        let mut v = vec![TensorSpec::new("weight", &[self.outputs, self.inputs])];
        if self.has_bias {
            v.push(TensorSpec::new("bias", &[self.outputs]));
        }
        v
    }
    fn load(&mut self, t: &[&[f32]]) -> Result<(), Error> {
        self.weight = t.first().ok_or_else(|| Error::tensor("missing weight"))?.to_vec();
        self.bias = t.get(1).map(|b| b.to_vec()).unwrap_or_default();
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        k::linear(&self.weight, self.has_bias.then_some(&self.bias[..]), x, y);
        Ok(())
    }
}

/// Softmax over a 1-D input.
pub struct Softmax {
    len: usize,
}

impl Layer for Softmax {
    const NAME: &'static str = "softmax";
    const VERSION: &'static str = VERSION;
    type Params = NoKeys;
    fn configure(_: NoKeys, input: Shape) -> Result<Self, Error> {
        Ok(Softmax { len: input.flat()? })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo { rf_span: None, ..LayerInfo::elementwise(Shape::Flat(self.len)) }
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        Vec::new()
    }
    fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> {
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        y.copy_from_slice(x);
        k::softmax(y);
        Ok(())
    }
}

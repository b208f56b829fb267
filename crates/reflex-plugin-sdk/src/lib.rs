//! Write a Reflex layer plugin as a safe Rust type.
//!
//! A plugin is a [`Layer`]: its keys are a serde struct, `configure` checks the input shape,
//! `tensors` names what it needs from the weights file, `load` receives them and `forward` runs
//! one window. [`export_plugin!`] turns it into a shared library the daemon loads by name; every
//! call across the boundary is wrapped in `catch_unwind`, so a panic inside a plugin becomes an
//! error for that call, never an unwind into the host.
//!
//! ```
//! use reflex_plugin_sdk::{Error, Layer, LayerInfo, Shape, TensorSpec};
//!
//! /// Multiplies every value by a constant.
//! pub struct Scale { factor: f32, shape: Shape }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct ScaleParams {
//!     /// The constant.
//!     factor: f32,
//! }
//!
//! impl Layer for Scale {
//!     const NAME: &'static str = "scale";
//!     const VERSION: &'static str = "0.1.0";
//!     type Params = ScaleParams;
//!     fn configure(p: ScaleParams, input: Shape) -> Result<Self, Error> {
//!         Ok(Scale { factor: p.factor, shape: input })
//!     }
//!     fn info(&self) -> LayerInfo { LayerInfo::elementwise(self.shape) }
//!     fn tensors(&self) -> Vec<TensorSpec> { Vec::new() }
//!     fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> { Ok(()) }
//!     fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
//!         y.iter_mut().zip(x).for_each(|(y, x)| *y = x * self.factor);
//!         Ok(())
//!     }
//! }
//!
//! reflex_plugin_sdk::export_plugin!(scale, Scale);
//! ```
//!
//! Test a plugin with the [`conformance`] harness: it drives the plugin's `DESCRIPTOR` through
//! the C ABI as the daemon does and checks that `forward_range` is `forward` in part, that
//! nothing allocates per window and that panics stay inside. A `tests/conformance.rs` holds
//! `reflex_plugin_sdk::count_allocations!();` and a `#[test]` calling
//! `Harness::new(&my_plugin::DESCRIPTOR).case(Case::seq(keys, channels, length)).run()`, with a
//! case per combination of keys worth checking.

pub mod abi;
#[cfg(feature = "conformance")]
#[allow(
    clippy::test_attr_in_doctest,
    reason = "the example shows the #[test] a plugin author writes; the doctest runs its body through `check`"
)]
pub mod conformance;
pub mod conv;
mod export;

pub use export::{config_message, descriptor_for};
pub use reflex_kernels as kernels;
pub use serde;

use std::fmt;

/// The shape of the tensor flowing between layers (batch size 1, channels first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// `[features]`: after a global pool, flatten or linear layer.
    Flat(usize),
    /// `[channels, length]`.
    Seq {
        /// Rows (sensor axes, feature maps).
        channels: usize,
        /// Time steps.
        length: usize,
    },
}

impl Shape {
    /// Elements (f32 values) of a tensor of this shape.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Flat(n) => n,
            Shape::Seq { channels, length } => channels * length,
        }
    }

    /// Whether a tensor of this shape holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(channels, length)`, or an error naming what the layer expected.
    pub fn seq(&self) -> Result<(usize, usize), Error> {
        match *self {
            Shape::Seq { channels, length } => Ok((channels, length)),
            Shape::Flat(_) => Err(Error::shape(format!("expects an input [channels, length], got {self}"))),
        }
    }

    /// The feature count of a `[features]` input, or an error naming what the layer expected.
    pub fn flat(&self) -> Result<usize, Error> {
        match *self {
            Shape::Flat(n) => Ok(n),
            Shape::Seq { .. } => Err(Error::shape(format!(
                "expects a 1-D input [features], got {self} (add a global pool or flatten first)"
            ))),
        }
    }

    /// The shape as it crosses the plugin boundary.
    pub fn to_abi(self) -> abi::RxShape {
        match self {
            Shape::Flat(n) => abi::RxShape { rank: 1, dims: [n as u64, 0] },
            Shape::Seq { channels, length } => abi::RxShape { rank: 2, dims: [channels as u64, length as u64] },
        }
    }

    /// The shape a host or plugin sent; `None` for a rank other than 1 or 2, or sizes beyond
    /// `usize`.
    pub fn from_abi(s: &abi::RxShape) -> Option<Shape> {
        let d = |i: usize| usize::try_from(s.dims[i]).ok();
        match s.rank {
            1 => Some(Shape::Flat(d(0)?)),
            2 => Some(Shape::Seq { channels: d(0)?, length: d(1)? }),
            _ => None,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Flat(n) => write!(f, "[{n}]"),
            Shape::Seq { channels, length } => write!(f, "[{channels}, {length}]"),
        }
    }
}

/// What went wrong, sorted by who has to fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The layer's keys in the config file.
    Config,
    /// The layer's input shape.
    Shape,
    /// A tensor's values.
    Tensor,
    /// One window's forward pass.
    Runtime,
}

/// A plugin error: a kind (which becomes the ABI status code) and one line of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Who has to fix it.
    pub kind: ErrorKind,
    /// What is wrong, for the user, without the layer's name (the host adds it).
    pub message: String,
}

impl Error {
    /// A wrong, missing or unknown key.
    pub fn config(m: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Config, message: m.into() }
    }
    /// An input shape the layer cannot take.
    pub fn shape(m: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Shape, message: m.into() }
    }
    /// Unusable tensor values.
    pub fn tensor(m: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Tensor, message: m.into() }
    }
    /// A failed forward pass.
    pub fn runtime(m: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Runtime, message: m.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A tensor the layer needs: `name` is relative to the layer (`weight`, `bn.running_var`), the
/// host looks up `{layer}.{name}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Relative to the layer.
    pub name: String,
    /// PyTorch's dimensions, outermost first (at most 4).
    pub dims: Vec<usize>,
}

impl TensorSpec {
    /// A tensor called `name` of shape `dims`.
    pub fn new(name: impl Into<String>, dims: &[usize]) -> Self {
        TensorSpec { name: name.into(), dims: dims.to_vec() }
    }
    /// Elements of the tensor.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }
    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the host learns about a configured layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The shape `forward` writes.
    pub output: Shape,
    /// f32 elements of scratch `forward` needs.
    pub scratch_len: usize,
    /// Weight elements (BatchNorm statistics included).
    pub params: u64,
    /// Multiply-accumulates per window (docs/layers.md: convolutions and linear layers only).
    pub macs: u64,
    /// Input samples one output position sees; `None` when the time axis is gone.
    pub rf_span: Option<u64>,
    /// Input samples between neighbouring output positions.
    pub rf_stride: u64,
}

impl LayerInfo {
    /// A layer that keeps its input's shape and looks at one sample at a time.
    pub fn elementwise(shape: Shape) -> Self {
        LayerInfo { output: shape, scratch_len: 0, params: 0, macs: 0, rf_span: Some(1), rf_stride: 1 }
    }
}

/// A layer type. One value of it is one configured layer of a graph.
///
/// `forward` takes `&self` and the host's scratch memory: it must not allocate, and it may be
/// called from a different thread than the one that configured the layer.
pub trait Layer: Sized + Send + 'static {
    /// The name a config file gives in `plugin = "…"`.
    const NAME: &'static str;
    /// The plugin's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// The layer's keys. Use `#[serde(deny_unknown_fields)]` so typos are reported.
    type Params: serde::de::DeserializeOwned;

    /// The layer for these keys and this input shape, or an error naming the key or shape.
    fn configure(params: Self::Params, input: Shape) -> Result<Self, Error>;
    /// Output shape, scratch, sizes and receptive field of the configured layer.
    fn info(&self) -> LayerInfo;
    /// The tensors the layer needs from the weights file, in the order `load` gets them.
    fn tensors(&self) -> Vec<TensorSpec>;
    /// `tensors` in the order of [`Layer::tensors`], each with exactly the announced size.
    fn load(&mut self, tensors: &[&[f32]]) -> Result<(), Error>;
    /// One window: `input` of the configured shape to `output` of `info().output`, using
    /// `scratch` (at least `info().scratch_len` elements). Must not allocate.
    fn forward(&self, input: &[f32], output: &mut [f32], scratch: &mut [f32]) -> Result<(), Error>;

    /// Streaming: `Some(pad_left)` when [`Layer::forward_range`] can compute any range of
    /// output positions by itself, output position `j` reading input positions from
    /// `j * rf_stride - pad_left` on (`rf_span` of them, see [`LayerInfo`]). The host then
    /// recomputes only the positions of a window that the previous window, shifted by the hop,
    /// does not already hold. `None` (the default): every window runs [`Layer::forward`].
    fn stream_offset(&self) -> Option<usize> {
        None
    }

    /// Output positions `range` of every channel of `output` (`[channels, length]`), exactly as
    /// [`Layer::forward`] computes them, reading only the input positions those outputs see;
    /// every other output value must be left as it is. Called only when
    /// [`Layer::stream_offset`] is `Some`. Must not allocate.
    fn forward_range(
        &self,
        input: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
        range: std::ops::Range<usize>,
    ) -> Result<(), Error> {
        let _ = (input, output, scratch, range);
        Err(Error::runtime("this layer cannot compute part of its output"))
    }
}

/// Applies `f` to positions `range` of every row of a `[rows, row_len]` buffer: how
/// position-wise steps (activations, BatchNorm, sums) of a [`Layer::forward_range`] touch only
/// their range.
pub fn for_each_row_range(
    buf: &mut [f32],
    row_len: usize,
    range: std::ops::Range<usize>,
    mut f: impl FnMut(usize, &mut [f32]),
) {
    if row_len == 0 || range.is_empty() {
        return;
    }
    for (r, row) in buf.chunks_exact_mut(row_len).enumerate() {
        f(r, &mut row[range.clone()]);
    }
}

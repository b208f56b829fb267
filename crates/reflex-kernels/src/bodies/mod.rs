//! Bottom layer: the kernel bodies, plain functions per instruction set, and
//! the pure data they share. Nothing here knows about kernel sets, CPU
//! detection or the public API; `registry` picks these functions up.
//!
//! * `scalar` — the reference: plain loops, no blocking.
//! * `blocked` — generic register-blocked bodies, always inlined, so that
//!   each of the modules below gets its own copy vectorised for its features.
//! * `portable` — `blocked` for the baseline target (SSE2 on x86-64, NEON on
//!   aarch64).
//! * `x86_avx2`, `x86_avx512` — `blocked` compiled with those features. They
//!   must run only on a CPU that has them: the registry vouches for that.
//!
//! Every position of a convolution output gets the same sequence of (fused,
//! in the FMA sets) multiply-adds whichever block computes it, so a body
//! computes a range of positions bit for bit as it computes them within the
//! whole row.

/// Wraps kernel bodies into safe functions compiled with `$features`: each
/// `fn name(args) body` becomes `fn name(args)` calling an inner
/// `#[target_feature]` copy of `body`, so the (always inlined) generic bodies
/// are vectorised for those features.
///
/// The wrappers are sound only on a CPU with `$features`. They are
/// `pub(crate)` and the one place that names them is the registry, whose
/// `variants()` hands out a set only after `is_x86_feature_detected!`
/// confirmed every feature its functions were compiled with (the `avx512`
/// set, which borrows two AVX2 functions, is pushed inside the AVX2 + FMA
/// check).
#[cfg(target_arch = "x86_64")]
macro_rules! with_target_features {
    ($features:literal; $(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block)*) => {
        $(
            pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
                #[target_feature(enable = $features)]
                unsafe fn imp($($arg: $ty),*) $(-> $ret)? $body
                // SAFETY: the CPU has `$features`: only the registry reaches this function,
                // through a kernel set it lists after detecting them (see the macro's doc).
                unsafe { imp($($arg),*) }
            }
        )*
    };
}

pub(crate) mod blocked;
pub(crate) mod portable;
pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_avx512;

/// Output channels computed together by the panel kernel.
pub(crate) const MR: usize = 4;

/// Output channels computed together by the cols kernel, in the vector lanes.
pub(crate) const OC: usize = 16;

/// Elements of slack after the padded input in scratch. The blocked kernels
/// load whole position blocks, so the last block of the last row may read up
/// to `NR - 1` elements past the data; this must cover the largest `NR` (32:
/// the `avx512` panel and the widest row kernels), which the kernels assert.
pub(crate) const SLACK: usize = 64;

/// An activation as the bodies see it: which function, with its parameters.
/// The public [`Activation`](crate::Activation) converts to it; the reference
/// formulas are in `scalar`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Act {
    None,
    Relu,
    Relu6,
    LeakyRelu { negative_slope: f32 },
    Elu { alpha: f32 },
    Silu,
    Gelu,
    Tanh,
    Sigmoid,
    Hardswish,
}

impl Act {
    /// Whether the cols kernels apply this activation as they store each value: the
    /// piecewise-linear ones, a compare and a select or multiply.
    pub(crate) fn fuses(self) -> bool {
        matches!(self, Act::None | Act::Relu | Act::Relu6 | Act::LeakyRelu { .. })
    }
}

/// The reduction a windowed pool applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    Max,
    Avg,
}

/// The operands of one conv micro-kernel call: a tile of output channels
/// that share one input group.
pub(crate) struct Tile<'a> {
    /// Prepared input of the group: rows with slack after them.
    pub x: &'a [f32],
    /// Start in `x` of each reduction step `(c, t)`, relative to the output position.
    pub offs: &'a [usize],
    /// Packed weights: for each reduction step, the tile's channels contiguous.
    pub w: &'a [f32],
    /// One bias per tile channel (MR for a panel, 1 for a row).
    pub bias: &'a [f32],
    /// Applied by `cols` as it stores each value (it stores them one by one anyway), one
    /// that [`fuses`](Act::fuses); `None` for the other kernels, whose callers apply
    /// activations after them (done in their stores, it made LLVM keep the accumulators on
    /// the stack).
    pub act: Act,
}

/// `out[m * out_stride + j] = bias[m] + sum_k w[k * MR + m] * x[offs[k] + j]`
/// for `m < rows`, `j < n`.
pub(crate) type PanelFn = fn(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize);
/// `out[j] = bias[0] + sum_k w[k] * x[offs[k] + j]` for `j < out.len()`.
pub(crate) type RowFn = fn(t: &Tile, out: &mut [f32]);

/// Multiply-add that becomes one fused instruction where the target has one
/// and stays a plain multiply and add where `mul_add` would be a libm call.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

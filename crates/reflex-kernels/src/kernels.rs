//! Kernel sets: the hot loops, in one implementation per instruction set.
//!
//! Every set implements the same few micro-kernels; [`Conv1d`](crate::Conv1d)
//! and [`Activation`] only ever reach them through a [`KernelSet`], so the
//! conformance suite can run one set of tests against every variant.
//!
//! * `scalar` — the reference: plain loops, no blocking.
//! * `portable` — register-blocked loops written so that LLVM vectorises them
//!   for the baseline target (SSE2 on x86-64, NEON on aarch64).
//! * `avx2+fma` (x86-64 only) — the very same blocked code compiled a second
//!   time with AVX2 and FMA enabled, picked only when the CPU has both.

use crate::activation::Activation;
use std::sync::OnceLock;

/// Output channels computed together by the panel kernel.
pub(crate) const MR: usize = 4;

/// Elements of slack after the padded input in scratch. The blocked kernels
/// load whole position blocks, so the last block of the last row may read up
/// to `NR - 1` elements past the data; this must cover the largest `NR`.
pub(crate) const SLACK: usize = 64;

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
}

/// `out[m * out_stride + j] = bias[m] + sum_k w[k * MR + m] * x[offs[k] + j]`
/// for `m < rows`, `j < n`.
pub(crate) type PanelFn = fn(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize);
/// `out[j] = bias[0] + sum_k w[k] * x[offs[k] + j]` for `j < out.len()`.
pub(crate) type RowFn = fn(t: &Tile, out: &mut [f32]);

/// One implementation of the hot kernels.
///
/// Obtain one from [`kernels`] (the best for this CPU), [`variants`] (all that
/// run here) or [`kernel_set_by_name`].
pub struct KernelSet {
    /// `"scalar"`, `"portable"` or `"avx2+fma"`.
    pub name: &'static str,
    pub(crate) panel: PanelFn,
    pub(crate) row: RowFn,
    pub(crate) activation: fn(Activation, &mut [f32]),
    pub(crate) add: fn(&mut [f32], &[f32]),
}

impl std::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelSet").field("name", &self.name).finish()
    }
}

/// The kernel set used by [`Conv1d::run`](crate::Conv1d::run),
/// [`Activation::apply`] and [`add_assign`](crate::add_assign).
///
/// Chosen once per process: the fastest variant this CPU supports, unless the
/// environment variable `REFLEX_KERNELS` names another one that is available
/// here (`scalar`, `portable`, `avx2+fma`); an unknown or unavailable name is
/// ignored. The first call reads the environment (and so allocates); later
/// calls do not. [`Conv1d::new`](crate::Conv1d::new) makes that first call.
pub fn kernels() -> &'static KernelSet {
    static CHOSEN: OnceLock<&'static KernelSet> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        let all = variants();
        std::env::var("REFLEX_KERNELS")
            .ok()
            .and_then(|name| kernel_set_by_name(name.trim()))
            .or_else(|| all.last().copied())
            .unwrap_or(&SCALAR)
    })
}

/// Every variant that can run on this CPU, the scalar reference first and the
/// fastest last.
pub fn variants() -> &'static [&'static KernelSet] {
    static ALL: OnceLock<Vec<&'static KernelSet>> = OnceLock::new();
    ALL.get_or_init(|| {
        #[allow(unused_mut)]
        let mut v: Vec<&'static KernelSet> = vec![&SCALAR, &PORTABLE];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(&avx2::SET);
        }
        v
    })
}

/// The variant called `name`, if it can run on this CPU.
pub fn kernel_set_by_name(name: &str) -> Option<&'static KernelSet> {
    variants().iter().copied().find(|k| k.name == name)
}

static SCALAR: KernelSet = KernelSet {
    name: "scalar",
    panel: scalar::panel,
    row: scalar::row,
    activation: scalar::activation,
    add: scalar::add,
};

mod scalar {
    use super::{Activation, Tile, MR};

    pub(super) fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        for m in 0..rows {
            for j in 0..n {
                let mut s = t.bias[m];
                for (k, &off) in t.offs.iter().enumerate() {
                    s += t.w[k * MR + m] * t.x[off + j];
                }
                out[m * out_stride + j] = s;
            }
        }
    }

    pub(super) fn row(t: &Tile, out: &mut [f32]) {
        for (j, o) in out.iter_mut().enumerate() {
            let mut s = t.bias[0];
            for (k, &off) in t.offs.iter().enumerate() {
                s += t.w[k] * t.x[off + j];
            }
            *o = s;
        }
    }

    pub(super) fn activation(a: Activation, x: &mut [f32]) {
        for v in x {
            *v = a.apply_scalar(*v);
        }
    }

    pub(super) fn add(dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += *s;
        }
    }
}

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

/// Generic register-blocked bodies. Always inlined, so each caller (plain or
/// `#[target_feature]`) gets its own copy vectorised for its own features.
pub(crate) mod blocked {
    use super::{madd, Activation, Tile, MR};

    /// One MR x NR block of outputs starting at position `j0`, returned by
    /// value: the caller's constant-size stores are what lets LLVM keep the
    /// accumulators in vector registers (a variable-length copy out of them
    /// would pin them to the stack).
    #[inline(always)]
    fn panel_block<const NR: usize, const FMA: bool>(t: &Tile, w: &[f32], bias: &[f32], j0: usize) -> [[f32; NR]; MR] {
        let mut acc = [[0.0f32; NR]; MR];
        for (a, &b) in acc.iter_mut().zip(bias) {
            *a = [b; NR];
        }
        for (&off, wk) in t.offs.iter().zip(w.chunks_exact(MR)) {
            let start = off + j0;
            let xr = &t.x[start..start + NR];
            for (a, &wm) in acc.iter_mut().zip(wk) {
                for (ai, &xv) in a.iter_mut().zip(xr) {
                    *ai = madd::<FMA>(wm, xv, *ai);
                }
            }
        }
        acc
    }

    #[inline(always)]
    pub(crate) fn panel<const NR: usize, const FMA: bool>(
        t: &Tile,
        out: &mut [f32],
        out_stride: usize,
        rows: usize,
        n: usize,
    ) {
        let w = &t.w[..t.offs.len() * MR];
        let bias = &t.bias[..MR];
        let mut j0 = 0;
        while j0 + NR <= n {
            let acc = panel_block::<NR, FMA>(t, w, bias, j0);
            for (m, a) in acc.iter().enumerate().take(rows) {
                let o = m * out_stride + j0;
                out[o..o + NR].copy_from_slice(a);
            }
            j0 += NR;
        }
        if j0 < n {
            // The tail block reads past the row into the scratch slack; only
            // the real positions are stored.
            let acc = panel_block::<NR, FMA>(t, w, bias, j0);
            let cnt = n - j0;
            for (m, a) in acc.iter().enumerate().take(rows) {
                let o = m * out_stride + j0;
                out[o..o + cnt].copy_from_slice(&a[..cnt]);
            }
        }
    }

    #[inline(always)]
    fn row_block<const NR: usize, const FMA: bool>(t: &Tile, w: &[f32], b: f32, j0: usize) -> [f32; NR] {
        let mut acc = [b; NR];
        for (&off, &wk) in t.offs.iter().zip(w) {
            let start = off + j0;
            let xr = &t.x[start..start + NR];
            for (ai, &xv) in acc.iter_mut().zip(xr) {
                *ai = madd::<FMA>(wk, xv, *ai);
            }
        }
        acc
    }

    #[inline(always)]
    pub(crate) fn row<const NR: usize, const FMA: bool>(t: &Tile, out: &mut [f32]) {
        let n = out.len();
        let w = &t.w[..t.offs.len()];
        let b = t.bias[0];
        let mut j0 = 0;
        while j0 + NR <= n {
            let acc = row_block::<NR, FMA>(t, w, b, j0);
            out[j0..j0 + NR].copy_from_slice(&acc);
            j0 += NR;
        }
        if j0 < n {
            let acc = row_block::<NR, FMA>(t, w, b, j0);
            out[j0..].copy_from_slice(&acc[..n - j0]);
        }
    }

    #[inline(always)]
    pub(crate) fn activation<const FMA: bool>(a: Activation, x: &mut [f32]) {
        crate::activation::apply_blocked::<FMA>(a, x);
    }

    #[inline(always)]
    pub(crate) fn add(dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += *s;
        }
    }
}

// Block widths for the baseline target: aarch64 has 32 128-bit registers and
// fused multiply-add in its base ISA; x86-64's baseline has 16 SSE registers
// and no FMA (where `mul_add` would be a slow libm call).
#[cfg(target_arch = "aarch64")]
mod portable_params {
    pub(super) const NR: usize = 16;
    pub(super) const NR_ROW: usize = 32;
    pub(super) const FMA: bool = true;
}
#[cfg(not(target_arch = "aarch64"))]
mod portable_params {
    pub(super) const NR: usize = 8;
    pub(super) const NR_ROW: usize = 16;
    pub(super) const FMA: bool = false;
}

static PORTABLE: KernelSet = KernelSet {
    name: "portable",
    panel: portable::panel,
    row: portable::row,
    activation: portable::activation,
    add: portable::add,
};

mod portable {
    use super::portable_params::{FMA, NR, NR_ROW};
    use super::{blocked, Activation, Tile};

    pub(super) fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        blocked::panel::<NR, FMA>(t, out, out_stride, rows, n)
    }
    pub(super) fn row(t: &Tile, out: &mut [f32]) {
        blocked::row::<NR_ROW, FMA>(t, out)
    }
    pub(super) fn activation(a: Activation, x: &mut [f32]) {
        blocked::activation::<FMA>(a, x)
    }
    pub(super) fn add(dst: &mut [f32], src: &[f32]) {
        blocked::add(dst, src)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The blocked bodies recompiled with AVX2 + FMA.
    //!
    //! SAFETY (for every `unsafe` block below): these wrappers are reachable
    //! only through `SET`, and `variants()` hands `SET` out only after
    //! `is_x86_feature_detected!` confirmed both AVX2 and FMA.
    use super::{blocked, Activation, KernelSet, Tile};

    // 4 x 16 accumulators = 8 ymm registers, leaving room for the two row
    // loads and the weight broadcasts.
    const NR: usize = 16;
    const NR_ROW: usize = 32;

    pub(super) static SET: KernelSet = KernelSet { name: "avx2+fma", panel, row, activation, add };

    #[target_feature(enable = "avx2,fma")]
    unsafe fn panel_tf(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        blocked::panel::<NR, true>(t, out, out_stride, rows, n)
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_tf(t: &Tile, out: &mut [f32]) {
        blocked::row::<NR_ROW, true>(t, out)
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn activation_tf(a: Activation, x: &mut [f32]) {
        blocked::activation::<true>(a, x)
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_tf(dst: &mut [f32], src: &[f32]) {
        blocked::add(dst, src)
    }

    fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        unsafe { panel_tf(t, out, out_stride, rows, n) }
    }
    fn row(t: &Tile, out: &mut [f32]) {
        unsafe { row_tf(t, out) }
    }
    fn activation(a: Activation, x: &mut [f32]) {
        unsafe { activation_tf(a, x) }
    }
    fn add(dst: &mut [f32], src: &[f32]) {
        unsafe { add_tf(dst, src) }
    }
}

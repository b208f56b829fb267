//! Middle layer: the per-CPU registry. A [`KernelSet`] is a table of the
//! bottom layer's functions for one instruction set; [`variants`] lists those
//! this CPU runs, [`kernels`] picks one per process. Imports only `bodies`.
//!
//! The sets: `scalar` (the reference), `portable` (blocked, vectorised for
//! the baseline target: NEON on aarch64), and on x86-64 `avx2+fma` and
//! `avx512`, listed only when the CPU has their features.

use crate::bodies::{portable, scalar, Act, PanelFn, Pool, RowFn};
#[cfg(target_arch = "x86_64")]
use crate::bodies::{x86_avx2, x86_avx512};
use std::sync::OnceLock;

/// One implementation of the hot kernels.
///
/// Obtain one from [`kernels`] (the best for this CPU), [`variants`] (all that
/// run here) or [`kernel_set_by_name`].
pub struct KernelSet {
    /// `"scalar"`, `"portable"`, `"avx2+fma"` or `"avx512"`.
    pub name: &'static str,
    pub(crate) panel: PanelFn,
    pub(crate) row: RowFn,
    /// Like `panel`, for tiles of OC channels packed OC to a reduction step,
    /// vectorised over the channels: what a range of a few positions runs.
    pub(crate) cols: PanelFn,
    /// Ranges narrower than this run `cols`.
    pub(crate) narrow: usize,
    pub(crate) activation: fn(Act, &mut [f32]),
    /// `dst[i] = act(dst[i] + src[i])`: a residual sum and its activation in one pass.
    pub(crate) add: fn(&mut [f32], &[f32], Act),
    /// Sum of a row in f64 (global average pool).
    pub(crate) sum: fn(&[f32]) -> f64,
    /// NaN-propagating maximum of a row, `-inf` if empty (global max pool).
    pub(crate) max: fn(&[f32]) -> f32,
    /// `x[i] = x[i] * a + b` (standalone batch norm).
    pub(crate) scale_shift: fn(&mut [f32], f32, f32),
    /// `out[i] = pool(row[i*k..(i+1)*k])` with `row.len() == out.len() * k`.
    pub(crate) pool: fn(Pool, &[f32], usize, &mut [f32]),
}

impl std::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelSet").field("name", &self.name).finish()
    }
}

/// The kernel set used by [`Conv1d::run`](crate::Conv1d::run),
/// [`Activation::apply`](crate::Activation::apply) and the light layers ([`add_assign`](crate::add_assign),
/// the pools, [`scale_shift`](crate::scale_shift)).
///
/// Chosen once per process: the fastest variant this CPU supports (the last
/// of [`variants`]), unless the environment variable `REFLEX_KERNELS` names
/// another one that is available here (`scalar`, `portable`, `avx2+fma`,
/// `avx512`); an unknown or unavailable name is ignored. The first call reads
/// the environment (and so allocates); later calls do not.
/// [`Conv1d::new`](crate::Conv1d::new) makes that first call.
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
///
/// On x86-64, `avx512` comes after `avx2+fma`, so it is the default where the
/// CPU has it. Measured on AMD Zen 4, which executes a 512-bit operation as
/// two 256-bit halves (the peak FMA rate is the same as with AVX2), it was
/// still faster where it counts: 6-25 % on whole-window convolution panels
/// (half the instructions and loads per FMA), 8-18 % on whole windows of the
/// six-layer bench models, 1.4-2.5x on the exp-based activations; on the short
/// ranges of streaming inference (latency-bound passes, the same for both) it
/// was within ±4 %. Where its 512-bit code was slower it uses the AVX2 kernels
/// (see `bodies::x86_avx512`). On cores with two 512-bit FMA units the gap grows.
pub fn variants() -> &'static [&'static KernelSet] {
    static ALL: OnceLock<Vec<&'static KernelSet>> = OnceLock::new();
    ALL.get_or_init(|| {
        #[allow(unused_mut)]
        let mut v: Vec<&'static KernelSet> = vec![&SCALAR, &PORTABLE];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(&AVX2);
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
                v.push(&AVX512);
            }
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
    cols: scalar::cols,
    // Not faster here, but it keeps the reference of the cols layout in the suite.
    narrow: 8,
    activation: scalar::activation,
    add: scalar::add,
    sum: scalar::sum,
    max: scalar::max,
    scale_shift: scalar::scale_shift,
    pool: scalar::pool,
};

static PORTABLE: KernelSet = KernelSet {
    name: "portable",
    panel: portable::panel,
    row: portable::row,
    cols: portable::cols,
    narrow: portable::NR,
    activation: portable::activation,
    add: portable::add,
    sum: portable::sum,
    max: portable::max,
    scale_shift: portable::scale_shift,
    pool: portable::pool,
};

#[cfg(target_arch = "x86_64")]
static AVX2: KernelSet = KernelSet {
    name: "avx2+fma",
    panel: x86_avx2::panel,
    row: x86_avx2::row,
    cols: x86_avx2::cols,
    narrow: 28,
    activation: x86_avx2::activation,
    add: x86_avx2::add,
    sum: x86_avx2::sum,
    max: x86_avx2::max,
    scale_shift: x86_avx2::scale_shift,
    pool: x86_avx2::pool,
};

/// `row` and `max` are AVX2's, measured faster (see `bodies::x86_avx512`).
#[cfg(target_arch = "x86_64")]
static AVX512: KernelSet = KernelSet {
    name: "avx512",
    panel: x86_avx512::panel,
    row: x86_avx2::row,
    cols: x86_avx512::cols,
    // 28 positions, a streamed edge of the six-layer models at hop 16, cost less as
    // cols passes (8 + 8 + 8 + 4) than as one 32-position panel block; from 30 on
    // the panels win.
    narrow: 30,
    activation: x86_avx512::activation,
    add: x86_avx512::add,
    sum: x86_avx512::sum,
    max: x86_avx2::max,
    scale_shift: x86_avx512::scale_shift,
    pool: x86_avx512::pool,
};

/// The light layers with an explicit kernel set; the free functions of the
/// same names use [`kernels`].
impl KernelSet {
    /// [`scale_shift`](crate::scale_shift) with this kernel set.
    pub fn scale_shift(&self, x: &mut [f32], channels: usize, len: usize, scale: &[f32], shift: &[f32]) {
        assert_eq!(x.len(), channels * len, "scale_shift: x is not [channels, len]");
        assert!(scale.len() >= channels && shift.len() >= channels, "scale_shift: short scale/shift");
        if len == 0 {
            return;
        }
        for ((row, &a), &b) in x.chunks_exact_mut(len).zip(scale).zip(shift) {
            (self.scale_shift)(row, a, b);
        }
    }

    /// [`max_pool`](crate::max_pool) with this kernel set.
    pub fn max_pool(&self, x: &[f32], channels: usize, len: usize, k: usize, out: &mut [f32]) {
        self.pool(Pool::Max, x, channels, len, k, out)
    }

    /// [`avg_pool`](crate::avg_pool) with this kernel set.
    pub fn avg_pool(&self, x: &[f32], channels: usize, len: usize, k: usize, out: &mut [f32]) {
        self.pool(Pool::Avg, x, channels, len, k, out)
    }

    fn pool(&self, p: Pool, x: &[f32], channels: usize, len: usize, k: usize, out: &mut [f32]) {
        let out_len = pool_check(x, channels, len, k, out);
        if out_len == 0 {
            return;
        }
        for (row, orow) in x.chunks_exact(len).zip(out.chunks_exact_mut(out_len)) {
            (self.pool)(p, &row[..out_len * k], k, orow);
        }
    }

    /// [`global_avg_pool`](crate::global_avg_pool) with this kernel set.
    pub fn global_avg_pool(&self, x: &[f32], channels: usize, len: usize, out: &mut [f32]) {
        assert_eq!(x.len(), channels * len, "global_avg_pool: x is not [channels, len]");
        assert_eq!(out.len(), channels, "global_avg_pool: out is not [channels]");
        if len == 0 {
            out.fill(f32::NAN);
            return;
        }
        for (row, o) in x.chunks_exact(len).zip(out) {
            *o = ((self.sum)(row) / len as f64) as f32;
        }
    }

    /// [`global_max_pool`](crate::global_max_pool) with this kernel set.
    pub fn global_max_pool(&self, x: &[f32], channels: usize, len: usize, out: &mut [f32]) {
        assert_eq!(x.len(), channels * len, "global_max_pool: x is not [channels, len]");
        assert_eq!(out.len(), channels, "global_max_pool: out is not [channels]");
        if len == 0 {
            out.fill(f32::NEG_INFINITY);
            return;
        }
        for (row, o) in x.chunks_exact(len).zip(out) {
            *o = (self.max)(row);
        }
    }
}

fn pool_check(x: &[f32], channels: usize, len: usize, k: usize, out: &[f32]) -> usize {
    assert!(k > 0, "pool: kernel_size must be positive");
    assert_eq!(x.len(), channels * len, "pool: x is not [channels, len]");
    let out_len = len / k;
    assert_eq!(out.len(), channels * out_len, "pool: out is not [channels, len / k]");
    out_len
}

#[cfg(test)]
mod tests;

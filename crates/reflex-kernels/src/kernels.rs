//! Kernel sets: the hot loops, in one implementation per instruction set.
//!
//! Every set implements the same few micro-kernels; [`Conv1d`](crate::Conv1d),
//! [`Activation`] and the light layers only ever reach them through a
//! [`KernelSet`], so the conformance suite can run one set of tests against
//! every variant.
//!
//! * `scalar` — the reference: plain loops, no blocking.
//! * `portable` — register-blocked loops written so that LLVM vectorises them
//!   for the baseline target (SSE2 on x86-64, NEON on aarch64).
//! * `avx2+fma` (x86-64 only) — the very same blocked code compiled a second
//!   time with AVX2 and FMA enabled, picked only when the CPU has both.
//! * `avx512` (x86-64 only) — the same code compiled with AVX-512F/VL, with
//!   32-position convolution panels; picked only when the CPU has them.
//!
//! Every position of a convolution output gets the same sequence of
//! (fused, in the FMA sets) multiply-adds whichever block computes it, so a
//! kernel set computes a range of positions bit for bit as it computes them
//! within the whole row.

use crate::activation::Activation;
use crate::ops::{self, Pool};
use std::sync::OnceLock;

/// Output channels computed together by the panel kernel.
pub(crate) const MR: usize = 4;

/// Output channels computed together by the cols kernel, in the vector lanes.
pub(crate) const OC: usize = 16;

/// Elements of slack after the padded input in scratch. The blocked kernels
/// load whole position blocks, so the last block of the last row may read up
/// to `NR - 1` elements past the data; this must cover the largest `NR` (32:
/// the `avx512` panel and the widest row kernels), which the kernels assert.
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
    /// Applied by `cols` as it stores each value (it stores them one by one anyway), one
    /// that [`fuses`](Activation::fuses); `None` for the other kernels, whose callers apply
    /// activations after them (done in their stores, it made LLVM keep the accumulators on
    /// the stack).
    pub act: Activation,
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
    /// `"scalar"`, `"portable"`, `"avx2+fma"` or `"avx512"`.
    pub name: &'static str,
    pub(crate) panel: PanelFn,
    pub(crate) row: RowFn,
    /// Like `panel`, for tiles of OC channels packed OC to a reduction step,
    /// vectorised over the channels: what a range of a few positions runs.
    pub(crate) cols: PanelFn,
    /// Ranges narrower than this run `cols`.
    pub(crate) narrow: usize,
    pub(crate) activation: fn(Activation, &mut [f32]),
    /// `dst[i] = act(dst[i] + src[i])`: a residual sum and its activation in one pass.
    pub(crate) add: fn(&mut [f32], &[f32], Activation),
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
/// [`Activation::apply`] and the light layers ([`add_assign`](crate::add_assign),
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
/// (see `x86::avx512`). On cores with two 512-bit FMA units the gap grows.
pub fn variants() -> &'static [&'static KernelSet] {
    static ALL: OnceLock<Vec<&'static KernelSet>> = OnceLock::new();
    ALL.get_or_init(|| {
        #[allow(unused_mut)]
        let mut v: Vec<&'static KernelSet> = vec![&SCALAR, &PORTABLE];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(&x86::avx2::SET);
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
                v.push(&x86::avx512::SET);
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
    sum: ops::reference::sum,
    max: ops::reference::max,
    scale_shift: ops::reference::scale_shift,
    pool: ops::reference::pool,
};

mod scalar {
    use super::{Activation, Tile, MR, OC};

    pub(super) fn cols(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        for m in 0..rows {
            for j in 0..n {
                let mut s = t.bias[m];
                for (k, &off) in t.offs.iter().enumerate() {
                    s += t.w[k * OC + m] * t.x[off + j];
                }
                out[m * out_stride + j] = t.act.apply_scalar(s);
            }
        }
    }

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

    pub(super) fn add(dst: &mut [f32], src: &[f32], a: Activation) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = a.apply_scalar(*d + *s);
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
    use super::{madd, Activation, Tile, MR, OC};

    /// W positions × OC output channels starting at position `j0`, the
    /// channels in the vector lanes: for each reduction step one weight
    /// vector and W broadcast input values. Returned by value, as
    /// `panel_block`.
    #[inline(always)]
    fn cols_block<const W: usize, const FMA: bool>(t: &Tile, w: &[f32], j0: usize) -> [[f32; OC]; W] {
        let bias: &[f32; OC] = t.bias[..OC].try_into().expect("OC biases");
        let mut acc = [*bias; W];
        for (&off, wk) in t.offs.iter().zip(w.chunks_exact(OC)) {
            let wk: &[f32; OC] = wk.try_into().expect("OC weights");
            let xr = &t.x[off + j0..off + j0 + W];
            for (a, &xv) in acc.iter_mut().zip(xr) {
                for (ai, &wm) in a.iter_mut().zip(wk) {
                    *ai = madd::<FMA>(wm, xv, *ai);
                }
            }
        }
        acc
    }

    /// Positions `j0..j0 + 2A` as two blocks of A sharing each weight load: `2A`
    /// independent accumulator chains, kept in registers — as one `[[f32; OC]; 2A]` LLVM
    /// leaves them on the stack, and two blocks of different widths it did not vectorise;
    /// returned rather than stored in here, which also put them on the stack.
    #[inline(always)]
    fn cols_pair<const A: usize, const FMA: bool>(t: &Tile, w: &[f32], j0: usize) -> [[[f32; OC]; A]; 2] {
        let bias: &[f32; OC] = t.bias[..OC].try_into().expect("OC biases");
        let (mut lo, mut hi) = ([*bias; A], [*bias; A]);
        for (&off, wk) in t.offs.iter().zip(w.chunks_exact(OC)) {
            let wk: &[f32; OC] = wk.try_into().expect("OC weights");
            let xr = &t.x[off + j0..off + j0 + 2 * A];
            for (acc, xr) in [(&mut lo, &xr[..A]), (&mut hi, &xr[A..])] {
                for (a, &xv) in acc.iter_mut().zip(xr) {
                    for (ai, &wm) in a.iter_mut().zip(wk) {
                        *ai = madd::<FMA>(wm, xv, *ai);
                    }
                }
            }
        }
        [lo, hi]
    }

    /// Runs and stores [`cols_pair`].
    #[inline(always)]
    fn store_pair<const A: usize, const FMA: bool>(
        t: &Tile,
        w: &[f32],
        out: &mut [f32],
        out_stride: usize,
        rows: usize,
        j0: usize,
    ) {
        let [lo, hi] = cols_pair::<A, FMA>(t, w, j0);
        store_cols(&lo, t.act, out, out_stride, rows, j0);
        store_cols(&hi, t.act, out, out_stride, rows, j0 + A);
    }

    /// [`cols`] for 512-bit vectors (one vector per position), where a pass needs 8
    /// accumulator chains to keep the FMA unit busy and costs about as many cycles per
    /// reduction step as it has chains, 4 at the least (the FMA latency): blocks of 8
    /// positions, and an even rest of 6 or 10 in one block (not 4 + 2 or 8 + 2, whose
    /// 2-position pass would cost as much as a 4-position one). Other rests: blocks of 4,
    /// then the rest.
    #[inline(always)]
    pub(crate) fn cols8<const FMA: bool>(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        let w = &t.w[..t.offs.len() * OC];
        let mut j0 = 0;
        while n - j0 >= 12 || n - j0 == 8 {
            store_pair::<4, FMA>(t, w, out, out_stride, rows, j0);
            j0 += 8;
        }
        match n - j0 {
            6 => store_pair::<3, FMA>(t, w, out, out_stride, rows, j0),
            10 => store_pair::<5, FMA>(t, w, out, out_stride, rows, j0),
            rest => {
                let x = Tile { x: &t.x[j0..], offs: t.offs, w: t.w, bias: t.bias, act: t.act };
                cols::<4, FMA>(&x, &mut out[j0..], out_stride, rows, rest);
            }
        }
    }

    #[inline(always)]
    fn store_cols<const W: usize>(
        acc: &[[f32; OC]; W],
        act: Activation,
        out: &mut [f32],
        out_stride: usize,
        rows: usize,
        j0: usize,
    ) {
        use crate::activation::{leaky, relu, relu6};
        match act {
            Activation::Relu => store_cols_with(acc, out, out_stride, rows, j0, relu),
            Activation::Relu6 => store_cols_with(acc, out, out_stride, rows, j0, relu6),
            Activation::LeakyRelu { negative_slope } => {
                store_cols_with(acc, out, out_stride, rows, j0, |x| leaky(x, negative_slope))
            }
            _ => store_cols_with(acc, out, out_stride, rows, j0, |x| x),
        }
    }

    /// Scatters the channel vectors of positions `j0..j0 + W` into the rows, through `f`.
    #[inline(always)]
    fn store_cols_with<const W: usize>(
        acc: &[[f32; OC]; W],
        out: &mut [f32],
        out_stride: usize,
        rows: usize,
        j0: usize,
        f: impl Fn(f32) -> f32,
    ) {
        for (j, a) in acc.iter().enumerate() {
            for (m, &v) in a.iter().enumerate().take(rows) {
                out[m * out_stride + j0 + j] = f(v);
            }
        }
    }

    /// `out[m * out_stride + j] = bias[m] + sum_k w[k * OC + m] * x[offs[k] + j]`
    /// for `m < rows`, `j < n`: blocks of W positions, then the rest in one
    /// narrower block (a pass costs about the same whatever its width up to
    /// W: it is bound by the latency of its accumulator chains). Never reads
    /// past position `n - 1` of a row.
    #[inline(always)]
    pub(crate) fn cols<const W: usize, const FMA: bool>(
        t: &Tile,
        out: &mut [f32],
        out_stride: usize,
        rows: usize,
        n: usize,
    ) {
        let w = &t.w[..t.offs.len() * OC];
        let mut j0 = 0;
        while j0 + W <= n {
            store_cols(&cols_block::<W, FMA>(t, w, j0), t.act, out, out_stride, rows, j0);
            j0 += W;
        }
        match n - j0 {
            0 => {}
            1 => store_cols(&cols_block::<1, FMA>(t, w, j0), t.act, out, out_stride, rows, j0),
            2 => store_cols(&cols_block::<2, FMA>(t, w, j0), t.act, out, out_stride, rows, j0),
            3 => store_cols(&cols_block::<3, FMA>(t, w, j0), t.act, out, out_stride, rows, j0),
            _ => {
                // W above 4: what is left is done in blocks of one.
                while j0 < n {
                    store_cols(&cols_block::<1, FMA>(t, w, j0), t.act, out, out_stride, rows, j0);
                    j0 += 1;
                }
            }
        }
    }

    /// `a[i] += wm * xr[i]`: one row of a block.
    #[inline(always)]
    fn madd_row<const W: usize, const FMA: bool>(a: &mut [f32; W], wm: f32, xr: &[f32; W]) {
        for (ai, &xv) in a.iter_mut().zip(xr) {
            *ai = madd::<FMA>(wm, xv, *ai);
        }
    }

    /// One MR x W block of outputs starting at position `j0`, returned by
    /// value: the caller's constant-size stores are what lets LLVM keep the
    /// accumulators in vector registers (a variable-length copy out of them
    /// would pin them to the stack). The MR rows are unrolled by hand: as a
    /// loop, LLVM leaves them rolled once `MR * W` passes its full-unroll
    /// threshold (W = 32) and then keeps the accumulators on the stack and
    /// never vectorises.
    #[inline(always)]
    fn panel_block<const W: usize, const FMA: bool>(t: &Tile, w: &[f32], bias: &[f32], j0: usize) -> [[f32; W]; MR] {
        let mut acc = [[0.0f32; W]; MR];
        for (a, &b) in acc.iter_mut().zip(bias) {
            *a = [b; W];
        }
        for (&off, wk) in t.offs.iter().zip(w.chunks_exact(MR)) {
            let start = off + j0;
            let xr: &[f32; W] = t.x[start..start + W].try_into().expect("a W-element slice");
            let [a0, a1, a2, a3] = &mut acc;
            madd_row::<W, FMA>(a0, wk[0], xr);
            madd_row::<W, FMA>(a1, wk[1], xr);
            madd_row::<W, FMA>(a2, wk[2], xr);
            madd_row::<W, FMA>(a3, wk[3], xr);
        }
        acc
    }

    /// Computes positions `j0..j0 + cnt` (`cnt <= W`) of the panel with one
    /// `W`-wide block; a partial block reads up to `W - cnt` elements past
    /// the data.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn panel_store<const W: usize, const FMA: bool>(
        t: &Tile,
        w: &[f32],
        bias: &[f32],
        out: &mut [f32],
        out_stride: usize,
        rows: usize,
        j0: usize,
        cnt: usize,
    ) {
        let acc = panel_block::<W, FMA>(t, w, bias, j0);
        for (m, a) in acc.iter().enumerate().take(rows) {
            let o = m * out_stride + j0;
            if cnt == W {
                out[o..o + W].copy_from_slice(a);
            } else {
                out[o..o + cnt].copy_from_slice(&a[..cnt]);
            }
        }
    }

    /// Full `NR`-wide blocks, then the `n % NR` remaining positions in ONE
    /// block of the narrowest width in 4, 8, 16, 32 (below `NR`) that holds
    /// them, so a short range of positions costs about what its length needs.
    ///
    /// Why one block and not a cascade (NR/2, NR/4, …, single positions):
    /// every block is a pass over all the reduction steps whose accumulator
    /// chains each add one FMA latency per step, so a pass of 16 positions or
    /// fewer is latency-bound (4 cycles per step on Zen 4 whatever its width)
    /// and each extra pass costs as much again. Measured (dense 64→64, k 5,
    /// n positions, AVX2): one pass ≈ 6.1 µs for any n ≤ 16, where the
    /// cascade took 18-29 µs for n = 3, 7, 15.
    #[inline(always)]
    pub(crate) fn panel<const NR: usize, const FMA: bool>(
        t: &Tile,
        out: &mut [f32],
        out_stride: usize,
        rows: usize,
        n: usize,
    ) {
        panel_from::<NR, FMA>(t, out, out_stride, rows, 0, n)
    }

    /// [`panel`] for positions `from..n` only.
    #[inline(always)]
    pub(crate) fn panel_from<const NR: usize, const FMA: bool>(
        t: &Tile,
        out: &mut [f32],
        out_stride: usize,
        rows: usize,
        from: usize,
        n: usize,
    ) {
        const { assert!(NR - 1 <= super::SLACK, "the scratch slack must cover the widest over-read") };
        let w = &t.w[..t.offs.len() * MR];
        let bias = &t.bias[..MR];
        let mut j0 = from;
        while j0 + NR <= n {
            panel_store::<NR, FMA>(t, w, bias, out, out_stride, rows, j0, NR);
            j0 += NR;
        }
        let rem = n - j0;
        macro_rules! tail {
            ($($width:literal)*) => {
                $(if $width < NR && rem <= $width {
                    return panel_store::<$width, FMA>(t, w, bias, out, out_stride, rows, j0, rem);
                })*
            };
        }
        if rem > 0 {
            tail!(4 8 16 32);
            panel_store::<NR, FMA>(t, w, bias, out, out_stride, rows, j0, rem);
        }
    }

    #[inline(always)]
    fn row_block<const W: usize, const FMA: bool>(t: &Tile, w: &[f32], b: f32, j0: usize) -> [f32; W] {
        let mut acc = [b; W];
        for (&off, &wk) in t.offs.iter().zip(w) {
            let start = off + j0;
            let xr: &[f32; W] = t.x[start..start + W].try_into().expect("a W-element slice");
            madd_row::<W, FMA>(&mut acc, wk, xr);
        }
        acc
    }

    /// Positions `j0..j0 + cnt` (`cnt <= W`) with one `W`-wide block.
    #[inline(always)]
    fn row_store<const W: usize, const FMA: bool>(t: &Tile, w: &[f32], b: f32, out: &mut [f32], j0: usize, cnt: usize) {
        let acc = row_block::<W, FMA>(t, w, b, j0);
        if cnt == W {
            out[j0..j0 + W].copy_from_slice(&acc);
        } else {
            out[j0..j0 + cnt].copy_from_slice(&acc[..cnt]);
        }
    }

    /// As [`panel`]: full blocks, then one block of the narrowest width that
    /// holds the rest. (Row blocks of a depthwise convolution are short
    /// passes, so the core overlaps several; narrower blocks still win.)
    #[inline(always)]
    pub(crate) fn row<const NR: usize, const FMA: bool>(t: &Tile, out: &mut [f32]) {
        const { assert!(NR - 1 <= super::SLACK, "the scratch slack must cover the widest over-read") };
        let n = out.len();
        let w = &t.w[..t.offs.len()];
        let b = t.bias[0];
        let mut j0 = 0;
        while j0 + NR <= n {
            row_store::<NR, FMA>(t, w, b, out, j0, NR);
            j0 += NR;
        }
        let rem = n - j0;
        macro_rules! tail {
            ($($width:literal)*) => {
                $(if $width < NR && rem <= $width {
                    return row_store::<$width, FMA>(t, w, b, out, j0, rem);
                })*
            };
        }
        if rem > 0 {
            tail!(4 8 16 32);
            row_store::<NR, FMA>(t, w, b, out, j0, rem);
        }
    }

    #[inline(always)]
    pub(crate) fn activation<const FMA: bool>(a: Activation, x: &mut [f32]) {
        crate::activation::apply_blocked::<FMA>(a, x);
    }

    #[inline(always)]
    pub(crate) fn add<const FMA: bool>(dst: &mut [f32], src: &[f32], a: Activation) {
        crate::activation::add_blocked::<FMA>(dst, src, a);
    }
}

// Block widths for the baseline target: aarch64 has 32 128-bit registers and
// fused multiply-add in its base ISA; x86-64's baseline has 16 SSE registers
// and no FMA (where `mul_add` would be a slow libm call).
#[cfg(target_arch = "aarch64")]
mod portable_params {
    pub(super) const NR: usize = 16;
    pub(super) const NR_ROW: usize = 32;
    /// 4 positions x 16 channels = 16 of the 32 NEON registers.
    pub(super) const COLS_W: usize = 4;
    pub(super) const FMA: bool = true;
    pub(super) const SUM_LANES: usize = 16;
    pub(super) const MAX_LANES: usize = 16;
}
#[cfg(not(target_arch = "aarch64"))]
mod portable_params {
    pub(super) const NR: usize = 8;
    pub(super) const NR_ROW: usize = 16;
    /// 2 positions x 16 channels = 8 of the 16 SSE registers.
    pub(super) const COLS_W: usize = 2;
    pub(super) const FMA: bool = false;
    pub(super) const SUM_LANES: usize = 16;
    pub(super) const MAX_LANES: usize = 16;
}

static PORTABLE: KernelSet = KernelSet {
    name: "portable",
    panel: portable::panel,
    row: portable::row,
    cols: portable::cols,
    narrow: portable_params::NR,
    activation: portable::activation,
    add: portable::add,
    sum: portable::sum,
    max: portable::max,
    scale_shift: portable::scale_shift,
    pool: portable::pool,
};

mod portable {
    use super::portable_params::{COLS_W, FMA, MAX_LANES, NR, NR_ROW, SUM_LANES};
    use super::{blocked, ops, Activation, Pool, Tile};

    pub(super) fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        blocked::panel::<NR, FMA>(t, out, out_stride, rows, n)
    }
    pub(super) fn row(t: &Tile, out: &mut [f32]) {
        blocked::row::<NR_ROW, FMA>(t, out)
    }
    pub(super) fn cols(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        blocked::cols::<COLS_W, FMA>(t, out, out_stride, rows, n)
    }
    pub(super) fn activation(a: Activation, x: &mut [f32]) {
        blocked::activation::<FMA>(a, x)
    }
    pub(super) fn add(dst: &mut [f32], src: &[f32], a: Activation) {
        blocked::add::<FMA>(dst, src, a)
    }
    pub(super) fn sum(x: &[f32]) -> f64 {
        ops::blocked::sum::<SUM_LANES>(x)
    }
    pub(super) fn max(x: &[f32]) -> f32 {
        ops::blocked::max::<MAX_LANES>(x)
    }
    pub(super) fn scale_shift(x: &mut [f32], a: f32, b: f32) {
        ops::blocked::scale_shift::<FMA>(x, a, b)
    }
    pub(super) fn pool(p: Pool, row: &[f32], k: usize, out: &mut [f32]) {
        ops::blocked::pool(p, row, k, out)
    }
}

/// Wraps kernel bodies into safe functions compiled with `$features`: each
/// `fn name(args) body` becomes `fn name(args)` calling an inner
/// `#[target_feature]` copy of `body`, so the (always inlined) generic bodies
/// are vectorised for those features.
///
/// SAFETY (for every `unsafe` block the macro writes): these functions are
/// reachable only through the kernel sets, which `variants()` hands out only
/// after `is_x86_feature_detected!` confirmed every feature the set's
/// functions were compiled with (the `avx512` set, which borrows two AVX2
/// functions, is pushed inside the AVX2 + FMA check).
#[cfg(target_arch = "x86_64")]
macro_rules! with_target_features {
    ($features:literal; $(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block)*) => {
        $(
            pub(super) fn $name($($arg: $ty),*) $(-> $ret)? {
                #[target_feature(enable = $features)]
                unsafe fn imp($($arg: $ty),*) $(-> $ret)? $body
                unsafe { imp($($arg),*) }
            }
        )*
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{blocked, ops, Activation, KernelSet, Pool, Tile};

    /// AVX2 + FMA: 4 x 16 panel accumulators = 8 ymm registers (of 16),
    /// leaving room for the two row loads and the weight broadcasts.
    pub(super) mod avx2 {
        use super::*;

        const SUM_LANES: usize = 16;
        const MAX_LANES: usize = 32;

        pub(in super::super) static SET: KernelSet =
            KernelSet { name: "avx2+fma", panel, row, cols, narrow: 28, activation, add, sum, max, scale_shift, pool };

        with_target_features! { "avx2,fma";
            fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
                blocked::panel::<16, true>(t, out, out_stride, rows, n)
            }
            fn panel_from(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, from: usize, n: usize) {
                blocked::panel_from::<16, true>(t, out, out_stride, rows, from, n)
            }
            fn row(t: &Tile, out: &mut [f32]) {
                blocked::row::<32, true>(t, out)
            }
            // 4 positions x 16 channels = 8 ymm accumulators.
            fn cols(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
                blocked::cols::<4, true>(t, out, out_stride, rows, n)
            }
            fn activation(a: Activation, x: &mut [f32]) {
                blocked::activation::<true>(a, x)
            }
            fn add(dst: &mut [f32], src: &[f32], a: Activation) {
                blocked::add::<true>(dst, src, a)
            }
            fn sum(x: &[f32]) -> f64 {
                ops::blocked::sum::<SUM_LANES>(x)
            }
            fn max(x: &[f32]) -> f32 {
                ops::blocked::max::<MAX_LANES>(x)
            }
            fn scale_shift(x: &mut [f32], a: f32, b: f32) {
                ops::blocked::scale_shift::<true>(x, a, b)
            }
            fn pool(p: Pool, row: &[f32], k: usize, out: &mut [f32]) {
                ops::blocked::pool(p, row, k, out)
            }
        }
    }

    /// AVX-512F/VL (which imply AVX2 + FMA): 4 x 32 panel accumulators = 8 zmm
    /// registers (of 32); VL gives the narrower tail blocks EVEX encodings.
    ///
    /// Some kernels are (partly) the AVX2 ones, measured faster on Zen 4 (which
    /// splits 512-bit operations into two 256-bit halves); all FMA sets give
    /// the same bits, so mixing them changes no result:
    /// * `panel` leaves the last 1-8 positions of a range to AVX2: there LLVM
    ///   packs two rows of a 4 x 8 block into each zmm and the latency-bound
    ///   pass took ~9 % longer (n = 5-8 positions) — what short streaming
    ///   ranges are made of;
    /// * `row` (depthwise convolutions): the 512-bit one (NR 32 or 64) was
    ///   5-10 % slower — a depthwise row is a short pass of k steps bound by
    ///   its unaligned loads, and an unaligned 64-byte load always spans two
    ///   cache lines;
    /// * `max` (global max pool): the NaN-propagating select goes through
    ///   mask registers with AVX-512 and was ~35 % slower.
    pub(super) mod avx512 {
        use super::*;

        const NR: usize = 32;
        const SUM_LANES: usize = 16;

        pub(in super::super) static SET: KernelSet = KernelSet {
            name: "avx512",
            panel,
            row: super::avx2::row,
            cols,
            // 28 positions, a streamed edge of the six-layer models at hop 16, cost less as
            // cols passes (8 + 8 + 8 + 4) than as one 32-position panel block; from 30 on
            // the panels win.
            narrow: 30,
            activation,
            add,
            sum,
            max: super::avx2::max,
            scale_shift,
            pool,
        };

        /// Whole 32-blocks and a 9-31 position tail with AVX-512, a 1-8
        /// position tail with AVX2's narrow blocks (see above).
        fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
            let wide = if n % NR <= 8 { n - n % NR } else { n };
            if wide > 0 {
                panel_512(t, out, out_stride, rows, wide);
            }
            if wide < n {
                super::avx2::panel_from(t, out, out_stride, rows, wide, n);
            }
        }

        with_target_features! { "avx512f,avx512vl,avx2,fma";
            fn panel_512(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
                blocked::panel::<NR, true>(t, out, out_stride, rows, n)
            }
            // 8 positions x 16 channels = 8 zmm accumulators.
            fn cols(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
                blocked::cols8::<true>(t, out, out_stride, rows, n)
            }
            fn activation(a: Activation, x: &mut [f32]) {
                blocked::activation::<true>(a, x)
            }
            fn add(dst: &mut [f32], src: &[f32], a: Activation) {
                blocked::add::<true>(dst, src, a)
            }
            fn sum(x: &[f32]) -> f64 {
                ops::blocked::sum::<SUM_LANES>(x)
            }
            fn scale_shift(x: &mut [f32], a: f32, b: f32) {
                ops::blocked::scale_shift::<true>(x, a, b)
            }
            fn pool(p: Pool, row: &[f32], k: usize, out: &mut [f32]) {
                ops::blocked::pool(p, row, k, out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The micro-kernels directly, on every variant: every length around every
    //! block boundary, ranges inside a row, and what a kernel may read and write.
    use super::*;

    /// Small deterministic values in [-1, 1).
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Positions up to three times the widest block, so that every full-block
    /// count and every tail width is hit with every remainder.
    const MAX_N: usize = 3 * 64;

    /// A convolution-like offset table: `chans` input rows of `row_len` with
    /// `taps` taps each.
    fn offsets(chans: usize, taps: usize, row_len: usize) -> Vec<usize> {
        (0..chans).flat_map(|c| (0..taps).map(move |t| c * row_len + t)).collect()
    }

    struct Case {
        offs: Vec<usize>,
        /// The input rows followed by SLACK NaNs: an over-read may load them,
        /// but they must never reach a stored output.
        x: Vec<f32>,
        w: Vec<f32>,
        bias: Vec<f32>,
    }

    fn case(seed: u64, chans: usize, taps: usize, width: usize) -> Case {
        let row_len = MAX_N + taps - 1;
        let offs = offsets(chans, taps, row_len);
        let mut x = values(seed, chans * row_len);
        x.extend([f32::NAN; SLACK]);
        Case { w: values(seed + 1, offs.len() * width), bias: values(seed + 2, width), offs, x }
    }

    /// f64 value of output `(m, j)`: `bias[m] + sum_k w[k * width + m] * x[offs[k] + j]`.
    fn reference(c: &Case, width: usize, m: usize, j: usize) -> f64 {
        c.offs
            .iter()
            .enumerate()
            .fold(f64::from(c.bias[m]), |s, (k, &off)| s + f64::from(c.w[k * width + m]) * f64::from(c.x[off + j]))
    }

    fn assert_close(ks: &KernelSet, what: &str, got: f32, want: f64, scale: f64) {
        assert!((f64::from(got) - want).abs() <= 1e-5 * scale, "{} {what}: got {got}, want {want}", ks.name);
    }

    /// Runs a tile kernel (`panel` or `cols`, tiles of `width` channels) on input `x` for `n`
    /// positions and `rows` channels: every output of the tile against the reference, and
    /// nothing written outside it.
    #[allow(clippy::too_many_arguments)]
    fn check_tile(
        ks: &KernelSet,
        kernel: PanelFn,
        name: &str,
        c: &Case,
        x: &[f32],
        width: usize,
        n: usize,
        rows: usize,
    ) {
        let scale = 1.0 + c.offs.len() as f64;
        let stride = n + 3;
        let mut out = vec![f32::NAN; width * stride];
        kernel(&Tile { x, offs: &c.offs, w: &c.w, bias: &c.bias, act: Activation::None }, &mut out, stride, rows, n);
        for m in 0..width {
            for j in 0..stride {
                let got = out[m * stride + j];
                let what = format!("{name} n={n} rows={rows} [{m}, {j}]");
                if m < rows && j < n {
                    assert_close(ks, &what, got, reference(c, width, m, j), scale);
                } else {
                    assert!(got.is_nan(), "{} {what}: wrote {got} outside the tile", ks.name);
                }
            }
        }
    }

    #[test]
    fn panel_every_length_and_row_count() {
        for (chans, taps) in [(1, 1), (3, 5), (16, 3)] {
            let c = case(chans as u64 * 10 + taps as u64, chans, taps, MR);
            for ks in variants() {
                for n in 1..=MAX_N {
                    for rows in 2..=MR {
                        check_tile(ks, ks.panel, &format!("panel {chans}x{taps}"), &c, &c.x, MR, n, rows);
                    }
                }
            }
        }
    }

    /// The narrow-range kernel, for every width a short range has (and so every split into
    /// blocks) and every channel count of a tile; it must not read past its last position.
    #[test]
    fn cols_every_length_and_row_count() {
        for (chans, taps) in [(1, 1), (3, 5), (16, 3)] {
            let c = case(chans as u64 * 10 + taps as u64 + 200, chans, taps, OC);
            let row_len = MAX_N + taps - 1;
            for ks in variants() {
                for n in 1..=40 {
                    // Positions past what `n` outputs read are NaN: a read would show.
                    let mut x = c.x.clone();
                    for row in x.chunks_mut(row_len) {
                        row.iter_mut().skip(n + taps - 1).for_each(|v| *v = f32::NAN);
                    }
                    for rows in [1, 2, 7, OC] {
                        check_tile(ks, ks.cols, &format!("cols {chans}x{taps}"), &c, &x, OC, n, rows);
                    }
                }
            }
        }
    }

    #[test]
    fn row_every_length() {
        for (chans, taps) in [(1, 1), (1, 5), (6, 3)] {
            let c = case(chans as u64 * 10 + taps as u64 + 100, chans, taps, 1);
            let scale = 1.0 + c.offs.len() as f64;
            for ks in variants() {
                for n in 1..=MAX_N {
                    let mut out = vec![f32::NAN; n + 3];
                    let t = Tile { x: &c.x, offs: &c.offs, w: &c.w, bias: &c.bias, act: Activation::None };
                    (ks.row)(&t, &mut out[..n]);
                    for (j, &got) in out.iter().enumerate() {
                        let what = format!("row {chans}x{taps} n={n} [{j}]");
                        if j < n {
                            assert_close(ks, &what, got, reference(&c, 1, 0, j), scale);
                        } else {
                            assert!(got.is_nan(), "{} {what}: wrote {got} past the row", ks.name);
                        }
                    }
                }
            }
        }
    }

    /// A range of positions, computed the way `Conv1d` computes one (input and
    /// output shifted to the range's start), equals the same positions of the
    /// whole row bit for bit, whichever blocks computed them.
    #[test]
    fn ranges_equal_the_whole_row_exactly() {
        let (chans, taps) = (8, 5);
        let c = case(7, chans, taps, MR);
        let cr = case(8, chans, taps, 1);
        for ks in variants() {
            let n = MAX_N;
            let mut whole = vec![0.0; MR * n];
            (ks.panel)(
                &Tile { x: &c.x, offs: &c.offs, w: &c.w, bias: &c.bias, act: Activation::None },
                &mut whole,
                n,
                MR,
                n,
            );
            let mut whole_row = vec![0.0; n];
            (ks.row)(
                &Tile { x: &cr.x, offs: &cr.offs, w: &cr.w, bias: &cr.bias, act: Activation::None },
                &mut whole_row,
            );
            let starts = [0, 1, 3, 15, 16, 17, 31, 32, 33, 63, 100];
            for a in starts {
                for len in (1..=40).chain([47, 63, 64, 65, 95, 96, 97]) {
                    let b = a + len;
                    if b > n {
                        continue;
                    }
                    let mut part = vec![f32::NAN; MR * n];
                    let t = Tile { x: &c.x[a..], offs: &c.offs, w: &c.w, bias: &c.bias, act: Activation::None };
                    (ks.panel)(&t, &mut part[a..], n, MR, len);
                    for m in 0..MR {
                        let (got, want) = (&part[m * n + a..m * n + b], &whole[m * n + a..m * n + b]);
                        assert!(
                            got.iter().zip(want).all(|(g, w)| g.to_bits() == w.to_bits()),
                            "{} panel range {a}..{b} row {m}: {got:?} != {want:?}",
                            ks.name
                        );
                    }
                    let mut part_row = vec![f32::NAN; n];
                    let t = Tile { x: &cr.x[a..], offs: &cr.offs, w: &cr.w, bias: &cr.bias, act: Activation::None };
                    (ks.row)(&t, &mut part_row[a..b]);
                    assert!(
                        part_row[a..b].iter().zip(&whole_row[a..b]).all(|(g, w)| g.to_bits() == w.to_bits()),
                        "{} row range {a}..{b}",
                        ks.name
                    );
                }
            }
        }
    }

    #[test]
    fn every_detected_variant_is_listed_once() {
        let names: Vec<&str> = variants().iter().map(|k| k.name).collect();
        for (i, a) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(a), "{a} listed twice: {names:?}");
            assert!(std::ptr::eq(kernel_set_by_name(a).unwrap(), variants()[i]));
        }
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            assert_eq!(names.contains(&"avx2+fma"), avx2);
            let avx512 = avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
            assert_eq!(names.contains(&"avx512"), avx512);
        }
    }
}

//! The convolution micro-kernels: `panel` (MR output channels, blocks of
//! positions), `row` (one channel) and `cols` (OC channels in the vector
//! lanes, for a few positions).

use crate::bodies::scalar::{leaky, relu, relu6};
use crate::bodies::{madd, Act, Tile, MR, OC, SLACK};

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
    act: Act,
    out: &mut [f32],
    out_stride: usize,
    rows: usize,
    j0: usize,
) {
    match act {
        Act::Relu => store_cols_with(acc, out, out_stride, rows, j0, relu),
        Act::Relu6 => store_cols_with(acc, out, out_stride, rows, j0, relu6),
        Act::LeakyRelu { negative_slope } => {
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
    const { assert!(NR - 1 <= SLACK, "the scratch slack must cover the widest over-read") };
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
    const { assert!(NR - 1 <= SLACK, "the scratch slack must cover the widest over-read") };
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

//! The light layers: batch norm, pooling, linear, softmax, add, shuffle.
//!
//! All take `[C, L]` row-major data and never allocate (except the one-off
//! [`batch_norm_scale_shift`]).
//!
//! # Panics
//! On slice lengths that do not match the stated shapes (a caller bug).

use crate::kernels::{kernels, KernelSet};

/// Per-channel `gamma / sqrt(var + eps)` in f64.
fn bn_scale(gamma: f32, var: f32, eps: f32) -> f64 {
    f64::from(gamma) / (f64::from(var) + f64::from(eps)).sqrt()
}

/// Folds eval-mode BatchNorm1d into the preceding convolution, in place:
/// `s = gamma / sqrt(var + eps)`, each weight row `w[o, ..] *= s[o]`,
/// `b = (b - mean) * s + beta`. `weight` is `[out, rest]`; pass a zero bias
/// for a convolution without one.
pub fn fold_batch_norm(
    weight: &mut [f32],
    bias: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) {
    let out = bias.len();
    assert!(
        gamma.len() == out && beta.len() == out && mean.len() == out && var.len() == out,
        "fold_batch_norm: statistics must have one entry per output channel"
    );
    if out == 0 {
        return;
    }
    assert_eq!(weight.len() % out, 0, "fold_batch_norm: weight is not [out, rest]");
    let rest = weight.len() / out;
    for (o, b) in bias.iter_mut().enumerate() {
        let s = bn_scale(gamma[o], var[o], eps);
        for w in &mut weight[o * rest..(o + 1) * rest] {
            *w = (f64::from(*w) * s) as f32;
        }
        *b = ((f64::from(*b) - f64::from(mean[o])) * s + f64::from(beta[o])) as f32;
    }
}

/// Eval-mode BatchNorm1d as per-channel `(scale, shift)` for [`scale_shift`]:
/// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`.
pub fn batch_norm_scale_shift(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let n = gamma.len().min(beta.len()).min(mean.len()).min(var.len());
    (0..n)
        .map(|c| {
            let s = bn_scale(gamma[c], var[c], eps);
            (s as f32, (f64::from(beta[c]) - f64::from(mean[c]) * s) as f32)
        })
        .unzip()
}

/// `x[c, :] = x[c, :] * scale[c] + shift[c]` for `x` of shape `[channels, len]`.
pub fn scale_shift(x: &mut [f32], channels: usize, len: usize, scale: &[f32], shift: &[f32]) {
    kernels().scale_shift(x, channels, len, scale, shift)
}

/// `MaxPool1d(k, stride=k)`, no padding, floor: `out` is `[channels, len / k]`.
/// A NaN in a window makes its maximum NaN, as in PyTorch.
pub fn max_pool(x: &[f32], channels: usize, len: usize, k: usize, out: &mut [f32]) {
    kernels().max_pool(x, channels, len, k, out)
}

/// `AvgPool1d(k, stride=k)`, no padding, floor: `out` is `[channels, len / k]`.
pub fn avg_pool(x: &[f32], channels: usize, len: usize, k: usize, out: &mut [f32]) {
    kernels().avg_pool(x, channels, len, k, out)
}

/// Mean over positions: `[channels, len] -> [channels]` (sums in f64).
pub fn global_avg_pool(x: &[f32], channels: usize, len: usize, out: &mut [f32]) {
    kernels().global_avg_pool(x, channels, len, out)
}

/// Maximum over positions: `[channels, len] -> [channels]`. A NaN makes it NaN.
pub fn global_max_pool(x: &[f32], channels: usize, len: usize, out: &mut [f32]) {
    kernels().global_max_pool(x, channels, len, out)
}

fn pool_check(x: &[f32], channels: usize, len: usize, k: usize, out: &[f32]) -> usize {
    assert!(k > 0, "pool: kernel_size must be positive");
    assert_eq!(x.len(), channels * len, "pool: x is not [channels, len]");
    let out_len = len / k;
    assert_eq!(out.len(), channels * out_len, "pool: out is not [channels, len / k]");
    out_len
}

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

/// The reduction a windowed pool applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    Max,
    Avg,
}

/// One step of a maximum that propagates NaN, as PyTorch's does.
#[inline(always)]
fn max_step(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// The pool of one window, written the same way in every kernel set so that
/// all give identical results.
#[inline(always)]
fn pool_window(p: Pool, win: &[f32]) -> f32 {
    match p {
        Pool::Max => win.iter().copied().fold(f32::NEG_INFINITY, max_step),
        Pool::Avg => win.iter().sum::<f32>() / win.len() as f32,
    }
}

/// The reference row kernels of the light layers (the `scalar` set): plain
/// serial loops.
pub(crate) mod reference {
    use super::{max_step, pool_window, Pool};

    /// Serial sum in f64.
    pub(crate) fn sum(x: &[f32]) -> f64 {
        x.iter().map(|&v| f64::from(v)).sum()
    }

    pub(crate) fn max(x: &[f32]) -> f32 {
        x.iter().copied().fold(f32::NEG_INFINITY, max_step)
    }

    pub(crate) fn scale_shift(x: &mut [f32], a: f32, b: f32) {
        for v in x {
            *v = *v * a + b;
        }
    }

    /// `out[i] = pool(row[i*k..(i+1)*k])`; `row.len() == out.len() * k`.
    pub(crate) fn pool(p: Pool, row: &[f32], k: usize, out: &mut [f32]) {
        for (win, o) in row.chunks_exact(k).zip(out) {
            *o = pool_window(p, win);
        }
    }
}

/// The vectorisable row kernels of the light layers, shared by the blocked
/// kernel sets (always inlined, like the convolution bodies).
pub(crate) mod blocked {
    use super::{max_step, pool_window, Pool};
    use crate::kernels::madd;

    /// Sum in f64 with `LANES` partial sums over consecutive chunks, added
    /// pairwise at the end. Every f32 is exact in f64, so the lanes change
    /// only the rounding of f64 additions (relative error ~ `len` * 2^-53,
    /// far below f32's 2^-24): the mean rounds to the same f32 as the serial
    /// f64 sum's but in rare ties.
    #[inline(always)]
    pub(crate) fn sum<const LANES: usize>(x: &[f32]) -> f64 {
        let mut acc = [0.0f64; LANES];
        let chunks = x.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += f64::from(v);
            }
        }
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                acc[i] += acc[i + width];
            }
        }
        rest.iter().fold(acc[0], |s, &v| s + f64::from(v))
    }

    /// NaN-propagating maximum with `LANES` partial maxima, combined pairwise
    /// (max is associative, so only which of two equal zeros wins may
    /// differ). LLVM's SLP vectoriser is picky about the lane count here: with
    /// AVX2, 16 lanes came out as 2-wide pieces and 32 as four clean ymm.
    #[inline(always)]
    pub(crate) fn max<const LANES: usize>(x: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let chunks = x.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            let c: &[f32; LANES] = c.try_into().expect("a LANES-element chunk");
            for (a, &v) in acc.iter_mut().zip(c) {
                *a = max_step(*a, v);
            }
        }
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                acc[i] = max_step(acc[i], acc[i + width]);
            }
        }
        rest.iter().copied().fold(acc[0], max_step)
    }

    #[inline(always)]
    pub(crate) fn scale_shift<const FMA: bool>(x: &mut [f32], a: f32, b: f32) {
        for v in x {
            *v = madd::<FMA>(*v, a, b);
        }
    }

    /// A constant window lets LLVM vectorise across windows (de-interleaving
    /// loads); each window is still reduced in the reference order.
    #[inline(always)]
    fn pool_k<const K: usize>(p: Pool, row: &[f32], out: &mut [f32]) {
        for (win, o) in row.chunks_exact(K).zip(out) {
            let win: &[f32; K] = win.try_into().expect("a K-element window");
            *o = pool_window(p, win);
        }
    }

    /// `out[i] = pool(row[i*k..(i+1)*k])`; `row.len() == out.len() * k`.
    #[inline(always)]
    pub(crate) fn pool(p: Pool, row: &[f32], k: usize, out: &mut [f32]) {
        match (p, k) {
            (Pool::Max, 2) => pool_k::<2>(Pool::Max, row, out),
            (Pool::Max, 3) => pool_k::<3>(Pool::Max, row, out),
            (Pool::Max, 4) => pool_k::<4>(Pool::Max, row, out),
            (Pool::Avg, 2) => pool_k::<2>(Pool::Avg, row, out),
            (Pool::Avg, 3) => pool_k::<3>(Pool::Avg, row, out),
            (Pool::Avg, 4) => pool_k::<4>(Pool::Avg, row, out),
            _ => super::reference::pool(p, row, k, out),
        }
    }
}

/// `y = W x + b` with `W` `[y.len(), x.len()]` row-major.
pub fn linear(weight: &[f32], bias: Option<&[f32]>, x: &[f32], y: &mut [f32]) {
    assert_eq!(weight.len(), x.len() * y.len(), "linear: weight is not [out, in]");
    if let Some(b) = bias {
        assert_eq!(b.len(), y.len(), "linear: bias is not [out]");
    }
    let n = x.len();
    for (o, yo) in y.iter_mut().enumerate() {
        let b = bias.map_or(0.0, |b| b[o]);
        *yo = b + dot(&weight[o * n..(o + 1) * n], x);
    }
}

/// Eight independent partial sums, so the loop vectorises (float addition is
/// not reassociated otherwise).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const W: usize = 8;
    let mut acc = [0.0f32; W];
    let (ca, cb) = (a.chunks_exact(W), b.chunks_exact(W));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..W {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Numerically stable softmax over a 1-D slice, in place.
pub fn softmax(x: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if x.is_empty() {
        return;
    }
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = libm::expf(*v - m);
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `dst[i] += src[i]`.
pub fn add_assign(dst: &mut [f32], src: &[f32]) {
    add_activate(dst, src, crate::Activation::None)
}

/// `dst[i] = act(dst[i] + src[i])`: a residual sum and its activation in one pass.
pub fn add_activate(dst: &mut [f32], src: &[f32], act: crate::Activation) {
    assert_eq!(dst.len(), src.len(), "add: length mismatch");
    (kernels().add)(dst, src, act)
}

/// ShuffleNet channel shuffle of `[channels, len]`: destination channel
/// `i*groups + j` is source channel `j*(channels/groups) + i` (PyTorch
/// `x.view(g, C/g, L).transpose(0, 1).reshape(C, L)`).
pub fn channel_shuffle(src: &[f32], dst: &mut [f32], groups: usize, channels: usize, len: usize) {
    channel_shuffle_range(src, dst, groups, channels, len, 0..len)
}

/// [`channel_shuffle`] of positions `range` only; the rest of `dst` is left as it is.
pub fn channel_shuffle_range(
    src: &[f32],
    dst: &mut [f32],
    groups: usize,
    channels: usize,
    len: usize,
    range: std::ops::Range<usize>,
) {
    assert!(groups > 0 && channels % groups == 0, "channel_shuffle: channels not divisible by groups");
    assert_eq!(src.len(), channels * len, "channel_shuffle: src is not [channels, len]");
    assert_eq!(dst.len(), channels * len, "channel_shuffle: dst is not [channels, len]");
    assert!(range.start <= range.end && range.end <= len, "channel_shuffle: range beyond the rows");
    let per = channels / groups;
    for i in 0..per {
        for j in 0..groups {
            let d = (i * groups + j) * len;
            let s = (j * per + i) * len;
            dst[d + range.start..d + range.end].copy_from_slice(&src[s + range.start..s + range.end]);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The light layers on every kernel set against the serial reference.
    use super::*;
    use crate::kernels::variants;

    fn values(seed: u32, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 23) as f32 * 100.0 - 100.0
            })
            .collect()
    }

    const LENGTHS: [usize; 9] = [1, 2, 15, 16, 17, 31, 33, 128, 1001];

    #[test]
    fn global_pools_match_the_reference() {
        for ks in variants() {
            for (i, len) in (0..=70).chain(LENGTHS).enumerate() {
                let channels = 3;
                let x = values(i as u32 + 1, channels * len);
                let (mut avg, mut max) = (vec![0.0; channels], vec![0.0; channels]);
                ks.global_avg_pool(&x, channels, len, &mut avg);
                ks.global_max_pool(&x, channels, len, &mut max);
                for c in 0..channels {
                    let row = &x[c * len..(c + 1) * len];
                    let want = (reference::sum(row) / len as f64) as f32;
                    let tol = f32::EPSILON * want.abs();
                    assert!(
                        (avg[c] - want).abs() <= tol || (len == 0 && avg[c].is_nan()),
                        "{} mean len {len}: {} vs {want}",
                        ks.name,
                        avg[c]
                    );
                    assert_eq!(max[c], reference::max(row), "{} max len {len}", ks.name);
                }
            }
        }
    }

    #[test]
    fn global_max_propagates_nan_from_any_position() {
        for ks in variants() {
            for len in [1, 7, 16, 40] {
                for p in 0..len {
                    let mut x = values(9, len);
                    x[p] = f32::NAN;
                    let mut out = [0.0];
                    ks.global_max_pool(&x, 1, len, &mut out);
                    assert!(out[0].is_nan(), "{} len {len} NaN at {p}", ks.name);
                }
            }
            let mut out = [0.0];
            ks.global_max_pool(&[f32::NEG_INFINITY; 20], 1, 20, &mut out);
            assert_eq!(out[0], f32::NEG_INFINITY, "{}", ks.name);
        }
    }

    /// Every set reduces each window in the reference order: identical bits.
    #[test]
    fn windowed_pools_equal_the_reference_exactly() {
        let scalar = &variants()[0];
        for ks in variants() {
            for k in 1..=6 {
                for len in (0..=40).chain([128, 131]) {
                    let channels = 2;
                    let mut x = values((k * 1000 + len) as u32, channels * len);
                    if len > 5 {
                        x[5] = f32::NAN;
                    }
                    let out_len = len / k;
                    for pool in [Pool::Max, Pool::Avg] {
                        let (mut got, mut want) = (vec![0.0; channels * out_len], vec![1.0; channels * out_len]);
                        ks.pool(pool, &x, channels, len, k, &mut got);
                        scalar.pool(pool, &x, channels, len, k, &mut want);
                        let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
                        assert!(same, "{} {pool:?} k {k} len {len}: {got:?} vs {want:?}", ks.name);
                    }
                }
            }
        }
    }

    #[test]
    fn scale_shift_matches_the_reference() {
        for ks in variants() {
            for len in (0..=40).chain(LENGTHS) {
                let channels = 3;
                let x = values(len as u32 + 7, channels * len);
                let (scale, shift) = (values(1, channels), values(2, channels));
                let mut got = x.clone();
                ks.scale_shift(&mut got, channels, len, &scale, &shift);
                for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
                    let c = i / len;
                    let want = f64::from(v) * f64::from(scale[c]) + f64::from(shift[c]);
                    assert!((f64::from(g) - want).abs() <= 1e-6 * (1.0 + want.abs()), "{} at {i}", ks.name);
                }
            }
        }
    }
}

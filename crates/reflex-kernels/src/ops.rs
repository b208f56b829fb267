//! The light layers: batch norm, pooling, linear, softmax, add, shuffle.
//!
//! All take `[C, L]` row-major data and never allocate (except the one-off
//! [`batch_norm_scale_shift`]).
//!
//! # Panics
//! On slice lengths that do not match the stated shapes (a caller bug).

use crate::activation::Activation;
use crate::registry::kernels;

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
    add_activate(dst, src, Activation::None)
}

/// `dst[i] = act(dst[i] + src[i])`: a residual sum and its activation in one pass.
pub fn add_activate(dst: &mut [f32], src: &[f32], act: Activation) {
    assert_eq!(dst.len(), src.len(), "add: length mismatch");
    (kernels().add)(dst, src, act.params())
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
    assert!(groups > 0 && channels.is_multiple_of(groups), "channel_shuffle: channels not divisible by groups");
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

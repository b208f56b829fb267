//! The reference bodies (the `scalar` set): plain serial loops, no blocking,
//! libm for the transcendental activations. Also the one-value formulas the
//! blocked bodies share, so that every set computes them alike.

use super::{Act, Pool, Tile, MR, OC};

pub(crate) fn cols(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
    for m in 0..rows {
        for j in 0..n {
            let mut s = t.bias[m];
            for (k, &off) in t.offs.iter().enumerate() {
                s += t.w[k * OC + m] * t.x[off + j];
            }
            out[m * out_stride + j] = activate(t.act, s);
        }
    }
}

pub(crate) fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
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

pub(crate) fn row(t: &Tile, out: &mut [f32]) {
    for (j, o) in out.iter_mut().enumerate() {
        let mut s = t.bias[0];
        for (k, &off) in t.offs.iter().enumerate() {
            s += t.w[k] * t.x[off + j];
        }
        *o = s;
    }
}

pub(crate) fn activation(a: Act, x: &mut [f32]) {
    for v in x {
        *v = activate(a, *v);
    }
}

pub(crate) fn add(dst: &mut [f32], src: &[f32], a: Act) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = activate(a, *d + *s);
    }
}

/// The reference definition of activation `a` for one value.
pub(crate) fn activate(a: Act, x: f32) -> f32 {
    match a {
        Act::None => x,
        Act::Relu => relu(x),
        Act::Relu6 => relu6(x),
        Act::LeakyRelu { negative_slope } => leaky(x, negative_slope),
        Act::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha * libm::expm1f(x)
            }
        }
        Act::Silu => x * sigmoid(x),
        Act::Gelu => {
            let xd = f64::from(x);
            (0.5 * xd * (1.0 + libm::erf(xd * std::f64::consts::FRAC_1_SQRT_2))) as f32
        }
        Act::Tanh => libm::tanhf(x),
        Act::Sigmoid => sigmoid(x),
        Act::Hardswish => hardswish(x),
    }
}

// The comparisons are written so that NaN propagates, as in PyTorch.
//
// No arm returns the input unchanged (`x + 0.0`, `x * 1.0`): otherwise LLVM
// drops the store of an unchanged element and vectorises the in-place loop
// with masked stores, which are microcoded and several times slower on AMD.
#[inline(always)]
pub(crate) fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x + 0.0
    }
}

#[inline(always)]
pub(crate) fn relu6(x: f32) -> f32 {
    (x + 0.0).clamp(0.0, 6.0)
}

#[inline(always)]
pub(crate) fn leaky(x: f32, slope: f32) -> f32 {
    x * if x > 0.0 { 1.0 } else { slope }
}

#[inline(always)]
pub(crate) fn hardswish(x: f32) -> f32 {
    x * relu6(x + 3.0) / 6.0
}

/// Never forms `exp` of a large positive number, so no inf/inf.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

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

/// One step of a maximum that propagates NaN, as PyTorch's does.
#[inline(always)]
pub(crate) fn max_step(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// The pool of one window, written the same way in every kernel set so that
/// all give identical results.
#[inline(always)]
pub(crate) fn pool_window(p: Pool, win: &[f32]) -> f32 {
    match p {
        Pool::Max => win.iter().copied().fold(f32::NEG_INFINITY, max_step),
        Pool::Avg => win.iter().sum::<f32>() / win.len() as f32,
    }
}

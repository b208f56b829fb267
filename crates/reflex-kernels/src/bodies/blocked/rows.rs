//! The row kernels of the light layers: sum and maximum of a row, scale and
//! shift, windowed pools.

use crate::bodies::scalar::{self, max_step, pool_window};
use crate::bodies::{madd, Pool};

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
        _ => scalar::pool(p, row, k, out),
    }
}

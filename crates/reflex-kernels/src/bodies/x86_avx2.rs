//! The blocked bodies compiled with AVX2 + FMA: 4 x 16 panel accumulators =
//! 8 ymm registers (of 16), leaving room for the two row loads and the
//! weight broadcasts.

use super::blocked;
use super::{Act, Pool, Tile};

const SUM_LANES: usize = 16;
const MAX_LANES: usize = 32;

with_target_features! { "avx2,fma";
    fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        blocked::conv::panel::<16, true>(t, out, out_stride, rows, n)
    }
    fn panel_from(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, from: usize, n: usize) {
        blocked::conv::panel_from::<16, true>(t, out, out_stride, rows, from, n)
    }
    fn row(t: &Tile, out: &mut [f32]) {
        blocked::conv::row::<32, true>(t, out)
    }
    // 4 positions x 16 channels = 8 ymm accumulators.
    fn cols(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        blocked::conv::cols::<4, true>(t, out, out_stride, rows, n)
    }
    fn activation(a: Act, x: &mut [f32]) {
        blocked::activation::apply::<true>(a, x)
    }
    fn add(dst: &mut [f32], src: &[f32], a: Act) {
        blocked::activation::add::<true>(dst, src, a)
    }
    fn sum(x: &[f32]) -> f64 {
        blocked::rows::sum::<SUM_LANES>(x)
    }
    fn max(x: &[f32]) -> f32 {
        blocked::rows::max::<MAX_LANES>(x)
    }
    fn scale_shift(x: &mut [f32], a: f32, b: f32) {
        blocked::rows::scale_shift::<true>(x, a, b)
    }
    fn pool(p: Pool, row: &[f32], k: usize, out: &mut [f32]) {
        blocked::rows::pool(p, row, k, out)
    }
}

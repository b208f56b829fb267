//! The blocked bodies compiled with AVX-512F/VL (which imply AVX2 + FMA):
//! 4 x 32 panel accumulators = 8 zmm registers (of 32); VL gives the
//! narrower tail blocks EVEX encodings.
//!
//! Some of the `avx512` set's kernels are (partly) the AVX2 ones, measured
//! faster on Zen 4 (which splits 512-bit operations into two 256-bit
//! halves); all FMA sets give the same bits, so mixing them changes no
//! result:
//! * `panel` leaves the last 1-8 positions of a range to AVX2: there LLVM
//!   packs two rows of a 4 x 8 block into each zmm and the latency-bound
//!   pass took ~9 % longer (n = 5-8 positions) — what short streaming
//!   ranges are made of;
//! * `row` (depthwise convolutions): the 512-bit one (NR 32 or 64) was
//!   5-10 % slower — a depthwise row is a short pass of k steps bound by
//!   its unaligned loads, and an unaligned 64-byte load always spans two
//!   cache lines; so there is none here;
//! * `max` (global max pool): the NaN-propagating select goes through
//!   mask registers with AVX-512 and was ~35 % slower; none here either.

use super::{blocked, x86_avx2};
use super::{Act, Pool, Tile};

const NR: usize = 32;
const SUM_LANES: usize = 16;

/// Whole 32-blocks and a 9-31 position tail with AVX-512, a 1-8
/// position tail with AVX2's narrow blocks (see above).
pub(crate) fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
    let wide = if n % NR <= 8 { n - n % NR } else { n };
    if wide > 0 {
        panel_512(t, out, out_stride, rows, wide);
    }
    if wide < n {
        x86_avx2::panel_from(t, out, out_stride, rows, wide, n);
    }
}

with_target_features! { "avx512f,avx512vl,avx2,fma";
    fn panel_512(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        blocked::conv::panel::<NR, true>(t, out, out_stride, rows, n)
    }
    // 8 positions x 16 channels = 8 zmm accumulators.
    fn cols(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
        blocked::conv::cols8::<true>(t, out, out_stride, rows, n)
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
    fn scale_shift(x: &mut [f32], a: f32, b: f32) {
        blocked::rows::scale_shift::<true>(x, a, b)
    }
    fn pool(p: Pool, row: &[f32], k: usize, out: &mut [f32]) {
        blocked::rows::pool(p, row, k, out)
    }
}

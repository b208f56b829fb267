//! The blocked bodies for the baseline target: LLVM vectorises them with
//! SSE2 on x86-64 and NEON on aarch64.

use super::blocked;
use super::{Act, Pool, Tile};

// Block widths for the baseline target: aarch64 has 32 128-bit registers and
// fused multiply-add in its base ISA; x86-64's baseline has 16 SSE registers
// and no FMA (where `mul_add` would be a slow libm call).
#[cfg(target_arch = "aarch64")]
mod params {
    pub(crate) const NR: usize = 16;
    pub(super) const NR_ROW: usize = 32;
    /// 4 positions x 16 channels = 16 of the 32 NEON registers.
    pub(super) const COLS_W: usize = 4;
    pub(super) const FMA: bool = true;
    pub(super) const SUM_LANES: usize = 16;
    pub(super) const MAX_LANES: usize = 16;
}
#[cfg(not(target_arch = "aarch64"))]
mod params {
    pub(crate) const NR: usize = 8;
    pub(super) const NR_ROW: usize = 16;
    /// 2 positions x 16 channels = 8 of the 16 SSE registers.
    pub(super) const COLS_W: usize = 2;
    pub(super) const FMA: bool = false;
    pub(super) const SUM_LANES: usize = 16;
    pub(super) const MAX_LANES: usize = 16;
}
use params::{COLS_W, FMA, MAX_LANES, NR_ROW, SUM_LANES};

/// Positions of a panel block.
pub(crate) use params::NR;

pub(crate) fn panel(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
    blocked::conv::panel::<NR, FMA>(t, out, out_stride, rows, n)
}
pub(crate) fn row(t: &Tile, out: &mut [f32]) {
    blocked::conv::row::<NR_ROW, FMA>(t, out)
}
pub(crate) fn cols(t: &Tile, out: &mut [f32], out_stride: usize, rows: usize, n: usize) {
    blocked::conv::cols::<COLS_W, FMA>(t, out, out_stride, rows, n)
}
pub(crate) fn activation(a: Act, x: &mut [f32]) {
    blocked::activation::apply::<FMA>(a, x)
}
pub(crate) fn add(dst: &mut [f32], src: &[f32], a: Act) {
    blocked::activation::add::<FMA>(dst, src, a)
}
pub(crate) fn sum(x: &[f32]) -> f64 {
    blocked::rows::sum::<SUM_LANES>(x)
}
pub(crate) fn max(x: &[f32]) -> f32 {
    blocked::rows::max::<MAX_LANES>(x)
}
pub(crate) fn scale_shift(x: &mut [f32], a: f32, b: f32) {
    blocked::rows::scale_shift::<FMA>(x, a, b)
}
pub(crate) fn pool(p: Pool, row: &[f32], k: usize, out: &mut [f32]) {
    blocked::rows::pool(p, row, k, out)
}

//! Activations and the residual add: `exp` and the functions built on it
//! without libm calls or branches, so that loops over them vectorise.

use crate::bodies::scalar::{hardswish, leaky, relu, relu6};
use crate::bodies::{madd, Act};

/// Polynomial `c[0]*x^(N-1) + ... + c[N-1]` by Horner's rule.
#[inline(always)]
fn horner<const FMA: bool, const N: usize>(x: f32, c: [f32; N]) -> f32 {
    let mut acc = c[0];
    for &ci in &c[1..] {
        acc = madd::<FMA>(acc, x, ci);
    }
    acc
}

/// `exp` without libm calls or branches, so loops over it vectorise.
/// Cephes' `expf` reduction and polynomial (about 1 ulp); the argument is
/// clamped to [-87, 88] so `2^n` stays a normal float: callers get a tiny or
/// huge finite value where the true result would underflow or overflow,
/// which every formula below turns into the right limit.
#[inline(always)]
fn exp_fast<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer n (no SSE4.1 `round`
    // needed) and leaves n in the low mantissa bits, so 2^n is built with
    // integer ops: a float-to-int `as` cast would saturate and not vectorise.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = madd::<FMA>(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = madd::<FMA>(-n, LN2_HI, x);
    let r = madd::<FMA>(-n, LN2_LO, r);
    let p = horner::<FMA, 6>(r, [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5]);
    let y = madd::<FMA>(p, r * r, r) + 1.0;
    let scale = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    y * scale
}

#[inline(always)]
fn sigmoid_fast<const FMA: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast::<FMA>(-x))
}

#[inline(always)]
fn tanh_fast<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    // Near zero `1 - 2/(e^2a + 1)` cancels; Cephes' tanhf odd polynomial there.
    let z = x * x;
    let p = horner::<FMA, 5>(z, [-5.704_988_7e-3, 2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1]);
    let small = madd::<FMA>(p * z, x, x);
    let big = 1.0 - 2.0 / (exp_fast::<FMA>(2.0 * a) + 1.0);
    let big = if x < 0.0 { -big } else { big };
    if a < 0.625 {
        small
    } else {
        big
    }
}

/// Exact-erf GELU via Abramowitz & Stegun 7.1.26 (|erf error| <= 1.5e-7).
/// For x < 0 it forms `1 + erf(x) = erfc(|x|)` directly, avoiding the
/// cancellation of `1 - (1 - erfc)` in the negative tail.
#[inline(always)]
fn gelu_fast<const FMA: bool>(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / madd::<FMA>(0.327_591_1, z, 1.0);
    let poly = horner::<FMA, 6>(t, [1.061_405_4, -1.453_152_1, 1.421_413_8, -0.284_496_74, 0.254_829_6, 0.0]);
    let erfc = poly * exp_fast::<FMA>(-z * z);
    let one_plus_erf = if x < 0.0 { erfc } else { 2.0 - erfc };
    0.5 * x * one_plus_erf
}

#[inline(always)]
fn map(x: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in x.iter_mut() {
        *v = f(*v);
    }
}

#[inline(always)]
fn map2(dst: &mut [f32], src: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f(*d, *s);
    }
}

/// `dst[i] = a(dst[i] + src[i])` for the blocked kernel sets: one pass for the
/// piecewise-linear activations (a residual block's sum and its ReLU: a pass over a feature
/// map costs about its stores), an add and then [`apply`] for the others.
#[inline(always)]
pub(crate) fn add<const FMA: bool>(dst: &mut [f32], src: &[f32], a: Act) {
    match a {
        Act::None => map2(dst, src, |d, s| d + s),
        Act::Relu => map2(dst, src, |d, s| relu(d + s)),
        Act::Relu6 => map2(dst, src, |d, s| relu6(d + s)),
        Act::LeakyRelu { negative_slope } => map2(dst, src, |d, s| leaky(d + s, negative_slope)),
        _ => {
            map2(dst, src, |d, s| d + s);
            apply::<FMA>(a, dst);
        }
    }
}

/// The vectorisable body shared by the blocked kernel sets; `FMA` as for
/// the convolution kernels.
#[inline(always)]
pub(crate) fn apply<const FMA: bool>(a: Act, x: &mut [f32]) {
    match a {
        Act::None => {}
        Act::Relu => map(x, relu),
        Act::Relu6 => map(x, relu6),
        Act::LeakyRelu { negative_slope } => map(x, |v| leaky(v, negative_slope)),
        Act::Elu { alpha } => map(x, |v| {
            let e = alpha * (exp_fast::<FMA>(v) - 1.0);
            if v > 0.0 {
                v + 0.0
            } else {
                e
            }
        }),
        Act::Silu => map(x, |v| v * sigmoid_fast::<FMA>(v)),
        Act::Gelu => map(x, gelu_fast::<FMA>),
        Act::Tanh => map(x, tanh_fast::<FMA>),
        Act::Sigmoid => map(x, sigmoid_fast::<FMA>),
        Act::Hardswish => map(x, hardswish),
    }
}

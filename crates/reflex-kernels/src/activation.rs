//! Activation functions with PyTorch semantics.

use crate::kernels::{kernels, madd, KernelSet};

/// Activation functions of SPEC §3, with PyTorch semantics.
///
/// [`apply_scalar`](Activation::apply_scalar) is the reference (libm,
/// exact erf / exp); [`apply`](Activation::apply) runs the selected kernel
/// set, whose transcendental activations use branch-free polynomial
/// approximations (a few ulp; absolute error below 1e-6) so that they
/// vectorise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    None,
    Relu,
    Relu6,
    LeakyRelu { negative_slope: f32 },
    Elu { alpha: f32 },
    Silu,
    Gelu,
    Tanh,
    Sigmoid,
    Hardswish,
}

impl Activation {
    /// Parses an activation name of the config file (`none`, `relu`, `relu6`,
    /// `leaky_relu`, `elu`, `silu`, `gelu`, `tanh`, `sigmoid`, `hardswish`).
    /// `negative_slope` is used by `leaky_relu`; `elu` gets alpha 1.
    pub fn from_name(name: &str, negative_slope: f32) -> Option<Activation> {
        Some(match name {
            "none" => Activation::None,
            "relu" => Activation::Relu,
            "relu6" => Activation::Relu6,
            "leaky_relu" => Activation::LeakyRelu { negative_slope },
            "elu" => Activation::Elu { alpha: 1.0 },
            "silu" => Activation::Silu,
            "gelu" => Activation::Gelu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "hardswish" => Activation::Hardswish,
            _ => return None,
        })
    }

    /// The config-file name of this activation.
    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Hardswish => "hardswish",
        }
    }

    /// Whether the narrow-range convolution kernel applies this activation as it stores
    /// each value: the piecewise-linear ones, a compare and a select or multiply.
    pub(crate) fn fuses(self) -> bool {
        matches!(self, Activation::None | Activation::Relu | Activation::Relu6 | Activation::LeakyRelu { .. })
    }

    /// Applies the activation in place with the selected kernel set.
    pub fn apply(self, x: &mut [f32]) {
        self.apply_with(kernels(), x)
    }

    /// Applies the activation in place with an explicit kernel set.
    pub fn apply_with(self, ks: &KernelSet, x: &mut [f32]) {
        if self != Activation::None {
            (ks.activation)(self, x)
        }
    }

    /// The reference definition for one value.
    pub fn apply_scalar(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => relu(x),
            Activation::Relu6 => relu6(x),
            Activation::LeakyRelu { negative_slope } => leaky(x, negative_slope),
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * libm::expm1f(x)
                }
            }
            Activation::Silu => x * sigmoid_ref(x),
            Activation::Gelu => {
                let xd = f64::from(x);
                (0.5 * xd * (1.0 + libm::erf(xd * std::f64::consts::FRAC_1_SQRT_2))) as f32
            }
            Activation::Tanh => libm::tanhf(x),
            Activation::Sigmoid => sigmoid_ref(x),
            Activation::Hardswish => hardswish(x),
        }
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
fn hardswish(x: f32) -> f32 {
    x * relu6(x + 3.0) / 6.0
}

/// Never forms `exp` of a large positive number, so no inf/inf.
fn sigmoid_ref(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

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
/// map costs about its stores), an add and then [`apply_blocked`] for the others.
#[inline(always)]
pub(crate) fn add_blocked<const FMA: bool>(dst: &mut [f32], src: &[f32], a: Activation) {
    match a {
        Activation::None => map2(dst, src, |d, s| d + s),
        Activation::Relu => map2(dst, src, |d, s| relu(d + s)),
        Activation::Relu6 => map2(dst, src, |d, s| relu6(d + s)),
        Activation::LeakyRelu { negative_slope } => map2(dst, src, |d, s| leaky(d + s, negative_slope)),
        _ => {
            map2(dst, src, |d, s| d + s);
            apply_blocked::<FMA>(a, dst);
        }
    }
}

/// The vectorisable body shared by the blocked kernel sets; `FMA` as for
/// the convolution kernels.
#[inline(always)]
pub(crate) fn apply_blocked<const FMA: bool>(a: Activation, x: &mut [f32]) {
    match a {
        Activation::None => {}
        Activation::Relu => map(x, relu),
        Activation::Relu6 => map(x, relu6),
        Activation::LeakyRelu { negative_slope } => map(x, |v| leaky(v, negative_slope)),
        Activation::Elu { alpha } => map(x, |v| {
            let e = alpha * (exp_fast::<FMA>(v) - 1.0);
            if v > 0.0 {
                v + 0.0
            } else {
                e
            }
        }),
        Activation::Silu => map(x, |v| v * sigmoid_fast::<FMA>(v)),
        Activation::Gelu => map(x, gelu_fast::<FMA>),
        Activation::Tanh => map(x, tanh_fast::<FMA>),
        Activation::Sigmoid => map(x, sigmoid_fast::<FMA>),
        Activation::Hardswish => map(x, hardswish),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::variants;

    const ALL: [Activation; 12] = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::LeakyRelu { negative_slope: 0.01 },
        Activation::LeakyRelu { negative_slope: 0.2 },
        Activation::Elu { alpha: 1.0 },
        Activation::Elu { alpha: 0.5 },
        Activation::Silu,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Hardswish,
    ];

    fn points() -> Vec<f32> {
        let mut p: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.005).collect();
        p.extend((-400..=400).map(|i| i as f32 * 0.25));
        p.extend([
            -1e30, -1e6, -1000.0, -89.0, -88.5, -87.5, -50.0, -3.0, -1e-3, -1e-6, -1e-30, -0.0, 0.0, 1e-30, 1e-6, 1e-3,
            3.0, 6.0, 50.0, 87.5, 88.5, 89.0, 1000.0, 1e6, 1e30, -3.0001, -2.9999, 2.9999, 3.0001, 5.9999, 6.0001,
        ]);
        p
    }

    fn f64_ref(a: Activation, x: f64) -> f64 {
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        match a {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::LeakyRelu { negative_slope } => {
                if x > 0.0 {
                    x
                } else {
                    x * f64::from(negative_slope)
                }
            }
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    f64::from(alpha) * x.exp_m1()
                }
            }
            Activation::Silu => x * sig(x),
            Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => sig(x),
            Activation::Hardswish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        }
    }

    #[test]
    fn scalar_matches_f64_definitions() {
        for a in ALL {
            for &x in &points() {
                let got = a.apply_scalar(x);
                let want = f64_ref(a, f64::from(x));
                let tol = 1e-6 * (1.0 + want.abs());
                assert!((f64::from(got) - want).abs() <= tol, "{a:?}({x}) = {got}, want {want}");
            }
        }
    }

    #[test]
    fn every_variant_matches_scalar() {
        let p = points();
        for ks in variants() {
            for a in ALL {
                let mut y = p.clone();
                a.apply_with(ks, &mut y);
                for (&x, &got) in p.iter().zip(&y) {
                    let want = a.apply_scalar(x);
                    assert!(got.is_finite(), "{} {a:?}({x}) = {got}", ks.name);
                    let err = (got - want).abs();
                    assert!(
                        err <= 1e-6 + 2e-6 * want.abs(),
                        "{} {a:?}({x}) = {got}, want {want} (err {err:e})",
                        ks.name
                    );
                }
            }
        }
    }

    #[test]
    fn known_values() {
        for ks in variants() {
            let check = |a: Activation, x: f32, want: f32| {
                let mut v = [x];
                a.apply_with(ks, &mut v);
                assert!((v[0] - want).abs() <= 2e-7, "{} {a:?}({x}) = {}, want {want}", ks.name, v[0]);
                assert!((a.apply_scalar(x) - want).abs() <= 1e-7, "scalar {a:?}({x})");
            };
            check(Activation::Gelu, 1.0, 0.841_344_7);
            check(Activation::Gelu, -1.0, -0.158_655_26);
            check(Activation::Gelu, 0.0, 0.0);
            check(Activation::Elu { alpha: 1.0 }, -1.0, -0.632_120_56);
            check(Activation::Elu { alpha: 1.0 }, 2.0, 2.0);
            check(Activation::Hardswish, -3.0, 0.0);
            check(Activation::Hardswish, 3.0, 3.0);
            check(Activation::Hardswish, 1.0, 0.666_666_7);
            check(Activation::Hardswish, -4.0, 0.0);
            check(Activation::Relu6, 7.0, 6.0);
            check(Activation::LeakyRelu { negative_slope: 0.01 }, -2.0, -0.02);
            check(Activation::Sigmoid, 0.0, 0.5);
            check(Activation::Sigmoid, 1000.0, 1.0);
            check(Activation::Sigmoid, -1000.0, 0.0);
            check(Activation::Silu, 1.0, 0.731_058_6);
            check(Activation::Tanh, 1.0, 0.761_594_2);
            check(Activation::Tanh, -100.0, -1.0);
        }
    }

    #[test]
    fn nan_propagates_through_relu() {
        for ks in variants() {
            let mut v = [f32::NAN, -1.0];
            Activation::Relu.apply_with(ks, &mut v);
            assert!(v[0].is_nan(), "{}", ks.name);
            assert_eq!(v[1], 0.0);
        }
    }

    #[test]
    fn names_round_trip() {
        for a in ALL {
            let back = Activation::from_name(a.name(), 0.01).map(Activation::name);
            assert_eq!(back, Some(a.name()));
        }
        assert_eq!(Activation::from_name("swish", 0.01), None);
    }
}

//! Activation functions with PyTorch semantics.

use crate::bodies::{scalar, Act};
use crate::registry::{kernels, KernelSet};

/// Activation functions of docs/layers.md, with PyTorch semantics.
///
/// [`apply_scalar`](Activation::apply_scalar) is the reference (libm,
/// exact erf / exp); [`apply`](Activation::apply) runs the selected kernel
/// set, whose transcendental activations use branch-free polynomial
/// approximations (a few ulp; absolute error below 1e-6) so that they
/// vectorise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// The identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` for `x > 0`, else `negative_slope * x`.
    LeakyRelu {
        /// The slope below zero (PyTorch's default: 0.01).
        negative_slope: f32,
    },
    /// `x` for `x > 0`, else `alpha * (exp(x) - 1)`.
    Elu {
        /// Scale of the negative part: the output tends to `-alpha` as `x → -inf`.
        alpha: f32,
    },
    /// `x * sigmoid(x)`.
    Silu,
    /// Exact GELU, `x/2 * (1 + erf(x / sqrt 2))` (PyTorch `approximate="none"`).
    Gelu,
    /// The hyperbolic tangent.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x * relu6(x + 3) / 6`.
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

    /// Applies the activation in place with the selected kernel set.
    pub fn apply(self, x: &mut [f32]) {
        self.apply_with(kernels(), x)
    }

    /// Applies the activation in place with an explicit kernel set.
    pub fn apply_with(self, ks: &KernelSet, x: &mut [f32]) {
        if self != Activation::None {
            (ks.activation)(self.params(), x)
        }
    }

    /// The reference definition for one value.
    pub fn apply_scalar(self, x: f32) -> f32 {
        scalar::activate(self.params(), x)
    }

    /// The activation as the kernel bodies take it.
    pub(crate) fn params(self) -> Act {
        match self {
            Activation::None => Act::None,
            Activation::Relu => Act::Relu,
            Activation::Relu6 => Act::Relu6,
            Activation::LeakyRelu { negative_slope } => Act::LeakyRelu { negative_slope },
            Activation::Elu { alpha } => Act::Elu { alpha },
            Activation::Silu => Act::Silu,
            Activation::Gelu => Act::Gelu,
            Activation::Tanh => Act::Tanh,
            Activation::Sigmoid => Act::Sigmoid,
            Activation::Hardswish => Act::Hardswish,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::variants;

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

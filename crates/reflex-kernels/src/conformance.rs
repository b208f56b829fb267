//! Conformance suite: every kernel variant against references written
//! straight from the PyTorch definitions (sharing no code with the kernels).

use crate::*;
use proptest::prelude::*;

/// Small deterministic generator so the suite needs no `rand`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// `torch.nn.functional.conv1d(pad(x, (pad_left, pad_right)), w, b, stride, 0, dilation, groups)`
/// in f64, straight from the definition.
fn reference_conv(g: &ConvGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f64> {
    let ipg = g.in_channels / g.groups;
    let opg = g.out_channels / g.groups;
    let padded = g.in_len + g.pad_left + g.pad_right;
    let out_len = (padded - g.dilation * (g.kernel_size - 1) - 1) / g.stride + 1;
    let mut y = vec![0.0f64; g.out_channels * out_len];
    for o in 0..g.out_channels {
        let group = o / opg;
        for j in 0..out_len {
            let mut s = b.map_or(0.0, |b| f64::from(b[o]));
            for ci in 0..ipg {
                let c = group * ipg + ci;
                for t in 0..g.kernel_size {
                    let p = j * g.stride + t * g.dilation;
                    if p >= g.pad_left && p - g.pad_left < g.in_len {
                        let xv = f64::from(x[c * g.in_len + p - g.pad_left]);
                        s += f64::from(w[(o * ipg + ci) * g.kernel_size + t]) * xv;
                    }
                }
            }
            y[o * out_len + j] = s;
        }
    }
    y
}

fn check_conv(g: ConvGeometry, seed: u64, with_bias: bool) {
    let mut rng = Lcg(seed);
    let ipg = g.in_channels / g.groups;
    let w = rng.vec(g.out_channels * ipg * g.kernel_size);
    let b = rng.vec(g.out_channels);
    let x = rng.vec(g.in_channels * g.in_len);
    let bias = with_bias.then_some(&b[..]);
    let want = reference_conv(&g, &x, &w, bias);
    let conv = Conv1d::new(g, &w, bias).unwrap_or_else(|e| panic!("{g:?}: {e}"));
    assert_eq!(conv.out_len(), g.out_len().unwrap_or(0));
    assert_eq!(want.len(), g.out_channels * conv.out_len());
    let max = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = 1e-5 + 1e-5 * max;
    for ks in variants() {
        // Poisoned buffers: the kernels must overwrite every output and must
        // not depend on what scratch held before.
        let mut out = vec![f32::NAN; want.len()];
        let mut scratch = vec![f32::NAN; conv.scratch_len()];
        conv.run_with(ks, &x, &mut out, &mut scratch);
        for (i, (&got, &w)) in out.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(got) - w).abs() <= tol,
                "{}: {g:?} bias={with_bias} at [{}, {}]: got {got}, want {w}",
                ks.name,
                i / conv.out_len(),
                i % conv.out_len()
            );
        }
        // A second run through dirty scratch gives identical results.
        let mut again = vec![0.0; want.len()];
        conv.run_with(ks, &x, &mut again, &mut scratch);
        assert_eq!(out, again, "{}: rerun differs", ks.name);
        check_ranges(&g, &conv, ks, &x, &out, seed);
        check_post(&conv, ks, &x, &out, seed);
    }
}

/// An activation and a residual applied by the convolution (fused into the kernels' stores
/// for the piecewise-linear activations, after each tile for the others) give, bit for bit,
/// what applying them to its plain output gives, for the whole output and for a range.
fn check_post(conv: &Conv1d, ks: &KernelSet, x: &[f32], plain: &[f32], seed: u64) {
    const ACTS: [Activation; 5] = [
        Activation::Relu,
        Activation::LeakyRelu { negative_slope: 0.1 },
        Activation::Relu6,
        Activation::Silu,
        Activation::None,
    ];
    let act = ACTS[(seed % ACTS.len() as u64) as usize];
    let conv = conv.clone().with_activation(act);
    let residual = Lcg(seed ^ 0x5eed).vec(plain.len());
    let n = conv.out_len();
    let mut scratch = vec![f32::NAN; conv.scratch_len()];
    for add in [None, Some(&residual[..])] {
        let mut want: Vec<f32> = plain.iter().enumerate().map(|(i, &v)| add.map_or(v, |r| v + r[i])).collect();
        act.apply_with(ks, &mut want);
        let range = n / 3..n;
        let mut got = vec![f32::NAN; plain.len()];
        conv.run_range_add_with(ks, x, add, &mut got, &mut scratch, 0..n);
        let mut part = vec![1234.5; plain.len()];
        conv.run_range_add_with(ks, x, add, &mut part, &mut scratch, range.clone());
        for (i, (&w, (&g, &p))) in want.iter().zip(got.iter().zip(&part)).enumerate() {
            let what =
                format!("{} {:?} {act:?} add={} at [{}, {}]", ks.name, conv.geometry(), add.is_some(), i / n, i % n);
            assert_eq!(g.to_bits(), w.to_bits(), "{what}: got {g}, want {w}");
            let expect = if range.contains(&(i % n)) { w } else { 1234.5 };
            assert_eq!(p.to_bits(), expect.to_bits(), "{what} range {range:?}: got {p}, want {expect}");
        }
    }
}

/// `run_range` computes exactly the full run's values in its range, reads no input position
/// its range does not see (those are NaN here) and writes nothing outside its range.
fn check_ranges(g: &ConvGeometry, conv: &Conv1d, ks: &KernelSet, x: &[f32], full: &[f32], seed: u64) {
    let n = conv.out_len();
    let cut = |k: u64| (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(k as u32 * 13) % (n as u64 + 1)) as usize;
    let (a, b) = (cut(1).min(cut(2)), cut(1).max(cut(2)));
    let span = g.dilation * (g.kernel_size - 1) + 1;
    let mut scratch = vec![f32::NAN; conv.scratch_len()];
    for range in [0..a, a..b, b..n, 0..n, n.saturating_sub(1)..n] {
        let first = (range.start * g.stride) as isize - g.pad_left as isize;
        let last = (range.end as isize - 1) * g.stride as isize - g.pad_left as isize + span as isize;
        let seen = |i: usize| range.is_empty() || (first..last).contains(&(i as isize));
        let poisoned: Vec<f32> =
            x.iter().enumerate().map(|(i, &v)| if seen(i % g.in_len) { v } else { f32::NAN }).collect();
        let mut out = vec![1234.5; full.len()];
        conv.run_range_with(ks, &poisoned, &mut out, &mut scratch, range.clone());
        for (i, (&got, &want)) in out.iter().zip(full).enumerate() {
            let expect = if range.contains(&(i % n)) { want } else { 1234.5 };
            assert!(
                got.to_bits() == expect.to_bits(),
                "{}: {g:?} range {range:?} at [{}, {}]: got {got}, want {expect}",
                ks.name,
                i / n,
                i % n
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn geom(
    cin: usize,
    cout: usize,
    groups: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    pads: (usize, usize),
    in_len: usize,
) -> ConvGeometry {
    ConvGeometry {
        in_channels: cin,
        out_channels: cout,
        groups,
        kernel_size: k,
        stride,
        dilation,
        pad_left: pads.0,
        pad_right: pads.1,
        in_len,
    }
}

#[test]
fn variants_are_listed_scalar_first() {
    let v = variants();
    assert_eq!(v[0].name, "scalar");
    assert!(v.iter().any(|k| k.name == "portable"));
    assert!(v.iter().any(|k| std::ptr::eq(*k, kernels())));
    assert!(kernel_set_by_name("scalar").is_some());
    assert!(kernel_set_by_name("no-such").is_none());
}

#[test]
fn tiny_hand_computed() {
    // x = [1, 2, 3], w = [1, -1], b = 0.5, valid: y[j] = 0.5 + x[j] - x[j+1]
    let g = geom(1, 1, 1, 2, 1, 1, (0, 0), 3);
    let conv = Conv1d::new(g, &[1.0, -1.0], Some(&[0.5])).unwrap();
    // Stride 2, dilation 2, pad 1 left / 2 right: padded [0,1,2,3,4,0,0],
    // taps at p and p+2, positions 0, 2, 4: [0+2, 2+4, 4+0] with w = [1, 10].
    let g2 = geom(1, 1, 1, 2, 2, 2, (1, 2), 4);
    let conv2 = Conv1d::new(g2, &[1.0, 10.0], None).unwrap();
    // Two groups, pointwise: out0 = 2*x0, out1 = -x1 + 1.
    let g3 = geom(2, 2, 2, 1, 1, 1, (0, 0), 2);
    let conv3 = Conv1d::new(g3, &[2.0, -1.0], Some(&[0.0, 1.0])).unwrap();
    for ks in variants() {
        let mut y = [0.0; 2];
        let mut s = vec![0.0; conv.scratch_len()];
        conv.run_with(ks, &[1.0, 2.0, 3.0], &mut y, &mut s);
        assert_eq!(y, [-0.5, -0.5], "{}", ks.name);

        let mut y2 = [0.0; 3];
        let mut s2 = vec![0.0; conv2.scratch_len()];
        conv2.run_with(ks, &[1.0, 2.0, 3.0, 4.0], &mut y2, &mut s2);
        assert_eq!(y2, [20.0, 2.0 + 40.0, 4.0], "{}", ks.name);

        let mut y3 = [0.0; 4];
        let mut s3 = vec![0.0; conv3.scratch_len()];
        conv3.run_with(ks, &[1.0, 2.0, 3.0, 4.0], &mut y3, &mut s3);
        assert_eq!(y3, [2.0, 4.0, -2.0, -3.0], "{}", ks.name);
    }
}

#[test]
fn grid_of_geometries() {
    let mut seed = 1;
    for &(cin, cout, groups) in
        &[(1, 1, 1), (3, 5, 1), (6, 9, 1), (4, 6, 2), (6, 6, 3), (5, 5, 5), (8, 16, 8), (7, 14, 7), (13, 10, 1)]
    {
        for k in [1, 2, 3, 4, 5] {
            for stride in [1, 2, 3] {
                for dilation in [1, 2, 3] {
                    for pads in [(0, 0), (1, 1), (2, 0), (0, 3), (3, 1)] {
                        for in_len in [1, 2, 7, 16, 17, 33] {
                            let g = geom(cin, cout, groups, k, stride, dilation, pads, in_len);
                            if g.out_len().is_none() {
                                continue;
                            }
                            seed += 1;
                            check_conv(g, seed, seed % 3 != 0);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn model_sized_geometries() {
    let same5 = (2, 2);
    let cases = [
        geom(6, 64, 1, 5, 1, 1, same5, 128),
        geom(64, 64, 1, 5, 1, 1, same5, 128),
        geom(64, 64, 64, 5, 1, 1, same5, 128),
        geom(64, 64, 1, 1, 1, 1, (0, 0), 128),
        geom(8, 12, 4, 1, 1, 1, (0, 0), 64), // grouped 1×1, run in place
        geom(3, 5, 1, 1, 1, 1, (0, 0), 192),
        geom(3, 5, 1, 1, 1, 1, (0, 0), 100), // 1×1 whose rows end in a partial block
        geom(64, 64, 4, 5, 1, 1, same5, 128),
        geom(64, 64, 8, 3, 1, 2, (2, 2), 128),
        geom(64, 32, 1, 5, 2, 1, (2, 2), 128),
        geom(64, 64, 64, 5, 2, 1, (2, 2), 128),
        geom(32, 32, 1, 4, 1, 1, (1, 2), 128),  // same with even k
        geom(32, 32, 1, 3, 1, 4, (8, 0), 128),  // causal, dilated
        geom(64, 128, 64, 3, 1, 1, (1, 1), 40), // depthwise multiplier 2
        geom(16, 16, 1, 5, 1, 1, (2, 2), 1),
    ];
    for (i, g) in cases.into_iter().enumerate() {
        check_conv(g, 1000 + i as u64, true);
    }
}

#[test]
fn lengths_one_to_forty() {
    for in_len in 1..=40 {
        check_conv(geom(5, 7, 1, 3, 1, 1, (1, 1), in_len), in_len as u64, true);
        check_conv(geom(6, 6, 6, 5, 1, 2, (4, 4), in_len), 50 + in_len as u64, true);
        check_conv(geom(9, 9, 1, 1, 1, 1, (0, 0), in_len), 90 + in_len as u64, false);
        check_conv(geom(8, 12, 4, 4, 2, 1, (2, 1), in_len), 130 + in_len as u64, true);
    }
}

fn arb_geometry() -> impl Strategy<Value = ConvGeometry> {
    (
        1usize..=5,  // groups
        1usize..=6,  // in per group
        1usize..=9,  // out per group
        1usize..=7,  // kernel_size
        1usize..=4,  // stride
        1usize..=4,  // dilation
        0usize..=6,  // pad_left
        0usize..=6,  // pad_right
        1usize..=70, // in_len
    )
        .prop_map(|(g, ipg, opg, k, s, d, pl, pr, l)| ConvGeometry {
            in_channels: g * ipg,
            out_channels: g * opg,
            groups: g,
            kernel_size: k,
            stride: s,
            dilation: d,
            pad_left: pl,
            pad_right: pr,
            in_len: l,
        })
        .prop_filter("needs an output", |g| g.out_len().is_some())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn proptest_geometries(g in arb_geometry(), seed in any::<u64>(), with_bias in any::<bool>()) {
        check_conv(g, seed, with_bias);
    }
}

#[test]
fn geometry_out_len_and_macs() {
    let g = geom(64, 64, 1, 5, 1, 1, (2, 2), 128);
    assert_eq!(g.out_len(), Some(128));
    assert_eq!(g.macs(), 64 * 128 * 64 * 5);
    assert_eq!(geom(8, 8, 4, 3, 2, 1, (0, 0), 9).out_len(), Some(4));
    assert_eq!(geom(8, 8, 4, 3, 2, 1, (0, 0), 9).macs(), 8 * 4 * 2 * 3);
    assert_eq!(geom(1, 1, 1, 3, 1, 2, (0, 0), 5).out_len(), Some(1));
    assert_eq!(geom(1, 1, 1, 3, 1, 2, (0, 0), 4).out_len(), None);
    assert_eq!(geom(1, 1, 1, 3, 1, 2, (1, 0), 4).out_len(), Some(1));
    assert_eq!(geom(0, 1, 1, 1, 1, 1, (0, 0), 4).out_len(), None);
    assert_eq!(geom(1, 1, 1, 1, 0, 1, (0, 0), 4).out_len(), None);
    assert_eq!(geom(1, 1, 1, 1, 1, 1, (0, 0), 0).out_len(), None);
    assert_eq!(geom(4, 6, 4, 1, 1, 1, (0, 0), 4).out_len(), None);
    assert_eq!(geom(6, 4, 4, 1, 1, 1, (0, 0), 4).out_len(), None);
    assert_eq!(geom(1, 1, 1, 3, 1, usize::MAX, (0, 0), 4).out_len(), None);
    assert_eq!(geom(1, 1, 1, 3, 1, 1, (usize::MAX, 1), 4).out_len(), None);
    assert_eq!(geom(1, 1, 1, 3, 1, 2, (0, 0), 4).macs(), 0);
}

#[test]
fn conv_new_reports_errors() {
    let g = geom(4, 6, 2, 3, 1, 1, (1, 1), 10);
    assert!(Conv1d::new(g, &[0.0; 36], None).is_ok());
    let e = Conv1d::new(g, &[0.0; 35], None).unwrap_err();
    assert_eq!(e, ConvError::Weight { found: 35, out: 6, in_per_group: 2, k: 3 });
    assert!(e.to_string().starts_with("weight has 35 elements, expected 36"), "{e}");
    let e = Conv1d::new(g, &[0.0; 36], Some(&[0.0; 5])).unwrap_err();
    assert_eq!(e, ConvError::Bias { found: 5, out: 6 });
    let bad_groups = geom(4, 6, 4, 3, 1, 1, (1, 1), 10);
    assert_eq!(Conv1d::new(bad_groups, &[], None).unwrap_err(), ConvError::Geometry(bad_groups));
    assert!(matches!(Conv1d::new(geom(1, 1, 1, 3, 1, 1, (0, 0), 2), &[0.0; 3], None), Err(ConvError::Geometry(_))));
}

// ---- the light layers ----

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
    }
}

#[test]
fn folded_batch_norm_equals_conv_then_bn() {
    let g = geom(6, 8, 2, 3, 1, 1, (1, 1), 20);
    let mut rng = Lcg(7);
    let w = rng.vec(8 * 3 * 3);
    let b = rng.vec(8);
    let x = rng.vec(6 * 20);
    let gamma = rng.vec(8);
    let beta = rng.vec(8);
    let mean = rng.vec(8);
    let var: Vec<f32> = rng.vec(8).iter().map(|v| v.abs() + 0.1).collect();
    let eps = 1e-5;
    // Naive: conv, then BN per channel, in f64.
    let conv_out = reference_conv(&g, &x, &w, Some(&b));
    let want: Vec<f32> = conv_out
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i / 20;
            let norm = (v - f64::from(mean[c])) / (f64::from(var[c]) + f64::from(eps)).sqrt();
            (norm * f64::from(gamma[c]) + f64::from(beta[c])) as f32
        })
        .collect();
    let (mut wf, mut bf) = (w.clone(), b.clone());
    fold_batch_norm(&mut wf, &mut bf, &gamma, &beta, &mean, &var, eps);
    let conv = Conv1d::new(g, &wf, Some(&bf)).unwrap();
    let mut y = vec![0.0; 8 * 20];
    let mut s = vec![0.0; conv.scratch_len()];
    conv.run(&x, &mut y, &mut s);
    close(&y, &want, 1e-5);

    // The standalone form gives the same as well.
    let (scale, shift) = batch_norm_scale_shift(&gamma, &beta, &mean, &var, eps);
    let mut z: Vec<f32> = conv_out.iter().map(|&v| v as f32).collect();
    scale_shift(&mut z, 8, 20, &scale, &shift);
    close(&z, &want, 1e-5);
}

#[test]
fn pools_drop_the_remainder() {
    // 2 channels, len 7, k 3 -> 2 outputs per channel; the 7th sample is dropped.
    let x = [1.0, 5.0, 2.0, -1.0, -3.0, -2.0, 100.0, 0.0, 0.5, 0.25, 9.0, 8.0, 7.0, -100.0];
    let mut out = [0.0; 4];
    max_pool(&x, 2, 7, 3, &mut out);
    assert_eq!(out, [5.0, -1.0, 0.5, 9.0]);
    avg_pool(&x, 2, 7, 3, &mut out);
    close(&out, &[8.0 / 3.0, -2.0, 0.75 / 3.0, 8.0], 1e-7);
    let mut empty: [f32; 0] = [];
    max_pool(&x, 2, 7, 8, &mut empty);
    let mut g = [0.0; 2];
    global_avg_pool(&x, 2, 7, &mut g);
    close(&g, &[102.0 / 7.0, -75.25 / 7.0], 1e-7);
    global_max_pool(&x, 2, 7, &mut g);
    assert_eq!(g, [100.0, 9.0]);
    let nan = [1.0, f32::NAN, 0.0];
    let mut m = [0.0];
    max_pool(&nan, 1, 3, 3, &mut m);
    assert!(m[0].is_nan());
}

#[test]
fn linear_matches_definition() {
    let mut rng = Lcg(3);
    for (nin, nout) in [(1, 1), (7, 3), (64, 4), (131, 9)] {
        let w = rng.vec(nin * nout);
        let b = rng.vec(nout);
        let x = rng.vec(nin);
        let mut y = vec![0.0; nout];
        linear(&w, Some(&b), &x, &mut y);
        let want: Vec<f32> = (0..nout)
            .map(|o| {
                let s: f64 = (0..nin).map(|i| f64::from(w[o * nin + i]) * f64::from(x[i])).sum();
                (s + f64::from(b[o])) as f32
            })
            .collect();
        close(&y, &want, 1e-5);
        linear(&w, None, &x, &mut y);
        let nb: Vec<f32> = want.iter().zip(&b).map(|(v, b)| v - b).collect();
        close(&y, &nb, 1e-5);
    }
}

#[test]
fn softmax_is_stable_and_sums_to_one() {
    let mut x = [1000.0, 1000.0, 999.0, -1000.0];
    softmax(&mut x);
    let s: f32 = x.iter().sum();
    assert!((s - 1.0).abs() < 1e-6);
    let e1 = (-1.0f64).exp();
    let d = 2.0 + e1;
    close(&x, &[(1.0 / d) as f32, (1.0 / d) as f32, (e1 / d) as f32, 0.0], 1e-6);
    let mut y = [0.5, -0.25, 3.0];
    softmax(&mut y);
    let den: f64 = [0.5f64, -0.25, 3.0].iter().map(|v| v.exp()).sum();
    close(&y, &[(0.5f64.exp() / den) as f32, ((-0.25f64).exp() / den) as f32, (3f64.exp() / den) as f32], 1e-6);
    let mut empty: [f32; 0] = [];
    softmax(&mut empty);
}

#[test]
fn add_assign_adds() {
    let mut a: Vec<f32> = (0..37).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..37).map(|i| (i * 2) as f32).collect();
    add_assign(&mut a, &b);
    let want: Vec<f32> = (0..37).map(|i| (i * 3) as f32).collect();
    assert_eq!(a, want);
    for ks in variants() {
        let mut c = vec![1.0f32; 37];
        (ks.add)(&mut c, &b, Activation::None.params());
        assert_eq!(c[36], 73.0, "{}", ks.name);
    }
}

#[test]
fn channel_shuffle_matches_view_transpose_reshape() {
    for (groups, channels, len) in [(1, 4, 3), (2, 6, 5), (3, 6, 1), (4, 8, 2), (6, 6, 3)] {
        let src: Vec<f32> = (0..channels * len).map(|i| i as f32).collect();
        let mut dst = vec![0.0; channels * len];
        channel_shuffle(&src, &mut dst, groups, channels, len);
        // view(g, C/g, L): element [a, b, l] = src[(a*(C/g) + b)*L + l];
        // transpose(0, 1) -> [b, a, l]; reshape(C, L): channel b*g + a.
        let per = channels / groups;
        for a in 0..groups {
            for b in 0..per {
                for l in 0..len {
                    assert_eq!(dst[(b * groups + a) * len + l], src[(a * per + b) * len + l]);
                }
            }
        }
    }
}

// ---- no allocation on the inference path ----

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts allocations per thread, so parallel tests do not interfere.
    pub struct Counting;

    // SAFETY: every call is passed on unchanged to `System`, which upholds the contract; the
    // counter does not allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // `try_with`: the counter may already be gone while a thread exits.
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            // SAFETY: our caller upholds `alloc`'s contract for `layout`.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `alloc` above, i.e. from `System`, with this `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    pub fn allocations() -> usize {
        COUNT.with(Cell::get)
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

#[test]
fn inference_path_never_allocates() {
    let cases = [
        geom(64, 64, 1, 5, 1, 1, (2, 2), 128),
        geom(64, 64, 64, 5, 2, 2, (4, 4), 128),
        geom(10, 14, 2, 4, 3, 1, (1, 2), 37),
    ];
    for g in cases {
        let mut rng = Lcg(11);
        let conv = Conv1d::new(g, &rng.vec(g.out_channels * g.in_channels / g.groups * g.kernel_size), None)
            .expect("valid geometry");
        let x = rng.vec(g.in_channels * g.in_len);
        let mut y = vec![0.0; g.out_channels * conv.out_len()];
        let mut s = vec![0.0; conv.scratch_len()];
        let mut pooled = vec![0.0; g.out_channels];
        let mut shuffled = y.clone();
        let mut logits = vec![0.0; 3];
        let w = rng.vec(3 * g.out_channels);
        let (scale, shift) = batch_norm_scale_shift(&pooled, &pooled, &pooled, &pooled, 1e-5);
        let _ = variants();
        let before = counting::allocations();
        for ks in variants() {
            conv.run_with(ks, &x, &mut y, &mut s);
        }
        conv.run(&x, &mut y, &mut s);
        scale_shift(&mut y, g.out_channels, conv.out_len(), &scale, &shift);
        Activation::Gelu.apply(&mut y);
        Activation::Relu.apply(&mut y);
        add_assign(&mut shuffled, &y);
        channel_shuffle(&y, &mut shuffled, 2, g.out_channels, conv.out_len());
        max_pool(&y, g.out_channels, conv.out_len(), 2, &mut shuffled[..g.out_channels * (conv.out_len() / 2)]);
        global_avg_pool(&y, g.out_channels, conv.out_len(), &mut pooled);
        global_max_pool(&y, g.out_channels, conv.out_len(), &mut pooled);
        linear(&w, None, &pooled, &mut logits);
        softmax(&mut logits);
        assert_eq!(counting::allocations(), before, "allocation on the inference path for {g:?}");
    }
}

#[test]
fn conv_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Conv1d>();
    check::<&'static KernelSet>();
}

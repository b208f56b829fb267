//! Every variant directly: the micro-kernels on every length around every
//! block boundary, ranges inside a row, and what a kernel may read and write;
//! the light layers against the serial reference.

use super::*;
use crate::bodies::{Tile, MR, OC, SLACK};

/// Small deterministic values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Positions up to three times the widest block, so that every full-block
/// count and every tail width is hit with every remainder.
const MAX_N: usize = 3 * 64;

/// A convolution-like offset table: `chans` input rows of `row_len` with
/// `taps` taps each.
fn offsets(chans: usize, taps: usize, row_len: usize) -> Vec<usize> {
    (0..chans).flat_map(|c| (0..taps).map(move |t| c * row_len + t)).collect()
}

struct Case {
    offs: Vec<usize>,
    /// The input rows followed by SLACK NaNs: an over-read may load them,
    /// but they must never reach a stored output.
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
}

fn case(seed: u64, chans: usize, taps: usize, width: usize) -> Case {
    let row_len = MAX_N + taps - 1;
    let offs = offsets(chans, taps, row_len);
    let mut x = values(seed, chans * row_len);
    x.extend([f32::NAN; SLACK]);
    Case { w: values(seed + 1, offs.len() * width), bias: values(seed + 2, width), offs, x }
}

/// f64 value of output `(m, j)`: `bias[m] + sum_k w[k * width + m] * x[offs[k] + j]`.
fn reference(c: &Case, width: usize, m: usize, j: usize) -> f64 {
    c.offs
        .iter()
        .enumerate()
        .fold(f64::from(c.bias[m]), |s, (k, &off)| s + f64::from(c.w[k * width + m]) * f64::from(c.x[off + j]))
}

fn assert_close(ks: &KernelSet, what: &str, got: f32, want: f64, scale: f64) {
    assert!((f64::from(got) - want).abs() <= 1e-5 * scale, "{} {what}: got {got}, want {want}", ks.name);
}

/// Runs a tile kernel (`panel` or `cols`, tiles of `width` channels) on input `x` for `n`
/// positions and `rows` channels: every output of the tile against the reference, and
/// nothing written outside it.
#[allow(clippy::too_many_arguments)]
fn check_tile(ks: &KernelSet, kernel: PanelFn, name: &str, c: &Case, x: &[f32], width: usize, n: usize, rows: usize) {
    let scale = 1.0 + c.offs.len() as f64;
    let stride = n + 3;
    let mut out = vec![f32::NAN; width * stride];
    kernel(&Tile { x, offs: &c.offs, w: &c.w, bias: &c.bias, act: Act::None }, &mut out, stride, rows, n);
    for m in 0..width {
        for j in 0..stride {
            let got = out[m * stride + j];
            let what = format!("{name} n={n} rows={rows} [{m}, {j}]");
            if m < rows && j < n {
                assert_close(ks, &what, got, reference(c, width, m, j), scale);
            } else {
                assert!(got.is_nan(), "{} {what}: wrote {got} outside the tile", ks.name);
            }
        }
    }
}

#[test]
fn panel_every_length_and_row_count() {
    for (chans, taps) in [(1, 1), (3, 5), (16, 3)] {
        let c = case(chans as u64 * 10 + taps as u64, chans, taps, MR);
        for ks in variants() {
            for n in 1..=MAX_N {
                for rows in 2..=MR {
                    check_tile(ks, ks.panel, &format!("panel {chans}x{taps}"), &c, &c.x, MR, n, rows);
                }
            }
        }
    }
}

/// The narrow-range kernel, for every width a short range has (and so every split into
/// blocks) and every channel count of a tile; it must not read past its last position.
#[test]
fn cols_every_length_and_row_count() {
    for (chans, taps) in [(1, 1), (3, 5), (16, 3)] {
        let c = case(chans as u64 * 10 + taps as u64 + 200, chans, taps, OC);
        let row_len = MAX_N + taps - 1;
        for ks in variants() {
            for n in 1..=40 {
                // Positions past what `n` outputs read are NaN: a read would show.
                let mut x = c.x.clone();
                for row in x.chunks_mut(row_len) {
                    row.iter_mut().skip(n + taps - 1).for_each(|v| *v = f32::NAN);
                }
                for rows in [1, 2, 7, OC] {
                    check_tile(ks, ks.cols, &format!("cols {chans}x{taps}"), &c, &x, OC, n, rows);
                }
            }
        }
    }
}

#[test]
fn row_every_length() {
    for (chans, taps) in [(1, 1), (1, 5), (6, 3)] {
        let c = case(chans as u64 * 10 + taps as u64 + 100, chans, taps, 1);
        let scale = 1.0 + c.offs.len() as f64;
        for ks in variants() {
            for n in 1..=MAX_N {
                let mut out = vec![f32::NAN; n + 3];
                let t = Tile { x: &c.x, offs: &c.offs, w: &c.w, bias: &c.bias, act: Act::None };
                (ks.row)(&t, &mut out[..n]);
                for (j, &got) in out.iter().enumerate() {
                    let what = format!("row {chans}x{taps} n={n} [{j}]");
                    if j < n {
                        assert_close(ks, &what, got, reference(&c, 1, 0, j), scale);
                    } else {
                        assert!(got.is_nan(), "{} {what}: wrote {got} past the row", ks.name);
                    }
                }
            }
        }
    }
}

/// A range of positions, computed the way `Conv1d` computes one (input and
/// output shifted to the range's start), equals the same positions of the
/// whole row bit for bit, whichever blocks computed them.
#[test]
fn ranges_equal_the_whole_row_exactly() {
    let (chans, taps) = (8, 5);
    let c = case(7, chans, taps, MR);
    let cr = case(8, chans, taps, 1);
    for ks in variants() {
        let n = MAX_N;
        let mut whole = vec![0.0; MR * n];
        (ks.panel)(&Tile { x: &c.x, offs: &c.offs, w: &c.w, bias: &c.bias, act: Act::None }, &mut whole, n, MR, n);
        let mut whole_row = vec![0.0; n];
        (ks.row)(&Tile { x: &cr.x, offs: &cr.offs, w: &cr.w, bias: &cr.bias, act: Act::None }, &mut whole_row);
        let starts = [0, 1, 3, 15, 16, 17, 31, 32, 33, 63, 100];
        for a in starts {
            for len in (1..=40).chain([47, 63, 64, 65, 95, 96, 97]) {
                let b = a + len;
                if b > n {
                    continue;
                }
                let mut part = vec![f32::NAN; MR * n];
                let t = Tile { x: &c.x[a..], offs: &c.offs, w: &c.w, bias: &c.bias, act: Act::None };
                (ks.panel)(&t, &mut part[a..], n, MR, len);
                for m in 0..MR {
                    let (got, want) = (&part[m * n + a..m * n + b], &whole[m * n + a..m * n + b]);
                    assert!(
                        got.iter().zip(want).all(|(g, w)| g.to_bits() == w.to_bits()),
                        "{} panel range {a}..{b} row {m}: {got:?} != {want:?}",
                        ks.name
                    );
                }
                let mut part_row = vec![f32::NAN; n];
                let t = Tile { x: &cr.x[a..], offs: &cr.offs, w: &cr.w, bias: &cr.bias, act: Act::None };
                (ks.row)(&t, &mut part_row[a..b]);
                assert!(
                    part_row[a..b].iter().zip(&whole_row[a..b]).all(|(g, w)| g.to_bits() == w.to_bits()),
                    "{} row range {a}..{b}",
                    ks.name
                );
            }
        }
    }
}

#[test]
fn every_detected_variant_is_listed_once() {
    let names: Vec<&str> = variants().iter().map(|k| k.name).collect();
    for (i, a) in names.iter().enumerate() {
        assert!(!names[i + 1..].contains(a), "{a} listed twice: {names:?}");
        assert!(std::ptr::eq(kernel_set_by_name(a).unwrap(), variants()[i]));
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        assert_eq!(names.contains(&"avx2+fma"), avx2);
        let avx512 = avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
        assert_eq!(names.contains(&"avx512"), avx512);
    }
}

/// The light layers on every kernel set against the serial reference.
mod light_layers {
    use super::*;

    fn values(seed: u32, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 23) as f32 * 100.0 - 100.0
            })
            .collect()
    }

    const LENGTHS: [usize; 9] = [1, 2, 15, 16, 17, 31, 33, 128, 1001];

    #[test]
    fn global_pools_match_the_reference() {
        for ks in variants() {
            for (i, len) in (0..=70).chain(LENGTHS).enumerate() {
                let channels = 3;
                let x = values(i as u32 + 1, channels * len);
                let (mut avg, mut max) = (vec![0.0; channels], vec![0.0; channels]);
                ks.global_avg_pool(&x, channels, len, &mut avg);
                ks.global_max_pool(&x, channels, len, &mut max);
                for c in 0..channels {
                    let row = &x[c * len..(c + 1) * len];
                    let want = (scalar::sum(row) / len as f64) as f32;
                    let tol = f32::EPSILON * want.abs();
                    assert!(
                        (avg[c] - want).abs() <= tol || (len == 0 && avg[c].is_nan()),
                        "{} mean len {len}: {} vs {want}",
                        ks.name,
                        avg[c]
                    );
                    assert_eq!(max[c], scalar::max(row), "{} max len {len}", ks.name);
                }
            }
        }
    }

    #[test]
    fn global_max_propagates_nan_from_any_position() {
        for ks in variants() {
            for len in [1, 7, 16, 40] {
                for p in 0..len {
                    let mut x = values(9, len);
                    x[p] = f32::NAN;
                    let mut out = [0.0];
                    ks.global_max_pool(&x, 1, len, &mut out);
                    assert!(out[0].is_nan(), "{} len {len} NaN at {p}", ks.name);
                }
            }
            let mut out = [0.0];
            ks.global_max_pool(&[f32::NEG_INFINITY; 20], 1, 20, &mut out);
            assert_eq!(out[0], f32::NEG_INFINITY, "{}", ks.name);
        }
    }

    /// Every set reduces each window in the reference order: identical bits.
    #[test]
    fn windowed_pools_equal_the_reference_exactly() {
        let scalar = &variants()[0];
        for ks in variants() {
            for k in 1..=6 {
                for len in (0..=40).chain([128, 131]) {
                    let channels = 2;
                    let mut x = values((k * 1000 + len) as u32, channels * len);
                    if len > 5 {
                        x[5] = f32::NAN;
                    }
                    let out_len = len / k;
                    for pool in [Pool::Max, Pool::Avg] {
                        let (mut got, mut want) = (vec![0.0; channels * out_len], vec![1.0; channels * out_len]);
                        ks.pool(pool, &x, channels, len, k, &mut got);
                        scalar.pool(pool, &x, channels, len, k, &mut want);
                        let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
                        assert!(same, "{} {pool:?} k {k} len {len}: {got:?} vs {want:?}", ks.name);
                    }
                }
            }
        }
    }

    #[test]
    fn scale_shift_matches_the_reference() {
        for ks in variants() {
            for len in (0..=40).chain(LENGTHS) {
                let channels = 3;
                let x = values(len as u32 + 7, channels * len);
                let (scale, shift) = (values(1, channels), values(2, channels));
                let mut got = x.clone();
                ks.scale_shift(&mut got, channels, len, &scale, &shift);
                for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
                    let c = i / len;
                    let want = f64::from(v) * f64::from(scale[c]) + f64::from(shift[c]);
                    assert!((f64::from(g) - want).abs() <= 1e-6 * (1.0 + want.abs()), "{} at {i}", ks.name);
                }
            }
        }
    }
}

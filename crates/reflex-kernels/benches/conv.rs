//! Throughput of every kernel variant on the model-sized layers.
//!
//! `cargo bench -p reflex-kernels --bench conv` (add `-- --test` for the
//! summaries alone). First come one-line summaries, each timed with the
//! variants interleaved (rounds of A, B, C, … so that a noisy neighbour hits
//! them alike): the median of the rounds, its ratio to `avx2+fma` where that
//! runs (below 1 = faster), and GFLOP/s for the convolutions:
//!
//! * whole windows (`[C, 128]`) of each convolution kind;
//! * short windows of 1-128 positions (the cost of a short range of positions,
//!   as streaming inference computes them);
//! * activations, and the light layers (pools, standalone batch norm) on one
//!   64 x 128 feature map — `scalar` there is the plain serial loop.
//!
//! `SUMMARIES=conv,short,activation,ops` (any subset) runs only those.
//!
//! Then Criterion's groups for the whole-window convolutions, whose throughput
//! is in floating-point operations (2 per MAC): "elem/s" reads as FLOP/s.

#![allow(missing_docs, reason = "criterion_group! defines a public function it cannot document")]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use reflex_kernels::{variants, Activation, Conv1d, ConvGeometry, KernelSet};
use std::time::Instant;

fn geom(cin: usize, cout: usize, groups: usize, k: usize, len: usize) -> ConvGeometry {
    ConvGeometry {
        in_channels: cin,
        out_channels: cout,
        groups,
        kernel_size: k,
        stride: 1,
        dilation: 1,
        pad_left: (k - 1) / 2,
        pad_right: k - 1 - (k - 1) / 2,
        in_len: len,
    }
}

fn cases() -> Vec<(&'static str, ConvGeometry)> {
    vec![
        ("dense64_k5", geom(64, 64, 1, 5, 128)),
        ("depthwise64_k5", geom(64, 64, 64, 5, 128)),
        ("pointwise64", geom(64, 64, 1, 1, 128)),
        ("grouped64_g4_k5", geom(64, 64, 4, 5, 128)),
        ("dense64_k5_s2", ConvGeometry { stride: 2, ..geom(64, 64, 1, 5, 128) }),
        ("input6_k5", geom(6, 64, 1, 5, 128)),
    ]
}

fn build(geom: ConvGeometry) -> (Conv1d, Vec<f32>, Vec<f32>, Vec<f32>) {
    let wlen = geom.out_channels * geom.in_channels / geom.groups * geom.kernel_size;
    let w: Vec<f32> = (0..wlen).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
    let b: Vec<f32> = (0..geom.out_channels).map(|i| i as f32 * 0.01).collect();
    let conv = Conv1d::new(geom, &w, Some(&b)).expect("valid bench geometry");
    let x: Vec<f32> = (0..geom.in_channels * geom.in_len).map(|i| (i % 17) as f32 * 0.1).collect();
    let y = vec![0.0; geom.out_channels * conv.out_len()];
    let s = vec![0.0; conv.scratch_len()];
    (conv, x, y, s)
}

/// Seconds per call of `f(ks)` for every variant: `ROUNDS` rounds, each
/// timing `iters` calls of every variant in turn; the median round per variant.
fn time_variants(iters: usize, mut f: impl FnMut(&KernelSet)) -> Vec<f64> {
    const ROUNDS: usize = 9;
    let vs = variants();
    for ks in vs {
        f(ks); // warm-up
    }
    let mut rounds = vec![Vec::with_capacity(ROUNDS); vs.len()];
    for _ in 0..ROUNDS {
        for (i, ks) in vs.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..iters {
                f(ks);
            }
            rounds[i].push(t.elapsed().as_secs_f64() / iters as f64);
        }
    }
    rounds
        .into_iter()
        .map(|mut r| {
            r.sort_by(f64::total_cmp);
            r[ROUNDS / 2]
        })
        .collect()
}

/// One line per variant: median µs, ratio to `avx2+fma`, and GFLOP/s if `flops`.
fn report(name: &str, times: &[f64], flops: Option<f64>) {
    let base = variants().iter().position(|k| k.name == "avx2+fma").map(|i| times[i]);
    for (ks, &t) in variants().iter().zip(times) {
        let ratio = base.map_or(String::new(), |b| format!("{:>6.3}x", t / b));
        let rate = flops.map_or(String::new(), |f| format!(" {:>7.2} GFLOP/s", f / t * 1e-9));
        println!("{name:<22} {:<9} {:>9.3} us {ratio}{rate}", ks.name, t * 1e6);
    }
}

fn conv_summary() {
    println!("-- whole windows: median us, ratio to avx2+fma, GFLOP/s");
    for (name, geom) in cases() {
        let (conv, x, mut y, mut s) = build(geom);
        let flops = 2.0 * geom.macs() as f64;
        let iters = (2e7 / flops).clamp(10.0, 20_000.0) as usize;
        let times = time_variants(iters, |ks| conv.run_with(ks, black_box(&x), &mut y, &mut s));
        report(name, &times, Some(flops));
    }
}

/// Short windows: what a range of `n` positions costs (streaming inference).
fn short_summary() {
    println!("-- short windows of n positions: median us, ratio to avx2+fma");
    for (name, cin, groups) in [("dense64_k5", 64, 1), ("depthwise64_k5", 64, 64)] {
        for n in [1, 2, 3, 4, 7, 8, 12, 16, 17, 24, 30, 32, 33, 48, 64, 128] {
            let g = geom(cin, 64, groups, 5, n);
            let (conv, x, mut y, mut s) = build(g);
            let iters = (1e7 / (2.0 * g.macs() as f64)).clamp(50.0, 20_000.0) as usize;
            let times = time_variants(iters, |ks| conv.run_with(ks, black_box(&x), &mut y, &mut s));
            report(&format!("{name} n={n}"), &times, None);
        }
    }
}

/// Activations over one 64 x 128 feature map.
fn activation_summary() {
    println!("-- activations on [64, 128]: median us, ratio to avx2+fma");
    let acts = [
        Activation::Relu,
        Activation::Hardswish,
        Activation::Elu { alpha: 1.0 },
        Activation::Silu,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Sigmoid,
    ];
    let x: Vec<f32> = (0..64 * 128).map(|i| (i % 613) as f32 * 0.02 - 6.0).collect();
    let mut y = x.clone();
    for a in acts {
        let times = time_variants(200, |ks| {
            y.copy_from_slice(&x);
            a.apply_with(ks, black_box(&mut y));
        });
        report(a.name(), &times, None);
    }
}

/// The light layers on one 64 x 128 feature map.
fn ops_summary() {
    println!("-- light layers on [64, 128]: median us, ratio to avx2+fma");
    let (c, l) = (64, 128);
    let x: Vec<f32> = (0..c * l).map(|i| (i % 613) as f32 * 0.02 - 6.0).collect();
    let mut y = x.clone();
    let mut pooled = vec![0.0; c];
    let mut half = vec![0.0; c * l / 2];
    let scale: Vec<f32> = (0..c).map(|i| 1.0 + i as f32 * 0.01).collect();
    let shift: Vec<f32> = (0..c).map(|i| i as f32 * -0.02).collect();
    let iters = 500;
    let t = time_variants(iters, |ks| ks.global_avg_pool(black_box(&x), c, l, &mut pooled));
    report("global_avg_pool", &t, None);
    let t = time_variants(iters, |ks| ks.global_max_pool(black_box(&x), c, l, &mut pooled));
    report("global_max_pool", &t, None);
    let t = time_variants(iters, |ks| ks.max_pool(black_box(&x), c, l, 2, &mut half));
    report("max_pool k2", &t, None);
    let t = time_variants(iters, |ks| ks.avg_pool(black_box(&x), c, l, 2, &mut half));
    report("avg_pool k2", &t, None);
    let t = time_variants(iters, |ks| {
        y.copy_from_slice(&x);
        ks.scale_shift(black_box(&mut y), c, l, &scale, &shift);
    });
    report("copy + scale_shift", &t, None);
}

fn bench(c: &mut Criterion) {
    let wanted = std::env::var("SUMMARIES").ok();
    let summaries: [(&str, fn()); 4] =
        [("conv", conv_summary), ("short", short_summary), ("activation", activation_summary), ("ops", ops_summary)];
    for (name, summary) in summaries {
        if wanted.as_deref().is_none_or(|w| w.split(',').any(|s| s.trim() == name)) {
            summary();
        }
    }
    for (name, geom) in cases() {
        let (conv, x, mut y, mut s) = build(geom);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(2 * geom.macs()));
        for ks in variants() {
            group.bench_function(ks.name, |bencher| bencher.iter(|| conv.run_with(ks, black_box(&x), &mut y, &mut s)));
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);

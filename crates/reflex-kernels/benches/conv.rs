//! Convolution throughput of every kernel variant on the model-sized layers.
//!
//! `cargo bench -p reflex-kernels --bench conv`. Criterion's throughput is in
//! floating-point operations (2 per MAC), so its "elem/s" reads as FLOP/s;
//! a one-line GFLOP/s summary per case is printed first.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use reflex_kernels::{variants, Activation, Conv1d, ConvGeometry};
use std::time::Instant;

fn cases() -> Vec<(&'static str, ConvGeometry)> {
    let g = |cin, cout, groups, k: usize| ConvGeometry {
        in_channels: cin,
        out_channels: cout,
        groups,
        kernel_size: k,
        stride: 1,
        dilation: 1,
        pad_left: (k - 1) / 2,
        pad_right: k - 1 - (k - 1) / 2,
        in_len: 128,
    };
    vec![
        ("dense64_k5", g(64, 64, 1, 5)),
        ("depthwise64_k5", g(64, 64, 64, 5)),
        ("pointwise64", g(64, 64, 1, 1)),
        ("grouped64_g4_k5", g(64, 64, 4, 5)),
        ("dense64_k5_s2", ConvGeometry { stride: 2, ..g(64, 64, 1, 5) }),
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

fn summary() {
    for (name, geom) in cases() {
        let (conv, x, mut y, mut s) = build(geom);
        let flops = 2.0 * geom.macs() as f64;
        for ks in variants() {
            let iters = (2e8 / flops).clamp(10.0, 20_000.0) as usize;
            conv.run_with(ks, &x, &mut y, &mut s);
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..iters {
                    conv.run_with(ks, black_box(&x), &mut y, &mut s);
                }
                best = best.min(t.elapsed().as_secs_f64() / iters as f64);
            }
            println!("{name:<18} {:<9} {:>8.2} us {:>7.2} GFLOP/s", ks.name, best * 1e6, flops / best * 1e-9);
        }
    }
}

/// Activations over one 64 x 128 feature map, in ns per element.
fn activation_summary() {
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
        for ks in variants() {
            let iters = 200;
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..iters {
                    y.copy_from_slice(&x);
                    a.apply_with(ks, black_box(&mut y));
                }
                best = best.min(t.elapsed().as_secs_f64() / iters as f64);
            }
            println!(
                "{:<18} {:<9} {:>8.2} us {:>7.3} ns/elem",
                a.name(),
                ks.name,
                best * 1e6,
                best * 1e9 / x.len() as f64
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    summary();
    activation_summary();
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

//! Peak f32 FMA throughput of one core: the ceiling `tools/perf_compare.py` divides a model's
//! MACs by (physical limit µs = 2 × MACs ÷ peak FLOP/s).
//!
//! ```sh
//! cargo run --release -p reflex-kernels --example fma_peak
//! ```
//!
//! Prints `peak_gflops=<GFLOP/s> isa=<name>` (one FMA = 2 FLOPs per lane) on one line for
//! scripts, then a line for people. Each kernel keeps many independent vector accumulators
//! (more than FMA latency × FMA units, e.g. 4 cycles × 2 units = 8 on x86) so the loop is bound
//! by FMA throughput, not latency. Best of 5 runs of ~0.5 s each, on the calling thread.
//!
//! x86-64: every ISA Reflex's own kernels use that the CPU has (runtime-detected): AVX2+FMA
//! (`avx2+fma`) and AVX-512F (`avx512`); the peak is the fastest of them. On AMD Zen 4, which
//! runs a 512-bit FMA as two 256-bit halves, both give the same peak (the line for people shows
//! each); on cores with two full 512-bit FMA units the AVX-512 one is twice the AVX2 one.
//! aarch64: NEON. Anything else: a portable loop that is *not* a peak.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// A measurement kernel: `run(n)` executes `n` loop iterations of `flops_per_iter` FLOPs.
struct Kernel {
    isa: &'static str,
    flops_per_iter: u64,
    is_peak: bool,
    run: fn(u64),
}

// Every accumulator does acc = acc * A + B with A slightly below 1: the values converge to
// B / (1 - A) and stay normal (no overflow, no denormal slow path). A and B go through
// black_box so nothing is constant-folded; the accumulators are black_boxed at the end so the
// loop cannot be removed or narrowed.
const A: f32 = 0.999_999;
const B: f32 = 1e-6;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    pub const ACC: usize = 12; // 12 of the 16 ymm registers; 8 would already cover 4 cyc × 2 units
    pub const FLOPS_PER_ITER: u64 = (ACC * 8 * 2) as u64;

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma_loop(n: u64) {
        let a = _mm256_set1_ps(black_box(super::A));
        let b = _mm256_set1_ps(black_box(super::B));
        let mut acc = [_mm256_set1_ps(1.0); ACC];
        for _ in 0..n {
            // fully unrolled by the compiler: 12 independent vfmadd per iteration
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        black_box(acc);
    }

    pub fn run(n: u64) {
        // SAFETY: only selected after is_x86_feature_detected!("avx2") && ("fma").
        unsafe { fma_loop(n) }
    }

    // 16 of the 32 zmm registers: 2 units × 4 cycles = 8 would already do.
    pub const ACC_512: usize = 16;
    pub const FLOPS_PER_ITER_512: u64 = (ACC_512 * 16 * 2) as u64;

    /// # Safety
    /// The CPU must support AVX-512F.
    // AVX-512 intrinsics and target features are stable since Rust 1.89 (as is the kernels'
    // `avx512` set): the workspace's `rust-version` is older than what it needs.
    #[allow(clippy::incompatible_msrv)]
    #[target_feature(enable = "avx512f")]
    unsafe fn fma_loop_512(n: u64) {
        let a = _mm512_set1_ps(black_box(super::A));
        let b = _mm512_set1_ps(black_box(super::B));
        let mut acc = [_mm512_set1_ps(1.0); ACC_512];
        for _ in 0..n {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        black_box(acc);
    }

    pub fn run_512(n: u64) {
        // SAFETY: only selected after is_x86_feature_detected!("avx512f").
        unsafe { fma_loop_512(n) }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;
    use std::hint::black_box;

    // 16 of the 32 q registers: enough for 4 FMA pipes × 4 cycles latency (Neoverse V1/V2).
    pub const ACC: usize = 16;
    pub const FLOPS_PER_ITER: u64 = (ACC * 4 * 2) as u64;

    /// # Safety
    /// NEON is mandatory on aarch64 Linux targets.
    #[target_feature(enable = "neon")]
    unsafe fn fma_loop(n: u64) {
        let a = vdupq_n_f32(black_box(super::A));
        let b = vdupq_n_f32(black_box(super::B));
        let mut acc = [vdupq_n_f32(1.0); ACC];
        for _ in 0..n {
            for x in acc.iter_mut() {
                *x = vfmaq_f32(b, *x, a); // b + x * a, one fused op
            }
        }
        black_box(acc);
    }

    pub fn run(n: u64) {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { fma_loop(n) }
    }
}

/// Portable fallback: plain arrays, left to the auto-vectoriser (mul + add, not fused, and
/// only the baseline ISA). Labelled as not a peak.
const PORTABLE_ACC: usize = 64;
fn portable(n: u64) {
    let (a, b) = (black_box(A), black_box(B));
    let mut acc = [1.0f32; PORTABLE_ACC];
    for _ in 0..n {
        for x in acc.iter_mut() {
            *x = *x * a + b;
        }
    }
    black_box(acc);
}

/// The kernels to measure on this CPU, widest last.
fn select() -> Vec<Kernel> {
    #[allow(unused_mut)]
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            found.push(Kernel { isa: "avx2+fma", flops_per_iter: x86::FLOPS_PER_ITER, is_peak: true, run: x86::run });
        }
        if is_x86_feature_detected!("avx512f") {
            found.push(Kernel {
                isa: "avx512",
                flops_per_iter: x86::FLOPS_PER_ITER_512,
                is_peak: true,
                run: x86::run_512,
            });
        }
    }
    #[cfg(target_arch = "aarch64")]
    found.push(Kernel { isa: "neon", flops_per_iter: arm::FLOPS_PER_ITER, is_peak: true, run: arm::run });
    if found.is_empty() {
        found.push(Kernel {
            isa: "portable",
            flops_per_iter: (PORTABLE_ACC * 2) as u64,
            is_peak: false,
            run: portable,
        });
    }
    found
}

/// One run: chunks of `CHUNK` iterations until `budget` has passed; returns GFLOP/s.
fn measure(k: &Kernel, budget: Duration) -> f64 {
    const CHUNK: u64 = 1 << 16; // ~0.1-1 ms per chunk: timer overhead is negligible
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < budget {
        (k.run)(black_box(CHUNK));
        iters += CHUNK;
    }
    (iters * k.flops_per_iter) as f64 / start.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let mut results = Vec::new();
    for k in select() {
        measure(&k, Duration::from_millis(100)); // warm-up: clocks up, page in
        let runs: Vec<f64> = (0..5).map(|_| measure(&k, Duration::from_millis(500))).collect();
        let best = runs.iter().copied().fold(0.0, f64::max);
        results.push((k, best, runs));
    }
    let (peak, _, _) = results.iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("at least the portable kernel");
    let peak_gflops = results.iter().map(|r| r.1).fold(0.0, f64::max);
    println!("peak_gflops={peak_gflops:.2} isa={}", peak.isa);
    for (k, best, runs) in &results {
        let runs_txt: Vec<String> = runs.iter().map(|g| format!("{g:.1}")).collect();
        println!(
            "one core, f32, {}: best {best:.1} GFLOP/s of 5 × 0.5 s runs ({}){}",
            k.isa,
            runs_txt.join(", "),
            if k.is_peak { "" } else { " — portable fallback, NOT the hardware peak" }
        );
    }
}

//! `reflexd bench`: latency of one window through the graph, per layer and in total.
//!
//! Runs on the calling thread, after a warm-up, for about two seconds of windows. By default
//! every window is computed whole; with `--hop` the windows are cut from one signal, each
//! following the previous one by the hop, so streaming inference reuses what overlaps.

use reflex_graph::Graph;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

const WARMUP: Duration = Duration::from_millis(300);
const BUDGET: Duration = Duration::from_secs(2);
const MIN_WINDOWS: usize = 200;
const MAX_WINDOWS: usize = 100_000;

#[derive(Serialize)]
struct Stat {
    median_us: f64,
    p99_us: f64,
}

#[derive(Serialize)]
struct LayerStat {
    name: String,
    #[serde(flatten)]
    stat: Stat,
}

#[derive(Serialize)]
struct Report {
    total: Stat,
    layers: Vec<LayerStat>,
    windows_per_s: f64,
}

/// Consecutive windows cut from one signal; a full lap ends with a window that does not follow.
const LAP: usize = 256;
/// The most values a lap's signal, and its windows, may hold (64 MiB each): long windows get
/// shorter laps.
const MAX_SIGNAL: usize = 1 << 24;

/// A fixed pseudo-random signal, so runs compare like with like.
fn noise(len: usize) -> Vec<f32> {
    let mut s: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn stat(samples: &mut [f64]) -> Stat {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stat { median_us: at(0.5), p99_us: at(0.99) }
}

/// The windows to time: one, or a lap of `LAP` windows `hop` samples apart (`[C, L]` each).
fn windows(channels: usize, len: usize, hop: Option<usize>) -> Vec<Vec<f32>> {
    let Some(hop) = hop else { return vec![noise(channels * len)] };
    // The signal and the windows cut from it (copies) both stay within MAX_SIGNAL values.
    let room = (MAX_SIGNAL / channels.max(1)).saturating_sub(len) / hop;
    let lap = (room + 1).min(MAX_SIGNAL / (channels * len).max(1)).clamp(2, LAP);
    let t = len + (lap - 1) * hop;
    let signal = noise(channels * t);
    (0..lap).map(|i| signal.chunks_exact(t).flat_map(|row| &row[i * hop..i * hop + len]).copied().collect()).collect()
}

fn measure(graph: &mut Graph, windows: &[Vec<f32>]) -> anyhow::Result<Report> {
    let names: Vec<String> = graph.layers().iter().map(|l| l.name.clone()).collect();
    let mut times = vec![Duration::ZERO; names.len()];
    let start = Instant::now();
    let mut next = windows.iter().cycle();
    while start.elapsed() < WARMUP {
        graph.run(next.next().unwrap_or(&windows[0]))?;
    }
    let mut totals = Vec::with_capacity(MAX_WINDOWS);
    let mut per_layer: Vec<Vec<f64>> = names.iter().map(|_| Vec::with_capacity(MAX_WINDOWS)).collect();
    let start = Instant::now();
    let mut timed_layers = true;
    let mut ran = 0usize;
    for (i, input) in windows.iter().enumerate().cycle() {
        if totals.len() >= MIN_WINDOWS && (start.elapsed() >= BUDGET || totals.len() >= MAX_WINDOWS) {
            break;
        }
        if i == 0 && windows.len() > 1 {
            // The start of a lap does not follow the end of the last one: not what is timed.
            graph.run(input)?;
            continue;
        }
        // Windows in turn: one run as the daemon runs it, for the total (reading the clock
        // around every layer adds a few tenths of a µs), the next for the per-layer times.
        timed_layers = !timed_layers;
        ran += 1;
        if !timed_layers {
            let t0 = Instant::now();
            graph.run(input)?;
            totals.push(t0.elapsed().as_secs_f64() * 1e6);
            continue;
        }
        times.iter_mut().for_each(|t| *t = Duration::ZERO);
        graph.run_timed(input, &mut times)?;
        for (v, t) in per_layer.iter_mut().zip(&times) {
            v.push(t.as_secs_f64() * 1e6);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Report {
        total: stat(&mut totals),
        layers: names
            .into_iter()
            .zip(per_layer.iter_mut())
            .map(|(name, v)| LayerStat { name, stat: stat(v) })
            .collect(),
        windows_per_s: ran as f64 / elapsed,
    })
}

pub fn run(path: &Path, json: bool, hop: Option<usize>) -> anyhow::Result<()> {
    let mut loaded = crate::model::load(path)?;
    let (channels, len) = (loaded.config.source.channels, loaded.config.window.length);
    if let Some(h) = hop {
        anyhow::ensure!(h < len, "--hop {h}: must be shorter than the window ({len} samples) for windows to overlap");
        loaded.graph.set_hop(h);
    }
    let report = measure(&mut loaded.graph, &windows(channels, len, hop))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let width = report.layers.iter().map(|l| l.name.len()).max().unwrap_or(0).max(5);
    let what = match hop {
        None => "whole windows".to_string(),
        Some(h) => format!("windows {h} samples apart (streaming)"),
    };
    println!(
        "{}: {what} of [{channels}, {len}] on one thread, kernels {}",
        path.display(),
        reflex_kernels::kernels().name
    );
    println!("{:<width$}  {:>10}  {:>10}", "layer", "median µs", "p99 µs");
    for l in &report.layers {
        println!("{:<width$}  {:>10.2}  {:>10.2}", l.name, l.stat.median_us, l.stat.p99_us);
    }
    println!("{:<width$}  {:>10.2}  {:>10.2}", "total", report.total.median_us, report.total.p99_us);
    println!("{:.0} windows/s", report.windows_per_s);
    Ok(())
}

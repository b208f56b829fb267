//! The numbers the daemon reports: a `stats` line every ~10 s and a `stopped` line at the end,
//! with where the steady state began and what it allocated.

use super::Summary;
use reflex_io::sink::Sinks;
use reflex_io::source::Counters;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the stats line is logged.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Windows predicted before the steady state may begin.
const WARMUP_WINDOWS: u64 = 1000;

/// The periodic stats line, and where the steady state begins.
///
/// `allocs_per_window` in the stats line is every allocation in the process during the period
/// (all threads: reader, inference, sinks, recorder, logging; plugins included; the live
/// view's threads are counted apart, `live_allocs` in the `stopped` line) divided by the
/// windows predicted in it; the first period includes start-up. The steady state begins right
/// after the first stats line (~10 s) that follows the first [`WARMUP_WINDOWS`] windows, and
/// ends with the last window cut; the `stopped` line reports its windows, its allocations and
/// their ratio.
pub struct Report {
    since: Instant,
    samples: u64,
    windows: u64,
    /// Windows predicted since the start.
    total: u64,
    /// The allocation count at the start of the period.
    allocs: u64,
    latencies_us: Vec<f64>,
    pub steady_from: Option<(u64, u64)>,
}

impl Report {
    pub fn new(c: &Counters) -> Report {
        Report {
            since: Instant::now(),
            samples: c.samples.load(Ordering::Relaxed),
            windows: 0,
            total: 0,
            allocs: crate::allocs::count(),
            latencies_us: Vec::with_capacity(1 << 16),
            steady_from: None,
        }
    }

    pub fn latency(&mut self, d: Duration) {
        self.windows += 1;
        self.total += 1;
        // Bounded: past 65 536 windows per period the percentiles use the first ones.
        if self.latencies_us.len() < self.latencies_us.capacity() {
            self.latencies_us.push(d.as_secs_f64() * 1e6);
        }
    }

    pub fn maybe_log(&mut self, c: &Counters, sinks: &Sinks) {
        let elapsed = self.since.elapsed();
        if elapsed < REPORT_EVERY {
            return;
        }
        // Read before logging: the line's own allocations, if any, count in the next period.
        let allocs = crate::allocs::count();
        let secs = elapsed.as_secs_f64();
        let samples = c.samples.load(Ordering::Relaxed);
        // Unstable: the stable sort allocates a scratch buffer.
        self.latencies_us.sort_unstable_by(f64::total_cmp);
        let pct = |q: f64| {
            let v = &self.latencies_us;
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * q).round() as usize]
            }
        };
        tracing::info!(
            samples_per_s = format_args!("{:.1}", (samples - self.samples) as f64 / secs),
            windows_per_s = format_args!("{:.1}", self.windows as f64 / secs),
            decode_errors = c.decode_errors.load(Ordering::Relaxed),
            lost_samples = c.lost_samples.load(Ordering::Relaxed),
            dropped_windows = c.dropped_windows.load(Ordering::Relaxed),
            sink_lost = sinks.lost(),
            live_dropped = c.live_dropped.load(Ordering::Relaxed),
            latency_p50_us = format_args!("{:.1}", pct(0.5)),
            latency_p99_us = format_args!("{:.1}", pct(0.99)),
            allocs_per_window = %PerWindow(allocs - self.allocs, self.windows),
            "stats"
        );
        self.since = Instant::now();
        self.samples = samples;
        self.windows = 0;
        self.allocs = allocs;
        self.latencies_us.clear();
        if self.steady_from.is_none() && self.total >= WARMUP_WINDOWS {
            self.steady_from = Some((crate::allocs::count(), c.windows.load(Ordering::Relaxed)));
        }
    }
}

/// Allocations per window, written without allocating: `0` exactly when there were none, `-`
/// without windows.
struct PerWindow(u64, u64);

impl std::fmt::Display for PerWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let PerWindow(allocs, windows) = *self;
        match (allocs, windows) {
            (_, 0) => f.write_str("-"),
            (0, _) => f.write_str("0"),
            _ => {
                let r = allocs as f64 / windows as f64;
                if r >= 0.01 {
                    write!(f, "{r:.2}")
                } else {
                    write!(f, "{r:.1e}")
                }
            }
        }
    }
}

/// Where a window's time goes, from the read that brought its last sample to its records
/// handed to the sinks: `decode` (decoding and cutting the window), `queue` (waiting in the
/// window queue for the inference thread), `inference` (the graph), `sink` (records formatted
/// and sent, or queued for a sink thread). Over the whole run, in the `stopped` line.
///
/// hdrhistogram's counts are made here, at start-up: recording a value allocates nothing.
#[derive(Debug)]
pub struct Breakdown {
    stages: [hdrhistogram::Histogram<u64>; 5],
}

/// The stages, in the order of [`Breakdown::record`]'s instants.
const STAGES: [&str; 5] = ["decode", "queue", "inference", "sink", "total"];

impl Breakdown {
    pub fn new() -> Breakdown {
        // 0.1 µs to 100 s, 3 significant digits.
        let h = || hdrhistogram::Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid bounds");
        Breakdown { stages: [h(), h(), h(), h(), h()] }
    }

    /// One window: read → cut → inference began → inference ended → records sent.
    pub fn record(&mut self, [read, cut, began, ran, sent]: [Instant; 5]) {
        let spans = [(read, cut), (cut, began), (began, ran), (ran, sent), (read, sent)];
        for (h, (from, to)) in self.stages.iter_mut().zip(spans) {
            // Tenths of a microsecond.
            h.saturating_record((to.saturating_duration_since(from).as_nanos() / 100) as u64);
        }
    }

    /// `decode=1.2 queue=3.4 inference=36.0 sink=5.1 total=46.2`, in µs at quantile `q`.
    fn at(&self, q: f64) -> BreakdownAt<'_> {
        BreakdownAt(self, q)
    }
}

/// A [`Breakdown`]'s quantile, written without allocating.
struct BreakdownAt<'a>(&'a Breakdown, f64);

impl std::fmt::Display for BreakdownAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, h)) in STAGES.iter().zip(&self.0.stages).enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={:.1}", h.value_at_quantile(self.1) as f64 / 10.0)?;
        }
        Ok(())
    }
}

/// The `stopped` line: the totals, and the steady state — from where [`Report`] began it to
/// the last window cut (`at_last_window`, the allocation count then).
pub fn log_stopped(c: &Counters, summary: &Summary, at_last_window: u64) {
    let (steady_allocs, steady_windows) = summary.steady_from.map_or((0, 0), |(allocs, windows)| {
        let cut = c.windows.load(Ordering::Relaxed);
        (at_last_window.saturating_sub(allocs), cut.saturating_sub(windows))
    });
    tracing::info!(
        samples = c.samples.load(Ordering::Relaxed),
        windows = c.windows.load(Ordering::Relaxed),
        predictions = summary.predictions,
        decode_errors = c.decode_errors.load(Ordering::Relaxed),
        lost_samples = c.lost_samples.load(Ordering::Relaxed),
        time_jumps = c.time_jumps.load(Ordering::Relaxed),
        dropped_windows = c.dropped_windows.load(Ordering::Relaxed),
        inference_errors = summary.inference_errors,
        fallback_records = summary.fallbacks,
        sink_lost = summary.sink_lost,
        live_dropped = c.live_dropped.load(Ordering::Relaxed),
        live_allocs = crate::allocs::apart(),
        steady_windows,
        steady_allocs,
        allocs_per_window = %PerWindow(steady_allocs, steady_windows),
        breakdown_p50_us = %summary.breakdown.as_ref().map(|b| b.at(0.5)).map_or(String::new(), |b| b.to_string()),
        breakdown_p99_us = %summary.breakdown.as_ref().map(|b| b.at(0.99)).map_or(String::new(), |b| b.to_string()),
        "stopped"
    );
}

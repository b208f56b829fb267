//! The inference thread: window → graph → record → sinks (and the tap), and between two
//! windows, a new graph when the reloader has built one. Never on a tokio worker: a slow model
//! delays windows, never the reader.

use super::metrics::Tally;
use super::runtime::{Role, Runtime};
use super::stats::{Breakdown, Report, REPORT_EVERY};
use super::supervisor::Watch;
use super::Summary;
use crate::reload::shadow::ShadowFeed;
use crate::reload::{self, Swap};
use crossbeam_channel::Receiver;
use reflex_config::{Fallback, SafetyConfig};
use reflex_graph::Graph;
use reflex_io::record::{argmax, latency_us, Health, RecordPool};
use reflex_io::recording::unix_ns;
use reflex_io::sink::Sinks;
use reflex_io::source::{mono_ns, Counters};
use reflex_io::tap::Tap;
use reflex_io::window::SampleWindow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records the pool may hold beyond what the sinks' queues can: the recorder's backlog and the
/// live view's queue.
const RECORDS_SPARE: usize = 4096;

/// What the inference thread owns.
pub struct Inference {
    pub graph: Graph,
    pub labels: Option<Vec<Arc<str>>>,
    pub windows: Receiver<SampleWindow>,
    pub swaps: Receiver<Swap>,
    pub sinks: Arc<Sinks>,
    pub counters: Arc<Counters>,
    /// To the recorder and the live view.
    pub tap: Tap,
    /// A replay's recorded generations: (first window, its graph), in window order.
    pub scheduled: std::collections::VecDeque<(u64, Swap)>,
    /// `[safety]`.
    pub safety: SafetyConfig,
    /// What the supervisor watches; `None` without one (no `deadline_ms`), so that an
    /// unsupervised window takes no lock and copies its values once.
    pub watch: Option<Arc<Watch>>,
    /// Where a new graph in shadow gets its live windows; `None` without hot swaps.
    pub shadow: Option<Arc<ShadowFeed>>,
    /// `[runtime]`: this thread's CPU and priority, and whether it spins before it parks.
    pub runtime: Arc<Runtime>,
    /// What `/metrics` shows: atomic adds only.
    pub tally: Arc<Tally>,
}

/// The last window cut: what a stale record says it follows.
#[derive(Clone, Copy)]
struct Last {
    window: u64,
    last_sample: u64,
    t: Option<f64>,
}

/// The graph in use and what is counted about it.
struct State {
    generation: u64,
    summary: Summary,
    report: Report,
    records: RecordPool,
    /// When a fallback was last logged (they are logged at most once per stats period).
    last_error: Option<Instant>,
    /// The last values the graph produced that were all finite, for `hold` (empty before the
    /// first, or after a swap changed the number of outputs). Its buffer is kept.
    good: Vec<f32>,
    /// The last window the graph was given.
    last: Option<Last>,
    /// When the last stale record was due, in `mono_ns` (0: none since the last sample).
    last_stale_ns: u64,
    /// Where the windows' time goes.
    breakdown: Breakdown,
}

impl State {
    /// One warning per stats period at most: a failing graph does not flood the log.
    fn log_fallback(&mut self, window: u64, health: Health, why: &str) {
        if self.last_error.is_none_or(|t| t.elapsed() > REPORT_EVERY) {
            tracing::warn!(window, health = health.as_str(), "{why}; fallback record");
            self.last_error = Some(Instant::now());
        }
    }
}

impl Inference {
    /// Starts the thread; it returns once the window queue's sender is gone and the queue is
    /// drained.
    pub fn spawn(self) -> anyhow::Result<std::thread::JoinHandle<Summary>> {
        std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || self.run())
            .map_err(|e| anyhow::anyhow!("cannot start the inference thread: {e}"))
    }

    fn run(mut self) -> Summary {
        // Every record a sink or the recorder may still hold, and then some, all made now: a
        // recorder that lags on a loaded machine (seconds of backlog) then takes records the
        // pool already has instead of allocating new ones in the steady state.
        let capacity = self.sinks.capacity() + RECORDS_SPARE;
        let records = RecordPool::new(capacity, capacity, self.graph.output_len());
        let report = Report::new(&self.counters);
        let good = Vec::with_capacity(self.graph.output_len());
        let summary = Summary::default();
        let breakdown = Breakdown::new();
        let mut state = State {
            generation: 1,
            summary,
            report,
            records,
            last_error: None,
            good,
            last: None,
            last_stale_ns: 0,
            breakdown,
        };
        let stale_after = self.safety.stale_after_ms.map(|ms| ms.saturating_mul(1_000_000));
        let never = crossbeam_channel::never();
        let mut reloading = true;
        self.runtime.enter(Role::Inference);
        let spin = self.runtime.spin();
        loop {
            if let Some(w) = spin_for_window(&self.windows, spin) {
                self.predict(&w, &mut state);
                Counters::add(&self.counters.inferred, 1);
                continue;
            }
            let swaps = if reloading { &self.swaps } else { &never };
            crossbeam_channel::select! {
                recv(self.windows) -> w => match w {
                    Ok(w) => {
                        self.predict(&w, &mut state);
                        Counters::add(&self.counters.inferred, 1);
                    }
                    Err(_) => break,
                },
                // Between two windows: the only place a graph may change.
                recv(swaps) -> swap => match swap {
                    Ok(swap) => self.swap(swap, &mut state),
                    // No reloader (a replay), or it has stopped: stop listening for swaps.
                    Err(_) => reloading = false,
                },
                default(self.wait(stale_after, &state)) => {}
            }
            if let Some(after) = stale_after {
                self.maybe_stale(after, &mut state);
            }
            state.report.maybe_log(&self.counters, &self.sinks);
        }
        state.summary.steady_from = state.report.steady_from;
        state.summary.breakdown = Some(state.breakdown);
        state.summary
    }

    /// How long to wait for a window: until the next stale record is due, 1 s at most.
    fn wait(&self, stale_after: Option<u64>, state: &State) -> Duration {
        let limit = Duration::from_secs(1);
        let Some(after) = stale_after else { return limit };
        let last = self.counters.last_sample_ns.load(Ordering::Relaxed);
        if last == 0 {
            return limit;
        }
        let due = last.max(state.last_stale_ns).saturating_add(after);
        Duration::from_nanos(due.saturating_sub(mono_ns())).min(limit)
    }

    /// A `stale` record when no sample has been decoded for `after` ns, and every `after` ns
    /// while that lasts.
    fn maybe_stale(&mut self, after: u64, state: &mut State) {
        let last = self.counters.last_sample_ns.load(Ordering::Relaxed);
        let now = mono_ns();
        if last == 0 || now < last.max(state.last_stale_ns).saturating_add(after) {
            return;
        }
        // Due at a multiple of `after` past the last sample: the repeats keep their pace.
        let since = now - last;
        state.last_stale_ns = last + since / after * after;
        let Some(l) = state.last else { return };
        state.log_fallback(l.window, Health::Stale, "no sample decoded for stale_after_ms");
        self.publish(state, Health::Stale, l, Duration::ZERO);
    }

    fn predict(&mut self, w: &SampleWindow, state: &mut State) {
        while self.scheduled.front().is_some_and(|(first, _)| *first <= w.index) {
            if let Some((_, swap)) = self.scheduled.pop_front() {
                self.swap(swap, state);
            }
        }
        if let Some(watch) = &self.watch {
            watch.begin((w.index, w.last_sample, w.t), state.generation);
        }
        let began = Instant::now();
        let result = self.graph.run(&w.data);
        let ran = Instant::now();
        self.tally.inference.observe(ran - began);
        let finite = matches!(&result, Ok(v) if v.iter().all(|x| x.is_finite()));
        let good = result.as_ref().ok().filter(|_| finite).copied();
        if let Some(watch) = &self.watch {
            watch.end(good);
        }
        if let Some(shadow) = &self.shadow {
            shadow.offer(w.index, &w.data, good);
        }
        let health = match result {
            Ok(values) if finite => {
                state.good.clear();
                state.good.extend_from_slice(values);
                Health::Ok
            }
            Ok(_) => {
                state.log_fallback(w.index, Health::Nonfinite, "the graph's output is not finite: withheld");
                Health::Nonfinite
            }
            Err(e) => {
                state.summary.inference_errors += 1;
                state.log_fallback(w.index, Health::Error, &e.to_string());
                Health::Error
            }
        };
        let last = Last { window: w.index, last_sample: w.last_sample, t: w.t };
        state.last = Some(last);
        let latency = w.arrival.elapsed();
        if self.publish(state, health, last, latency) && health == Health::Ok {
            state.summary.predictions += 1;
        }
        state.breakdown.record([w.arrival, w.cut, began, ran, Instant::now()]);
        state.report.latency(latency);
    }

    /// One record to the sinks and the recorder: the graph's values (`ok`), or the fallback's.
    /// Returns whether one was sent (`silent`, or `hold` with nothing to hold, send none).
    fn publish(&mut self, state: &mut State, health: Health, last: Last, latency: Duration) -> bool {
        self.tally.record(health, latency);
        if health != Health::Ok {
            state.summary.fallbacks += 1;
        }
        let values: &[f32] = match (health, self.safety.fallback) {
            (Health::Ok, _) | (_, Fallback::Hold) if !state.good.is_empty() => &state.good,
            (Health::Ok, _) | (_, Fallback::Hold | Fallback::Silent) => return false,
            (_, Fallback::Neutral) => self.safety.neutral.as_deref().unwrap_or_default(),
        };
        let index = self.labels.as_ref().and_then(|_| argmax(values));
        let label = self.labels.as_ref().zip(index).and_then(|(l, i)| l.get(i).cloned());
        let generation = state.generation;
        let record = state.records.next(|r| {
            r.window = last.window;
            r.last_sample = last.last_sample;
            r.t = last.t;
            r.values.clear();
            r.values.extend_from_slice(values);
            r.label = label;
            r.index = index;
            r.latency_us = latency_us(latency);
            r.generation = generation;
            r.health = health;
        });
        self.sinks.send(&record);
        self.tap.prediction(unix_ns(), &record);
        true
    }

    fn swap(&mut self, swap: Swap, state: &mut State) {
        let start = Instant::now();
        let old = std::mem::replace(&mut self.graph, swap.graph);
        self.labels = swap.labels;
        state.generation += 1;
        self.tally.swapped(state.generation);
        if self.graph.output_len() != old.output_len() {
            // Values of another shape are nothing to hold.
            state.good.clear();
            state.good.reserve(self.graph.output_len());
        }
        drop(old);
        self.tap.swap(unix_ns(), &reflex_io::recording::SwapEvent { generation: state.generation, ..swap.event });
        let stall = start.elapsed();
        reload::log_plugins(&self.graph, state.generation);
        tracing::info!(
            generation = state.generation,
            since_change_ms = format_args!("{:.1}", swap.noticed.elapsed().as_secs_f64() * 1e3),
            stall_us = format_args!("{:.1}", stall.as_secs_f64() * 1e6),
            "graph swapped"
        );
    }
}

/// The next window if it comes within `spin` (a busy wait: no wake-up to pay), else `None` and
/// the caller parks in `select!`, which also serves swaps and stale records.
fn spin_for_window(windows: &Receiver<SampleWindow>, spin: Duration) -> Option<SampleWindow> {
    if spin.is_zero() {
        return None;
    }
    let start = Instant::now();
    loop {
        match windows.try_recv() {
            Ok(w) => return Some(w),
            Err(crossbeam_channel::TryRecvError::Empty) if start.elapsed() < spin => std::hint::spin_loop(),
            Err(_) => return None,
        }
    }
}

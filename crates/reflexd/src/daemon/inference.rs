//! The inference thread: window → graph → record → sinks (and the recorder), and between two
//! windows, a new graph when the reloader has built one. Never on a tokio worker: a slow model
//! delays windows, never the reader.

use super::stats::{Report, REPORT_EVERY};
use super::Summary;
use crate::reload::{self, Swap};
use crossbeam_channel::Receiver;
use reflex_graph::Graph;
use reflex_io::record::{argmax, latency_us, Health, RecordPool};
use reflex_io::recording::{unix_ns, RecordHandle};
use reflex_io::sink::Sinks;
use reflex_io::source::Counters;
use reflex_io::window::SampleWindow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records the pool may hold beyond what the sinks' queues can: the recorder's backlog.
const RECORDS_SPARE: usize = 4096;

/// What the inference thread owns.
pub struct Inference {
    pub graph: Graph,
    pub labels: Option<Vec<Arc<str>>>,
    pub windows: Receiver<SampleWindow>,
    pub swaps: Receiver<Swap>,
    pub sinks: Arc<Sinks>,
    pub counters: Arc<Counters>,
    pub recording: Option<RecordHandle>,
}

/// The graph in use and what is counted about it.
struct State {
    generation: u64,
    summary: Summary,
    report: Report,
    records: RecordPool,
    /// When a fallback was last logged (they are logged at most once per stats period).
    last_error: Option<Instant>,
    /// The last values the graph produced that were all finite, for `hold` (`None` before the
    /// first, or after a swap changed the number of outputs). Its buffer is kept.
    good: Vec<f32>,
    has_good: bool,
}

impl State {
    /// One warning per stats period at most: a failing graph does not flood the log.
    fn log_fallback(&mut self, window: u64, health: Health, why: &str) {
        if self.last_error.is_none_or(|t| t.elapsed() > REPORT_EVERY) {
            tracing::warn!(window, health = health.as_str(), "{why}; fallback record (hold)");
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
        let mut state = State { generation: 1, summary, report, records, last_error: None, good, has_good: false };
        let never = crossbeam_channel::never();
        let mut reloading = true;
        loop {
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
                default(Duration::from_secs(1)) => {}
            }
            state.report.maybe_log(&self.counters, &self.sinks);
        }
        state.summary.steady_from = state.report.steady_from;
        state.summary
    }

    fn predict(&mut self, w: &SampleWindow, state: &mut State) {
        let health = match self.graph.run(&w.data) {
            Ok(values) if values.iter().all(|v| v.is_finite()) => {
                state.good.clear();
                state.good.extend_from_slice(values);
                state.has_good = true;
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
        if health != Health::Ok {
            state.summary.fallbacks += 1;
            // `hold` with nothing to hold yet: nothing is sent.
            if !state.has_good {
                return;
            }
        }
        let latency = w.arrival.elapsed();
        let values = &state.good;
        let index = self.labels.as_ref().and_then(|_| argmax(values));
        let label = self.labels.as_ref().zip(index).and_then(|(l, i)| l.get(i).cloned());
        let generation = state.generation;
        let record = state.records.next(|r| {
            r.window = w.index;
            r.last_sample = w.last_sample;
            r.t = w.t;
            r.values.clear();
            r.values.extend_from_slice(values);
            r.label = label;
            r.index = index;
            r.latency_us = latency_us(latency);
            r.generation = generation;
            r.health = health;
        });
        self.sinks.send(&record);
        if let Some(r) = &self.recording {
            r.prediction(unix_ns(), record);
        }
        if health == Health::Ok {
            state.summary.predictions += 1;
        }
        state.report.latency(latency);
    }

    fn swap(&mut self, swap: Swap, state: &mut State) {
        let start = Instant::now();
        let old = std::mem::replace(&mut self.graph, swap.graph);
        self.labels = swap.labels;
        state.generation += 1;
        if self.graph.output_len() != old.output_len() {
            // Values of another shape are nothing to hold.
            state.has_good = false;
            state.good.reserve(self.graph.output_len());
        }
        drop(old);
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

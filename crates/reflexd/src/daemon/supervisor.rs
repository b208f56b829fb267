//! The supervisor: a thread that watches the inference thread and keeps the actuators fed
//! when a plugin call does not return — a `late` record once the window's call has run for
//! `deadline_ms`, then `stale` records every `stale_after_ms` while it lasts — so that a hung
//! plugin never silences the robot. It reads two atomics per check and takes the shared
//! `Held` lock only to publish; it allocates nothing after its start.

use super::metrics::Tally;
use reflex_config::{Fallback, SafetyConfig};
use reflex_io::record::{argmax, Health, RecordPool};
use reflex_io::sink::Sinks;
use reflex_io::source::mono_ns;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Records the supervisor may have in the sinks' queues at once.
const RECORDS: usize = 1024;

/// What the inference thread shares with the supervisor.
#[derive(Default)]
pub struct Watch {
    /// When the current window's graph call began, in `mono_ns`; 0 between windows.
    pub busy_since_ns: AtomicU64,
    /// The values to fall back on and the window in progress.
    pub held: Mutex<Held>,
    stop: AtomicBool,
}

/// The last good values and the window the graph is on.
#[derive(Default)]
pub struct Held {
    /// The last values the graph produced finitely (empty: none yet).
    pub values: Vec<f32>,
    /// The window being computed: number, last sample, time.
    pub window: (u64, u64, Option<f64>),
    /// The graph's generation.
    pub generation: u64,
}

impl Watch {
    /// The inference thread starts a window's call.
    pub fn begin(&self, window: (u64, u64, Option<f64>), generation: u64) {
        let mut h = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        h.window = window;
        h.generation = generation;
        drop(h);
        self.busy_since_ns.store(mono_ns(), Ordering::Relaxed);
    }

    /// The call returned; `good` holds the values it produced when they were all finite.
    pub fn end(&self, good: Option<&[f32]>) {
        self.busy_since_ns.store(0, Ordering::Relaxed);
        if let Some(values) = good {
            let mut h = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            h.values.clear();
            h.values.extend_from_slice(values);
        }
    }

    /// Ends the supervisor's loop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the supervisor when `[safety]` sets `deadline_ms`; it runs until [`Watch::stop`].
pub fn spawn(
    watch: Arc<Watch>,
    sinks: Arc<Sinks>,
    safety: &SafetyConfig,
    labels: Option<Vec<Arc<str>>>,
    outputs: usize,
    tally: Arc<Tally>,
) -> anyhow::Result<Option<std::thread::JoinHandle<u64>>> {
    let Some(deadline) = safety.deadline_ms.map(|ms| ms.saturating_mul(1_000_000)) else { return Ok(None) };
    let stale = safety.stale_after_ms.map_or(deadline, |ms| ms.saturating_mul(1_000_000));
    let safety = safety.clone();
    let thread = std::thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || {
            let records = RecordPool::new(RECORDS, RECORDS, outputs);
            let mut s = Supervisor { watch, sinks, safety, labels, records, tally };
            s.run(deadline, stale)
        })
        .map_err(|e| anyhow::anyhow!("cannot start the supervisor thread: {e}"))?;
    Ok(Some(thread))
}

struct Supervisor {
    watch: Arc<Watch>,
    sinks: Arc<Sinks>,
    safety: SafetyConfig,
    labels: Option<Vec<Arc<str>>>,
    records: RecordPool,
    tally: Arc<Tally>,
}

impl Supervisor {
    /// Returns the fallback records it sent.
    fn run(&mut self, deadline: u64, stale: u64) -> u64 {
        let tick = Duration::from_nanos((deadline.min(stale) / 5).clamp(1_000_000, 10_000_000));
        let mut sent = 0;
        // The call being watched, and when its last fallback went out.
        let mut watched = 0u64;
        let mut last_sent = 0u64;
        while !self.watch.stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            let since = self.watch.busy_since_ns.load(Ordering::Relaxed);
            let now = mono_ns();
            if since == 0 || now < since.saturating_add(deadline) {
                continue;
            }
            let health = if watched != since {
                watched = since;
                tracing::error!(
                    deadline_ms = deadline / 1_000_000,
                    "a plugin call has not returned within deadline_ms: fallback records until it does"
                );
                Health::Late
            } else if now >= last_sent.saturating_add(stale) {
                Health::Stale
            } else {
                continue;
            };
            last_sent = now;
            if self.publish(health) {
                sent += 1;
                self.tally.fallback(health);
            }
        }
        sent
    }

    fn publish(&mut self, health: Health) -> bool {
        let held = self.watch.held.lock().unwrap_or_else(PoisonError::into_inner);
        let values: &[f32] = match self.safety.fallback {
            Fallback::Hold if !held.values.is_empty() => &held.values,
            Fallback::Neutral => self.safety.neutral.as_deref().unwrap_or_default(),
            Fallback::Hold | Fallback::Silent => return false,
        };
        let index = self.labels.as_ref().and_then(|_| argmax(values));
        let label = self.labels.as_ref().zip(index).and_then(|(l, i)| l.get(i).cloned());
        let (window, last_sample, t) = held.window;
        let record = self.records.next(|r| {
            r.window = window;
            r.last_sample = last_sample;
            r.t = t;
            r.values.clear();
            r.values.extend_from_slice(values);
            r.label = label;
            r.index = index;
            r.latency_us = 0.0;
            r.generation = held.generation;
            r.health = health;
        });
        drop(held);
        self.sinks.send(&record);
        true
    }
}

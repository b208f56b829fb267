//! `[metrics]`: the Prometheus text exposition (format 0.0.4) at `GET /metrics`.
//!
//! The hot path only bumps atomics: reflex-io's [`Counters`] and sink counters, which it keeps
//! anyway, and the [`Tally`] here. A scrape reads them and encodes the text on the metrics
//! thread, through a prometheus-client [`Collector`]. prometheus-client's own `Histogram` takes
//! a lock per observation, so the two histograms are fixed buckets of atomic counters instead
//! ([`Histogram`]), handed to the encoder as they are at the scrape.
//!
//! Serving: tiny_http on a thread of its own, not the signal thread's tokio runtime. That
//! runtime ends with the reader, while the endpoint stays up through the shutdown (the queue's
//! drain, the sinks' flush, the `stopped` line) until `run` returns; and a scrape's work
//! (parsing the request, encoding the text: it allocates) never delays SIGTERM or a reload.

use anyhow::Context;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use reflex_config::MetricsConfig;
use reflex_io::record::Health;
use reflex_io::sink::SinkStats;
use reflex_io::source::Counters;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The histograms' bucket bounds in nanoseconds, 50 µs to 1 s: a window's graph call takes
/// tens of µs to a few ms, and anything past a second is a stall, whatever its length.
const BOUNDS_NS: [u64; 14] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// The reasons a fallback record can have, in [`Tally`]'s order.
const REASONS: [Health; 4] = [Health::Stale, Health::Nonfinite, Health::Error, Health::Late];

/// A histogram the hot path fills with two relaxed atomic adds and no lock.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative): one per bound, then one past them all.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Counts one duration.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.iter().position(|b| ns <= *b).unwrap_or(BOUNDS_NS.len());
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The buckets as read now, in seconds. The count is their sum, so that it always equals
    /// the `+Inf` bucket even while observations come in.
    fn encode(&self, mut m: MetricEncoder) -> std::fmt::Result {
        let bounds = BOUNDS_NS.iter().map(|ns| *ns as f64 / 1e9).chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed))).collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        m.encode_histogram(sum, count, &buckets, None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>)
    }
}

/// What the inference thread and the supervisor count for `/metrics` beyond reflex-io's
/// [`Counters`]: atomics only, updated whether or not anything is served.
#[derive(Debug)]
pub struct Tally {
    /// Fallback records by reason, in [`REASONS`] order, counted as the `stopped` line counts
    /// them.
    fallbacks: [AtomicU64; REASONS.len()],
    /// The graph in use: 1, then one more per swap.
    generation: AtomicU64,
    /// Arrival of a window's last sample → its record handed to the sinks.
    pub latency: Histogram,
    /// One window's graph call.
    pub inference: Histogram,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            fallbacks: Default::default(),
            generation: AtomicU64::new(1),
            latency: Histogram::default(),
            inference: Histogram::default(),
        }
    }
}

impl Tally {
    /// A record of the inference thread: a window's, with its latency, or a `stale` one
    /// (which follows no window: no latency).
    pub fn record(&self, health: Health, latency: Duration) {
        if health != Health::Stale {
            self.latency.observe(latency);
        }
        self.fallback(health);
    }

    /// A fallback record (nothing for `ok`).
    pub fn fallback(&self, health: Health) {
        if let Some(i) = REASONS.iter().position(|r| *r == health) {
            if let Some(n) = self.fallbacks.get(i) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The inference thread adopted graph `generation`.
    pub fn swapped(&self, generation: u64) {
        self.generation.store(generation, Ordering::Relaxed);
    }
}

/// What the pipeline counts, shared with whoever reports it (the metrics endpoint, systemd).
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    /// The reader's and the inference thread's counters.
    pub counters: Arc<Counters>,
    /// The rest of what `/metrics` shows.
    pub tally: Arc<Tally>,
}

/// Everything a scrape reads.
#[derive(Debug)]
struct Numbers {
    telemetry: Telemetry,
    /// Each sink's name and counters.
    sinks: Vec<(String, Arc<SinkStats>)>,
}

impl Collector for Numbers {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let c = &self.telemetry.counters;
        let counters = [
            ("reflex_samples", "Samples decoded.", &c.samples),
            ("reflex_windows", "Windows cut.", &c.windows),
            (
                "reflex_dropped_windows",
                "Windows dropped, the oldest first, because inference fell behind.",
                &c.dropped_windows,
            ),
            ("reflex_decode_errors", "Malformed lines or frames skipped.", &c.decode_errors),
            ("reflex_lost_samples", "Samples known to be missing (gaps in a binary frame counter).", &c.lost_samples),
            ("reflex_time_jumps", "Jumps of a csv time column: backwards, or over 10 sample periods.", &c.time_jumps),
        ];
        for (name, help, value) in counters {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            m.encode_counter::<NoLabelSet, _, u64>(&value.load(Ordering::Relaxed), None)?;
        }
        let help = "Records a sink dropped (its queue full) or could not write.";
        let mut m = e.encode_descriptor("reflex_sink_lost", help, None, MetricType::Counter)?;
        for (sink, stats) in &self.sinks {
            m.encode_family(&[("sink", sink.as_str())])?.encode_counter::<NoLabelSet, _, u64>(&stats.lost(), None)?;
        }
        let tally = &self.telemetry.tally;
        let help = "Fallback records instead of the graph's prediction, by reason.";
        let mut m = e.encode_descriptor("reflex_fallback_records", help, None, MetricType::Counter)?;
        for (reason, n) in REASONS.iter().zip(&tally.fallbacks) {
            let labels = [("reason", reason.as_str())];
            m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&n.load(Ordering::Relaxed), None)?;
        }
        let help = "The graph in use: 1 at start, one more per hot swap.";
        e.encode_descriptor("reflex_generation", help, None, MetricType::Gauge)?
            .encode_gauge(&tally.generation.load(Ordering::Relaxed))?;
        let help = "Seconds from the arrival of a window's last sample to its record's hand-off to the sinks.";
        tally.latency.encode(e.encode_descriptor("reflex_latency_seconds", help, None, MetricType::Histogram)?)?;
        let help = "Seconds one window's graph call took.";
        tally.inference.encode(e.encode_descriptor("reflex_inference_seconds", help, None, MetricType::Histogram)?)
    }
}

/// `[metrics] listen`, bound: nothing is served until [`Bound::serve`].
pub struct Bound(TcpListener);

/// Binds `[metrics] listen` of the config at `file`: one error line naming both when the
/// address cannot be had.
pub fn bind(config: &MetricsConfig, file: &Path) -> anyhow::Result<Bound> {
    let refused = || format!("{}: [metrics] listen = \"{}\"", file.display(), config.listen);
    let listener =
        TcpListener::bind(config.listen).map_err(|e| anyhow::anyhow!("{}: cannot listen there: {e}", refused()))?;
    Ok(Bound(listener))
}

/// The endpoint, serving on its thread until dropped.
pub struct Endpoint {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Bound {
    /// Serves `GET /metrics` from `telemetry` and each sink's counters (`Sinks::stats`).
    pub fn serve(self, telemetry: Telemetry, sinks: Vec<(String, Arc<SinkStats>)>) -> anyhow::Result<Endpoint> {
        let address = self.0.local_addr().context("[metrics] listen: the bound socket has no address")?;
        let server = tiny_http::Server::from_listener(self.0, None)
            .map_err(|e| anyhow::anyhow!("[metrics] listen = \"{address}\": cannot serve: {e}"))?;
        let server = Arc::new(server);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Numbers { telemetry, sinks }));
        let stopping = Arc::new(AtomicBool::new(false));
        let (s, stop) = (server.clone(), stopping.clone());
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || answer(&s, &registry, &stop))
            .context("cannot start the metrics thread")?;
        tracing::info!(listen = %address, "metrics: serving GET /metrics");
        Ok(Endpoint { server, stopping, thread: Some(thread) })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers requests until `stopping`: the metrics at `/metrics`, 404 anywhere else.
fn answer(server: &tiny_http::Server, registry: &Registry, stopping: &AtomicBool) {
    let mut warned = false;
    loop {
        let request = match server.recv() {
            Ok(r) => r,
            Err(_) if stopping.load(Ordering::Relaxed) => return,
            // tiny_http's accept thread ends at the first failed accept (out of file
            // descriptors, …) and hands the error over once: the endpoint is gone, the
            // pipeline is not. Said once; the loop then waits for the shutdown.
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::error!(error = %e, "metrics: the endpoint stopped accepting connections; /metrics is unavailable until reflexd restarts");
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let path = request.url().split('?').next().unwrap_or_default();
        let result = if *request.method() == tiny_http::Method::Get && path == "/metrics" {
            let mut text = String::with_capacity(8 * 1024);
            match prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
                Ok(()) => {
                    let content_type = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE.as_bytes(),
                    );
                    let response = tiny_http::Response::from_string(text);
                    request.respond(match content_type {
                        Ok(h) => response.with_header(h),
                        Err(()) => response,
                    })
                }
                Err(_) => request.respond(tiny_http::Response::empty(500)),
            }
        } else {
            request.respond(tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404))
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "metrics: the scraper went away before the answer");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text a scraper gets, without the server.
    fn scrape(n: Numbers) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(n));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn histograms_are_cumulative_in_seconds_with_count_equal_to_inf() {
        let t = Telemetry::default();
        t.tally.record(Health::Ok, Duration::from_micros(40));
        t.tally.record(Health::Nonfinite, Duration::from_micros(700));
        t.tally.record(Health::Stale, Duration::ZERO);
        t.tally.record(Health::Ok, Duration::from_secs(5));
        t.tally.fallback(Health::Late);
        t.tally.swapped(3);
        let text = scrape(Numbers { telemetry: t, sinks: Vec::new() });
        for line in [
            "reflex_latency_seconds_bucket{le=\"5e-05\"} 1",
            "reflex_latency_seconds_bucket{le=\"0.0005\"} 1",
            "reflex_latency_seconds_bucket{le=\"0.001\"} 2",
            "reflex_latency_seconds_bucket{le=\"1\"} 2",
            "reflex_latency_seconds_bucket{le=\"+Inf\"} 3",
            "reflex_latency_seconds_count 3",
            "reflex_latency_seconds_sum 5.00074",
            "reflex_fallback_records_total{reason=\"nonfinite\"} 1",
            "reflex_fallback_records_total{reason=\"stale\"} 1",
            "reflex_fallback_records_total{reason=\"late\"} 1",
            "reflex_fallback_records_total{reason=\"error\"} 0",
            "reflex_generation 3",
            "# TYPE reflex_inference_seconds histogram",
            "reflex_inference_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }

    #[test]
    fn a_bound_address_in_use_is_one_line_naming_the_key_and_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = taken.local_addr().unwrap();
        let config = MetricsConfig { listen };
        let e = bind(&config, Path::new("/etc/reflex/reflex.toml")).err().unwrap().to_string();
        assert!(
            e.starts_with(&format!("/etc/reflex/reflex.toml: [metrics] listen = \"{listen}\": cannot listen there: ")),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

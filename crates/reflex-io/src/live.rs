//! `[live]`: a Foxglove WebSocket server (the official `foxglove` crate) that shows what the
//! daemon reads and predicts while it runs.
//!
//! Topics: `/imu/samples`, `/reflex/predictions` and `/reflex/events` — the recording's
//! topics, JSON and schemas, fed by the same [`Tap`](crate::tap::Tap) — and `/reflex/stats`,
//! the numbers of the daemon's stats line, once a second.
//!
//! Nothing here is on the hot path. The reader and the inference thread only push entries
//! into a bounded drop-oldest queue (preallocated slots, inline samples, shared records: no
//! allocation, no waiting); the `live` thread turns them into JSON and logs them on the
//! Foxglove channels, whose server runs on a tokio runtime of its own and keeps a drop-oldest
//! backlog per client. A slow, stalled or absent viewer costs the loop nothing: entries it
//! cannot take are dropped, oldest first, and counted.

use crate::error::Error;
use crate::queue::{drop_oldest, DropOldest};
use crate::record::Health;
use crate::recording::{
    sample_schema, EVENTS, EVENT_SCHEMA, LABELS, LABEL_SCHEMA, PREDICTIONS, PREDICTION_SCHEMA, SAMPLES,
};
use crate::source::Counters;
use crate::tap::{Entry, SampleKeys, Topic};
use crossbeam_channel::Receiver;
use foxglove::{Context, FoxgloveError, PartialMetadata, RawChannel, Schema, WebSocketServer, WebSocketServerHandle};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The daemon's numbers, once a second.
pub const STATS: &str = "/reflex/stats";

/// Entries waiting for the `live` thread: a second and more of samples at 1 kHz. Fewer than
/// the records the inference thread keeps spare, so that the records this queue holds never
/// make its pool allocate.
const QUEUE: usize = 2048;
/// Messages waiting per client before the Foxglove server drops the oldest.
const BACKLOG: usize = 1024;
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Room for a sample's or a record's JSON.
const JSON_CAPACITY: usize = 64 * 1024;
/// Latencies kept per stats period (past that, the percentiles use the first ones).
const LATENCIES: usize = 1 << 14;
/// How long the server's tasks get to end when the daemon stops.
const SHUTDOWN: Duration = Duration::from_millis(200);

const STATS_SCHEMA: &str = r#"{"type":"object","title":"reflex.Stats","properties":{"samples_per_s":{"type":"number"},"windows_per_s":{"type":"number"},"decode_errors":{"type":"integer"},"lost_samples":{"type":"integer"},"dropped_windows":{"type":"integer"},"sink_lost":{"type":"integer"},"latency_p50_us":{"type":["number","null"]},"latency_p99_us":{"type":["number","null"]},"allocs_per_window":{"type":["number","null"]},"live_dropped":{"type":"integer"}},"required":["samples_per_s","windows_per_s","live_dropped"]}"#;

/// The daemon's running totals, read by the `live` thread once a second.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Samples decoded.
    pub samples: u64,
    /// Windows predicted (whatever the outcome).
    pub windows: u64,
    /// Malformed lines or frames.
    pub decode_errors: u64,
    /// Samples known to be missing.
    pub lost_samples: u64,
    /// Windows dropped because inference fell behind.
    pub dropped_windows: u64,
    /// Records the sinks dropped or could not write.
    pub sink_lost: u64,
    /// Allocations counted so far (as the stats line counts them).
    pub allocs: u64,
}

/// How the live view starts.
pub struct Options {
    /// Where it listens (`[live] listen`).
    pub listen: SocketAddr,
    /// One name per channel: the fields of `/imu/samples`.
    pub channel_names: Vec<String>,
    /// One unit per channel (`""` where unknown).
    pub units: Vec<String>,
    /// Runs first on every thread the live view starts (`reflexd` leaves their allocations
    /// out of the hot path's count with it).
    pub on_thread_start: fn(),
    /// The daemon's totals, for `/reflex/stats`.
    pub totals: Box<dyn FnMut() -> Totals + Send>,
    /// Where the entries the live view drops are counted (`live_dropped`).
    pub counters: Arc<Counters>,
}

/// The live view's end of the [`Tap`](crate::tap::Tap): never waits, drops the oldest.
#[derive(Clone)]
pub(crate) struct LiveFeed {
    queue: DropOldest<Entry>,
    counters: Arc<Counters>,
}

impl LiveFeed {
    pub(crate) fn send(&self, e: Entry) {
        if !matches!(self.queue.send(e), Ok(None)) {
            Counters::add(&self.counters.live_dropped, 1);
        }
    }
}

/// The running server and its `live` thread.
pub struct LiveView {
    feed: LiveFeed,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    server: WebSocketServerHandle,
    runtime: tokio::runtime::Runtime,
    /// Owns the channels: they close when it goes.
    _ctx: Arc<Context>,
}

/// The Foxglove channels, one per topic.
struct Channels {
    samples: Arc<RawChannel>,
    predictions: Arc<RawChannel>,
    events: Arc<RawChannel>,
    labels: Arc<RawChannel>,
    stats: Arc<RawChannel>,
}

impl Channels {
    fn new(ctx: &Arc<Context>, names: &[String], units: &[String]) -> Result<Channels, FoxgloveError> {
        let channel = |topic: &str, schema: &str, text: String| {
            ctx.channel_builder(topic)
                .message_encoding("json")
                .schema(Schema::new(schema, "jsonschema", text.into_bytes()))
                .build_raw()
        };
        Ok(Channels {
            samples: channel(SAMPLES, "reflex.Sample", sample_schema(names, units))?,
            predictions: channel(PREDICTIONS, "reflex.Prediction", PREDICTION_SCHEMA.into())?,
            events: channel(EVENTS, "reflex.Event", EVENT_SCHEMA.into())?,
            labels: channel(LABELS, "reflex.Label", LABEL_SCHEMA.into())?,
            stats: channel(STATS, "reflex.Stats", STATS_SCHEMA.into())?,
        })
    }

    fn of(&self, topic: Topic) -> &RawChannel {
        match topic {
            Topic::Samples => &self.samples,
            Topic::Predictions => &self.predictions,
            Topic::Events => &self.events,
            Topic::Labels => &self.labels,
        }
    }
}

impl LiveView {
    /// Binds the server and starts its runtime and the `live` thread.
    pub fn start(options: Options) -> Result<LiveView, Error> {
        let Options { listen, channel_names, units, on_thread_start, mut totals, counters } = options;
        let ctx = Context::new();
        let channels = Channels::new(&ctx, &channel_names, &units).map_err(|source| Error::Live { source })?;
        let (runtime, server) = serve(&ctx, listen, on_thread_start)?;
        let addr = SocketAddr::new(listen.ip(), server.port());
        let (queue, rx) = drop_oldest(QUEUE);
        let feed = LiveFeed { queue, counters };
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = Publisher {
            channels,
            keys: SampleKeys::new(&channel_names),
            stats: Stats::new(totals()),
            counters: feed.counters.clone(),
            json: Vec::with_capacity(JSON_CAPACITY),
        };
        let halt = stop.clone();
        let thread = std::thread::Builder::new()
            .name("live".into())
            .spawn(move || {
                on_thread_start();
                publisher.run(&rx, totals, &halt);
            })
            .map_err(|source| Error::Thread { thread: "live", source })?;
        Ok(LiveView { feed, addr, stop, thread, server, runtime, _ctx: ctx })
    }

    /// Where it listens (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn feed(&self) -> LiveFeed {
        self.feed.clone()
    }

    /// Publishes what is queued, closes every connection and stops the threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.join().is_err() {
            tracing::warn!("the live view's thread failed");
        }
        self.server.stop().detach_all();
        self.runtime.shutdown_timeout(SHUTDOWN);
    }
}

/// The Foxglove server on a runtime of its own: one worker thread (and the blocking pool's,
/// for the address lookup), each started with `on_thread_start`.
fn serve(
    ctx: &Arc<Context>,
    listen: SocketAddr,
    on_thread_start: fn(),
) -> Result<(tokio::runtime::Runtime, WebSocketServerHandle), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("live-server")
        .on_thread_start(on_thread_start)
        .enable_all()
        .build()
        .map_err(|source| Error::Thread { thread: "live server", source })?;
    // The SDK joins host and port with a colon: an IPv6 host needs its brackets.
    let host = match listen {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let server = WebSocketServer::new().name("reflexd").context(ctx).bind(host, listen.port());
    // Started inside the runtime, the server spawns its tasks there.
    let server = runtime.block_on(server.message_backlog_size(BACKLOG).start()).map_err(|e| match e {
        FoxgloveError::Bind(source) => Error::Listen { addr: listen, source },
        source => Error::Live { source },
    })?;
    Ok((runtime, server))
}

/// The `live` thread's state: entries → JSON → channels, and the stats once a second.
struct Publisher {
    channels: Channels,
    keys: SampleKeys,
    stats: Stats,
    counters: Arc<Counters>,
    json: Vec<u8>,
}

impl Publisher {
    fn run(mut self, rx: &Receiver<Entry>, mut totals: Box<dyn FnMut() -> Totals + Send>, stop: &AtomicBool) {
        loop {
            if stop.load(Ordering::Relaxed) {
                // What is queued now, and no more: the producers may still be running.
                for e in rx.try_iter().take(QUEUE) {
                    self.publish(&e);
                }
                return;
            }
            let wait = STATS_EVERY.saturating_sub(self.stats.since.elapsed()).min(Duration::from_millis(100));
            if let Ok(e) = rx.recv_timeout(wait) {
                self.publish(&e);
            }
            if self.stats.since.elapsed() >= STATS_EVERY {
                let message = self.stats.next(totals(), self.counters.live_dropped.load(Ordering::Relaxed));
                if let Ok(json) = serde_json::to_vec(&message) {
                    self.channels.stats.log(&json);
                }
            }
        }
    }

    fn publish(&mut self, e: &Entry) {
        if let Entry::Prediction { record, .. } = e {
            if !matches!(record.health, Health::Stale | Health::Late) {
                self.stats.latency(record.latency_us);
            }
        }
        if let Some(topic) = e.json(&self.keys, &mut self.json) {
            let meta = PartialMetadata { log_time: Some(e.ns()) };
            self.channels.of(topic).log_with_meta(&self.json, meta);
        }
    }
}

/// `/reflex/stats`: the stats line's numbers over the last period.
#[derive(Debug, serde::Serialize)]
struct StatsMessage {
    samples_per_s: f64,
    windows_per_s: f64,
    decode_errors: u64,
    lost_samples: u64,
    dropped_windows: u64,
    sink_lost: u64,
    /// `None` without a window in the period.
    latency_p50_us: Option<f64>,
    latency_p99_us: Option<f64>,
    allocs_per_window: Option<f64>,
    live_dropped: u64,
}

/// The totals at the start of the period and the latencies seen in it.
struct Stats {
    since: Instant,
    at_start: Totals,
    latencies_us: Vec<f64>,
}

impl Stats {
    fn new(at_start: Totals) -> Stats {
        Stats { since: Instant::now(), at_start, latencies_us: Vec::with_capacity(LATENCIES) }
    }

    fn latency(&mut self, us: f64) {
        if self.latencies_us.len() < LATENCIES {
            self.latencies_us.push(us);
        }
    }

    /// The period's message; a new period begins.
    fn next(&mut self, now: Totals, live_dropped: u64) -> StatsMessage {
        let secs = self.since.elapsed().as_secs_f64().max(1e-9);
        let start = self.at_start;
        self.latencies_us.sort_unstable_by(f64::total_cmp);
        let v = &self.latencies_us;
        let pct = |q: f64| (!v.is_empty()).then(|| v[((v.len() - 1) as f64 * q).round() as usize]);
        let windows = now.windows.saturating_sub(start.windows);
        let message = StatsMessage {
            samples_per_s: now.samples.saturating_sub(start.samples) as f64 / secs,
            windows_per_s: windows as f64 / secs,
            decode_errors: now.decode_errors,
            lost_samples: now.lost_samples,
            dropped_windows: now.dropped_windows,
            sink_lost: now.sink_lost,
            latency_p50_us: pct(0.5),
            latency_p99_us: pct(0.99),
            allocs_per_window: (windows > 0).then(|| now.allocs.saturating_sub(start.allocs) as f64 / windows as f64),
            live_dropped,
        };
        self.since = Instant::now();
        self.at_start = now;
        self.latencies_us.clear();
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(listen: SocketAddr) -> Options {
        Options {
            listen,
            channel_names: vec!["acc_x".into()],
            units: vec![String::new()],
            on_thread_start: || {},
            totals: Box::new(Totals::default),
            counters: Arc::new(Counters::default()),
        }
    }

    #[test]
    fn an_address_in_use_is_an_error_naming_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let Err(e) = LiveView::start(options(addr)) else { panic!("bound {addr} twice") };
        assert!(matches!(e, Error::Listen { addr: a, .. } if a == addr), "{e:?}");
        assert!(e.to_string().starts_with(&format!("[live] listen = \"{addr}\": cannot listen there: ")), "{e}");
    }

    #[test]
    fn port_0_takes_a_free_port_and_says_which() {
        let view = LiveView::start(options("127.0.0.1:0".parse().unwrap())).unwrap();
        assert_ne!(view.addr().port(), 0);
        assert!(std::net::TcpStream::connect(view.addr()).is_ok());
        view.stop();
    }

    #[test]
    fn a_full_queue_drops_the_oldest_entry_and_counts_it() {
        let counters = Arc::new(Counters::default());
        let (queue, rx) = drop_oldest(2);
        let feed = LiveFeed { queue, counters: counters.clone() };
        for n in 0..5 {
            feed.send(Entry::DecodeError { ns: 0, next: n });
        }
        assert_eq!(counters.live_dropped.load(Ordering::Relaxed), 3);
        let left: Vec<u64> =
            rx.try_iter().map(|e| if let Entry::DecodeError { next, .. } = e { next } else { 99 }).collect();
        assert_eq!(left, [3, 4], "the newest are kept");
    }

    #[test]
    fn stats_are_rates_and_percentiles_over_the_period() {
        let mut stats = Stats::new(Totals { samples: 100, windows: 10, allocs: 7, ..Totals::default() });
        for us in [30.0, 10.0, 20.0] {
            stats.latency(us);
        }
        stats.since -= Duration::from_secs(2);
        let now = Totals { samples: 500, windows: 14, allocs: 7, dropped_windows: 2, ..Totals::default() };
        let m = stats.next(now, 5);
        assert!((m.samples_per_s - 200.0).abs() < 1.0 && (m.windows_per_s - 2.0).abs() < 0.1, "{m:?}");
        assert_eq!((m.latency_p50_us, m.latency_p99_us, m.allocs_per_window), (Some(20.0), Some(30.0), Some(0.0)));
        assert_eq!((m.dropped_windows, m.live_dropped), (2, 5));
        let quiet = stats.next(now, 5);
        assert_eq!((quiet.latency_p50_us, quiet.allocs_per_window), (None, None), "no window: no figure");
    }
}

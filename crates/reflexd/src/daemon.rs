//! The pipeline of `run` and `replay`: a source feeding windows into a queue, the graph on its
//! own thread, the sinks on theirs.
//!
//! ```text
//! reader (tokio task, or a thread for logs) ──windows──▶ inference thread ──records──▶ sinks
//!        decoder → windower          bounded queue          graph.run()      one thread +
//!                                  (drop-oldest live,                          queue each
//!                                   lossless replay)
//! ```
//! Inference never runs on a tokio worker: a slow model delays windows, never the reader.

use crate::model::Loaded;
use crate::reload::{self, Reloader, Swap};
use anyhow::Context;
use crossbeam_channel::{Receiver, Sender};
use reflex_config::Speed;
use reflex_graph::Graph;
use reflex_io::queue::drop_oldest;
use reflex_io::record::{argmax, latency_us, RecordPool};
use reflex_io::recording::{unix_ns, RecordHandle, Recorder};
use reflex_io::sink::Sinks;
use reflex_io::source::mcap::McapLog;
use reflex_io::source::replay::{ReplayEnd, ReplaySource};
use reflex_io::source::serial::SerialSource;
use reflex_io::source::{Counters, Feed, WindowQueue};
use reflex_io::window::{Window, Windower};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the stats line is logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Records the pool may hold beyond what the sinks' queues can: the recorder's backlog.
const RECORDS_SPARE: usize = 4096;
/// Records made at the start: more than are in flight when sinks and recorder keep up.
const RECORDS_READY: usize = 1024;
/// SIGTERM to exit: the contract is one second; this is what the sinks get of it.
const SINK_GRACE: Duration = Duration::from_millis(700);

/// Where samples come from.
pub enum Input {
    Serial(SerialSource),
    /// A csv (or raw) log, fed losslessly.
    Log(ReplaySource),
    /// An MCAP recording's `/imu/raw`, fed losslessly.
    Mcap {
        log: McapLog,
        format: reflex_io::Format,
        channels: usize,
        time_column: bool,
        speed: Speed,
    },
}

impl Input {
    /// The config's own source: the serial device, or the log of `kind = "replay"`.
    pub fn from_config(loaded: &Loaded) -> anyhow::Result<Input> {
        let s = &loaded.config.source;
        let shown = loaded.config.path.display();
        let path = s.path.clone().with_context(|| format!("{shown}: [source] path is required"))?;
        Ok(match s.kind {
            reflex_config::SourceKind::Serial => {
                usable_device(&path)?;
                Input::Serial(SerialSource {
                    path,
                    baud_rate: s.baud_rate,
                    format: reflex_io::format_of(s.format),
                    channels: s.channels,
                    time_column: s.time_column,
                })
            }
            reflex_config::SourceKind::Replay => Input::log(loaded, path, s.speed)?,
        })
    }

    /// A recording made by `run --record`, decoded with the format it was recorded in. Warns
    /// when the config, weights or plugins differ from the ones recorded.
    pub fn mcap(loaded: &Loaded, path: &Path, speed: Speed) -> anyhow::Result<Input> {
        let log = McapLog::open(path).map_err(anyhow::Error::msg)?;
        let recorded = log.metadata();
        let s = &loaded.config.source;
        let mut format = reflex_io::format_of(s.format);
        if let Some(f) = recorded.get("format").and_then(|f| reflex_io::Format::from_name(f)) {
            if f != format {
                tracing::warn!(recorded = ?f, config = ?format, "the recording was made in another wire format; decoding it as recorded");
                format = f;
            }
        }
        for (key, now) in provenance(loaded) {
            match recorded.get(&key) {
                Some(then) if *then == now => {}
                Some(_) => tracing::warn!(
                    "{}: {key} differs from the recording's: values may differ from the live ones",
                    path.display()
                ),
                None if key != "config" => tracing::warn!("{}: the recording has no {key}", path.display()),
                None => {}
            }
        }
        Ok(Input::Mcap { log, format, channels: s.channels, time_column: s.time_column, speed })
    }

    /// A log read with the config's decoder settings.
    pub fn log(loaded: &Loaded, path: PathBuf, speed: Speed) -> anyhow::Result<Input> {
        let s = &loaded.config.source;
        if speed != Speed::Max && !(s.format == reflex_config::FrameFormat::Csv && s.time_column) {
            anyhow::bail!(
                "{}: replaying at speed {speed:?} needs timestamps: a csv log with [source] time_column = true (or speed \"max\")",
                loaded.config.path.display()
            );
        }
        if !path.is_file() {
            anyhow::bail!("{}: no such log file", path.display());
        }
        Ok(Input::Log(ReplaySource {
            path,
            format: reflex_io::format_of(s.format),
            channels: s.channels,
            time_column: s.time_column,
            speed,
        }))
    }
}

/// A device missing or not readable and writable at start is the user's error (SPEC §1): one
/// line and exit 1. Only a device that vanishes after it was opened is waited for. `access`
/// rather than `open`: opening a serial port toggles DTR, which resets many microcontrollers.
fn usable_device(path: &Path) -> anyhow::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| anyhow::anyhow!("{}: not a device path", path.display()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("{}: cannot open the serial device: {e}", path.display());
    }
    Ok(())
}

/// Totals at the end of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub predictions: u64,
    pub inference_errors: u64,
    /// When the steady state began (see [`Report`]): the allocation count and the windows cut
    /// then.
    pub steady_from: Option<(u64, u64)>,
}

/// Runs the pipeline until the source ends (a log) or SIGINT/SIGTERM; then finishes the queued
/// windows, flushes the sinks and returns.
///
pub fn run(loaded: Loaded, input: Input, sinks: Sinks, options: Options) -> anyhow::Result<Summary> {
    let (swaps_tx, swaps) = drop_oldest::<Swap>(1);
    let reloader = options.reload.then(|| Reloader::new(&loaded, swaps_tx));
    let recorder = match &options.record {
        Some(path) => Some(Recorder::start(path, metadata(&loaded)).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let Loaded { config, graph } = loaded;
    reload::log_plugins(&graph, 1);
    let counters = Arc::new(Counters::default());
    let mut windower = Windower::new(
        config.source.channels,
        config.window.length,
        config.window.hop,
        config.window.mean.as_deref(),
        config.window.std.as_deref(),
    );
    // Queued, being predicted, on their way back, being cut.
    windower.reserve(config.window.queue + 4);
    let (recycle_tx, recycle_rx) = crossbeam_channel::bounded(config.window.queue + 8);
    let (queue, windows) = match &input {
        Input::Serial(_) => {
            let (tx, rx) = drop_oldest(config.window.queue);
            (WindowQueue::Live(tx), rx)
        }
        Input::Log(_) | Input::Mcap { .. } => {
            let (tx, rx) = crossbeam_channel::bounded(config.window.queue);
            warm_full_queue(&tx, &rx);
            (WindowQueue::Lossless(tx), rx)
        }
    };
    let mut feed = Feed::new(windower, queue, recycle_rx, counters.clone());
    feed.probe(crate::allocs::count);
    if let Some(r) = &recorder {
        feed.record(r.handle());
    }
    let recording = recorder.as_ref().map(Recorder::handle);
    let labels = reload::labels(&config);
    let sinks = Arc::new(sinks);

    let inference = {
        let (sinks, counters) = (sinks.clone(), counters.clone());
        std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || infer(graph, windows, swaps, recycle_tx, &sinks, labels, &counters, recording))
            .context("cannot start the inference thread")?
    };

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let (hup_tx, hup) = tokio::sync::mpsc::unbounded_channel();
        let signals = tokio::spawn(wait_for_signal(stop.clone(), hup_tx));
        let reloading = reloader.map(|r| tokio::spawn(r.run(stop.clone(), hup)));
        match input {
            Input::Serial(source) => source.run(&mut feed, &stop).await,
            Input::Log(source) => {
                let bar = progress_bar(options.progress);
                let end = blocking_reader(&stop, move |flag| {
                    source.run(&mut feed, flag, &mut |done, total| bar.update(done, total)).map_err(|e| e.to_string())
                })
                .await;
                match end {
                    Ok(ReplayEnd::Finished) => tracing::info!("end of log"),
                    Ok(_) => {}
                    Err(e) => tracing::error!("cannot read the log: {e}"),
                }
            }
            Input::Mcap { log, format, channels, time_column, speed } => {
                let bar = progress_bar(options.progress);
                let end = blocking_reader(&stop, move |flag| {
                    log.replay(format, channels, time_column, speed, &mut feed, flag, &mut |done, total| {
                        bar.update(done, total)
                    })
                })
                .await;
                match end {
                    Ok((_, r)) => match r.cut_short {
                        None => tracing::info!(
                            raw_messages = r.raw_messages,
                            seconds = format_args!("{:.1}", r.seconds),
                            "end of recording"
                        ),
                        Some(why) => tracing::warn!(
                            raw_messages = r.raw_messages,
                            seconds = format_args!("{:.1}", r.seconds),
                            "the recording was cut short ({why}): replayed what it holds up to its last complete chunk"
                        ),
                    },
                    Err(e) => tracing::error!("cannot replay the recording: {e}"),
                }
            }
        }
        signals.abort();
        if let Some(r) = reloading {
            r.abort();
        }
    });
    // The reader is gone, and with it the window queue's sender: inference drains what is
    // queued and returns.
    let summary = inference.join().map_err(|_| anyhow::anyhow!("the inference thread failed"))?;
    let deadline = Instant::now() + SINK_GRACE;
    let sinks = Arc::try_unwrap(sinks).map_err(|_| anyhow::anyhow!("sinks still in use"))?;
    let lost = sinks.lost();
    if !sinks.close(deadline) {
        tracing::warn!("a sink did not finish writing in time");
    }
    if let Some(r) = recorder {
        match r.finish() {
            Ok(0) => tracing::info!("recording complete"),
            Ok(dropped) => tracing::warn!(dropped, "recording complete, but the disk fell behind: entries dropped"),
            Err(e) => tracing::error!("recording failed: {e}"),
        }
    }
    let c = &counters;
    // The steady state ends with the last window cut: what follows is the end of the input and
    // shutdown.
    let (steady_allocs, steady_windows) = summary.steady_from.map_or((0, 0), |(allocs, windows)| {
        let cut = c.windows.load(Ordering::Relaxed);
        (c.probe_at_last_window.load(Ordering::Relaxed).saturating_sub(allocs), cut.saturating_sub(windows))
    });
    tracing::info!(
        samples = c.samples.load(Ordering::Relaxed),
        windows = c.windows.load(Ordering::Relaxed),
        predictions = summary.predictions,
        decode_errors = c.decode_errors.load(Ordering::Relaxed),
        lost_samples = c.lost_samples.load(Ordering::Relaxed),
        dropped_windows = c.dropped_windows.load(Ordering::Relaxed),
        inference_errors = summary.inference_errors,
        sink_lost = lost,
        steady_windows,
        steady_allocs,
        allocs_per_window = %PerWindow(steady_allocs, steady_windows),
        "stopped"
    );
    Ok(summary)
}

async fn wait_for_signal(stop: CancellationToken, hup_tx: tokio::sync::mpsc::UnboundedSender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if hup_tx.send(()).is_err() {
                    tracing::warn!("SIGHUP ignored: a replay does not reload its graph");
                }
            }
        }
    }
    tracing::info!("stopping: finishing queued windows");
    stop.cancel();
}

fn infer(
    mut graph: Graph,
    windows: Receiver<Window>,
    swaps: Receiver<Swap>,
    recycle: Sender<Vec<f32>>,
    sinks: &Sinks,
    mut labels: Option<Vec<Arc<str>>>,
    counters: &Counters,
    recording: Option<RecordHandle>,
) -> Summary {
    let mut generation = 1;
    let mut summary = Summary::default();
    let mut report = Report::new(counters);
    let mut last_error: Option<Instant> = None;
    // Every record a sink or the recorder may still hold, and then some.
    let mut records = RecordPool::new(sinks.capacity() + RECORDS_SPARE, RECORDS_READY, graph.output_len());
    let never = crossbeam_channel::never();
    let mut reloading = true;
    loop {
        let pending = if reloading { &swaps } else { &never };
        let w = crossbeam_channel::select! {
            recv(windows) -> w => match w {
                Ok(w) => w,
                Err(_) => break,
            },
            // Between two windows: the only place a graph may change.
            recv(pending) -> swap => {
                // No reloader (a replay), or it has stopped: stop listening for swaps.
                reloading = swap.is_ok();
                if let Ok(swap) = swap {
                    let start = Instant::now();
                    let old = std::mem::replace(&mut graph, swap.graph);
                    labels = swap.labels;
                    generation += 1;
                    drop(old);
                    let stall = start.elapsed();
                    reload::log_plugins(&graph, generation);
                    tracing::info!(
                        generation,
                        since_change_ms = format_args!("{:.1}", swap.noticed.elapsed().as_secs_f64() * 1e3),
                        stall_us = format_args!("{:.1}", stall.as_secs_f64() * 1e6),
                        "graph swapped"
                    );
                }
                continue;
            },
            default(Duration::from_secs(1)) => {
                report.maybe_log(counters, sinks);
                continue;
            },
        };
        match graph.run(&w.data) {
            Ok(values) => {
                let latency = w.arrival.elapsed();
                let index = labels.as_ref().and_then(|_| argmax(values));
                let label = labels.as_ref().zip(index).and_then(|(l, i)| l.get(i).cloned());
                let record = records.next(|r| {
                    r.window = w.index;
                    r.last_sample = w.last_sample;
                    r.t = w.t;
                    r.values.clear();
                    r.values.extend_from_slice(values);
                    r.label = label;
                    r.index = index;
                    r.latency_us = latency_us(latency);
                    r.generation = generation;
                });
                sinks.send(&record);
                if let Some(r) = &recording {
                    r.prediction(unix_ns(), record);
                }
                summary.predictions += 1;
                report.latency(latency);
            }
            Err(e) => {
                summary.inference_errors += 1;
                if last_error.is_none_or(|t| t.elapsed() > REPORT_EVERY) {
                    tracing::warn!(window = w.index, error = %e, "inference failed; window skipped");
                    last_error = Some(Instant::now());
                }
            }
        }
        let _ = recycle.try_send(w.data);
        report.maybe_log(counters, sinks);
    }
    summary.steady_from = report.steady_from;
    summary
}

/// Windows predicted before the steady state may begin.
const WARMUP_WINDOWS: u64 = 1000;

/// The periodic stats line, and where the steady state begins.
///
/// `allocs_per_window` in the stats line is every allocation in the process during the period
/// (all threads: reader, inference, sinks, recorder, logging; plugins included) divided by the
/// windows predicted in it; the first period includes start-up. The steady state begins right
/// after the first stats line (~10 s) that follows the first [`WARMUP_WINDOWS`] windows, and
/// ends with the last window cut; the `stopped` line reports its windows, its allocations and
/// their ratio.
struct Report {
    since: Instant,
    samples: u64,
    windows: u64,
    /// Windows predicted since the start.
    total: u64,
    /// The allocation count at the start of the period.
    allocs: u64,
    latencies_us: Vec<f64>,
    steady_from: Option<(u64, u64)>,
}

impl Report {
    fn new(c: &Counters) -> Report {
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

    fn latency(&mut self, d: Duration) {
        self.windows += 1;
        self.total += 1;
        // Bounded: past 65 536 windows per period the percentiles use the first ones.
        if self.latencies_us.len() < self.latencies_us.capacity() {
            self.latencies_us.push(d.as_secs_f64() * 1e6);
        }
    }

    fn maybe_log(&mut self, c: &Counters, sinks: &Sinks) {
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

/// The config's sinks, or stdout JSON when it names none.
pub fn default_sinks(configs: &[reflex_config::SinkConfig]) -> Vec<reflex_config::SinkConfig> {
    if configs.is_empty() {
        vec![reflex_config::SinkConfig {
            kind: reflex_config::SinkKind::Stdout,
            format: reflex_config::RecordFormat::Json,
            template: None,
        }]
    } else {
        configs.to_vec()
    }
}

/// Starts sinks, turning their problems into one error (one line each).
pub fn start_sinks(configs: &[reflex_config::SinkConfig], outputs: usize, config: &Path) -> anyhow::Result<Sinks> {
    Sinks::start(configs, outputs).map_err(|p| {
        anyhow::anyhow!(p.iter().map(|l| format!("{}: {l}", config.display())).collect::<Vec<_>>().join("\n"))
    })
}

/// How `run` and `replay` differ.
#[derive(Default)]
pub struct Options {
    /// Swap in a new graph when the config or weights change, or on SIGHUP.
    pub reload: bool,
    /// Record to this MCAP file.
    pub record: Option<PathBuf>,
    /// Show a progress bar for a log (only on a terminal).
    pub progress: bool,
}

/// Runs a blocking log reader, setting its stop flag when `stop` is cancelled.
async fn blocking_reader<T: Send + 'static>(
    stop: &CancellationToken,
    read: impl FnOnce(&AtomicBool) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let flag = Arc::new(AtomicBool::new(false));
    let reader = {
        let flag = flag.clone();
        tokio::task::spawn_blocking(move || {
            warm_thread();
            read(&flag)
        })
    };
    let watcher = {
        let stop = stop.clone();
        let flag = flag.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            flag.store(true, Ordering::Relaxed);
        })
    };
    let end = reader.await.map_err(|e| format!("log reader failed: {e}")).and_then(|r| r);
    watcher.abort();
    end
}

/// crossbeam allocates the first time a sender waits on a full channel (its list of waiting
/// senders). A lossless reader waits whenever inference falls behind, and the first time may
/// come long after the start: it is done now instead, in the warm-up.
fn warm_full_queue(tx: &Sender<Window>, rx: &Receiver<Window>) {
    let empty = || Window { index: 0, last_sample: 0, t: None, arrival: Instant::now(), data: Vec::new() };
    while tx.try_send(empty()).is_ok() {}
    let _ = tx.send_timeout(empty(), Duration::from_millis(1));
    while rx.try_recv().is_ok() {}
}

/// crossbeam allocates the first time a thread waits on any channel (its context): done at the
/// start of a thread that might first wait only in the steady state.
fn warm_thread() {
    let (_tx, rx) = crossbeam_channel::bounded::<()>(1);
    let _ = rx.recv_timeout(Duration::from_millis(1));
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
struct Progress(Option<indicatif::ProgressBar>);

fn progress_bar(wanted: bool) -> Progress {
    use std::io::IsTerminal;
    Progress((wanted && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {bytes}/{total_bytes} eta {eta}")
        {
            bar.set_style(style);
        }
        bar
    }))
}

impl Progress {
    fn update(&self, done: u64, total: u64) {
        if let Some(b) = &self.0 {
            b.set_length(total);
            b.set_position(done);
            if done >= total {
                b.finish_and_clear();
            }
        }
    }
}

/// What a recording must remember to be replayed faithfully: the config text, and the SHA-256
/// of the weights file and of every plugin library.
fn provenance(loaded: &Loaded) -> Vec<(String, String)> {
    use sha2::Digest;
    let mut v = vec![("config".to_string(), loaded.config.text.clone())];
    if let Some(w) = &loaded.config.model.weights {
        if let Ok(bytes) = std::fs::read(w) {
            v.push((
                "weights_sha256".into(),
                sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
            ));
        }
    }
    for l in loaded.graph.layers() {
        if let reflex_graph::Origin::Library { sha256, .. } = &l.origin {
            let key = format!("plugin_sha256.{}", l.plugin);
            if !v.iter().any(|(k, _)| *k == key) {
                v.push((key, sha256.clone()));
            }
        }
    }
    v
}

fn metadata(loaded: &Loaded) -> std::collections::BTreeMap<String, String> {
    let s = &loaded.config.source;
    let mut m: std::collections::BTreeMap<String, String> = provenance(loaded).into_iter().collect();
    m.insert("config_path".into(), loaded.config.path.display().to_string());
    m.insert("format".into(), reflex_io::format_of(s.format).name().into());
    m.insert("channels".into(), s.channels.to_string());
    m.insert("reflexd_version".into(), env!("CARGO_PKG_VERSION").into());
    m
}

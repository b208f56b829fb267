//! `run` and `replay`: the pipeline of reflex-io wired to the graph, one stage after another.
//!
//! ```text
//! reader thread                                    inference thread            sink threads
//! Samples::next ─▶ Windower::cut ─▶ WindowQueue ─▶ Graph::run ─▶ RecordPool ─▶ Sinks::send
//! (source, decoder)  (window pool)   drop-oldest live,            (tap)         one queue each
//!  (tap)                             lossless replay
//! ```
//!
//! The tap hands samples, records and events to the recorder (`--record`) and the live view
//! (`[live]`), each on threads of their own.
//!
//! | module | owns |
//! | --- | --- |
//! | [`input`] | which source, its decoding and pace |
//! | [`reader`] | the reader thread: source → decoder → windower → queue |
//! | [`inference`] | the inference thread: graph → records → sinks, and graph swaps |
//! | [`signals`] | the tokio thread: SIGINT/SIGTERM → stop, SIGHUP → reloader |
//! | [`stats`] | the `stats` and `stopped` lines, the steady state |
//! | [`supervisor`] | fallback records while a plugin call does not return |
//! | [`metrics`] | what `/metrics` shows, and its endpoint |
//! | [`notify`] | systemd's READY, WATCHDOG, RELOADING, STOPPING and STATUS |
//! | [`provenance`] | what a recording remembers, and the replay's check of it |
//! | [`live`] | `[live]`: the live view, started with the daemon's totals |

pub mod inference;
pub mod input;
pub mod live;
pub mod metrics;
pub mod notify;
mod os;
pub mod provenance;
pub mod reader;
pub mod runtime;
pub mod signals;
pub mod stats;
pub mod supervisor;

use crate::model::Loaded;
use crate::reload::{self, Reloader, Swap};
use inference::Inference;
pub use input::Input;
use reader::{Progress, Reader};
use reflex_io::pool::WindowPool;
use reflex_io::queue::{drop_oldest, WindowQueue};
use reflex_io::recording::Recorder;
use reflex_io::sink::{Delivery, Sinks};
use reflex_io::source::Counters;
use reflex_io::stop::Stop;
use reflex_io::tap::Tap;
use reflex_io::window::Windower;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// SIGTERM to exit: the contract is one second; this is what the sinks get of it.
const SINK_GRACE: Duration = Duration::from_millis(700);

/// How `run` and `replay` differ.
#[derive(Default)]
pub struct Options {
    /// Swap in a new graph when the config or weights change, or on SIGHUP.
    pub reload: bool,
    /// Record to this MCAP file.
    pub record: Option<PathBuf>,
    /// How the recording's chunks are compressed.
    pub compression: reflex_io::mcap::Compression,
    /// A replay's recorded generations: (first window, its graph), in window order.
    pub scheduled: Vec<(u64, Swap)>,
    /// Show a progress bar for a log (only on a terminal).
    pub progress: bool,
    /// `[labels] listen`, bound (`run` only): activity marks for the recording.
    pub labels: Option<reflex_io::labels::Bound>,
    /// Serve the live view (`run` with `[live]`).
    pub live: Option<reflex_config::LiveConfig>,
    /// What the pipeline counts: `run` shares it with its metrics endpoint.
    pub telemetry: metrics::Telemetry,
    /// Notify systemd, when `NOTIFY_SOCKET` is set (`run`: the daemon).
    pub notify: bool,
}

/// Totals at the end of a run.
#[derive(Debug, Default)]
pub struct Summary {
    /// Samples decoded.
    pub samples: u64,
    /// Malformed lines or frames.
    pub decode_errors: u64,
    pub predictions: u64,
    pub inference_errors: u64,
    /// Windows that got a fallback record (or none, when there was nothing to hold) instead of
    /// the graph's prediction: errors and non-finite outputs.
    pub fallbacks: u64,
    /// Records the sinks dropped or could not write.
    pub sink_lost: u64,
    /// When the steady state began (see [`stats::Report`]): the allocation count and the
    /// windows cut then.
    pub steady_from: Option<(u64, u64)>,
    /// Where the windows' time went (the inference thread's, when it finished).
    pub breakdown: Option<stats::Breakdown>,
}

/// Runs the pipeline until the input ends (a log) or SIGINT/SIGTERM; then finishes the queued
/// windows, flushes the sinks and returns.
pub fn run(loaded: Loaded, input: Input, sinks: Sinks, options: Options) -> anyhow::Result<Summary> {
    let (swaps_tx, swaps) = drop_oldest::<Swap>(1);
    let shadow = options.reload.then(|| Arc::new(reload::shadow::ShadowFeed::default()));
    let reloads = Arc::new(notify::Reloads::default());
    let reloader = shadow.clone().map(|shadow| Reloader::new(&loaded, swaps_tx, shadow, reloads.clone()));
    let metrics::Telemetry { counters, tally } = options.telemetry.clone();
    let sinks = Arc::new(sinks);
    let live = options.live.as_ref().map(|l| live::start(l, &loaded.config.path, &input, &counters, &sinks));
    let live = live.transpose()?;
    let recorder = start_recorder(&loaded, &input, &options)?;
    let Loaded { config, graph } = loaded;
    reload::log_plugins(&graph, 1);
    let tap = Tap::new(recorder.as_ref(), live.as_ref());

    // source → decoder → windower → queue → graph → sinks
    let (lossless, device) = (input.lossless, input.device);
    let mut samples = input.samples(counters.clone());
    let pool = WindowPool::new(config.window.queue, graph.input_len());
    let (queue, windows) = WindowQueue::new(config.window.queue, lossless, &pool);
    let windower = Windower::from_config(&config.window, config.source.channels, pool);
    samples.tap(tap.clone());
    let recording = recorder.is_some();
    let marks = options.labels.map(|l| l.start(counters.clone(), tap.clone(), recording)).transpose()?;
    let labels = reload::labels(&config);
    let safety = config.safety.clone();
    let runtime = Arc::new(runtime::Runtime::new(config.runtime.clone()));
    let watch = Arc::new(supervisor::Watch::default());
    let outputs = graph.output_len();
    let supervisor = supervisor::spawn(watch.clone(), sinks.clone(), &safety, labels.clone(), outputs, tally.clone())?;
    let inference = Inference {
        graph,
        labels,
        windows,
        swaps,
        sinks: sinks.clone(),
        counters: counters.clone(),
        tap,
        scheduled: options.scheduled.into(),
        safety,
        watch: supervisor.is_some().then(|| watch.clone()),
        shadow,
        runtime: runtime.clone(),
        tally,
    };
    let inference = inference.spawn()?;
    let progress = Progress::new(options.progress);
    let reader = Reader { samples, windower, queue, counters: counters.clone(), progress, runtime: runtime.clone() };
    let stop = Stop::new();
    let watched = notify::Watched { counters: counters.clone(), reloads, stop: stop.clone(), device };
    let notifier = options.notify.then(|| notify::start(watched)).flatten();
    runtime.lock_memory();
    let _wake_latency = runtime.hold_wake_latency();
    let (at_last_window, input_error) = signals::serve(move |stop: &Stop| reader.run(stop), stop, reloader)?;
    if let Some(n) = notifier {
        n.finish();
    }
    // No mark after the last sample; and the recorder finishes only once every handle is gone.
    if let Some(marks) = marks {
        marks.stop();
    }
    let ending = Ending { inference, supervisor, watch, sinks, recorder, live, counters, lossless, at_last_window };
    ending.finish(input_error)
}

/// `--record`: the recorder, started before anything is read.
fn start_recorder(loaded: &Loaded, input: &Input, options: &Options) -> anyhow::Result<Option<Recorder>> {
    let recording_options = reflex_io::recording::Options {
        compression: options.compression,
        channel_names: input.names.clone(),
        units: input.units.clone(),
    };
    let Some(path) = options.record.as_deref() else { return Ok(None) };
    let metadata = provenance::metadata(loaded, &input.names, &input.units);
    Ok(Some(Recorder::start(path, metadata, &recording_options)?))
}

/// What is left to wind down once the reader has returned.
struct Ending {
    inference: std::thread::JoinHandle<Summary>,
    supervisor: Option<std::thread::JoinHandle<u64>>,
    watch: Arc<supervisor::Watch>,
    sinks: Arc<Sinks>,
    recorder: Option<Recorder>,
    live: Option<reflex_io::live::LiveView>,
    counters: Arc<Counters>,
    lossless: bool,
    at_last_window: u64,
}

impl Ending {
    /// The reader is gone, and with it the window queue's sender: inference drains what is
    /// queued and returns; then the sinks and the recorder write what they hold. Everything
    /// read has been predicted and delivered before `input_error` (or a failed recording)
    /// becomes the exit status.
    fn finish(self, input_error: Option<reflex_io::Error>) -> anyhow::Result<Summary> {
        let Ending { inference, supervisor, watch, sinks, recorder, live, counters, lossless, at_last_window } = self;
        let finished = finished(inference, &counters, lossless);
        watch.stop();
        // Inference has stopped or is stuck: nothing more to show.
        if let Some(l) = live {
            l.stop();
        }
        let supervised = supervisor.filter(|_| finished.is_some()).map_or(0, |s| s.join().unwrap_or(0));
        let Some(inference) = finished else {
            return left_behind(&counters, sinks, recorder, lossless, at_last_window);
        };
        let mut summary = inference.join().map_err(|_| anyhow::anyhow!("the inference thread failed"))?;
        summary.fallbacks += supervised;
        let (sink_lost, recording_failed) = close(sinks, recorder)?;
        summary.sink_lost = sink_lost;
        summary.samples = counters.samples.load(std::sync::atomic::Ordering::Relaxed);
        summary.decode_errors = counters.decode_errors.load(std::sync::atomic::Ordering::Relaxed);
        stats::log_stopped(&counters, &summary, at_last_window);
        match (input_error, recording_failed) {
            (Some(e), _) => Err(e.into()),
            (None, Some(e)) => Err(anyhow::anyhow!("recording failed: {e}")),
            (None, None) => Ok(summary),
        }
    }
}

/// A plugin call that never returns: the inference thread cannot be cancelled. It is left
/// behind with the sinks and the recorder it holds; the process exits all the same.
fn left_behind(
    counters: &Counters,
    sinks: Arc<Sinks>,
    recorder: Option<Recorder>,
    lossless: bool,
    at_last_window: u64,
) -> anyhow::Result<Summary> {
    tracing::error!(
        "the inference thread is stuck in a plugin call and is left behind: records still queued for the sinks are lost, the recording ends at its last complete chunk"
    );
    let summary = Summary {
        samples: counters.samples.load(std::sync::atomic::Ordering::Relaxed),
        decode_errors: counters.decode_errors.load(std::sync::atomic::Ordering::Relaxed),
        ..Summary::default()
    };
    stats::log_stopped(counters, &summary, at_last_window);
    std::mem::forget((sinks, recorder));
    if lossless {
        anyhow::bail!("a plugin call did not return for {} s: the replay is incomplete", REPLAY_GRACE.as_secs());
    }
    Ok(summary)
}

/// How long a stopping `run` waits for the inference thread to finish one window: within the
/// 2 s that SIGTERM may take, with the sinks' grace after it. A replay, which must not lose a
/// window, grants a window [`REPLAY_GRACE`].
const INFERENCE_GRACE: Duration = Duration::from_millis(1000);
const REPLAY_GRACE: Duration = Duration::from_secs(10);

/// The inference thread once it has returned, waiting as long as it makes progress; `None`
/// once it has not finished a window for the grace (a plugin call that does not return).
fn finished(
    inference: std::thread::JoinHandle<Summary>,
    counters: &Counters,
    lossless: bool,
) -> Option<std::thread::JoinHandle<Summary>> {
    let grace = if lossless { REPLAY_GRACE } else { INFERENCE_GRACE };
    let progress = || counters.inferred.load(std::sync::atomic::Ordering::Relaxed);
    let (mut seen, mut since) = (progress(), Instant::now());
    while !inference.is_finished() {
        if progress() != seen {
            (seen, since) = (progress(), Instant::now());
        } else if since.elapsed() >= grace {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Some(inference)
}

/// Lets the sinks and the recorder write what they hold; returns the records the sinks lost,
/// and the recording's failure (already logged when it happened), which fails the run.
fn close(sinks: Arc<Sinks>, recorder: Option<Recorder>) -> anyhow::Result<(u64, Option<reflex_io::Error>)> {
    let deadline = Instant::now() + SINK_GRACE;
    let sinks = Arc::try_unwrap(sinks).map_err(|_| anyhow::anyhow!("sinks still in use"))?;
    let (lost, finished) = sinks.close(deadline);
    if !finished {
        tracing::warn!("a sink did not finish writing in time");
    }
    if let Some(r) = recorder {
        match r.finish() {
            Ok(0) => tracing::info!("recording complete"),
            Ok(dropped) => tracing::warn!(dropped, "recording complete, but the disk fell behind: entries dropped"),
            Err(e) => return Ok((lost, Some(e))),
        }
    }
    Ok((lost, None))
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

/// Starts sinks; every one that cannot start is one line naming the config.
pub fn start_sinks(
    configs: &[reflex_config::SinkConfig],
    outputs: usize,
    delivery: Delivery,
    config: &Path,
) -> anyhow::Result<Sinks> {
    Sinks::start(configs, outputs, delivery).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|e| format!("{}: {e}", config.display())).collect();
        anyhow::anyhow!(lines.join("\n"))
    })
}

//! Hot swap: a new layer graph, built entirely off the hot path, adopted by the inference
//! thread between two windows.
//!
//! Triggers: the config file or the weights file changes (their directories are watched with
//! notify, so an editor's write-new-then-rename counts as much as an in-place write; bursts are
//! debounced), a poll of their size/mtime/inode every 2 s for file systems without events, and
//! SIGHUP. A trigger has the build thread ([`build`]) load the config, load plugins (private
//! copies by content hash, so a rebuilt library runs), read the weights, check every shape, run
//! the plain windows every loaded graph is checked with, and then run the new graph in shadow beside the running one on live
//! windows ([`shadow`], `[swap] shadow_windows`); only a graph that passed all of it is handed
//! over. Anything wrong is one log line and the running graph keeps going. `[source]`,
//! `[window]`, `[[sinks]]`, `[safety]`, `[labels]`, `[live]` and `[runtime]` cannot change under
//! a running daemon: an edit to them is refused with a message asking for a restart.

mod build;
pub mod shadow;

use crate::daemon::notify::{Reloading, Reloads};
use crate::model::Loaded;
use build::{Outcome, Pending, Refused, Worker};
use reflex_config::{
    Config, LabelsConfig, LiveConfig, MetricsConfig, OutputKind, RuntimeConfig, SafetyConfig, SinkConfig, SourceConfig,
    WindowConfig,
};
use reflex_graph::{Graph, Origin};
use reflex_io::queue::DropOldest;
use shadow::ShadowFeed;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::UnboundedReceiver;

const DEBOUNCE: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_secs(2);

/// A built, warmed-up graph on its way to the inference thread.
pub struct Swap {
    pub graph: Graph,
    pub labels: Option<Vec<Arc<str>>>,
    /// When the change was noticed: swap latency is measured from here.
    pub noticed: Instant,
    /// What the recording's `swap` event says (its generation is set at the swap).
    pub event: reflex_io::recording::SwapEvent,
}

/// The labels of a `classify` output, shared by every record.
pub fn labels(config: &Config) -> Option<Vec<Arc<str>>> {
    (config.output.kind == OutputKind::Classify)
        .then(|| config.output.labels.iter().map(|l| Arc::from(l.as_str())).collect())
}

/// Logs the plugin libraries a graph uses, with their hashes.
pub fn log_plugins(graph: &Graph, generation: u64) {
    let mut seen = Vec::new();
    for l in graph.layers() {
        if let Origin::Library { path, sha256 } = &l.origin {
            if !seen.contains(&l.plugin) {
                seen.push(l.plugin.clone());
                tracing::info!(generation, plugin = %l.plugin, version = %l.version, sha256 = %sha256, library = %path.display(), "plugin loaded");
            }
        }
    }
}

/// What a running daemon cannot change: the input and its cut, where records go, how faults
/// are met, and the listeners and threads it set up at start.
#[derive(Clone, PartialEq)]
struct Fixed {
    source: SourceConfig,
    window: WindowConfig,
    sinks: Vec<SinkConfig>,
    safety: SafetyConfig,
    labels: Option<LabelsConfig>,
    live: Option<LiveConfig>,
    runtime: RuntimeConfig,
    metrics: Option<MetricsConfig>,
}

impl Fixed {
    fn of(c: &Config) -> Fixed {
        Fixed {
            source: c.source.clone(),
            window: c.window.clone(),
            sinks: c.sinks.clone(),
            safety: c.safety.clone(),
            labels: c.labels.clone(),
            live: c.live.clone(),
            runtime: c.runtime.clone(),
            metrics: c.metrics.clone(),
        }
    }

    fn differences(&self, other: &Fixed) -> Vec<&'static str> {
        let sections = [
            ("[source]", self.source != other.source),
            ("[window]", self.window != other.window),
            ("[[sinks]]", self.sinks != other.sinks),
            ("[safety]", self.safety != other.safety),
            ("[labels]", self.labels != other.labels),
            ("[live]", self.live != other.live),
            ("[runtime]", self.runtime != other.runtime),
            ("[metrics]", self.metrics != other.metrics),
        ];
        sections.into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name).collect()
    }
}

/// Watches for changes and builds new graphs.
pub struct Reloader {
    path: PathBuf,
    fixed: Fixed,
    /// The files whose change triggers a reload: the config and its weights.
    files: Vec<PathBuf>,
    swaps: DropOldest<Swap>,
    shadow: Arc<ShadowFeed>,
    /// The build thread; `None` after it was left behind stuck, until the next change.
    worker: Option<Worker>,
    /// The watched files as they were when the running graph was loaded: a change made
    /// before the watcher is set up is seen by the first poll.
    loaded_stamp: Stamp,
    /// Told when a rebuild begins and ends (systemd's RELOADING=1 … READY=1).
    reloads: Arc<Reloads>,
}

/// size, mtime and inode: enough to see any write or rename-over.
/// One entry per watched file (the config and its weights: two at most); an array, so that a
/// poll allocates nothing in the daemon's steady state.
type Stamp = [Option<(u64, SystemTime, u64)>; 2];

fn stamp(files: &[PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let mut stamp = [None; 2];
    for (s, f) in stamp.iter_mut().zip(files) {
        *s = std::fs::metadata(f).ok().and_then(|m| Some((m.len(), m.modified().ok()?, m.ino())));
    }
    stamp
}

fn watched_files(c: &Config) -> Vec<PathBuf> {
    std::iter::once(c.path.clone()).chain(c.model.weights.clone()).map(|p| absolute(&p)).collect()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What woke the reloader.
enum Wake {
    /// A change to build, noticed then.
    Change(Instant),
    /// The pending build finished.
    Built(Box<Outcome>),
    /// Time to check that the pending build is not stuck.
    Check,
}

/// Files and events the reloader listens to.
struct Triggers {
    hup: UnboundedReceiver<()>,
    events_tx: tokio::sync::mpsc::UnboundedSender<()>,
    events: UnboundedReceiver<()>,
    poll: tokio::time::Interval,
    check: tokio::time::Interval,
    last: Stamp,
}

impl Reloader {
    /// `swaps` holds at most the newest graph not yet adopted; `shadow` is where the inference
    /// thread offers live windows to a graph in shadow; `reloads` hears of each rebuild.
    pub fn new(loaded: &Loaded, swaps: DropOldest<Swap>, shadow: Arc<ShadowFeed>, reloads: Arc<Reloads>) -> Reloader {
        let files = watched_files(&loaded.config);
        Reloader {
            path: loaded.config.path.clone(),
            fixed: Fixed::of(&loaded.config),
            loaded_stamp: stamp(&files),
            files,
            swaps,
            shadow,
            worker: None,
            reloads,
        }
    }

    /// Runs until aborted (when the reader has stopped); `hup` delivers SIGHUPs.
    pub async fn run(mut self, hup: UnboundedReceiver<()>) {
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher = self.watch(events_tx.clone());
        let poll = tokio::time::interval(POLL);
        let check = tokio::time::interval(Duration::from_millis(500));
        let mut t = Triggers { hup, events_tx, events, poll, check, last: self.loaded_stamp };
        t.poll.tick().await;
        // The build under way, when its change was noticed, and its end for systemd (when dropped).
        let mut pending: Option<(Pending, Instant, Reloading)> = None;
        loop {
            // Keeps the current watcher alive; replaced when the watched files change.
            let _watching = &watcher;
            match self.wake(&mut t, pending.as_mut().map(|(p, ..)| p)).await {
                Wake::Change(noticed) => {
                    t.last = stamp(&self.files);
                    if let Some((p, ..)) = pending.take() {
                        p.cancel();
                        tracing::info!("a newer change supersedes the graph in shadow");
                    }
                    pending = self.submit().map(|p| (p, noticed, self.reloads.begin()));
                }
                Wake::Built(outcome) => {
                    let Some((_, noticed, _reloading)) = pending.take() else { continue };
                    let Some(config) = self.adopt(*outcome, noticed) else { continue };
                    if config != self.files {
                        self.files = config;
                        t.last = stamp(&self.files);
                        watcher = self.watch(t.events_tx.clone());
                    }
                }
                Wake::Check => {
                    if self.worker.as_ref().is_some_and(Worker::stuck) {
                        self.abandon();
                        pending = None;
                    }
                }
            }
        }
    }

    /// Waits for a trigger, the pending build's end, or a check of it.
    async fn wake(&self, t: &mut Triggers, pending: Option<&mut Pending>) -> Wake {
        let has_pending = pending.is_some();
        let done = async {
            match pending {
                Some(p) => (&mut p.done).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Ok(outcome) = done => Wake::Built(Box::new(outcome)),
            _ = t.check.tick(), if has_pending => Wake::Check,
            Some(()) = t.hup.recv() => {
                tracing::info!("SIGHUP: rebuilding the graph");
                Wake::Change(Instant::now())
            }
            Some(()) = t.events.recv() => {
                let noticed = Instant::now();
                // Editors write in bursts (truncate, write, rename, chmod): wait for quiet.
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(DEBOUNCE) => break,
                        Some(()) = t.events.recv() => {}
                    }
                }
                if stamp(&self.files) == t.last { Wake::Check } else { Wake::Change(noticed) }
            }
            _ = t.poll.tick() => {
                if stamp(&self.files) == t.last { Wake::Check } else { Wake::Change(Instant::now()) }
            }
        }
    }

    /// Hands the change to the build thread, starting one if needed.
    fn submit(&mut self) -> Option<Pending> {
        if self.worker.is_none() {
            match Worker::spawn(self.shadow.clone()) {
                Ok(w) => self.worker = Some(w),
                Err(e) => {
                    tracing::error!(error = %e, "config change refused, the running graph keeps going: cannot start a thread to build the graph");
                    return None;
                }
            }
        }
        self.worker.as_ref()?.submit(self.path.clone(), self.fixed.clone())
    }

    /// A plugin call on the build thread has not returned: the change is refused and the
    /// thread left behind (it cannot be cancelled); the next change gets a new one.
    fn abandon(&mut self) {
        self.shadow.close();
        self.worker = None;
        tracing::error!(
            limit_s = build::BUILD_LIMIT.as_secs(),
            "config change refused, the running graph keeps going: a call into the new graph did not return in time (the thread building it is left behind)"
        );
    }

    /// Sends a graph that passed to the inference thread, or logs why not; the files the
    /// adopted config watches.
    fn adopt(&self, outcome: Outcome, noticed: Instant) -> Option<Vec<PathBuf>> {
        let ready = outcome.map_err(refused).ok()?;
        if let Some(d) = &ready.divergence {
            tracing::info!("shadow run passed: {d}; adopting the new graph");
        }
        let Loaded { config, graph } = ready.loaded;
        let files = watched_files(&config);
        let event = crate::daemon::provenance::swap_event(&config, &graph);
        self.swaps.send(Swap { graph, labels: labels(&config), noticed, event }).ok()?;
        Some(files)
    }

    /// A watcher on the directories holding the watched files (None where notify is
    /// unavailable: the poll covers it).
    fn watch(&self, tx: tokio::sync::mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        let files = self.files.clone();
        let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if ev.paths.iter().any(|p| files.iter().any(|f| f == p)) {
                    let _ = tx.send(());
                }
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "no file events; polling every 2 s"))
        .ok()?;
        let mut dirs: Vec<&Path> = self.files.iter().filter_map(|f| f.parent()).collect();
        dirs.dedup();
        for d in dirs {
            if let Err(e) = w.watch(d, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch; polling every 2 s");
            }
        }
        Some(w)
    }
}

/// One line: why a change was refused.
fn refused(r: Refused) {
    let why = match r {
        Refused::Load(problems) => {
            let text = problems.to_string();
            let n = text.lines().count();
            let first = text.lines().next().unwrap_or_default().to_string();
            let more = if n > 1 { format!(" (and {} more: run `reflexd check`)", n - 1) } else { String::new() };
            format!("{first}{more}")
        }
        Refused::Fixed(changed) => format!("{} changed, which needs a restart of reflexd", changed.join(", ")),
        Refused::Shadow(shadow::Failed::Cancelled) => return,
        Refused::Shadow(failed) => failed.to_string(),
    };
    tracing::error!("config change refused, the running graph keeps going: {why}");
}

//! Hot swap: a new layer graph, built entirely off the hot path, adopted by the inference
//! thread between two windows.
//!
//! Triggers: the config file or the weights file changes (their directories are watched with
//! notify, so an editor's write-new-then-rename counts as much as an in-place write; bursts are
//! debounced), a poll of their size/mtime/inode every 2 s for file systems without events, and
//! SIGHUP. A trigger loads the config, loads plugins (private copies by content hash, so a
//! rebuilt library runs), reads the weights, checks every shape and runs one warm-up window;
//! only a graph that passed all of it is handed over. Anything wrong is one log line and the
//! running graph keeps going. `[source]`, `[window]`, `[[sinks]]`, `[safety]` and `[live]` cannot
//! change under a running daemon: an edit to them is refused with a message asking for a
//! restart.

use crate::model::{self, Loaded};
use reflex_config::{Config, OutputKind, SafetyConfig, SinkConfig, SourceConfig, WindowConfig};
use reflex_graph::{Graph, Origin};
use reflex_io::queue::DropOldest;
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

/// What a running daemon cannot change.
#[derive(Clone, PartialEq)]
struct Fixed {
    source: SourceConfig,
    window: WindowConfig,
    sinks: Vec<SinkConfig>,
    safety: SafetyConfig,
    live: Option<reflex_config::LiveConfig>,
}

impl Fixed {
    fn of(c: &Config) -> Fixed {
        Fixed {
            source: c.source.clone(),
            window: c.window.clone(),
            sinks: c.sinks.clone(),
            safety: c.safety.clone(),
            live: c.live.clone(),
        }
    }

    fn differences(&self, other: &Fixed) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.source != other.source {
            v.push("[source]");
        }
        if self.window != other.window {
            v.push("[window]");
        }
        if self.sinks != other.sinks {
            v.push("[[sinks]]");
        }
        if self.safety != other.safety {
            v.push("[safety]");
        }
        if self.live != other.live {
            v.push("[live]");
        }
        v
    }
}

/// Watches for changes and builds new graphs.
pub struct Reloader {
    path: PathBuf,
    fixed: Fixed,
    /// The files whose change triggers a reload: the config and its weights.
    files: Vec<PathBuf>,
    swaps: DropOldest<Swap>,
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

impl Reloader {
    /// `swaps` holds at most the newest graph not yet adopted.
    pub fn new(loaded: &Loaded, swaps: DropOldest<Swap>) -> Reloader {
        Reloader {
            path: loaded.config.path.clone(),
            fixed: Fixed::of(&loaded.config),
            files: watched_files(&loaded.config),
            swaps,
        }
    }

    /// Runs until aborted (when the reader has stopped); `hup` delivers SIGHUPs.
    pub async fn run(mut self, mut hup: UnboundedReceiver<()>) {
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher = self.watch(events_tx.clone());
        let mut last = stamp(&self.files);
        let mut poll = tokio::time::interval(POLL);
        poll.tick().await;
        loop {
            // Keeps the current watcher alive; replaced when the watched files change.
            let _watching = &watcher;
            let noticed = tokio::select! {
                Some(()) = hup.recv() => {
                    tracing::info!("SIGHUP: rebuilding the graph");
                    Instant::now()
                }
                Some(()) = events.recv() => {
                    let noticed = Instant::now();
                    // Editors write in bursts (truncate, write, rename, chmod): wait for quiet.
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(DEBOUNCE) => break,
                            Some(()) = events.recv() => {}
                        }
                    }
                    if stamp(&self.files) == last {
                        continue;
                    }
                    noticed
                }
                _ = poll.tick() => {
                    if stamp(&self.files) == last {
                        continue;
                    }
                    Instant::now()
                }
            };
            last = stamp(&self.files);
            let Some(built) = build(self.path.clone()).await else { continue };
            let loaded = match built {
                Ok(l) => l,
                Err(Built::Load(problems)) => {
                    let text = problems.to_string();
                    let n = text.lines().count();
                    let first = text.lines().next().unwrap_or_default().to_string();
                    let more =
                        if n > 1 { format!(" (and {} more: run `reflexd check`)", n - 1) } else { String::new() };
                    tracing::error!("config change refused, the running graph keeps going: {first}{more}");
                    continue;
                }
                Err(Built::WarmUp(e)) => {
                    tracing::error!("config change refused, the running graph keeps going: warm-up window failed: {e}");
                    continue;
                }
            };
            let changed = self.fixed.differences(&Fixed::of(&loaded.config));
            if !changed.is_empty() {
                tracing::error!(
                    "config change refused, the running graph keeps going: {} changed, which needs a restart of reflexd",
                    changed.join(", ")
                );
                continue;
            }
            let files = watched_files(&loaded.config);
            if files != self.files {
                self.files = files;
                last = stamp(&self.files);
                watcher = self.watch(events_tx.clone());
            }
            let Loaded { config, graph } = loaded;
            let event = crate::daemon::provenance::swap_event(&config, &graph);
            if self.swaps.send(Swap { graph, labels: labels(&config), noticed, event }).is_err() {
                return;
            }
        }
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

/// How long a new graph may take to load and warm up before the change is refused. The
/// thread doing it is left behind if a plugin never returns (it cannot be cancelled).
const BUILD_LIMIT: Duration = Duration::from_secs(10);

/// Why a new graph was not built.
enum Built {
    /// The config, a plugin or the weights: every problem.
    Load(model::LoadError),
    /// The warm-up window failed.
    WarmUp(String),
}

/// Loads and warms up the graph of `path` on a thread of its own — never on this one, which
/// also handles the signals: a plugin that hangs must not keep SIGTERM waiting. `None` when it
/// took longer than [`BUILD_LIMIT`] (logged).
async fn build(path: PathBuf) -> Option<Result<Loaded, Built>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("graph-build".into()).spawn(move || {
        let built = model::load(&path).map_err(Built::Load).and_then(warm_up);
        let _ = tx.send(built);
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "config change refused, the running graph keeps going: cannot start a thread to build the graph");
        return None;
    }
    match tokio::time::timeout(BUILD_LIMIT, rx).await {
        Ok(Ok(built)) => Some(built),
        Ok(Err(_)) => {
            tracing::error!("config change refused, the running graph keeps going: the graph build failed");
            None
        }
        Err(_) => {
            tracing::error!(
                limit_s = BUILD_LIMIT.as_secs(),
                "config change refused, the running graph keeps going: the new graph did not load and warm up in time (a plugin that never returns is left behind on its thread)"
            );
            None
        }
    }
}

/// One window of zeros through the new graph, off the hot path, before it is trusted.
fn warm_up(loaded: Loaded) -> Result<Loaded, Built> {
    let Loaded { config, mut graph } = loaded;
    let zeros = vec![0.0; graph.input_len()];
    graph.run(&zeros).map_err(|e| Built::WarmUp(e.to_string()))?;
    Ok(Loaded { config, graph })
}

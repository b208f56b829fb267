//! The build thread: loads a changed config's graph (which runs it on plain windows), checks
//! that nothing fixed changed, and runs it in shadow on live windows — one job at a time, never on a thread that
//! reads the input or handles signals. One thread serves every swap (a fresh thread per swap
//! left glibc a fresh malloc arena each time); it is replaced only when a plugin call on it does
//! not return, and is then left behind.

use super::shadow::{self, Divergence, Failed, ShadowFeed};
use super::Fixed;
use crate::model::{self, Loaded};
use crossbeam_channel::Sender;
use reflex_config::OutputKind;
use reflex_io::source::mono_ns;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one step — loading and warming up, or the new graph's call on one shadow window —
/// may take before the change is refused and the build thread left behind.
pub const BUILD_LIMIT: Duration = Duration::from_secs(10);

/// Why a change was not adopted.
pub enum Refused {
    /// The config, a plugin or the weights: every problem.
    Load(model::LoadError),
    /// Sections a running daemon cannot change.
    Fixed(Vec<&'static str>),
    /// The shadow trial.
    Shadow(Failed),
}

/// A built graph that passed its trial.
pub struct Ready {
    pub loaded: Loaded,
    /// `None` when the config asked for no shadow windows.
    pub divergence: Option<Divergence>,
}

/// What a job reports.
pub type Outcome = Result<Ready, Refused>;

/// One change to build.
struct Job {
    path: PathBuf,
    fixed: Fixed,
    cancel: Arc<AtomicBool>,
    done: tokio::sync::oneshot::Sender<Outcome>,
}

/// The build thread, and when it last showed a sign of life.
pub struct Worker {
    jobs: Sender<Job>,
    /// `mono_ns` of the last step begun or wait polled.
    beat: Arc<AtomicU64>,
    /// Whether a job is under way (a stuck idle thread is no concern).
    busy: Arc<AtomicBool>,
}

/// A job under way: its result, and how to call it off.
pub struct Pending {
    pub done: tokio::sync::oneshot::Receiver<Outcome>,
    cancel: Arc<AtomicBool>,
}

impl Pending {
    /// A newer change: the trial stops at its next wait.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for Pending {
    /// The reloader is gone (shutdown): so is the reason for the trial.
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Worker {
    pub fn spawn(shadow: Arc<ShadowFeed>) -> std::io::Result<Worker> {
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        let beat = Arc::new(AtomicU64::new(mono_ns()));
        let busy = Arc::new(AtomicBool::new(false));
        let (b, y) = (beat.clone(), busy.clone());
        std::thread::Builder::new().name("graph-build".into()).spawn(move || {
            for job in rx {
                y.store(true, Ordering::Relaxed);
                let outcome = build(&job, &shadow, &b);
                y.store(false, Ordering::Relaxed);
                let _ = job.done.send(outcome);
            }
        })?;
        Ok(Worker { jobs, beat, busy })
    }

    /// Queues a build of the config at `path`; `None` if the thread is gone.
    pub fn submit(&self, path: PathBuf, fixed: Fixed) -> Option<Pending> {
        let (done, rx) = tokio::sync::oneshot::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        self.jobs.send(Job { path, fixed, cancel: cancel.clone(), done }).ok()?;
        Some(Pending { done: rx, cancel })
    }

    /// Whether a step has run past [`BUILD_LIMIT`]: a plugin call that does not return.
    pub fn stuck(&self) -> bool {
        let since = mono_ns().saturating_sub(self.beat.load(Ordering::Relaxed));
        self.busy.load(Ordering::Relaxed) && since > BUILD_LIMIT.as_nanos() as u64
    }
}

fn build(job: &Job, shadow: &ShadowFeed, beat: &AtomicU64) -> Outcome {
    beat.store(mono_ns(), Ordering::Relaxed);
    let loaded = model::load(&job.path).map_err(Refused::Load)?;
    let changed = job.fixed.differences(&Fixed::of(&loaded.config));
    if !changed.is_empty() {
        return Err(Refused::Fixed(changed));
    }
    // Loading ran the graph on plain windows (`model::load`): it is warm.
    let Loaded { config, mut graph } = loaded;
    let windows = config.swap.shadow_windows;
    if windows == 0 {
        return Ok(Ready { loaded: Loaded { config, graph }, divergence: None });
    }
    let classify = config.output.kind == OutputKind::Classify;
    let carry_on = || {
        beat.store(mono_ns(), Ordering::Relaxed);
        !job.cancel.load(Ordering::Relaxed)
    };
    let divergence = shadow::trial(&mut graph, shadow, windows, classify, &carry_on).map_err(Refused::Shadow)?;
    Ok(Ready { loaded: Loaded { config, graph }, divergence: Some(divergence) })
}

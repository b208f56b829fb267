//! The reader: source → decoder → windower → queue, one call per stage, on its own thread.

use reflex_io::queue::{Closed, WindowQueue};
use reflex_io::source::{Counters, Samples, Source};
use reflex_io::stop::Stop;
use reflex_io::window::Windower;
use std::sync::Arc;
use std::time::Duration;

/// The stages before the queue.
pub struct Reader {
    pub samples: Samples<Box<dyn Source>>,
    pub windower: Windower,
    pub queue: WindowQueue,
    pub counters: Arc<Counters>,
    pub progress: Progress,
    /// `[runtime]`: this thread's CPU and priority.
    pub runtime: Arc<super::runtime::Runtime>,
}

/// Samples between two updates of the progress bar.
const PROGRESS_EVERY: u64 = 256;

impl Reader {
    /// Reads until the source ends, `stop` is set or inference goes away. Returns the
    /// process's allocation count when the last window was queued (the steady state ends
    /// there, and what follows — the end of the input, shutdown — is not counted in it), and
    /// the error that ended the input early, if one did: the run's outcome, said by the caller
    /// once everything read before it has been predicted and delivered.
    pub fn run(mut self, stop: &Stop) -> (u64, Option<reflex_io::Error>) {
        warm_thread();
        self.runtime.enter(super::runtime::Role::Reader);
        let mut at_last_window = crate::allocs::count();
        loop {
            let sample = match self.samples.next(stop) {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => {
                    self.progress.update(self.samples.progress());
                    return (at_last_window, Some(e));
                }
            };
            if sample.number % PROGRESS_EVERY == 0 {
                self.progress.update(self.samples.progress());
            }
            // `Samples` yields exactly `channels` values: the width is always right.
            let Ok(Some(window)) = self.windower.cut(&sample) else { continue };
            Counters::add(&self.counters.windows, 1);
            match self.queue.send(window) {
                Ok(false) => {}
                Ok(true) => Counters::add(&self.counters.dropped_windows, 1),
                Err(Closed) => break,
            }
            at_last_window = crate::allocs::count();
        }
        self.progress.update(self.samples.progress());
        (at_last_window, None)
    }
}

/// crossbeam allocates the first time a thread waits on any channel (its context): done at the
/// start of a thread that might first wait only in the steady state.
fn warm_thread() {
    let (_tx, rx) = crossbeam_channel::bounded::<()>(1);
    let _ = rx.recv_timeout(Duration::from_millis(1));
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A bar if `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Progress {
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

    fn update(&self, progress: Option<(u64, u64)>) {
        if let (Some(b), Some((done, total))) = (&self.0, progress) {
            b.set_length(total);
            b.set_position(done);
            if done >= total {
                b.finish_and_clear();
            }
        }
    }
}

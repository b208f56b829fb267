//! `[live]`: starts reflex-io's [`LiveView`] with what only the daemon knows — the channel
//! names its input found, the totals of the stats line, and the allocation counter, which
//! counts the live view's threads apart (see [`crate::allocs`]), and the niceness of those
//! threads.

use super::Input;
use reflex_config::LiveConfig;
use reflex_io::live::{LiveView, Options, Totals};
use reflex_io::sink::Sinks;
use reflex_io::source::Counters;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Binds `[live] listen` and starts serving; an address that cannot be bound is one line
/// naming the config, `[live] listen` and the address.
pub fn start(
    live: &LiveConfig,
    config: &Path,
    input: &Input,
    counters: &Arc<Counters>,
    sinks: &Sinks,
) -> anyhow::Result<LiveView> {
    let (c, loss) = (counters.clone(), sinks.loss());
    let totals = move || {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Totals {
            samples: load(&c.samples),
            windows: load(&c.inferred),
            decode_errors: load(&c.decode_errors),
            lost_samples: load(&c.lost_samples),
            dropped_windows: load(&c.dropped_windows),
            sink_lost: loss.lost(),
            allocs: crate::allocs::count(),
        }
    };
    let options = Options {
        listen: live.listen,
        channel_names: input.names.clone(),
        units: input.units.clone(),
        on_thread_start: viewer_thread,
        totals: Box::new(totals),
        counters: counters.clone(),
    };
    let view = LiveView::start(options).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    tracing::info!(url = %format_args!("ws://{}", view.addr()), "live view: Foxglove WebSocket server listening");
    Ok(view)
}

/// How much lower than the daemon's other threads the live view's run (`nice` steps): when a
/// viewer keeps them busy, the reader and inference threads still get the CPU first.
const NICER: libc::c_int = 10;

/// Runs first on every thread of the live view: its allocations are counted apart, and it
/// yields the CPU to the rest of the daemon.
fn viewer_thread() {
    crate::allocs::count_apart();
    // SAFETY: gettid takes no argument and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    // On Linux a thread id names that one thread for `getpriority` and `setpriority`.
    let tid = tid as libc::id_t;
    // SAFETY: plain integer arguments; nothing is borrowed.
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    // SAFETY: plain integer arguments; a failure is an error code, checked.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, now.saturating_add(NICER)) } != 0 {
        tracing::debug!("the live view's threads run at the daemon's priority");
    }
}

//! `[live]`: starts reflex-io's [`LiveView`] with what only the daemon knows — the channel
//! names its input found, the totals of the stats line, and the allocation counter, which
//! counts the live view's threads apart (see [`crate::allocs`]).

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
        on_thread_start: crate::allocs::count_apart,
        totals: Box::new(totals),
        counters: counters.clone(),
    };
    let view = LiveView::start(options).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    tracing::info!(url = %format_args!("ws://{}", view.addr()), "live view: Foxglove WebSocket server listening");
    Ok(view)
}

//! Signals, and the one thread of the daemon that runs tokio: SIGINT/SIGTERM set the stop,
//! SIGHUP asks the reloader for a new graph. Inference never runs here.

use crate::reload::Reloader;
use anyhow::Context;
use reflex_io::stop::Stop;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::UnboundedSender;

/// Runs `read` on a blocking thread and, until it returns, the signal handlers and the
/// reloader; returns what `read` returned.
pub fn serve<T: Send + 'static>(
    read: impl FnOnce(&Stop) -> T + Send + 'static,
    stop: Stop,
    reloader: Option<Reloader>,
) -> anyhow::Result<T> {
    // Its one blocking thread is the reader: named so in `top -H` and /proc.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("reader")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let (hup_tx, hup) = tokio::sync::mpsc::unbounded_channel();
        let signals = tokio::spawn(wait_for_signal(stop.clone(), hup_tx));
        let reloading = reloader.map(|r| tokio::spawn(r.run(hup)));
        let read = tokio::task::spawn_blocking(move || read(&stop)).await;
        signals.abort();
        if let Some(r) = reloading {
            r.abort();
        }
        read.map_err(|_| anyhow::anyhow!("the reader thread failed"))
    })
}

async fn wait_for_signal(stop: Stop, hup_tx: UnboundedSender<()>) {
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
    stop.set();
}

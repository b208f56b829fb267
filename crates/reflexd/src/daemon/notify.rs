//! systemd's notifications (sd_notify(3)) for `run`, when `NOTIFY_SOCKET` is set: `READY=1`
//! once the source is open (the graph is built before the pipeline starts), `WATCHDOG=1` every
//! `WATCHDOG_USEC / 2` while the inference thread makes progress, `RELOADING=1` … `READY=1`
//! around each rebuild of the graph, `STATUS=` with the rates, `STOPPING=1` at shutdown.
//! Without `NOTIFY_SOCKET` none of it exists.
//!
//! A thread of its own watches the pipeline's atomics and the stop request, so the hot path
//! does nothing for it. Progress, for the watchdog: a window finished since the last look, or
//! none waiting (an idle daemon is a healthy one). A window that stays in a plugin call for a
//! whole ping interval is no progress: the pings stop and systemd restarts the daemon.
//!
//! The messages are sd-notify's [`NotifyState`]s, written into a buffer on the stack and sent
//! on one socket connected at start, rather than through `sd_notify::notify`, which allocates
//! its message and opens a socket per call: a ping every few seconds would otherwise show in
//! the steady state's `allocs_per_window`, which counts every thread of the process.

use reflex_io::source::Counters;
use reflex_io::stop::Stop;
use sd_notify::NotifyState;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the notifier looks without a watchdog, or at most with one.
const TICK: Duration = Duration::from_millis(50);
/// How often `STATUS=` is refreshed with the rates since the last one.
const STATUS_EVERY: Duration = Duration::from_secs(2);
/// The longest one notification may wait for room in the socket.
const SEND_LIMIT: Duration = Duration::from_secs(1);

/// Rebuilds of the graph, begun and ended, as the reloader reports them.
#[derive(Debug, Default)]
pub struct Reloads {
    begun: AtomicU64,
    ended: AtomicU64,
}

/// One rebuild under way: it ends (refused, or handed to the inference thread) when dropped.
pub struct Reloading(Arc<Reloads>);

impl Reloads {
    /// A rebuild begins now.
    pub fn begin(self: &Arc<Self>) -> Reloading {
        self.begun.fetch_add(1, Ordering::Relaxed);
        Reloading(self.clone())
    }
}

impl Drop for Reloading {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the notifier watches.
pub struct Watched {
    /// The pipeline's counters: source opens, windows cut, dropped and finished, samples.
    pub counters: Arc<Counters>,
    /// The reloader's rebuilds.
    pub reloads: Arc<Reloads>,
    /// The stop request (SIGINT/SIGTERM).
    pub stop: Stop,
    /// The source is a device, opened by the reader's first read: `READY=1` waits for it. A
    /// log is open already.
    pub device: bool,
}

/// The notifier's thread.
pub struct Notifier {
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts the notifier when `NOTIFY_SOCKET` names a socket; `None` without it, or (one warning)
/// when it cannot be reached.
pub fn start(watched: Watched) -> Option<Notifier> {
    let path = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty())?;
    let socket = match connect(&path) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(socket = %path.to_string_lossy(), error = %e, "NOTIFY_SOCKET cannot be reached: no notifications to systemd");
            return None;
        }
    };
    let watchdog = sd_notify::watchdog_enabled().filter(|d| !d.is_zero());
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let systemd = Systemd { socket, warned: false };
    let spawned = std::thread::Builder::new().name("systemd".into()).spawn(move || {
        let mut n = Notify::new(systemd, watched, watchdog);
        n.run(&finished);
    });
    match spawned {
        Ok(thread) => Some(Notifier { done, thread }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the thread that notifies systemd");
            None
        }
    }
}

impl Notifier {
    /// Shutdown has begun: `STOPPING=1` (unless a stop request already said it), no more
    /// pings.
    pub fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// `NOTIFY_SOCKET`: a path, or `@name` in the abstract namespace.
fn connect(path: &std::ffi::OsStr) -> std::io::Result<UnixDatagram> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    match path.as_bytes().strip_prefix(b"@") {
        Some(name) => socket.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?)?,
        None => socket.connect(path)?,
    }
    socket.set_write_timeout(Some(SEND_LIMIT))?;
    Ok(socket)
}

/// The connected socket.
struct Systemd {
    socket: UnixDatagram,
    /// A failed send was logged.
    warned: bool,
}

impl Systemd {
    /// One datagram with `states`, one per line; a failure is logged once.
    fn send(&mut self, states: &[NotifyState]) {
        let mut buf = [0u8; 512];
        let mut w = &mut buf[..];
        for s in states {
            // Only a STATUS longer than the buffer could fail: it is cut short, never sent torn.
            if writeln!(w, "{s}").is_err() {
                return;
            }
        }
        let len = 512 - w.len();
        if let Err(e) = self.socket.send(&buf[..len]) {
            if !std::mem::replace(&mut self.warned, true) {
                tracing::warn!(error = %e, "cannot notify systemd");
            }
        }
    }
}

/// The notifier's state between two looks.
struct Notify {
    systemd: Systemd,
    w: Watched,
    /// Pinged every half of `WATCHDOG_USEC`.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    /// The windows finished at the last look, and when progress was last seen.
    inferred: u64,
    progress_at: Instant,
    /// Rebuilds whose `RELOADING=1` and whose `READY=1` were sent.
    announced: u64,
    readied: u64,
    /// When the last STATUS was sent, and the samples and windows then.
    status: (Instant, u64, u64),
}

impl Notify {
    fn new(systemd: Systemd, w: Watched, watchdog: Option<Duration>) -> Notify {
        let now = Instant::now();
        let status = (now, w.counters.samples.load(Ordering::Relaxed), w.counters.windows.load(Ordering::Relaxed));
        Notify {
            systemd,
            w,
            ping_every: watchdog.map(|d| d / 2),
            last_ping: None,
            inferred: 0,
            progress_at: now,
            announced: 0,
            readied: 0,
            status,
        }
    }

    fn tick(&self) -> Duration {
        self.ping_every.map_or(TICK, |p| (p / 8).clamp(Duration::from_millis(1), TICK))
    }

    fn run(&mut self, done: &AtomicBool) {
        let tick = self.tick();
        while self.w.device && self.w.counters.opens.load(Ordering::Relaxed) == 0 {
            if done.load(Ordering::Relaxed) || self.w.stop.sleep(tick) {
                self.stopping();
                return;
            }
        }
        self.systemd.send(&[NotifyState::Ready, NotifyState::Status("running")]);
        while !done.load(Ordering::Relaxed) && !self.w.stop.sleep(tick) {
            self.reloads();
            self.watchdog();
            self.status();
        }
        self.stopping();
    }

    fn stopping(&mut self) {
        self.systemd.send(&[NotifyState::Stopping, NotifyState::Status("stopping: finishing queued windows")]);
    }

    /// `RELOADING=1` for rebuilds begun since the last look, `READY=1` once all have ended.
    fn reloads(&mut self) {
        // `ended` first: it can then never be ahead of the `begun` read after it.
        let ended = self.w.reloads.ended.load(Ordering::Relaxed);
        let begun = self.w.reloads.begun.load(Ordering::Relaxed);
        if begun > self.announced {
            self.announced = begun;
            // systemd 253 and newer want the time of the reload with it.
            match NotifyState::monotonic_usec_now() {
                Ok(now) => {
                    self.systemd.send(&[NotifyState::Reloading, now, NotifyState::Status("reloading the graph")])
                }
                Err(_) => self.systemd.send(&[NotifyState::Reloading]),
            }
        }
        if ended == self.announced && self.readied < ended {
            self.readied = ended;
            self.systemd.send(&[NotifyState::Ready, NotifyState::Status("running")]);
        }
    }

    /// `WATCHDOG=1` every ping interval, while progress was seen within the last one.
    fn watchdog(&mut self) {
        let Some(every) = self.ping_every else { return };
        let c = &self.w.counters;
        let inferred = c.inferred.load(Ordering::Relaxed);
        let waiting = c
            .windows
            .load(Ordering::Relaxed)
            .saturating_sub(c.dropped_windows.load(Ordering::Relaxed))
            .saturating_sub(inferred);
        let now = Instant::now();
        if inferred != self.inferred || waiting == 0 {
            self.inferred = inferred;
            self.progress_at = now;
        }
        let due = self.last_ping.is_none_or(|t| now.duration_since(t) >= every);
        if due && now.duration_since(self.progress_at) < every {
            self.systemd.send(&[NotifyState::Watchdog]);
            self.last_ping = Some(now);
        }
    }

    /// `STATUS=` with the rates since the last one, every [`STATUS_EVERY`].
    fn status(&mut self) {
        let (since, samples, windows) = self.status;
        let elapsed = since.elapsed();
        if elapsed < STATUS_EVERY {
            return;
        }
        let c = &self.w.counters;
        let now = (Instant::now(), c.samples.load(Ordering::Relaxed), c.windows.load(Ordering::Relaxed));
        let secs = elapsed.as_secs_f64();
        let mut buf = [0u8; 256];
        let mut w = &mut buf[..];
        let written = write!(
            w,
            "{:.1} samples/s, {:.1} windows/s; {} windows dropped, {} decode errors",
            now.1.saturating_sub(samples) as f64 / secs,
            now.2.saturating_sub(windows) as f64 / secs,
            c.dropped_windows.load(Ordering::Relaxed),
            c.decode_errors.load(Ordering::Relaxed),
        );
        let len = 256 - w.len();
        if let (Ok(()), Ok(text)) = (written, std::str::from_utf8(&buf[..len])) {
            self.systemd.send(&[NotifyState::Status(text)]);
        }
        self.status = now;
    }
}

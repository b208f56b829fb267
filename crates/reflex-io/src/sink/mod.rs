//! Sinks: where prediction records go. A sink that may block (a file, stdout, a serial line)
//! has its own thread and its own bounded drop-oldest queue, so a slow, failing or absent
//! actuator never stalls the graph or the other sinks. A sink that never blocks — a UDP socket
//! in non-blocking mode — is written directly by the thread that sends the record (the
//! inference thread): no hand-off and no wake-up between a prediction and its datagram. What a
//! sink drops or fails to write is counted. A replay's output is [`Delivery::Lossless`]
//! instead: every sink has a thread, inference waits for it, and closing waits for it to
//! finish, so every record reaches the file or pipe.

mod file;
mod serial;
mod stdout;
mod udp;

use crate::error::{Error, SinkError, SinkName};
use crate::queue::{drop_oldest, DropOldest};
use crate::record::{Formatter, Prediction};
use reflex_config::{SinkConfig, SinkKind};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records waiting per sink before the oldest is dropped.
const QUEUE: usize = 256;
/// A sink's formatting buffer: more than a record takes, so that it never grows.
const BUFFER: usize = 64 * 1024;

/// Where one sink's bytes go.
trait Output: Send {
    /// Whether each JSON or CSV record ends with a newline (not for datagrams).
    fn lines(&self) -> bool {
        true
    }
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Makes every write return at once (full buffers fail the write instead of waiting);
    /// whether this output can: then it is written directly, without a thread.
    fn never_block(&mut self) -> bool {
        false
    }
}

/// Per-sink counters.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Records dropped because the sink's queue was full.
    pub dropped: AtomicU64,
    /// Records the output failed to take.
    pub failed: AtomicU64,
    /// Records written.
    pub written: AtomicU64,
    /// Records taken into the queue (written, failed or still waiting).
    pub accepted: AtomicU64,
}

/// What a sink does when it falls behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Drop the oldest waiting record (counted): actuators want the freshest prediction.
    DropOldest,
    /// Make the sender wait: a replay's output must hold every record.
    Lossless,
}

impl SinkStats {
    /// Dropped or failed so far (a running sink's loss; see [`Sinks::close`] for the final one).
    pub fn lost(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// Dropped, failed, or accepted but never written.
    fn lost_at_close(&self) -> u64 {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        load(&self.dropped) + load(&self.accepted).saturating_sub(load(&self.written))
    }
}

/// Every sink's counters; see [`Sinks::loss`].
#[derive(Clone, Debug)]
pub struct SinkLoss(Vec<Arc<SinkStats>>);

impl SinkLoss {
    /// Records dropped or failed, over all sinks.
    pub fn lost(&self) -> u64 {
        self.0.iter().map(|s| s.lost()).sum()
    }
}

struct Handle {
    /// As logs and errors name it: `sinks[1] (udp 127.0.0.1:9000)`.
    name: String,
    route: Route,
    stats: Arc<SinkStats>,
}

/// How records reach a sink's output.
enum Route {
    /// Through a queue to the sink's own thread.
    Queued { queue: DropOldest<Arc<Prediction>>, thread: JoinHandle<()> },
    /// Written by the sender itself. The lock is the inference thread's alone but for the
    /// supervisor's rare fallback records: uncontended, it costs no wake-up.
    Direct(std::sync::Mutex<Writer>),
}

/// A sink's output, its formatter and buffer, and when it last complained.
struct Writer {
    name: String,
    formatter: Formatter,
    output: Box<dyn Output>,
    buf: Vec<u8>,
    last_warning: Option<Instant>,
}

impl Writer {
    /// Formats and writes one record, flushing when `flush`; counts it written or failed.
    fn write(&mut self, record: &Prediction, flush: bool, stats: &SinkStats) {
        self.buf.clear();
        self.formatter.write(record, &mut self.buf, self.output.lines());
        let mut result = self.output.write(&self.buf);
        if result.is_ok() && flush {
            result = self.output.flush();
        }
        match result {
            Ok(()) => stats.written.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                // One warning per 10 s: an absent actuator must not flood the log.
                if self.last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(sink = %self.name, error = %e, "sink cannot write; records are counted as failed");
                    self.last_warning = Some(Instant::now());
                }
                stats.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Every configured sink, running.
pub struct Sinks {
    handles: Vec<Handle>,
    delivery: Delivery,
}

impl Sinks {
    /// Opens every sink (files, sockets); `outputs` is the number of values per record. Every
    /// sink that cannot start is one error, naming it.
    pub fn start(configs: &[SinkConfig], outputs: usize, delivery: Delivery) -> Result<Sinks, Vec<Error>> {
        let mut problems = Vec::new();
        let mut handles = Vec::new();
        for (index, cfg) in configs.iter().enumerate() {
            let sink = SinkName { index, what: describe(&cfg.kind) };
            match open(cfg, outputs)
                .and_then(|(formatter, output)| route(sink.to_string(), formatter, output, delivery))
            {
                Ok(h) => handles.push(h),
                Err(source) => problems.push(Error::Sink { sink, source }),
            }
        }
        if problems.is_empty() {
            Ok(Sinks { handles, delivery })
        } else {
            Err(problems)
        }
    }

    /// Hands a record to every sink: written at once to a direct one, queued for the others;
    /// blocks only for [`Delivery::Lossless`] sinks.
    pub fn send(&self, record: &Arc<Prediction>) {
        for h in &self.handles {
            let delivered = match (&h.route, self.delivery) {
                (Route::Direct(writer), _) => {
                    h.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    writer.lock().unwrap_or_else(|e| e.into_inner()).write(record, false, &h.stats);
                    continue;
                }
                (Route::Queued { queue, .. }, Delivery::DropOldest) => matches!(queue.send(record.clone()), Ok(None)),
                (Route::Queued { queue, .. }, Delivery::Lossless) => queue.send_all(record.clone()).is_ok(),
            };
            let counter = if delivered { &h.stats.accepted } else { &h.stats.dropped };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The most records the sinks can hold at once: their queues, and one being written each.
    pub fn capacity(&self) -> usize {
        self.handles.iter().filter(|h| matches!(h.route, Route::Queued { .. })).count() * (QUEUE + 1)
    }

    /// Records dropped or failed, over all sinks.
    pub fn lost(&self) -> u64 {
        // Not through `loss()`: the stats line reads this, and must not allocate.
        self.handles.iter().map(|h| h.stats.lost()).sum()
    }

    /// The sinks' counters, to be read on another thread while they run.
    pub fn loss(&self) -> SinkLoss {
        SinkLoss(self.handles.iter().map(|h| h.stats.clone()).collect())
    }

    /// Each sink's name (`sinks[1] (udp 127.0.0.1:9000)`) and counters, in config order: for
    /// whoever reports them while the sinks run.
    pub fn stats(&self) -> Vec<(String, Arc<SinkStats>)> {
        self.handles.iter().map(|h| (h.name.clone(), h.stats.clone())).collect()
    }

    /// Lets every sink write what it has queued and flush, waiting until `deadline` at most
    /// (without limit for [`Delivery::Lossless`]: nothing queued may be left behind). Returns
    /// the records lost over all sinks, counted once the sinks are done (a record still queued
    /// at the deadline counts as lost), and whether all finished in time.
    pub fn close(self, deadline: Instant) -> (u64, bool) {
        let lossless = self.delivery == Delivery::Lossless;
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for h in self.handles {
            match h.route {
                Route::Queued { queue, thread } => {
                    drop(queue);
                    threads.push(thread);
                }
                Route::Direct(writer) => {
                    let mut w = writer.into_inner().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = w.output.flush() {
                        tracing::warn!(sink = %w.name, error = %e, "sink cannot flush at shutdown");
                    }
                }
            }
            stats.push(h.stats);
        }
        let finished = loop {
            if threads.iter().all(JoinHandle::is_finished) {
                break true;
            }
            if !lossless && Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let lost = stats.iter().map(|s| s.lost_at_close()).sum();
        (lost, finished)
    }
}

fn describe(kind: &SinkKind) -> String {
    match kind {
        SinkKind::Stdout => "stdout".into(),
        SinkKind::File { path } => format!("file {}", path.display()),
        SinkKind::Udp { target } => format!("udp {target}"),
        SinkKind::Serial { path, .. } => format!("serial {}", path.display()),
    }
}

fn open(cfg: &SinkConfig, outputs: usize) -> Result<(Formatter, Box<dyn Output>), SinkError> {
    let formatter = Formatter::new(cfg.format, cfg.template.as_deref(), outputs)?;
    let output: Box<dyn Output> = match &cfg.kind {
        SinkKind::Stdout => Box::new(stdout::Stdout),
        SinkKind::File { path } => Box::new(file::File::open(path)?),
        SinkKind::Udp { target } => Box::new(udp::Udp::open(target)?),
        SinkKind::Serial { path, baud_rate } => Box::new(serial::Serial::new(path, *baud_rate)),
    };
    Ok((formatter, output))
}

/// A direct route for an output that can be made never to block (live only: a replay waits
/// for its sinks instead), else a thread of its own behind a queue.
fn route(
    name: String,
    formatter: Formatter,
    mut output: Box<dyn Output>,
    delivery: Delivery,
) -> Result<Handle, SinkError> {
    let stats = Arc::new(SinkStats::default());
    let direct = delivery == Delivery::DropOldest && output.never_block();
    let named = name.clone();
    let mut writer = Writer { name, formatter, output, buf: Vec::with_capacity(BUFFER), last_warning: None };
    if direct {
        return Ok(Handle { name: named, route: Route::Direct(std::sync::Mutex::new(writer)), stats });
    }
    let (queue, rx) = drop_oldest::<Arc<Prediction>>(QUEUE);
    let counters = stats.clone();
    let thread = std::thread::Builder::new().name(format!("sink {}", writer.name)).spawn(move || {
        for record in rx.iter() {
            // Flush when nothing else waits: records reach the actuator or the disk now,
            // and bursts are still written together.
            writer.write(&record, rx.is_empty(), &counters);
        }
        if let Err(e) = writer.output.flush() {
            tracing::warn!(sink = %writer.name, error = %e, "sink cannot flush at shutdown");
        }
    });
    let thread = thread.map_err(SinkError::Thread)?;
    Ok(Handle { name: named, route: Route::Queued { queue, thread }, stats })
}

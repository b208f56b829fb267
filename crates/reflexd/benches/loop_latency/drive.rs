//! One run of one contender: the writer (this thread) paces the frames into a pseudo-terminal,
//! the receiver thread collects every datagram with the kernel's arrival stamp, both on the
//! driver CPU.

use crate::contender::{self, Contender, Setup};
use crate::pin;
use crate::report::Stopped;
use crate::stamp;
use crate::stream::Frames;
use crate::support;
use anyhow::Context;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// After the last write: how long a silent contender is waited for.
const QUIET: Duration = Duration::from_secs(1);

/// After the last write: how long a contender still sending is waited for. A backlog longer
/// than this is a contender that did not keep up; its later windows count as missing.
const DRAIN: Duration = Duration::from_secs(10);

/// What one run measured.
pub struct Outcome {
    /// Windows the frames make (`(samples - length) / hop + 1`).
    pub windows: usize,
    /// Distinct windows whose datagram arrived.
    pub received: usize,
    /// The contender's `stopped` line.
    pub stopped: Stopped,
    /// A window's last sample written → its datagram at the receiving socket, sorted, µs.
    pub latencies_us: Vec<f64>,
    /// How far the writer fell behind its schedule at worst, µs: a contender that stops
    /// reading fills the pty and blocks the writer (a real UART would lose the bytes instead).
    pub lag_max_us: f64,
    /// `(window, values)` of every datagram, kept only when asked (the equality check).
    pub values: Vec<(u64, Vec<f64>)>,
    /// The contender's warning lines (e.g. real-time settings not permitted), without the
    /// time stamp.
    pub warnings: Vec<String>,
}

impl Outcome {
    /// Windows the contender said it dropped (`dropped_windows=`; none said: all missing
    /// ones), and datagrams missing beyond those.
    pub fn dropped(&self) -> u64 {
        self.stopped.number("dropped_windows").unwrap_or((self.windows - self.received) as u64)
    }

    pub fn missing(&self) -> u64 {
        ((self.windows - self.received) as u64).saturating_sub(self.dropped())
    }

    /// Datagrams that came more than `limit_us` after their window's last sample.
    pub fn late(&self, limit_us: f64) -> usize {
        self.latencies_us.len() - self.latencies_us.partition_point(|l| *l <= limit_us)
    }
}

/// Datagrams as received: the kernel's arrival stamps ([`stamp`]) and the bytes back to back,
/// parsed after the run so that the receiver does no more than the contender's peer must.
#[derive(Default)]
struct Datagrams {
    at: Vec<u64>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl Datagrams {
    fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.at.iter().zip(starts.zip(&self.ends)).map(|(at, (s, e))| (*at, &self.bytes[s..*e]))
    }
}

pub fn run(setup: &Setup, c: Contender, rate: f64, seconds: f64, keep_values: bool) -> anyhow::Result<Outcome> {
    let frames = setup.recording.frames((rate * seconds) as usize);
    let n = frames.count();
    let windows = if n < setup.length { 0 } else { (n - setup.length) / setup.hop + 1 };
    let imu = support::pty();
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    pin::big_receive_buffer(&sock).context("SO_RCVBUF")?;
    stamp::enable(&sock).context("SO_TIMESTAMPNS")?;
    let port = sock.local_addr()?.port();
    let log = setup.dir.path().join(format!("{}.log", c.name()));
    let child = setup.start(c, &imu.path, port, &log)?;
    // Subscribed to everything, then never read: a 4 KiB receive buffer stalls it quickly.
    let _stalled = (setup.stalled_viewer && c != Contender::Python).then(|| {
        let mut v = support::viewer::Viewer::connect_small(support::viewer::address(&log), 4096);
        v.subscribe(&support::viewer::TOPICS);
        v
    });

    let done = Arc::new(AtomicBool::new(false));
    let receiver = receive(sock, windows, Arc::clone(&done));
    let mut master = imu.master;
    let written = write(&mut master, &frames, rate);
    done.store(true, Ordering::Relaxed);
    let got = receiver.join().map_err(|_| anyhow::anyhow!("the receiver thread panicked"))?;
    let text = contender::stop(child, &log)?;
    let (sent_at, lag_max_us) = written.context("writing to the pty")?;

    let mut o = Outcome {
        windows,
        received: 0,
        stopped: Stopped::find(&text),
        latencies_us: Vec::with_capacity(got.at.len()),
        lag_max_us,
        values: Vec::new(),
        warnings: text.lines().filter_map(|l| l.split_once(" WARN ")).map(|(_, w)| w.trim().to_string()).collect(),
    };
    let mut seen = vec![false; windows];
    for (at, bytes) in got.iter() {
        let v: serde_json::Value = serde_json::from_slice(bytes).with_context(|| {
            format!("{}: a datagram that is not JSON: {}", c.name(), String::from_utf8_lossy(bytes))
        })?;
        let w = v["window"].as_u64().with_context(|| format!("{}: a datagram without `window`: {v}", c.name()))?;
        if let Some(s) = sent_at.get(w as usize * setup.hop + setup.length - 1) {
            o.latencies_us.push(at.saturating_sub(*s) as f64 / 1e3);
        }
        if let Some(first) = seen.get_mut(w as usize).filter(|s| !**s) {
            *first = true;
            o.received += 1;
        }
        if keep_values {
            let values = v["values"].as_array().map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect());
            o.values.push((w, values.with_context(|| format!("{}: a datagram without `values`: {v}", c.name()))?));
        }
    }
    o.latencies_us.sort_by(f64::total_cmp);
    Ok(o)
}

/// Writes frame i at `start + i / rate`; returns when each was written ([`stamp::now_ns`]) and
/// the worst lag.
fn write(master: &mut File, frames: &Frames, rate: f64) -> std::io::Result<(Vec<u64>, f64)> {
    let mut sent_at = Vec::with_capacity(frames.count());
    let mut lag = Duration::ZERO;
    let start = Instant::now();
    for (i, f) in frames.iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        // Sleep most of the way, spin the rest: the schedule is the experiment.
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            if d > Duration::from_micros(200) {
                std::thread::sleep(d - Duration::from_micros(150));
            }
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        // Stamped before the write: the contender's reader, woken by it, may preempt this
        // thread before write_all returns, and a later stamp would hide that time.
        sent_at.push(stamp::now_ns());
        lag = lag.max(Instant::now().saturating_duration_since(due));
        master.write_all(f)?;
    }
    Ok((sent_at, lag.as_secs_f64() * 1e6))
}

/// Collects datagrams until the writer is done and then every window has come, or the
/// contender has been quiet for [`QUIET`], or [`DRAIN`] has passed.
fn receive(sock: UdpSocket, windows: usize, done: Arc<AtomicBool>) -> JoinHandle<Datagrams> {
    std::thread::spawn(move || {
        let mut got = Datagrams {
            at: Vec::with_capacity(windows),
            ends: Vec::with_capacity(windows),
            bytes: Vec::with_capacity(windows * 128),
        };
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 65536];
        let mut last = Instant::now();
        let mut done_at = None;
        loop {
            match stamp::recv(&sock, &mut buf) {
                Ok((len, at)) => {
                    last = Instant::now();
                    got.at.push(at);
                    got.bytes.extend_from_slice(&buf[..len]);
                    got.ends.push(got.bytes.len());
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
            if done.load(Ordering::Relaxed) {
                let end = *done_at.get_or_insert_with(Instant::now);
                if got.at.len() >= windows || last.max(end).elapsed() > QUIET || end.elapsed() > DRAIN {
                    break;
                }
            }
        }
        got
    })
}

//! Sources: bytes in, timed samples out.
//!
//! A [`Source`] only reads: a serial device ([`serial::SerialDevice`]), a csv or raw log
//! ([`log::LogFile`]) or an MCAP recording's `/imu/raw` ([`mcap::McapRecording`]). Everything
//! else happens once, in [`Samples`], whatever the source: decoding, numbering, the time rule,
//! pacing a replay, counting malformed input, and recording what was read. So live and replay
//! share every step from the bytes on.

pub mod log;
pub mod mcap;
pub mod serial;

use crate::error::Error;
use crate::recording::unix_ns;
use crate::stop::Stop;
use crate::tap::Tap;
use bytes::BytesMut;
use reflex_codecs::{AnyDecoder, Format, Frame};
use reflex_config::{SourceConfig, Speed};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// Where bytes come from.
pub trait Source: Send {
    /// Appends what arrives next to `buf` and says what it was; blocks until something
    /// arrives, the input ends or `stop` is set.
    fn read(&mut self, buf: &mut BytesMut, stop: &Stop) -> Result<Chunk, Error>;

    /// Bytes read so far and the input's size, for a progress bar; `None` for a device.
    fn progress(&self) -> Option<(u64, u64)> {
        None
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn read(&mut self, buf: &mut BytesMut, stop: &Stop) -> Result<Chunk, Error> {
        (**self).read(buf, stop)
    }
    fn progress(&self) -> Option<(u64, u64)> {
        (**self).progress()
    }
}

/// What [`Source::read`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes were appended to the buffer.
    Bytes(Received),
    /// The device was (re)opened: half a frame from before is not data; decoding starts afresh.
    Restart,
    /// The stream ended: the bytes left are decoded as its end (a last csv line without its
    /// newline still counts).
    End,
    /// Reading stopped mid-stream (a stop request; the end of a recording of a live stream):
    /// a partial frame left over is not counted.
    Stopped,
}

/// When bytes were received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Just now, from a device: a window's latency runs from this instant.
    Live {
        /// When the read returned.
        at: Instant,
        /// The same, in Unix nanoseconds.
        unix_ns: u64,
    },
    /// At this Unix time in a recording: a replay is paced by it.
    Recorded(u64),
    /// Unknown (a plain log): samples are paced by their own time column, if any.
    Unknown,
}

/// How to decode a source's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoding {
    /// The wire format.
    pub format: Format,
    /// Values per sample.
    pub channels: usize,
    /// csv only: each line starts with a timestamp.
    pub time_column: bool,
}

impl Decoding {
    /// The `[source]` section's decoding.
    pub fn of(s: &SourceConfig) -> Decoding {
        Decoding { format: s.format, channels: s.channels, time_column: s.time_column }
    }

    fn decoder(self) -> AnyDecoder {
        AnyDecoder::new(self.format, self.channels, self.time_column)
    }

    /// The time rule: a sample's time is its csv time column; binary and witmotion samples
    /// have none of their own and get their receive time, so that a replay of a recording
    /// computes exactly the live values; csv without a time column has none.
    fn time(self, own: Option<f64>, received: Received) -> Option<f64> {
        let received = match received {
            Received::Live { unix_ns, .. } | Received::Recorded(unix_ns) => Some(unix_ns as f64 / 1e9),
            Received::Unknown => None,
        };
        own.or(received.filter(|_| self.format != Format::Csv))
    }
}

/// Counters the pipeline's threads update and the reporter reads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Samples decoded (and numbered).
    pub samples: AtomicU64,
    /// Windows completed.
    pub windows: AtomicU64,
    /// Malformed lines or frames skipped.
    pub decode_errors: AtomicU64,
    /// Samples known to be missing (binary counter gaps).
    pub lost_samples: AtomicU64,
    /// Windows dropped, oldest first, because inference fell behind.
    pub dropped_windows: AtomicU64,
    /// Windows the inference thread has finished with (whatever the outcome): its progress.
    pub inferred: AtomicU64,
    /// When the last sample was decoded, in [`mono_ns`] (0: none yet).
    pub last_sample_ns: AtomicU64,
    /// csv time column jumps: backwards, or forwards by more than [`JUMP_PERIODS`] periods.
    pub time_jumps: AtomicU64,
    /// Entries the live view dropped, oldest first, because its viewers fell behind.
    pub live_dropped: AtomicU64,
    /// Times the source was opened after its start: a device at its first read and whenever
    /// it came back (a log is open from the start and never counts here).
    pub opens: AtomicU64,
}

/// A csv time that moves on by more than this many sample periods is a jump.
pub const JUMP_PERIODS: f64 = 10.0;

/// Nanoseconds on the monotonic clock since the process first asked (never 0 once asked).
pub fn mono_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl Counters {
    /// Adds `n` to one counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// One decoded sample with its number and time.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedSample {
    /// Its number in decode order (docs/records.md).
    pub number: u64,
    /// `channels` values.
    pub values: SmallVec<[f32; 16]>,
    /// Its time in seconds (see the time rule in [`Decoding`]).
    pub t: Option<f64>,
    /// When it arrived: latency is measured from here.
    pub arrival: Instant,
}

/// The pipeline's first stage: any [`Source`], decoded into [`TimedSample`]s.
pub struct Samples<S> {
    source: S,
    decoding: Decoding,
    decoder: AnyDecoder,
    buf: BytesMut,
    received: Received,
    /// `Some` once the source has ended; `true` when its last bytes are to be decoded as the end.
    ended: Option<bool>,
    pace: Option<Pace>,
    next: u64,
    counters: Arc<Counters>,
    /// To the recorder and the live view.
    tap: Tap,
    /// The csv time column: the last time and the sample period seen so far.
    clock: Clock,
    /// Bytes read while no sample has decoded yet; `None` once a sample has, or the warning
    /// that the input does not fit was given.
    unfit: Option<u64>,
    /// Bytes of the last read: decoded in full once the next read is asked for.
    last_read: u64,
}

/// Bytes read without one sample before the input is said not to fit the config.
const UNFIT_AFTER: u64 = 4096;

/// Room for the largest read or recorded message, so that the buffer never grows.
const BUFFER: usize = 64 * 1024;

impl<S: Source> Samples<S> {
    /// `speed` paces a replay (a live source ignores it).
    pub fn new(source: S, decoding: Decoding, speed: Speed, counters: Arc<Counters>) -> Samples<S> {
        Samples {
            source,
            decoding,
            decoder: decoding.decoder(),
            buf: BytesMut::with_capacity(BUFFER),
            received: Received::Unknown,
            ended: None,
            pace: Pace::new(speed),
            next: 0,
            counters,
            tap: Tap::default(),
            unfit: Some(0),
            last_read: 0,
            clock: Clock::default(),
        }
    }

    /// Hands raw bytes, samples and device events to `tap` from now on.
    pub fn tap(&mut self, tap: Tap) {
        self.tap = tap;
    }

    /// See [`Source::progress`].
    pub fn progress(&self) -> Option<(u64, u64)> {
        self.source.progress()
    }

    /// The next sample, or `None` once the source has ended or `stop` is set. Malformed
    /// input and lost samples are counted on the way.
    pub fn next(&mut self, stop: &Stop) -> Result<Option<TimedSample>, Error> {
        loop {
            if stop.is_set() {
                return Ok(None);
            }
            let frame = match self.ended {
                None => self.decoder.decode(&mut self.buf),
                Some(true) => self.decoder.decode_eof(&mut self.buf),
                Some(false) => return Ok(None),
            };
            // The decoders report malformed input as frames; an error here is not input's.
            let frame = frame.unwrap_or(None);
            match frame {
                Some(Frame::Sample(s)) if s.values.len() == self.decoding.channels => {
                    return Ok(Some(self.sample(s.values, s.time, stop)));
                }
                Some(Frame::Sample(_) | Frame::Malformed(_)) => {
                    Counters::add(&self.counters.decode_errors, 1);
                    self.tap.decode_error(unix_ns(), self.next);
                }
                Some(Frame::Lost(n)) => Counters::add(&self.counters.lost_samples, n),
                None if self.ended.is_some() => self.ended = Some(false),
                None => self.read(stop)?,
            }
        }
    }

    fn sample(&mut self, values: SmallVec<[f32; 16]>, own: Option<f64>, stop: &Stop) -> TimedSample {
        if let (Some(pace), Received::Unknown, Some(t)) = (&mut self.pace, self.received, own) {
            pace.until(t, stop);
        }
        let (arrival, ns) = match self.received {
            Received::Live { at, unix_ns } => (at, unix_ns),
            Received::Recorded(ns) => (Instant::now(), ns),
            Received::Unknown => (Instant::now(), unix_ns()),
        };
        if let Some(t) = own {
            self.clock.tick(t, &self.counters);
        }
        let t = self.decoding.time(own, self.received);
        let number = self.next;
        self.next += 1;
        self.unfit = None;
        Counters::add(&self.counters.samples, 1);
        self.counters.last_sample_ns.store(mono_ns(), Ordering::Relaxed);
        self.tap.sample(ns, number, t, &values);
        TimedSample { number, values, t, arrival }
    }

    /// Input that does not fit the config is said once, not left to silence: 4 KiB decoded
    /// and not one sample (a wrong format, channel count or time column; witmotion without
    /// `0x52` packets). Reading goes on.
    fn check_fit(&mut self, n: u64) {
        let Some(read) = self.unfit.as_mut() else { return };
        *read += n;
        if *read >= UNFIT_AFTER {
            let d = self.decoding;
            tracing::error!(
                bytes = *read,
                decode_errors = self.counters.decode_errors.load(Ordering::Relaxed),
                "the input does not fit the config: not one sample decoded; the config expects {} with {} channels{}",
                d.format.name(),
                d.channels,
                if d.time_column { " after a time column" } else { "" }
            );
            self.unfit = None;
        }
    }

    fn read(&mut self, stop: &Stop) -> Result<(), Error> {
        // The previous read's bytes have all been through the decoder now (a 16 KiB read is
        // not "16 KiB without a sample" before it has been decoded).
        let decoded = std::mem::take(&mut self.last_read);
        self.check_fit(decoded);
        let before = self.buf.len();
        match self.source.read(&mut self.buf, stop)? {
            Chunk::Bytes(received) => {
                self.received = received;
                self.last_read = (self.buf.len() - before) as u64;
                let ns = match received {
                    Received::Live { unix_ns, .. } | Received::Recorded(unix_ns) => unix_ns,
                    Received::Unknown => unix_ns(),
                };
                if let (Some(pace), Received::Recorded(ns)) = (&mut self.pace, received) {
                    pace.until(ns as f64 / 1e9, stop);
                }
                // A recording of a replay holds the replayed bytes, so it replays in turn.
                self.tap.raw(ns, &self.buf[before..]);
            }
            Chunk::Restart => {
                Counters::add(&self.counters.opens, 1);
                self.decoder = self.decoding.decoder();
                // A device plugged back in starts its own clock: no jump.
                self.clock.last = None;
                self.buf.clear();
                self.tap.device_open(unix_ns());
            }
            Chunk::End => self.ended = Some(true),
            Chunk::Stopped => self.ended = Some(false),
        }
        Ok(())
    }
}

/// Follows a csv time column to count and log its jumps (docs/records.md).
#[derive(Default)]
struct Clock {
    last: Option<f64>,
    /// The smallest step forward seen: the sample period.
    period: Option<f64>,
    logged: Option<Instant>,
}

impl Clock {
    fn tick(&mut self, t: f64, counters: &Counters) {
        let Some(last) = self.last.replace(t) else { return };
        let step = t - last;
        let jump = step < 0.0 || self.period.is_some_and(|p| step > JUMP_PERIODS * p);
        if jump {
            Counters::add(&counters.time_jumps, 1);
            // One line per jump, at most one per 10 s.
            if self.logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                self.logged = Some(Instant::now());
                tracing::warn!(from = last, to = t, period = self.period, "the time column jumps");
            }
        } else if step > 0.0 {
            self.period = Some(self.period.map_or(step, |p| p.min(step)));
        }
    }
}

/// The longest a replay waits for one timestamp (a year): far longer than any session.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A replay's pace: times `t` (seconds) fed at `factor` times real time from the first one.
struct Pace {
    factor: f64,
    /// The first time and when it was fed.
    origin: Option<(f64, Instant)>,
}

impl Pace {
    /// `None` for `max`: as fast as inference takes the windows.
    fn new(speed: Speed) -> Option<Pace> {
        let factor = match speed {
            Speed::Max => return None,
            Speed::Realtime => 1.0,
            Speed::Factor(f) => f,
        };
        Some(Pace { factor, origin: None })
    }

    fn until(&mut self, t: f64, stop: &Stop) {
        let (t0, start) = *self.origin.get_or_insert((t, Instant::now()));
        // Any time and factor the config accepts (1e30 s, a factor of 1e-300) give a wait that
        // is at most `MAX_WAIT`: far beyond any session, and never an overflow. The wait itself
        // ends early on a stop.
        let secs = ((t - t0) / self.factor).clamp(0.0, MAX_WAIT.as_secs_f64());
        let after = Duration::try_from_secs_f64(secs).unwrap_or(MAX_WAIT);
        let due = start.checked_add(after).unwrap_or(start);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            stop.sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests;

//! Sources: bytes in, samples through the decoder and the windower, windows out.
//!
//! Both sources (a serial device, a recorded log) end in the same [`Feed`], so live and replay
//! share the decoder, the numbering of samples and windows, and the normalisation.

pub mod mcap;
pub mod replay;
pub mod serial;

use crate::queue::DropOldest;
use crate::recording::RecordHandle;
use crate::window::{Window, Windower};
use crossbeam_channel::{Receiver, Sender};
use reflex_codecs::Frame;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Counters the reader updates and the reporter reads.
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
    /// The [`Feed::probe`]'s count as it was when the last window was cut and queued.
    pub probe_at_last_window: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// How windows reach the inference thread.
pub enum WindowQueue {
    /// Live: when the queue is full the oldest waiting window is dropped and counted; the
    /// reader never waits for inference.
    Live(DropOldest<Window>),
    /// Replay: lossless, the reader waits for inference instead.
    Lossless(Sender<Window>),
}

/// The inference side went away: the reader should stop.
#[derive(Debug)]
pub struct Closed;

/// Decoded frames → numbered samples → windows → the queue.
pub struct Feed {
    windower: Windower,
    queue: WindowQueue,
    /// Buffers of windows the inference thread has finished with.
    recycled: Receiver<Vec<f32>>,
    counters: Arc<Counters>,
    recorder: Option<RecordHandle>,
    probe: Option<fn() -> u64>,
}

impl Feed {
    pub fn new(windower: Windower, queue: WindowQueue, recycled: Receiver<Vec<f32>>, counters: Arc<Counters>) -> Feed {
        Feed { windower, queue, recycled, counters, recorder: None, probe: None }
    }

    /// Reads `probe` (reflexd's process-wide allocation count) each time a window has been cut
    /// and queued, into [`Counters::probe_at_last_window`]: what happened up to the last window
    /// can then be told from what happened after it (the end of a log, shutdown).
    pub fn probe(&mut self, probe: fn() -> u64) {
        self.probe = Some(probe);
    }

    /// Records raw bytes, samples and device events from now on.
    pub fn record(&mut self, recorder: RecordHandle) {
        self.recorder = Some(recorder);
    }

    /// Bytes as read from the device, received at `ns` (Unix nanoseconds).
    pub fn raw(&self, ns: u64, bytes: &[u8]) {
        if let Some(r) = &self.recorder {
            r.raw(ns, bytes);
        }
    }

    /// The device was (re)opened: the decoder starts afresh.
    pub fn device_open(&self, ns: u64) {
        if let Some(r) = &self.recorder {
            r.device_open(ns);
        }
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Takes one decoded frame received at `ns` (Unix nanoseconds). `t` is the sample's
    /// timestamp when the frame carries none of its own (the receive time, for binary and
    /// witmotion).
    pub fn frame(&mut self, frame: Frame, t: Option<f64>, arrival: Instant, ns: u64) -> Result<(), Closed> {
        match frame {
            Frame::Malformed(_) => Counters::add(&self.counters.decode_errors, 1),
            Frame::Lost(n) => Counters::add(&self.counters.lost_samples, n),
            Frame::Sample(s) => {
                while let Ok(buf) = self.recycled.try_recv() {
                    self.windower.recycle(buf);
                }
                let t = s.time.or(t);
                let window = match self.windower.push(&s.values, t, arrival) {
                    Ok(w) => w,
                    // The decoder yields exactly `channels` values; anything else is malformed.
                    Err(_) => {
                        Counters::add(&self.counters.decode_errors, 1);
                        return Ok(());
                    }
                };
                if let Some(r) = &self.recorder {
                    r.sample(ns, self.windower.samples() - 1, t, &s.values);
                }
                Counters::add(&self.counters.samples, 1);
                if let Some(w) = window {
                    Counters::add(&self.counters.windows, 1);
                    self.send(w)?;
                    if let Some(probe) = self.probe {
                        self.counters.probe_at_last_window.store(probe(), Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, w: Window) -> Result<(), Closed> {
        match &self.queue {
            WindowQueue::Live(q) => match q.send(w) {
                Ok(None) => Ok(()),
                Ok(Some(old)) => {
                    Counters::add(&self.counters.dropped_windows, 1);
                    self.windower.recycle(old.data);
                    Ok(())
                }
                Err(_) => Err(Closed),
            },
            WindowQueue::Lossless(tx) => tx.send(w).map_err(|_| Closed),
        }
    }
}

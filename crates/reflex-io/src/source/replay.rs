//! A recorded log fed through the same decoder and windower as the live source, paced by the
//! samples' own timestamps (or as fast as inference takes them).

use super::{Closed, Feed};
use crate::recording::unix_ns;
use bytes::BytesMut;
use reflex_codecs::{AnyDecoder, Format};
use reflex_config::Speed;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// Bytes read from the log at a time (and recorded as one `/imu/raw` message by `--record`):
/// no more than a recorder's raw buffer holds.
const READ: usize = 16 * 1024;

/// A CSV (or raw binary/witmotion byte) log to replay.
#[derive(Clone, Debug)]
pub struct ReplaySource {
    pub path: PathBuf,
    pub format: Format,
    pub channels: usize,
    pub time_column: bool,
    pub speed: Speed,
}

/// How a replay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplayEnd {
    /// The whole log was fed.
    Finished,
    /// `stop` was set.
    Stopped,
    /// The inference side went away.
    Closed,
}

impl ReplaySource {
    /// Feeds the whole log on the calling thread (it may block on a lossless queue). Samples
    /// are paced by their timestamps unless `speed` is `max`; samples without a timestamp are
    /// fed as fast as possible.
    ///
    /// `progress(done, total)` is told how far into the file the replay is, in bytes.
    pub fn run(
        &self,
        feed: &mut Feed,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> std::io::Result<ReplayEnd> {
        let mut file = std::fs::File::open(&self.path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        let mut decoder = AnyDecoder::new(self.format, self.channels, self.time_column);
        let mut buf = BytesMut::with_capacity(2 * READ);
        let factor = match self.speed {
            Speed::Max => None,
            Speed::Realtime => Some(1.0),
            Speed::Factor(f) => Some(f),
        };
        // (first sample time, when it was fed)
        let mut origin: Option<(f64, Instant)> = None;
        let mut chunk = vec![0u8; READ];
        let mut eof = false;
        let total = file.metadata().map_or(0, |m| m.len());
        let mut done = 0u64;
        while !eof {
            let n = file.read(&mut chunk)?;
            done += n as u64;
            // A recording of a replayed log holds the log's bytes, so it replays in turn.
            feed.raw(unix_ns(), &chunk[..n]);
            progress(done, total);
            eof = n == 0;
            buf.extend_from_slice(&chunk[..n]);
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(ReplayEnd::Stopped);
                }
                let frame = if eof { decoder.decode_eof(&mut buf)? } else { decoder.decode(&mut buf)? };
                let Some(frame) = frame else { break };
                if let (Some(factor), reflex_codecs::Frame::Sample(s)) = (factor, &frame) {
                    if let Some(t) = s.time {
                        let (t0, start) = *origin.get_or_insert((t, Instant::now()));
                        let due = start + Duration::from_secs_f64(((t - t0) / factor).max(0.0));
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                if let Err(Closed) = feed.frame(frame, None, Instant::now(), unix_ns()) {
                    return Ok(ReplayEnd::Closed);
                }
            }
        }
        Ok(ReplayEnd::Finished)
    }
}

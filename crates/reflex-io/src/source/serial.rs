//! `kind = "serial"`: a serial device (or pseudo-terminal), reopened whenever it vanishes.
//!
//! A USB IMU that is unplugged shows up as end-of-file or EIO. The source logs it once and
//! tries to reopen the device with exponential backoff (100 ms doubling to 2 s) until it comes
//! back; it never gives up on its own and never spins while it waits.

use super::{Closed, Feed};
use crate::recording::unix_ns;
use bytes::BytesMut;
use reflex_codecs::{AnyDecoder, Format};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(2);

/// What to open and how to decode it.
#[derive(Clone, Debug)]
pub struct SerialSource {
    pub path: PathBuf,
    pub baud_rate: u32,
    pub format: Format,
    pub channels: usize,
    pub time_column: bool,
}

enum End {
    Stopped,
    Closed,
    Gone(String),
}

fn open(path: &Path, baud_rate: u32) -> Result<tokio_serial::SerialStream, tokio_serial::Error> {
    let builder = tokio_serial::new(path.to_string_lossy(), baud_rate);
    tokio_serial::SerialStream::open(&builder)
}

impl SerialSource {
    /// Reads until `stop` is cancelled or the inference side closes.
    pub async fn run(&self, feed: &mut Feed, stop: &CancellationToken) {
        let mut backoff = FIRST_RETRY;
        let mut reported = false;
        loop {
            if stop.is_cancelled() {
                return;
            }
            match open(&self.path, self.baud_rate) {
                Ok(port) => {
                    tracing::info!(device = %self.path.display(), baud_rate = self.baud_rate, "serial device open");
                    backoff = FIRST_RETRY;
                    match self.read(port, feed, stop).await {
                        End::Stopped | End::Closed => return,
                        End::Gone(why) => {
                            tracing::warn!(device = %self.path.display(), reason = %why, "serial device gone; reopening with backoff");
                            reported = true;
                        }
                    }
                }
                Err(e) if !reported => {
                    tracing::warn!(device = %self.path.display(), error = %e, "cannot open serial device; retrying with backoff");
                    reported = true;
                }
                Err(e) => {
                    tracing::debug!(device = %self.path.display(), error = %e, "still cannot open serial device")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(LONGEST_RETRY);
        }
    }

    async fn read(&self, mut port: tokio_serial::SerialStream, feed: &mut Feed, stop: &CancellationToken) -> End {
        // A fresh decoder per connection: half a frame from before the unplug is not data.
        let mut decoder = AnyDecoder::new(self.format, self.channels, self.time_column);
        feed.device_open(unix_ns());
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            buf.reserve(4096);
            let before = buf.len();
            let n = tokio::select! {
                r = port.read_buf(&mut buf) => r,
                _ = stop.cancelled() => return End::Stopped,
            };
            match n {
                Ok(0) => return End::Gone("end of file".into()),
                Err(e) => return End::Gone(e.to_string()),
                Ok(_) => {}
            }
            let arrival = Instant::now();
            let ns = unix_ns();
            feed.raw(ns, &buf[before..]);
            // csv samples carry their own time (or none); binary and witmotion get the receive
            // time, exactly as a replay of the recording will compute it.
            let t = (self.format != Format::Csv).then_some(ns as f64 / 1e9);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        if let Err(Closed) = feed.frame(frame, t, arrival, ns) {
                            return End::Closed;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return End::Gone(e.to_string()),
                }
            }
        }
    }
}

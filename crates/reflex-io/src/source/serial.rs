//! `kind = "serial"`: a serial device (or pseudo-terminal), reopened whenever it vanishes.
//!
//! A USB IMU that is unplugged shows up as end-of-file, a hang-up or EIO. The source logs it
//! once and reopens the device with exponential backoff (100 ms doubling to 2 s) until it comes
//! back; it never gives up on its own and never spins while it waits. A read takes every byte
//! the device holds, at once when there are some (the descriptor is non-blocking: one system
//! call per read at high rates); only when there are none does it wait in `poll`, for at most
//! 50 ms, so a stop is seen within that.

use super::{Chunk, Received, Source};
use crate::error::Error;
use crate::recording::unix_ns;
use crate::stop::Stop;
use bytes::BytesMut;
use serialport::TTYPort;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(2);
/// The longest a read waits before it looks at the stop request again.
const POLL: Duration = Duration::from_millis(50);
/// Bytes read at a time, at most.
const READ: usize = 4096;

/// A serial device.
pub struct SerialDevice {
    path: PathBuf,
    baud_rate: u32,
    port: Option<TTYPort>,
    backoff: Duration,
    /// Whether the device's absence has been logged since it was last open.
    reported: bool,
    /// The device just went away: wait before reopening it, so a device that opens but fails
    /// at once is not reopened in a loop.
    pause: bool,
}

impl SerialDevice {
    /// The device at `path`; it is opened by the first read.
    pub fn new(path: &Path, baud_rate: u32) -> SerialDevice {
        SerialDevice { path: path.into(), baud_rate, port: None, backoff: FIRST_RETRY, reported: false, pause: false }
    }

    fn open(&mut self, stop: &Stop) -> Chunk {
        if std::mem::take(&mut self.pause) {
            if stop.sleep(self.backoff) {
                return Chunk::Stopped;
            }
            self.backoff = (self.backoff * 2).min(LONGEST_RETRY);
        }
        loop {
            match serialport::new(self.path.to_string_lossy(), self.baud_rate).open_native() {
                Ok(port) => {
                    if let Err(e) = non_blocking(port.as_raw_fd()) {
                        tracing::warn!(device = %self.path.display(), error = %e, "cannot read without blocking; reads wait in poll first");
                    }
                    tracing::info!(device = %self.path.display(), baud_rate = self.baud_rate, "serial device open");
                    self.port = Some(port);
                    self.backoff = FIRST_RETRY;
                    self.reported = false;
                    return Chunk::Restart;
                }
                Err(e) if !self.reported => {
                    tracing::warn!(device = %self.path.display(), error = %e, "cannot open serial device; retrying with backoff");
                    self.reported = true;
                }
                Err(e) => tracing::debug!(device = %self.path.display(), error = %e, "still cannot open serial device"),
            }
            if stop.sleep(self.backoff) {
                return Chunk::Stopped;
            }
            self.backoff = (self.backoff * 2).min(LONGEST_RETRY);
        }
    }

    fn gone(&mut self, why: &dyn std::fmt::Display) {
        tracing::warn!(device = %self.path.display(), reason = %why, "serial device gone; reopening with backoff");
        self.port = None;
        self.reported = true;
        self.pause = true;
    }
}

impl Source for SerialDevice {
    fn read(&mut self, buf: &mut BytesMut, stop: &Stop) -> Result<Chunk, Error> {
        loop {
            let Some(port) = &self.port else { return Ok(self.open(stop)) };
            if stop.is_set() {
                return Ok(Chunk::Stopped);
            }
            match read(port.as_raw_fd(), buf) {
                Ok(Some(0)) => self.gone(&"end of file"),
                Ok(Some(_)) => {
                    return Ok(Chunk::Bytes(Received::Live { at: Instant::now(), unix_ns: unix_ns() }));
                }
                Ok(None) => {}
                Err(e) => self.gone(&e),
            }
        }
    }
}

/// `O_NONBLOCK` on the device, so that a read of a device with nothing to give returns at once.
fn non_blocking(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor this source owns, with flags only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Appends what the device holds to `buf`, waiting up to [`POLL`] only when it holds nothing:
/// `None` when nothing came.
fn read(fd: std::os::fd::RawFd, buf: &mut BytesMut) -> std::io::Result<Option<usize>> {
    match read_now(fd, buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => return interrupted(e),
        Ok(n) => return Ok(Some(n)),
    }
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut p, 1, POLL.as_millis() as libc::c_int) };
    match ready {
        0 => return Ok(None),
        r if r < 0 => return interrupted(std::io::Error::last_os_error()),
        _ => {}
    }
    read_now(fd, buf).map(Some).or_else(interrupted)
}

/// One `read` of up to [`READ`] bytes into `buf`'s spare room; 0 is the device's end (a
/// hang-up with nothing left to read).
fn read_now(fd: std::os::fd::RawFd, buf: &mut BytesMut) -> std::io::Result<usize> {
    buf.reserve(READ);
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`; `read` writes at
    // most that many.
    let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// A signal or a spurious wake-up is not the device's end.
fn interrupted(e: std::io::Error) -> std::io::Result<Option<usize>> {
    match e.kind() {
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => Ok(None),
        _ => Err(e),
    }
}

//! `kind = "serial"`: records written to an actuator controller's serial line.
//!
//! The device may be absent when the daemon starts or vanish later: the sink (re)opens it on
//! demand, at most every `RETRY`, and counts the records it could not write meanwhile.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RETRY: Duration = Duration::from_millis(500);
/// A write that takes longer means the controller is not reading: fail the record, keep going.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

pub struct Serial {
    path: PathBuf,
    baud_rate: u32,
    port: Option<Box<dyn serialport::SerialPort>>,
    last_attempt: Option<Instant>,
}

impl Serial {
    pub fn new(path: &Path, baud_rate: u32) -> Serial {
        Serial { path: path.to_path_buf(), baud_rate, port: None, last_attempt: None }
    }

    fn port(&mut self) -> io::Result<&mut Box<dyn serialport::SerialPort>> {
        if self.port.is_none() {
            if self.last_attempt.is_some_and(|t| t.elapsed() < RETRY) {
                // Not `io::Error::new`: that allocates, for every record while the device is away.
                return Err(io::ErrorKind::NotConnected.into());
            }
            self.last_attempt = Some(Instant::now());
            let port = serialport::new(self.path.to_string_lossy(), self.baud_rate)
                .timeout(WRITE_TIMEOUT)
                .open()
                .map_err(|e| io::Error::other(format!("cannot open {}: {e}", self.path.display())))?;
            self.port = Some(port);
        }
        self.port.as_mut().ok_or_else(|| io::Error::other("no port"))
    }
}

impl super::Output for Serial {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let result = self.port()?.write_all(bytes);
        if result.is_err() {
            self.port = None;
        }
        result
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.port {
            Some(p) => p.flush(),
            None => Ok(()),
        }
    }
}

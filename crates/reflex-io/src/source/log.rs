//! A csv (or raw binary/witmotion) log file, read from start to end.

use super::{Chunk, Received, Source};
use crate::error::Error;
use crate::stop::Stop;
use bytes::BytesMut;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes read at a time (and recorded as one `/imu/raw` message by `--record`): no more than
/// a recorder's raw buffer holds.
const READ: usize = 16 * 1024;

/// A log being read.
pub struct LogFile {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    done: u64,
}

impl LogFile {
    /// Opens the log at `path`.
    pub fn open(path: &Path) -> Result<LogFile, Error> {
        let read = |source| Error::Read { path: path.into(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        let size = file.metadata().map_err(read)?.len();
        Ok(LogFile { path: path.into(), file, size, done: 0 })
    }
}

impl Source for LogFile {
    fn read(&mut self, buf: &mut BytesMut, _stop: &Stop) -> Result<Chunk, Error> {
        let before = buf.len();
        buf.resize(before + READ, 0);
        let n = self.file.read(&mut buf[before..]);
        buf.truncate(before + *n.as_ref().unwrap_or(&0));
        let n = n.map_err(|source| Error::Read { path: self.path.clone(), source })?;
        self.done += n as u64;
        if n == 0 {
            tracing::info!("end of log");
            return Ok(Chunk::End);
        }
        Ok(Chunk::Bytes(Received::Unknown))
    }

    fn progress(&self) -> Option<(u64, u64)> {
        Some((self.done, self.size))
    }
}

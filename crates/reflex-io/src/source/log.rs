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

/// The channel names of a csv log's header line, if it has one (the first line other than
/// blank or comment, with a field that is not a number): its fields, less the time column's,
/// when there are exactly `channels` of them.
pub fn csv_header(path: &Path, channels: usize, time_column: bool) -> Option<Vec<String>> {
    let mut head = Vec::with_capacity(READ);
    std::fs::File::open(path).ok()?.take(READ as u64).read_to_end(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.iter().all(|f| f.parse::<f64>().is_ok()) {
        return None;
    }
    let names: Vec<String> = fields.into_iter().skip(usize::from(time_column)).map(String::from).collect();
    (names.len() == channels).then_some(names)
}

#[cfg(test)]
mod header_tests {
    use super::csv_header;

    #[test]
    fn a_header_names_the_channels_after_the_time_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        std::fs::write(&path, "# comment\n\ntime, acc_x,acc_y\n0.0,1,2\n").unwrap();
        assert_eq!(csv_header(&path, 2, true), Some(vec!["acc_x".to_string(), "acc_y".to_string()]));
        assert_eq!(csv_header(&path, 3, false).map(|n| n[0].clone()), Some("time".to_string()));
        assert_eq!(csv_header(&path, 2, false), None, "three fields for two channels");
        std::fs::write(&path, "0.0,1,2\n").unwrap();
        assert_eq!(csv_header(&path, 2, true), None, "no header");
    }
}

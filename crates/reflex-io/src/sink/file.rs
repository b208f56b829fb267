//! `kind = "file"`: records appended to a file.

use crate::error::SinkError;
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub struct File(BufWriter<std::fs::File>);

impl File {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> Result<File, SinkError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|f| File(BufWriter::new(f)))
            .map_err(|source| SinkError::Open { path: path.into(), source })
    }
}

impl super::Output for File {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

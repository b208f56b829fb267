//! `kind = "file"`: records appended to a file.
//!
//! Each record is handed to the kernel whole, as soon as it is formatted: a record counts as
//! written only once it is in the file (a buffer in between would count records the disk
//! never took), and a record the disk only partly took (disk full) is cut off again, so that
//! the file never ends in a torn record.

use crate::error::SinkError;
use std::io::{self, Write};
use std::path::Path;

pub struct File {
    file: std::fs::File,
    /// The file's length after the last whole record.
    whole: u64,
}

impl File {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> Result<File, SinkError> {
        let open = |path: &Path| -> io::Result<File> {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            let whole = file.metadata()?.len();
            Ok(File { file, whole })
        };
        open(path).map_err(|source| SinkError::Open { path: path.into(), source })
    }
}

impl super::Output for File {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.whole += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Part of the record may be in the file: cut it off (best effort; a device
                // such as /dev/full has no length to cut).
                let _ = self.file.set_len(self.whole);
                Err(e)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

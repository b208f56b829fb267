//! `kind = "file"`: records appended to a file.

use std::io::{self, BufWriter, Write};
use std::path::Path;

pub struct File(BufWriter<std::fs::File>);

impl File {
    pub fn open(path: &Path) -> Result<File, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|f| File(BufWriter::new(f)))
            .map_err(|e| format!("cannot open {} for appending: {e}", path.display()))
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

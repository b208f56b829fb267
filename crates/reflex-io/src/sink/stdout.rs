//! `kind = "stdout"`: records on the daemon's standard output.

use std::io::{self, Write};

pub struct Stdout;

impl super::Output for Stdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::stdout().lock().write_all(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

//! `reflexd info LOG.mcap`: what a recording holds (`reflex_io::info`), printed.

use reflex_io::mcap::McapFile;
use std::path::Path;

pub fn run(path: &Path) -> anyhow::Result<()> {
    print!("{}", reflex_io::info::describe(&McapFile::open(path)?));
    Ok(())
}

//! MCAP (<https://mcap.dev/spec>): the writer behind `run --record` and the one reader behind
//! both `replay LOG.mcap` and `replay --plot`.
//!
//! Our own rather than the `mcap` crate's: its readers copy every record they yield (they go
//! through a sans-io buffer and return owned records), and a replay must allocate nothing per
//! message. Ours walks the file in place, chunks included, and — like the crate's
//! `MessageStream` on a truncated file — yields every message up to the first damaged record:
//! a recording cut by power loss or `kill -9` replays up to its last complete chunk.

mod reader;
mod writer;

pub use reader::{Cursor, Damage, McapFile, Message};
pub(crate) use writer::McapWriter;
pub use writer::{CHUNK_INDEXES, MAGIC};

/// How a recording's chunks are compressed (`run --compression`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// zstd (level 3): about 2.5× smaller than none on IMU recordings.
    #[default]
    Zstd,
    /// LZ4 frames: faster, less compact.
    Lz4,
    /// Uncompressed chunks.
    None,
}

impl Compression {
    /// The name MCAP gives it in a chunk record (`""` for none).
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::None => "",
        }
    }

    /// `zstd`, `lz4` or `none`, as `--compression` takes it.
    pub fn from_flag(s: &str) -> Option<Compression> {
        match s {
            "zstd" => Some(Compression::Zstd),
            "lz4" => Some(Compression::Lz4),
            "none" => Some(Compression::None),
            _ => None,
        }
    }
}

/// Record opcodes (MCAP spec, "Records").
mod op {
    pub const HEADER: u8 = 0x01;
    pub const FOOTER: u8 = 0x02;
    pub const SCHEMA: u8 = 0x03;
    pub const CHANNEL: u8 = 0x04;
    pub const MESSAGE: u8 = 0x05;
    pub const CHUNK: u8 = 0x06;
    pub const MESSAGE_INDEX: u8 = 0x07;
    pub const CHUNK_INDEX: u8 = 0x08;
    pub const STATISTICS: u8 = 0x0B;
    pub const METADATA: u8 = 0x0C;
    pub const METADATA_INDEX: u8 = 0x0D;
    pub const SUMMARY_OFFSET: u8 = 0x0E;
    pub const DATA_END: u8 = 0x0F;
}

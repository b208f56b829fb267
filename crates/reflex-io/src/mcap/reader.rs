//! Reading an MCAP file in place: every message is a slice of the file, or of the one buffer a
//! compressed (zstd or lz4) chunk is decompressed into, reused chunk after chunk.

use super::{op, MAGIC};
use crate::error::Error;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// An MCAP file read into memory.
pub struct McapFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// One message, borrowed from the file (or from its decompressed chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The channel's id.
    pub channel: u16,
    /// The channel's topic, when its channel record came first (as it does in every file).
    pub topic: Option<&'a str>,
    /// Nanoseconds (a recording's receive time, Unix).
    pub log_time: u64,
    /// The message's bytes.
    pub data: &'a [u8],
}

/// Where and how a file is damaged: every message before that point has been read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// A record runs past the end of the file.
    #[error("a record at byte {offset} is cut short")]
    RecordCutShort {
        /// The record's first byte.
        offset: usize,
    },
    /// A record inside a chunk runs past the chunk's end.
    #[error("a record in the chunk at byte {offset} is cut short")]
    RecordInChunkCutShort {
        /// The chunk's first byte.
        offset: usize,
    },
    /// A chunk whose header, CRC or compression is unusable.
    #[error("the chunk at byte {offset}: {why}")]
    Chunk {
        /// The chunk's first byte.
        offset: usize,
        /// What is wrong with it.
        why: ChunkDamage,
    },
    /// A channel, message or metadata record whose fields do not parse.
    #[error("the {} at byte {offset}: a malformed {what}", if *in_chunk { "chunk" } else { "record" })]
    Malformed {
        /// The record's first byte (its chunk's, inside a chunk).
        offset: usize,
        /// Whether the record is inside a chunk.
        in_chunk: bool,
        /// `channel` or `message`.
        what: &'static str,
    },
    /// The file ends without its data end or footer record.
    #[error("no footer")]
    NoFooter,
}

impl Damage {
    /// Whether the file merely ends early — power loss or `kill -9` while recording, which
    /// leaves everything before the last complete chunk intact — rather than being damaged in
    /// the middle (a flipped byte, a bad CRC, a malformed record).
    pub fn is_cut_short(&self) -> bool {
        matches!(self, Damage::RecordCutShort { .. } | Damage::NoFooter)
    }
}

/// What is wrong with a chunk.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkDamage {
    /// Its header does not parse.
    #[error("malformed")]
    Malformed,
    /// A compression other than zstd and lz4.
    #[error("compressed with `{0}`: Reflex reads zstd, lz4 and uncompressed chunks")]
    Compressed(String),
    /// Its compressed records do not decompress to its size.
    #[error("it does not decompress ({0})")]
    Decompress(String),
    /// Its records do not match its CRC or its size.
    #[error("its CRC or size does not match its records")]
    Crc,
}

impl McapFile {
    /// Reads the file at `path`.
    pub fn open(path: &Path) -> Result<McapFile, Error> {
        let bytes = reflex_config::file::read_bounded(path, reflex_config::file::RECORDING_LIMIT)
            .map_err(|source| Error::ReadBounded { path: path.into(), source })?;
        Self::from_bytes(path, bytes)
    }

    /// A file's bytes already read; `path` only names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<McapFile, Error> {
        if !bytes.starts_with(MAGIC) {
            return Err(Error::NotMcap { path: path.into() });
        }
        Ok(McapFile { path: path.into(), bytes })
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The entries of the metadata record `name`, if the file has one.
    pub fn metadata(&self, name: &str) -> BTreeMap<String, String> {
        // Top-level records only: chunks are stepped over whole.
        let mut at = MAGIC.len();
        while let Some((opcode, content, next)) = record(&self.bytes, at) {
            if opcode == op::METADATA {
                let mut f = Fields(content);
                if f.str() == Some(name) {
                    let entries = f.u32().and_then(|n| f.take(n as usize)).unwrap_or_default();
                    let mut pairs = Fields(entries);
                    let mut found = BTreeMap::new();
                    while let (Some(k), Some(v)) = (pairs.str(), pairs.str()) {
                        found.insert(k.to_string(), v.to_string());
                    }
                    return found;
                }
            }
            at = next;
        }
        BTreeMap::new()
    }

    /// Every message in file order, up to the end or the first damage.
    pub fn messages(&self) -> Messages<'_> {
        Messages { file: &self.bytes, cursor: Cursor::default() }
    }
}

/// The messages of a file, in file order: [`McapFile::messages`]. Not an `Iterator`: a message
/// of a compressed chunk borrows the one decompression buffer, so it lives until the next call.
pub struct Messages<'a> {
    file: &'a [u8],
    cursor: Cursor,
}

impl Messages<'_> {
    /// The next message, or `None` at the end or the first damage.
    #[allow(clippy::should_implement_trait, reason = "a lending iterator: a message borrows the cursor's buffer")]
    pub fn next(&mut self) -> Option<Message<'_>> {
        self.cursor.next(self.file)
    }

    /// Where the file is damaged, once the messages are exhausted.
    pub fn damage(&self) -> Option<&Damage> {
        self.cursor.damage()
    }
}

/// The largest chunk a recording may hold once decompressed (`reflexd` writes 768 KiB ones).
const MAX_CHUNK: usize = 1 << 30;

/// Decompressors and the buffer they fill, made once and reused for every chunk.
#[derive(Default)]
struct Unpacker {
    /// The records of the chunk being read, decompressed.
    records: Vec<u8>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    lz4: Option<lz4_flex::frame::FrameDecoder<std::io::Cursor<Vec<u8>>>>,
}

impl std::fmt::Debug for Unpacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpacker").field("records", &self.records.len()).finish_non_exhaustive()
    }
}

impl Unpacker {
    /// Decompresses `packed` (`size` bytes once decompressed) into `self.records`.
    fn unpack(&mut self, compression: &str, packed: &[u8], size: usize) -> Result<(), ChunkDamage> {
        use std::io::Read;
        let bad = |e: std::io::Error| ChunkDamage::Decompress(e.to_string());
        self.records.clear();
        if size > MAX_CHUNK {
            return Err(ChunkDamage::Malformed);
        }
        match compression {
            "zstd" => {
                let z = match &mut self.zstd {
                    Some(z) => z,
                    None => self.zstd.insert(zstd::bulk::Decompressor::new().map_err(bad)?),
                };
                self.records.reserve(size);
                z.decompress_to_buffer(packed, &mut self.records).map_err(bad)?;
            }
            "lz4" => {
                let d = self
                    .lz4
                    .get_or_insert_with(|| lz4_flex::frame::FrameDecoder::new(std::io::Cursor::new(Vec::new())));
                let input = d.get_mut();
                input.get_mut().clear();
                input.get_mut().extend_from_slice(packed);
                input.set_position(0);
                self.records.resize(size, 0);
                d.read_exact(&mut self.records).map_err(bad)?;
                // The frame's end mark: the next chunk starts a fresh frame.
                if d.read(&mut [0u8; 1]).map_err(bad)? != 0 {
                    return Err(ChunkDamage::Crc);
                }
            }
            other => return Err(ChunkDamage::Compressed(other.into())),
        }
        Ok(())
    }
}

/// A position in a file's messages that borrows nothing, so that its owner may also own the
/// file (the replay source does).
#[derive(Debug, Default)]
pub struct Cursor {
    /// The next top-level record (0: before the magic).
    at: usize,
    /// Inside a chunk: its next record, its records' end and the chunk's offset; in the file,
    /// or in `unpacker.records` for a compressed chunk.
    chunk: Option<(usize, usize, usize)>,
    /// Whether the chunk being read was compressed.
    unpacked: bool,
    unpacker: Unpacker,
    topics: HashMap<u16, String>,
    /// Set once the end is reached: `Some(None)` for a complete file.
    end: Option<Option<Damage>>,
}

impl Cursor {
    /// The topic of a channel seen so far.
    pub fn topic(&self, channel: u16) -> Option<&str> {
        self.topics.get(&channel).map(String::as_str)
    }

    /// Why the messages ended early, once they have ended.
    pub fn damage(&self) -> Option<&Damage> {
        self.end.as_ref().and_then(Option::as_ref)
    }

    /// The next message of `file` (always the same file), or `None` at its end. It borrows
    /// the cursor too: a compressed chunk's messages are slices of its decompression buffer.
    pub fn next<'a>(&'a mut self, file: &'a [u8]) -> Option<Message<'a>> {
        while self.end.is_none() {
            let found = match self.chunk {
                Some(chunk) => self.in_chunk(file, chunk),
                None => self.top_level(file),
            };
            match found {
                Ok(Some(m)) => {
                    let base = if m.in_buffer { &self.unpacker.records[..] } else { file };
                    let topic = self.topics.get(&m.channel).map(String::as_str);
                    return Some(Message {
                        channel: m.channel,
                        topic,
                        log_time: m.log_time,
                        data: &base[m.data.0..m.data.1],
                    });
                }
                Ok(None) => {}
                Err(damage) => self.end = Some(Some(damage)),
            }
        }
        None
    }

    fn top_level(&mut self, file: &[u8]) -> Result<Option<Found>, Damage> {
        let offset = self.at.max(MAGIC.len());
        let rest = file.get(offset..).unwrap_or_default();
        if rest.is_empty() {
            return Err(Damage::NoFooter);
        }
        if rest == MAGIC {
            self.end = Some(None);
            return Ok(None);
        }
        let (opcode, content, next) = record(file, offset).ok_or(Damage::RecordCutShort { offset })?;
        self.at = next;
        match opcode {
            op::CHUNK => {
                let damage = |why| Damage::Chunk { offset, why };
                match chunk(content).map_err(damage)? {
                    Records::Plain(records) => {
                        // A slice of `file`: its offset in it.
                        let start = records.as_ptr() as usize - file.as_ptr() as usize;
                        self.chunk = Some((start, start + records.len(), offset));
                        self.unpacked = false;
                    }
                    Records::Packed { compression, packed, size, crc } => {
                        self.unpacker.unpack(compression, packed, size).map_err(damage)?;
                        let records = &self.unpacker.records;
                        if records.len() != size || (crc != 0 && crc32fast::hash(records) != crc) {
                            return Err(damage(ChunkDamage::Crc));
                        }
                        self.chunk = Some((0, size, offset));
                        self.unpacked = true;
                    }
                }
                Ok(None)
            }
            op::DATA_END | op::FOOTER => {
                self.end = Some(None);
                Ok(None)
            }
            _ => {
                let found = Self::one(&mut self.topics, opcode, content, offset + 9)
                    .map_err(|what| Damage::Malformed { offset, in_chunk: false, what })?;
                Ok(found.map(|f| Found { in_buffer: false, ..f }))
            }
        }
    }

    fn in_chunk(&mut self, file: &[u8], (at, end, offset): (usize, usize, usize)) -> Result<Option<Found>, Damage> {
        if at >= end {
            self.chunk = None;
            return Ok(None);
        }
        let in_buffer = self.unpacked;
        let base = if in_buffer { &self.unpacker.records[..] } else { file };
        let (opcode, content, next) = record(&base[..end], at).ok_or(Damage::RecordInChunkCutShort { offset })?;
        self.chunk = Some((next, end, offset));
        let found = Self::one(&mut self.topics, opcode, content, at + 9).map_err(|what| Damage::Malformed {
            offset,
            in_chunk: true,
            what,
        })?;
        Ok(found.map(|f| Found { in_buffer, ..f }))
    }

    /// A channel is remembered, a message found, anything else stepped over. `at` is where
    /// `content` starts in its file or buffer.
    fn one(
        topics: &mut HashMap<u16, String>,
        opcode: u8,
        content: &[u8],
        at: usize,
    ) -> Result<Option<Found>, &'static str> {
        let mut f = Fields(content);
        match opcode {
            op::CHANNEL => {
                let (id, _schema, topic) = (f.u16(), f.u16(), f.str());
                let (Some(id), Some(_), Some(topic)) = (id, _schema, topic) else { return Err("channel") };
                topics.insert(id, topic.to_string());
                Ok(None)
            }
            op::MESSAGE => {
                let (channel, _sequence, log_time, _publish) = (f.u16(), f.u32(), f.u64(), f.u64());
                let (Some(channel), Some(_), Some(log_time), Some(_)) = (channel, _sequence, log_time, _publish) else {
                    return Err("message");
                };
                let start = at + 2 + 4 + 8 + 8;
                Ok(Some(Found { channel, log_time, data: (start, at + content.len()), in_buffer: false }))
            }
            _ => Ok(None),
        }
    }
}

/// A message found, by position: in the file or in the decompression buffer.
struct Found {
    channel: u16,
    log_time: u64,
    data: (usize, usize),
    in_buffer: bool,
}

/// A chunk's records: in place, or compressed.
enum Records<'a> {
    Plain(&'a [u8]),
    Packed { compression: &'a str, packed: &'a [u8], size: usize, crc: u32 },
}

/// The record at `at`: opcode, content and where the next record starts.
fn record(file: &[u8], at: usize) -> Option<(u8, &[u8], usize)> {
    let mut f = Fields(file.get(at..)?);
    let opcode = f.take(1)?[0];
    let len = usize::try_from(f.u64()?).ok()?;
    let content = f.take(len)?;
    Some((opcode, content, at + 9 + len))
}

/// The records of a chunk: an uncompressed chunk's checked against its CRC; a compressed one's
/// are checked once decompressed.
fn chunk(content: &[u8]) -> Result<Records<'_>, ChunkDamage> {
    let mut f = Fields(content);
    let (_start, _end, size, crc) = (f.u64(), f.u64(), f.u64(), f.u32());
    let (Some(_), Some(_), Some(size), Some(crc)) = (_start, _end, size, crc) else {
        return Err(ChunkDamage::Malformed);
    };
    let compression = f.str().ok_or(ChunkDamage::Malformed)?;
    let len = f.u64().and_then(|n| usize::try_from(n).ok()).ok_or(ChunkDamage::Malformed)?;
    let records = f.take(len).ok_or(ChunkDamage::Malformed)?;
    if !compression.is_empty() {
        let size = usize::try_from(size).map_err(|_| ChunkDamage::Malformed)?;
        return Ok(Records::Packed { compression, packed: records, size, crc });
    }
    if records.len() as u64 != size || (crc != 0 && crc32fast::hash(records) != crc) {
        return Err(ChunkDamage::Crc);
    }
    Ok(Records::Plain(records))
}

/// Reads MCAP's little-endian fields off the front of a slice.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::McapWriter;
    use super::*;

    use crate::mcap::Compression;

    const ALL: [Compression; 3] = [Compression::None, Compression::Zstd, Compression::Lz4];

    /// 100 messages on `/raw`, a chunk closed after every 10.
    fn file() -> Vec<u8> {
        file_with(Compression::None)
    }

    fn file_with(compression: Compression) -> Vec<u8> {
        let mut w = McapWriter::new(Vec::new(), "", "test", 1 << 20, compression).unwrap();
        let raw = w.add_channel(0, "/raw", "").unwrap();
        let mut m = BTreeMap::new();
        m.insert("format".to_string(), "csv".to_string());
        w.write_metadata("reflex", &m).unwrap();
        for i in 0..100u32 {
            w.write_message(raw, i, 1000 + u64::from(i), &[i as u8; 3]).unwrap();
            if i % 10 == 9 {
                w.flush().unwrap();
            }
        }
        w.finish().unwrap()
    }

    fn read(bytes: &[u8]) -> (Vec<u64>, Option<Damage>) {
        let mut cursor = Cursor::default();
        let mut times = Vec::new();
        while let Some(m) = cursor.next(bytes) {
            assert_eq!(m.topic, Some("/raw"));
            assert_eq!(m.data, [(m.log_time - 1000) as u8; 3]);
            times.push(m.log_time);
        }
        (times, cursor.damage().cloned())
    }

    #[test]
    fn a_complete_file_reads_whole_in_place() {
        for c in ALL {
            let (times, damage) = read(&file_with(c));
            assert_eq!(times, (1000..1100).collect::<Vec<_>>(), "{c:?}");
            assert_eq!(damage, None);
        }
    }

    #[test]
    fn compressed_chunks_are_smaller_and_reuse_one_buffer() {
        let plain = file_with(Compression::None).len();
        for c in [Compression::Zstd, Compression::Lz4] {
            let bytes = file_with(c);
            assert!(bytes.len() < plain, "{c:?}: {} >= {plain}", bytes.len());
            let mut cursor = Cursor::default();
            let mut capacity = None;
            while cursor.next(&bytes).is_some() {
                let now = cursor.unpacker.records.capacity();
                assert!(capacity.is_none_or(|c| c == now), "the buffer grew");
                capacity = Some(now);
            }
        }
    }

    #[test]
    fn a_corrupt_compressed_chunk_is_damage_not_a_panic() {
        for c in [Compression::Zstd, Compression::Lz4] {
            let mut bytes = file_with(c);
            // The first chunk's compressed records start well after its header.
            let first_chunk = bytes.iter().position(|b| *b == op::CHUNK).unwrap();
            let at = first_chunk + 9 + 8 + 8 + 8 + 4 + 4 + c.name().len() + 8 + 6;
            for b in &mut bytes[at..at + 8] {
                *b ^= 0x5a;
            }
            let (times, damage) = read(&bytes);
            assert!(times.is_empty(), "{c:?}");
            assert!(matches!(damage, Some(Damage::Chunk { .. })), "{c:?}: {damage:?}");
        }
    }

    #[test]
    fn a_file_cut_anywhere_reads_up_to_its_last_complete_chunk() {
        for c in [Compression::Zstd, Compression::Lz4] {
            let whole = file_with(c);
            for cut in (MAGIC.len()..whole.len() - 100).step_by(23) {
                let (times, damage) = read(&whole[..cut]);
                assert_eq!(times.len() % 10, 0, "{c:?}: only whole chunks, cut at {cut}");
                assert!(damage.is_some() || times.len() == 100, "cut at {cut}");
            }
        }
        let whole = file();
        for cut in (MAGIC.len()..whole.len() - 200).step_by(37) {
            let (times, damage) = read(&whole[..cut]);
            assert_eq!(times.len() % 10, 0, "only whole chunks, cut at {cut}");
            assert_eq!(times, (1000..1000 + times.len() as u64).collect::<Vec<_>>());
            // Only a cut in the summary, after the data end, goes unreported: every message is
            // there.
            assert!(damage.is_some() || times.len() == 100, "cut at {cut}");
        }
    }

    #[test]
    fn metadata_is_found_without_reading_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.mcap");
        std::fs::write(&path, file()).unwrap();
        let f = McapFile::open(&path).unwrap();
        assert_eq!(f.metadata("reflex").get("format").map(String::as_str), Some("csv"));
        std::fs::write(&path, b"not mcap").unwrap();
        assert!(matches!(McapFile::open(&path), Err(Error::NotMcap { .. })));
    }
}

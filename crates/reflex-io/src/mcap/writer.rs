//! A small MCAP writer for recordings (<https://mcap.dev/spec>): chunks (zstd, lz4 or
//! uncompressed) with message indexes, CRCs, and a summary (schemas, channels, statistics, chunk
//! and metadata indexes, summary offsets), as the `mcap` crate's writer produces them — but once
//! warm it allocates nothing per message or per chunk: the open chunk, its compressed form, the
//! compressor's own state and the message indexes are reused from chunk to chunk, and the chunk
//! indexes kept for the summary have room for [`CHUNK_INDEXES`] chunks from the start.

use crc32fast::Hasher;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The bytes an MCAP file starts and ends with.
pub const MAGIC: &[u8] = b"\x89MCAP0\r\n";

/// Chunk indexes reserved at the start: an hour and more of one chunk per second. A longer
/// recording doubles the reservation (one allocation at 4096 chunks, one at 8192, …).
pub const CHUNK_INDEXES: usize = 4096;
/// The most channels a recording may have.
const MAX_CHANNELS: usize = 8;

use super::{op, Compression};

/// zstd's level: its default, fast enough for a recorder thread on a low-power ARM host.
const ZSTD_LEVEL: i32 = 3;

/// A compressor kept for the whole recording, with its output buffer.
enum Packer {
    None,
    Zstd(Box<zstd::stream::raw::Encoder<'static>>, Vec<u8>),
    Lz4(Box<lz4_flex::frame::FrameEncoder<Vec<u8>>>),
}

impl Packer {
    fn new(compression: Compression, capacity: usize) -> io::Result<Packer> {
        Ok(match compression {
            Compression::None => Packer::None,
            Compression::Zstd => Packer::Zstd(
                Box::new(zstd::stream::raw::Encoder::new(ZSTD_LEVEL)?),
                Vec::with_capacity(zstd::zstd_safe::compress_bound(capacity)),
            ),
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max1MB)
                    .content_checksum(false);
                let out = Vec::with_capacity(capacity + capacity / 64 + 1024);
                Packer::Lz4(Box::new(lz4_flex::frame::FrameEncoder::with_frame_info(info, out)))
            }
        })
    }

    /// `records` compressed (or as they are), in a buffer reused chunk after chunk.
    fn pack<'a>(&'a mut self, records: &'a [u8]) -> io::Result<&'a [u8]> {
        match self {
            Packer::None => Ok(records),
            Packer::Zstd(z, out) => {
                use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
                out.clear();
                out.reserve(zstd::zstd_safe::compress_bound(records.len()));
                // Fed as a stream of unknown size: the encoder's parameters, and so its memory,
                // are the same for every chunk. (A one-shot call sizes them to each chunk and
                // reallocates its tables for a chunk larger than any before.)
                z.reinit()?;
                let full = || io::Error::other("zstd: the output buffer is full");
                let mut input = InBuffer::around(records);
                let mut output = OutBuffer::around(out);
                while input.pos() < records.len() {
                    if output.pos() == output.capacity() {
                        return Err(full());
                    }
                    z.run(&mut input, &mut output)?;
                }
                while z.finish(&mut output, true)? != 0 {
                    if output.pos() == output.capacity() {
                        return Err(full());
                    }
                }
                Ok(out)
            }
            Packer::Lz4(enc) => {
                enc.get_mut().clear();
                enc.write_all(records)?;
                enc.try_finish().map_err(io::Error::other)?;
                Ok(enc.get_ref())
            }
        }
    }
}

/// MCAP's little-endian encodings, appended to a buffer.
trait Put {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
    /// A string: u32 byte length, then the bytes.
    fn str(&mut self, s: &str);
}

impl Put for Vec<u8> {
    fn u8(&mut self, v: u8) {
        self.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.extend_from_slice(s.as_bytes());
    }
}

/// The file: its position, the CRC of the data section and, once started, of the summary.
struct Out<W> {
    w: W,
    pos: u64,
    data_crc: Option<Hasher>,
    summary_crc: Option<Hasher>,
}

impl<W: Write> Out<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        for h in [&mut self.data_crc, &mut self.summary_crc].into_iter().flatten() {
            h.update(bytes);
        }
        Ok(())
    }

    /// A record: opcode, content length, content.
    fn record(&mut self, opcode: u8, content: &[u8]) -> io::Result<()> {
        self.write(&[opcode])?;
        self.write(&(content.len() as u64).to_le_bytes())?;
        self.write(content)
    }
}

struct Channel {
    id: u16,
    schema: u16,
    topic: &'static str,
    encoding: &'static str,
}

struct Schema {
    id: u16,
    name: &'static str,
    encoding: &'static str,
    data: Vec<u8>,
}

#[derive(Clone, Copy)]
struct ChunkIndex {
    start: u64,
    end: u64,
    offset: u64,
    length: u64,
    /// The chunk's records, compressed.
    compressed: u64,
    /// Where each channel's message index is, for the channels in the chunk.
    message_indexes: [Option<u64>; MAX_CHANNELS],
    message_index_length: u64,
    size: u64,
}

/// An MCAP file being written.
pub struct McapWriter<W: Write> {
    out: Out<W>,
    schemas: Vec<Schema>,
    channels: Vec<Channel>,
    /// The open chunk's records.
    chunk: Vec<u8>,
    /// Close the chunk once it holds this many bytes.
    chunk_target: usize,
    /// Per channel: (log_time, offset in the chunk) of the open chunk's messages.
    indexes: Vec<Vec<(u64, u64)>>,
    /// The open chunk's first and last log_time.
    chunk_bounds: Option<(u64, u64)>,
    chunk_indexes: Vec<ChunkIndex>,
    /// (offset, length, name) of each metadata record.
    metadata: Vec<(u64, u64, String)>,
    /// Messages per channel, and the first and last log_time of all.
    counts: [u64; MAX_CHANNELS],
    bounds: Option<(u64, u64)>,
    /// Record content being built.
    scratch: Vec<u8>,
    compression: Compression,
    packer: Packer,
}

fn too_many() -> io::Error {
    io::Error::other(format!("an MCAP recording has at most {MAX_CHANNELS} channels"))
}

fn widen(bounds: Option<(u64, u64)>, t: u64) -> Option<(u64, u64)> {
    Some(bounds.map_or((t, t), |(a, b)| (a.min(t), b.max(t))))
}

impl<W: Write> McapWriter<W> {
    /// Writes the magic and the header. Chunks are closed when they reach `chunk_target` bytes
    /// (and whenever [`McapWriter::flush`] is called), and compressed with `compression`.
    pub fn new(w: W, profile: &str, library: &str, chunk_target: usize, compression: Compression) -> io::Result<Self> {
        let mut out = Out { w, pos: 0, data_crc: Some(Hasher::new()), summary_crc: None };
        out.write(MAGIC)?;
        let mut scratch = Vec::with_capacity(4096);
        scratch.str(profile);
        scratch.str(library);
        out.record(op::HEADER, &scratch)?;
        Ok(McapWriter {
            out,
            schemas: Vec::new(),
            channels: Vec::new(),
            // A chunk is closed at the first message past the target: room for one more.
            chunk: Vec::with_capacity(chunk_target + 64 * 1024),
            chunk_target,
            indexes: Vec::new(),
            chunk_bounds: None,
            chunk_indexes: Vec::with_capacity(CHUNK_INDEXES),
            metadata: Vec::new(),
            counts: [0; MAX_CHANNELS],
            bounds: None,
            scratch,
            compression,
            packer: Packer::new(compression, chunk_target + 64 * 1024)?,
        })
    }

    fn schema_record(scratch: &mut Vec<u8>, s: &Schema) {
        scratch.clear();
        scratch.u16(s.id);
        scratch.str(s.name);
        scratch.str(s.encoding);
        scratch.u32(s.data.len() as u32);
        scratch.extend_from_slice(&s.data);
    }

    fn channel_record(scratch: &mut Vec<u8>, c: &Channel) {
        scratch.clear();
        scratch.u16(c.id);
        scratch.u16(c.schema);
        scratch.str(c.topic);
        scratch.str(c.encoding);
        scratch.u32(0); // no channel metadata
    }

    /// Writes a schema record; its id (from 1).
    pub fn add_schema(&mut self, name: &'static str, encoding: &'static str, data: &[u8]) -> io::Result<u16> {
        let s = Schema { id: self.schemas.len() as u16 + 1, name, encoding, data: data.to_vec() };
        Self::schema_record(&mut self.scratch, &s);
        self.out.record(op::SCHEMA, &self.scratch)?;
        let id = s.id;
        self.schemas.push(s);
        Ok(id)
    }

    /// Writes a channel record; its id (from 0). `schema` 0 means none.
    pub fn add_channel(&mut self, schema: u16, topic: &'static str, encoding: &'static str) -> io::Result<u16> {
        if self.channels.len() == MAX_CHANNELS {
            return Err(too_many());
        }
        let c = Channel { id: self.channels.len() as u16, schema, topic, encoding };
        Self::channel_record(&mut self.scratch, &c);
        self.out.record(op::CHANNEL, &self.scratch)?;
        let id = c.id;
        self.channels.push(c);
        self.indexes.push(Vec::with_capacity(1024));
        Ok(id)
    }

    /// Writes a metadata record.
    pub fn write_metadata(&mut self, name: &str, metadata: &BTreeMap<String, String>) -> io::Result<()> {
        self.close_chunk()?;
        let s = &mut self.scratch;
        s.clear();
        s.str(name);
        let entries: usize = metadata.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        s.u32(entries as u32);
        for (k, v) in metadata {
            s.str(k);
            s.str(v);
        }
        let offset = self.out.pos;
        self.out.record(op::METADATA, &self.scratch)?;
        self.metadata.push((offset, self.out.pos - offset, name.to_string()));
        Ok(())
    }

    /// Appends a message to the open chunk.
    pub fn write_message(&mut self, channel: u16, sequence: u32, log_time: u64, data: &[u8]) -> io::Result<()> {
        let Some(index) = self.indexes.get_mut(channel as usize) else {
            return Err(io::Error::other(format!("no MCAP channel {channel}")));
        };
        index.push((log_time, self.chunk.len() as u64));
        let c = &mut self.chunk;
        c.u8(op::MESSAGE);
        c.u64(2 + 4 + 8 + 8 + data.len() as u64);
        c.u16(channel);
        c.u32(sequence);
        c.u64(log_time);
        c.u64(log_time); // publish_time
        c.extend_from_slice(data);
        self.chunk_bounds = widen(self.chunk_bounds, log_time);
        self.bounds = widen(self.bounds, log_time);
        self.counts[channel as usize] += 1;
        if self.chunk.len() >= self.chunk_target {
            self.close_chunk()?;
        }
        Ok(())
    }

    /// Writes the open chunk, if it holds any message, and its message indexes.
    fn close_chunk(&mut self) -> io::Result<()> {
        let Some((start, end)) = self.chunk_bounds.take() else { return Ok(()) };
        let offset = self.out.pos;
        let size = self.chunk.len() as u64;
        let crc = crc32fast::hash(&self.chunk);
        let name = self.compression.name();
        let packed = self.packer.pack(&self.chunk)?;
        let compressed = packed.len() as u64;
        let mut head = [0u8; 1 + 8 + 8 + 8 + 8 + 4 + 4];
        head[0] = op::CHUNK;
        let content = 8 + 8 + 8 + 4 + 4 + name.len() as u64 + 8 + compressed;
        for (at, v) in [(1, content), (9, start), (17, end), (25, size)] {
            head[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        head[33..37].copy_from_slice(&crc.to_le_bytes());
        head[37..41].copy_from_slice(&(name.len() as u32).to_le_bytes());
        self.out.write(&head)?;
        self.out.write(name.as_bytes())?;
        self.out.write(&compressed.to_le_bytes())?;
        self.out.write(packed)?;
        let length = self.out.pos - offset;
        let mut message_indexes = [None; MAX_CHANNELS];
        for (channel, index) in self.indexes.iter_mut().enumerate() {
            if index.is_empty() {
                continue;
            }
            message_indexes[channel] = Some(self.out.pos);
            let mut head = [0u8; 1 + 8 + 2 + 4];
            head[0] = op::MESSAGE_INDEX;
            head[1..9].copy_from_slice(&(2 + 4 + 16 * index.len() as u64).to_le_bytes());
            head[9..11].copy_from_slice(&(channel as u16).to_le_bytes());
            head[11..15].copy_from_slice(&(16 * index.len() as u32).to_le_bytes());
            self.out.write(&head)?;
            for (t, at) in index.iter() {
                let mut entry = [0u8; 16];
                entry[..8].copy_from_slice(&t.to_le_bytes());
                entry[8..].copy_from_slice(&at.to_le_bytes());
                self.out.write(&entry)?;
            }
            // Room for twice this chunk's messages: a busier chunk later does not reallocate.
            index.reserve(index.len());
            index.clear();
        }
        self.chunk_indexes.push(ChunkIndex {
            start,
            end,
            offset,
            length,
            compressed,
            message_indexes,
            message_index_length: self.out.pos - offset - length,
            size,
        });
        self.chunk.clear();
        Ok(())
    }

    /// Closes the open chunk and flushes the file: everything written so far is on disk and
    /// readable even if the process dies now.
    pub fn flush(&mut self) -> io::Result<()> {
        self.close_chunk()?;
        self.out.w.flush()
    }

    /// The statistics record: message counts, time bounds, record counts.
    fn statistics(&mut self, s: &mut Vec<u8>) -> io::Result<()> {
        s.clear();
        let used: Vec<(u16, u64)> =
            self.counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(c, n)| (c as u16, *n)).collect();
        s.u64(used.iter().map(|(_, n)| n).sum());
        s.u16(self.schemas.len() as u16);
        s.u32(self.channels.len() as u32);
        s.u32(0); // attachments
        s.u32(self.metadata.len() as u32);
        s.u32(self.chunk_indexes.len() as u32);
        let (first, last) = self.bounds.unwrap_or((0, 0));
        s.u64(first);
        s.u64(last);
        s.u32(10 * used.len() as u32);
        for (c, n) in &used {
            s.u16(*c);
            s.u64(*n);
        }
        self.out.record(op::STATISTICS, s)
    }

    /// One chunk index record per chunk written.
    fn chunk_indexes(&mut self, s: &mut Vec<u8>) -> io::Result<()> {
        for c in &self.chunk_indexes {
            s.clear();
            s.u64(c.start);
            s.u64(c.end);
            s.u64(c.offset);
            s.u64(c.length);
            let present: Vec<(usize, u64)> =
                c.message_indexes.iter().enumerate().filter_map(|(ch, o)| o.map(|o| (ch, o))).collect();
            s.u32(10 * present.len() as u32);
            for (ch, o) in present {
                s.u16(ch as u16);
                s.u64(o);
            }
            s.u64(c.message_index_length);
            s.str(self.compression.name());
            s.u64(c.compressed);
            s.u64(c.size);
            self.out.record(op::CHUNK_INDEX, s)?;
        }
        Ok(())
    }

    /// Closes the open chunk, writes the data end, the summary and the footer; returns the
    /// file.
    pub fn finish(mut self) -> io::Result<W> {
        self.close_chunk()?;
        let data_crc = self.out.data_crc.take().map_or(0, Hasher::finalize);
        self.out.record(op::DATA_END, &data_crc.to_le_bytes())?;

        let summary_start = self.out.pos;
        self.out.summary_crc = Some(Hasher::new());
        // (opcode, start, length) of each group of the summary.
        let mut groups: Vec<(u8, u64, u64)> = Vec::new();
        let mut s = std::mem::take(&mut self.scratch);

        let at = self.out.pos;
        for schema in &self.schemas {
            Self::schema_record(&mut s, schema);
            self.out.record(op::SCHEMA, &s)?;
        }
        groups.push((op::SCHEMA, at, self.out.pos - at));

        let at = self.out.pos;
        for channel in &self.channels {
            Self::channel_record(&mut s, channel);
            self.out.record(op::CHANNEL, &s)?;
        }
        groups.push((op::CHANNEL, at, self.out.pos - at));

        let at = self.out.pos;
        self.statistics(&mut s)?;
        groups.push((op::STATISTICS, at, self.out.pos - at));

        if !self.chunk_indexes.is_empty() {
            let at = self.out.pos;
            self.chunk_indexes(&mut s)?;
            groups.push((op::CHUNK_INDEX, at, self.out.pos - at));
        }

        if !self.metadata.is_empty() {
            let at = self.out.pos;
            for (offset, length, name) in &self.metadata {
                s.clear();
                s.u64(*offset);
                s.u64(*length);
                s.str(name);
                self.out.record(op::METADATA_INDEX, &s)?;
            }
            groups.push((op::METADATA_INDEX, at, self.out.pos - at));
        }

        let summary_offsets = self.out.pos;
        for (opcode, start, length) in groups {
            s.clear();
            s.u8(opcode);
            s.u64(start);
            s.u64(length);
            self.out.record(op::SUMMARY_OFFSET, &s)?;
        }

        // The footer's CRC covers the summary up to and including its own two offsets.
        let mut footer = [0u8; 1 + 8 + 8 + 8 + 4];
        footer[0] = op::FOOTER;
        footer[1..9].copy_from_slice(&20u64.to_le_bytes());
        footer[9..17].copy_from_slice(&summary_start.to_le_bytes());
        footer[17..25].copy_from_slice(&summary_offsets.to_le_bytes());
        self.out.write(&footer[..25])?;
        let summary_crc = self.out.summary_crc.take().map_or(0, Hasher::finalize);
        self.out.write(&summary_crc.to_le_bytes())?;
        self.out.write(MAGIC)?;
        self.out.w.flush()?;
        Ok(self.out.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_file(chunk_target: usize, compression: Compression) -> Vec<u8> {
        let mut w = McapWriter::new(Vec::new(), "", "test", chunk_target, compression).unwrap();
        let schema = w.add_schema("s", "jsonschema", b"{}").unwrap();
        let raw = w.add_channel(0, "/raw", "").unwrap();
        let json = w.add_channel(schema, "/json", "json").unwrap();
        let mut m = BTreeMap::new();
        m.insert("config".to_string(), "x = 1".to_string());
        w.write_metadata("reflex", &m).unwrap();
        for i in 0..100u32 {
            w.write_message(raw, i, 1000 + i as u64, &[i as u8; 7]).unwrap();
            w.write_message(json, i, 1000 + i as u64, format!("{{\"n\":{i}}}").as_bytes()).unwrap();
            if i == 40 {
                w.flush().unwrap();
            }
        }
        w.finish().unwrap()
    }

    #[test]
    fn the_mcap_crate_reads_what_it_writes() {
        for (target, compression) in [64, 1 << 20]
            .into_iter()
            .flat_map(|t| [Compression::None, Compression::Zstd, Compression::Lz4].map(|c| (t, c)))
        {
            let bytes = sample_file(target, compression);
            let messages: Vec<_> = mcap::MessageStream::new(&bytes).unwrap().map(|m| m.unwrap()).collect();
            assert_eq!(messages.len(), 200);
            assert_eq!(messages[1].channel.topic, "/json");
            assert_eq!(&*messages[1].data, b"{\"n\":0}");
            assert_eq!(messages[198].log_time, 1099);
            let summary = mcap::Summary::read(&bytes).unwrap().expect("a summary");
            assert_eq!(summary.stats.as_ref().map(|s| s.message_count), Some(200));
            assert!(summary.chunk_indexes.len() >= 2);
            assert_eq!(summary.metadata_indexes.len(), 1);
            // Through the chunk and message indexes.
            let mut n = 0;
            for c in &summary.chunk_indexes {
                for (_, entries) in summary.read_message_indexes(&bytes, c).unwrap() {
                    for e in entries {
                        let m = summary.seek_message(&bytes, c, &e).unwrap();
                        assert_eq!(m.log_time, e.log_time);
                        n += 1;
                    }
                }
            }
            assert_eq!(n, 200);
        }
    }

    #[test]
    fn a_warm_writer_does_not_grow() {
        for compression in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let mut w = McapWriter::new(Vec::with_capacity(1 << 20), "", "test", 4096, compression).unwrap();
            let raw = w.add_channel(0, "/raw", "").unwrap();
            for round in 0..3 {
                let caps = (w.chunk.capacity(), w.indexes[0].capacity(), w.chunk_indexes.capacity());
                for i in 0..200u32 {
                    w.write_message(raw, i, i as u64, &[0; 40]).unwrap();
                }
                w.flush().unwrap();
                if round > 0 {
                    assert_eq!(caps, (w.chunk.capacity(), w.indexes[0].capacity(), w.chunk_indexes.capacity()));
                }
            }
        }
    }
}

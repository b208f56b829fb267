//! Replaying an MCAP recording: `/imu/raw` re-decoded through the same decoder and windower,
//! with the recorded receive times, so the same config reproduces the live values exactly.
//! A recording cut short (power loss, `kill -9`) replays up to its last complete chunk.
//!
//! The file is read into memory and walked in place, chunks included (uncompressed, as
//! `run --record` writes them): a message is a slice of the file, so replaying allocates
//! nothing per message — the `mcap` crate's readers copy each one.

use super::replay::ReplayEnd;
use super::{Closed, Feed};
use crate::mcap_writer::MAGIC;
use crate::recording::{EVENTS, METADATA, RAW};
use bytes::BytesMut;
use reflex_codecs::{AnyDecoder, Format};
use reflex_config::Speed;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// An MCAP file read into memory.
pub struct McapLog {
    pub path: PathBuf,
    bytes: Vec<u8>,
}

/// What a replay of a recording found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    /// `/imu/raw` messages fed.
    pub raw_messages: u64,
    /// Seconds between the first and last raw message fed.
    pub seconds: f64,
    /// The file ended before its footer: cut short; the message says where.
    pub cut_short: Option<String>,
}

impl McapLog {
    pub fn open(path: &Path) -> Result<McapLog, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if !bytes.starts_with(MAGIC) {
            return Err(format!("{}: not an MCAP file", path.display()));
        }
        Ok(McapLog { path: path.into(), bytes })
    }

    /// The `reflex` metadata record (config text, hashes), if the file has one.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut found = BTreeMap::new();
        // Top-level records only: chunks are stepped over whole.
        let _ = walk(&self.bytes, false, &mut |r| match r {
            Rec::Metadata { name, entries } if name == METADATA => {
                found = entries.map(|(k, v)| (k.to_string(), v.to_string())).collect();
                false
            }
            _ => true,
        });
        found
    }

    /// Feeds `/imu/raw` through `feed`, paced by `log_time` unless `speed` is max.
    /// `progress(done, total)` is told how far into the file the replay is, in bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn replay(
        &self,
        format: Format,
        channels: usize,
        time_column: bool,
        speed: Speed,
        feed: &mut Feed,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(ReplayEnd, Recovered), String> {
        let shown = self.path.display();
        let factor = match speed {
            Speed::Max => None,
            Speed::Realtime => Some(1.0),
            Speed::Factor(f) => Some(f),
        };
        let mut topics: HashMap<u16, String> = HashMap::new();
        let mut decoder = AnyDecoder::new(format, channels, time_column);
        // Room for the largest raw message, so that it never grows while replaying.
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut recovered = Recovered::default();
        let (mut first, mut last) = (None::<u64>, 0u64);
        let mut origin: Option<(u64, Instant)> = None;
        let total = self.bytes.len() as u64;
        let mut fed_bytes = 0u64;
        let mut footer = false;
        let mut end: Result<ReplayEnd, String> = Ok(ReplayEnd::Finished);
        let walked = walk(&self.bytes, true, &mut |r| {
            if stop.load(Ordering::Relaxed) {
                end = Ok(ReplayEnd::Stopped);
                return false;
            }
            match r {
                Rec::Channel { id, topic } => {
                    topics.insert(id, topic.to_string());
                }
                Rec::End => footer = true,
                Rec::Message { channel, log_time: ns, data } => {
                    let topic = topics.get(&channel).map(String::as_str);
                    if topic == Some(EVENTS) {
                        // The live source started a new decoder on every (re)open of the device.
                        decoder = AnyDecoder::new(format, channels, time_column);
                        buf.clear();
                        return true;
                    }
                    if topic != Some(RAW) {
                        return true;
                    }
                    first.get_or_insert(ns);
                    last = ns;
                    if let Some(factor) = factor {
                        let (t0, start) = *origin.get_or_insert((ns, Instant::now()));
                        let due = start + Duration::from_secs_f64(ns.saturating_sub(t0) as f64 / 1e9 / factor);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    recovered.raw_messages += 1;
                    fed_bytes += data.len() as u64;
                    buf.extend_from_slice(data);
                    let t = (format != Format::Csv).then_some(ns as f64 / 1e9);
                    loop {
                        match decoder.decode(&mut buf) {
                            Ok(Some(frame)) => {
                                if let Err(Closed) = feed.frame(frame, t, Instant::now(), ns) {
                                    end = Ok(ReplayEnd::Closed);
                                    return false;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                end = Err(format!("{shown}: {e}"));
                                return false;
                            }
                        }
                    }
                    if recovered.raw_messages % 256 == 0 {
                        progress(fed_bytes.min(total), total);
                    }
                }
                Rec::Metadata { .. } => {}
            }
            true
        });
        match end? {
            ReplayEnd::Finished => {}
            other => return Ok((other, recovered)),
        }
        if let Err(e) = walked {
            recovered.cut_short = Some(e);
        }
        if !footer && recovered.cut_short.is_none() {
            recovered.cut_short = Some("no footer".into());
        }
        recovered.seconds = first.map_or(0.0, |f| (last - f) as f64 / 1e9);
        progress(total, total);
        Ok((ReplayEnd::Finished, recovered))
    }
}

/// A record of an MCAP file, borrowed from it.
enum Rec<'a> {
    Channel {
        id: u16,
        topic: &'a str,
    },
    Message {
        channel: u16,
        log_time: u64,
        data: &'a [u8],
    },
    Metadata {
        name: &'a str,
        entries: Pairs<'a>,
    },
    /// The data end or the footer: the file was finished.
    End,
}

/// Reads MCAP's little-endian fields off the front of a slice.
#[derive(Clone)]
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
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// The string pairs of a metadata record.
struct Pairs<'a>(Fields<'a>);

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        Some((self.0.str()?, self.0.str()?))
    }
}

mod op {
    pub const FOOTER: u8 = 0x02;
    pub const CHANNEL: u8 = 0x04;
    pub const MESSAGE: u8 = 0x05;
    pub const CHUNK: u8 = 0x06;
    pub const METADATA: u8 = 0x0C;
    pub const DATA_END: u8 = 0x0F;
}

/// Hands the records of `file` to `visit`, in file order, until it returns false; descends
/// into chunks when `chunks` is set. Stops with an error where the file is cut short or
/// malformed: every record before that point has been visited.
fn walk<'a>(file: &'a [u8], chunks: bool, visit: &mut dyn FnMut(Rec<'a>) -> bool) -> Result<(), String> {
    let mut at = Fields(&file[MAGIC.len().min(file.len())..]);
    let mut offset = MAGIC.len();
    while !at.0.is_empty() {
        if at.0 == MAGIC {
            return Ok(());
        }
        let (opcode, content) = record(&mut at).ok_or_else(|| format!("a record at byte {offset} is cut short"))?;
        let next = file.len() - at.0.len();
        match opcode {
            op::CHUNK if chunks => {
                let records = chunk(content).map_err(|e| format!("the chunk at byte {offset}: {e}"))?;
                let mut inner = Fields(records);
                while !inner.0.is_empty() {
                    let (opcode, content) = record(&mut inner)
                        .ok_or_else(|| format!("a record in the chunk at byte {offset} is cut short"))?;
                    if !one(opcode, content, visit).map_err(|e| format!("the chunk at byte {offset}: {e}"))? {
                        return Ok(());
                    }
                }
            }
            _ => {
                if !one(opcode, content, visit).map_err(|e| format!("the record at byte {offset}: {e}"))? {
                    return Ok(());
                }
            }
        }
        offset = next;
    }
    Ok(())
}

/// One record: opcode and content.
fn record<'a>(f: &mut Fields<'a>) -> Option<(u8, &'a [u8])> {
    let opcode = f.take(1)?[0];
    let len = usize::try_from(f.u64()?).ok()?;
    Some((opcode, f.take(len)?))
}

/// The records of a chunk, checked against its CRC.
fn chunk(content: &[u8]) -> Result<&[u8], String> {
    let mut f = Fields(content);
    let malformed = || "malformed".to_string();
    let _start = f.u64().ok_or_else(malformed)?;
    let _end = f.u64().ok_or_else(malformed)?;
    let size = f.u64().ok_or_else(malformed)?;
    let crc = f.u32().ok_or_else(malformed)?;
    let compression = f.str().ok_or_else(malformed)?;
    if !compression.is_empty() {
        return Err(format!("compressed ({compression}): Reflex reads uncompressed recordings only"));
    }
    let len = usize::try_from(f.u64().ok_or_else(malformed)?).map_err(|_| malformed())?;
    let records = f.take(len).ok_or_else(malformed)?;
    if records.len() as u64 != size || (crc != 0 && crc32fast::hash(records) != crc) {
        return Err("its CRC or size does not match its records".into());
    }
    Ok(records)
}

fn one<'a>(opcode: u8, content: &'a [u8], visit: &mut dyn FnMut(Rec<'a>) -> bool) -> Result<bool, &'static str> {
    let mut f = Fields(content);
    let rec = match opcode {
        op::CHANNEL => {
            let id = f.u16().ok_or("a malformed channel")?;
            let _schema = f.u16().ok_or("a malformed channel")?;
            Rec::Channel { id, topic: f.str().ok_or("a malformed channel")? }
        }
        op::MESSAGE => {
            let channel = f.u16().ok_or("a malformed message")?;
            let _sequence = f.u32().ok_or("a malformed message")?;
            let log_time = f.u64().ok_or("a malformed message")?;
            let _publish_time = f.u64().ok_or("a malformed message")?;
            Rec::Message { channel, log_time, data: f.0 }
        }
        op::METADATA => {
            let name = f.str().ok_or("a malformed metadata record")?;
            let len = f.u32().ok_or("a malformed metadata record")? as usize;
            Rec::Metadata { name, entries: Pairs(Fields(f.take(len).ok_or("a malformed metadata record")?)) }
        }
        op::DATA_END | op::FOOTER => Rec::End,
        _ => return Ok(true),
    };
    Ok(visit(rec))
}

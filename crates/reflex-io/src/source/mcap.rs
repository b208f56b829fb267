//! Replaying an MCAP recording: `/imu/raw` re-decoded through the same decoder and windower,
//! with the recorded receive times, so the same config reproduces the live values exactly.
//! A recording cut short (power loss, `kill -9`) replays up to its last complete chunk.

use super::replay::ReplayEnd;
use super::{Closed, Feed};
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
        if !bytes.starts_with(mcap::MAGIC) {
            return Err(format!("{}: not an MCAP file", path.display()));
        }
        Ok(McapLog { path: path.into(), bytes })
    }

    fn records(&self) -> mcap::McapResult<mcap::read::ChunkFlattener<'_>> {
        mcap::read::ChunkFlattener::new_with_options(
            &self.bytes,
            enumset::enum_set!(mcap::read::Options::IgnoreEndMagic),
        )
    }

    /// The `reflex` metadata record (config text, hashes), if the file has one.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let Ok(records) = self.records() else { return BTreeMap::new() };
        for r in records {
            match r {
                Ok(mcap::records::Record::Metadata(m)) if m.name == METADATA => return m.metadata,
                Ok(mcap::records::Record::Message { .. }) | Err(_) => break,
                Ok(_) => {}
            }
        }
        BTreeMap::new()
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
        let mut buf = BytesMut::new();
        let mut recovered = Recovered::default();
        let (mut first, mut last) = (None::<u64>, 0u64);
        let mut origin: Option<(u64, Instant)> = None;
        let total = self.bytes.len() as u64;
        let mut fed_bytes = 0u64;
        let records = self.records().map_err(|e| format!("{shown}: {e}"))?;
        let mut footer = false;
        for r in records {
            if stop.load(Ordering::Relaxed) {
                return Ok((ReplayEnd::Stopped, recovered));
            }
            let record = match r {
                Ok(r) => r,
                Err(e) => {
                    recovered.cut_short = Some(e.to_string());
                    break;
                }
            };
            match record {
                mcap::records::Record::Channel(c) => {
                    topics.insert(c.id, c.topic);
                }
                mcap::records::Record::Footer(_) | mcap::records::Record::DataEnd(_) => footer = true,
                mcap::records::Record::Message { header, data } => {
                    let topic = topics.get(&header.channel_id).map(String::as_str);
                    if topic == Some(EVENTS) {
                        // The live source started a new decoder on every (re)open of the device.
                        decoder = AnyDecoder::new(format, channels, time_column);
                        buf.clear();
                        continue;
                    }
                    if topic != Some(RAW) {
                        continue;
                    }
                    let ns = header.log_time;
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
                    buf.extend_from_slice(&data);
                    let t = (format != Format::Csv).then_some(ns as f64 / 1e9);
                    loop {
                        match decoder.decode(&mut buf) {
                            Ok(Some(frame)) => {
                                if let Err(Closed) = feed.frame(frame, t, Instant::now(), ns) {
                                    return Ok((ReplayEnd::Closed, recovered));
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return Err(format!("{shown}: {e}")),
                        }
                    }
                    if recovered.raw_messages % 256 == 0 {
                        progress(fed_bytes.min(total), total);
                    }
                }
                _ => {}
            }
        }
        if !footer && recovered.cut_short.is_none() {
            recovered.cut_short = Some("no footer".into());
        }
        recovered.seconds = first.map_or(0.0, |f| (last - f) as f64 / 1e9);
        progress(total, total);
        Ok((ReplayEnd::Finished, recovered))
    }
}

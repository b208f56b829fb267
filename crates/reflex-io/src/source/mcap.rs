//! An MCAP recording made by `run --record`: `/imu/raw` read again with its recorded receive
//! times, a fresh decoder wherever the live one started afresh (`/reflex/events`), so the same
//! config reproduces the live values exactly. A recording cut short (power loss, `kill -9`)
//! replays up to its last complete chunk, and says so.

use super::{Chunk, Received, Source};
use crate::error::Error;
use crate::mcap::{Cursor, McapFile};
use crate::recording::{EVENTS, METADATA, RAW};
use crate::stop::Stop;
use bytes::BytesMut;
use reflex_codecs::Format;
use std::collections::BTreeMap;
use std::path::Path;

/// A recording being replayed.
pub struct McapRecording {
    file: McapFile,
    cursor: Cursor,
    /// Raw messages fed, and the earliest and latest receive times (a damaged or edited file
    /// may hold them out of order: a span from first to last could be negative).
    raw_messages: u64,
    span: Option<(u64, u64)>,
    fed: u64,
}

impl McapRecording {
    /// Reads the recording at `path`.
    pub fn open(path: &Path) -> Result<McapRecording, Error> {
        Ok(Self::from_file(McapFile::open(path)?))
    }

    /// A recording already read.
    pub fn from_file(file: McapFile) -> McapRecording {
        McapRecording { file, cursor: Cursor::default(), raw_messages: 0, span: None, fed: 0 }
    }

    /// The `reflex` metadata record: the config text, the wire format, the hashes.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.file.metadata(METADATA)
    }

    /// The wire format it was recorded in, if it says.
    pub fn format(&self) -> Option<Format> {
        self.metadata().get("format").and_then(|f| Format::from_name(f))
    }

    fn report_end(&self) {
        let seconds = self.span.map_or(0.0, |(first, last)| (last - first) as f64 / 1e9);
        let (raw_messages, seconds) = (self.raw_messages, format_args!("{seconds:.1}"));
        match self.cursor.damage() {
            None => tracing::info!(raw_messages, seconds, "end of recording"),
            // Damage in the middle is the replay's error, said once by the caller.
            Some(why) if !why.is_cut_short() => tracing::info!(raw_messages, seconds, "end of the readable recording"),
            Some(why) => tracing::warn!(
                raw_messages,
                seconds,
                "the recording was cut short ({why}): replayed what it holds up to its last complete chunk"
            ),
        }
    }
}

impl Source for McapRecording {
    fn read(&mut self, buf: &mut BytesMut, _stop: &Stop) -> Result<Chunk, Error> {
        while let Some(m) = self.cursor.next(self.file.bytes()) {
            match m.topic {
                // The live source started a new decoder on every (re)open of the device; other
                // events (swap, decode_error) say what happened, and change nothing here.
                Some(EVENTS) if is_device_open(m.data) => return Ok(Chunk::Restart),
                Some(RAW) => {
                    self.raw_messages += 1;
                    self.fed += m.data.len() as u64;
                    let (t, (first, last)) = (m.log_time, self.span.unwrap_or((m.log_time, m.log_time)));
                    self.span = Some((first.min(t), last.max(t)));
                    buf.extend_from_slice(m.data);
                    return Ok(Chunk::Bytes(Received::Recorded(m.log_time)));
                }
                _ => {}
            }
        }
        self.report_end();
        self.fed = self.file.bytes().len() as u64;
        if let Some(damage) = self.cursor.damage().filter(|d| !d.is_cut_short()) {
            return Err(Error::Damaged { path: self.file.path().into(), damage: damage.clone() });
        }
        // The device was still streaming when the recording ended.
        Ok(Chunk::Stopped)
    }

    fn progress(&self) -> Option<(u64, u64)> {
        let total = self.file.bytes().len() as u64;
        Some((self.fed.min(total), total))
    }
}

/// Whether an event is `device_open` (`{"event":"device_open"}`, as the recorder writes it).
fn is_device_open(event: &[u8]) -> bool {
    event.windows(13).any(|w| w == b"\"device_open\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcap::{Compression, McapWriter};

    /// Fuzzing found it (fuzz/corpus/mcap/regression-log-time-backwards): the replay's span
    /// was last − first, which overflowed when a later message had an earlier time.
    #[test]
    fn raw_messages_whose_times_go_backwards_replay_to_the_end() {
        let mut w = McapWriter::new(Vec::new(), "", "test", 1 << 20, Compression::None).unwrap();
        let raw = w.add_channel(0, RAW, "").unwrap();
        for (i, ns) in [2_000_000_000u64, 3_000_000_000, 1_000_000_000].into_iter().enumerate() {
            w.write_message(raw, i as u32, ns, b"1,2\n").unwrap();
        }
        let file = McapFile::from_bytes(Path::new("backwards.mcap"), w.finish().unwrap()).unwrap();
        let mut recording = McapRecording::from_file(file);
        let (mut buf, stop) = (BytesMut::new(), Stop::new());
        let mut chunks = Vec::new();
        while chunks.last() != Some(&Chunk::Stopped) {
            chunks.push(recording.read(&mut buf, &stop).unwrap());
        }
        assert_eq!(chunks.len(), 4);
        assert_eq!(recording.span, Some((1_000_000_000, 3_000_000_000)));
    }

    #[test]
    fn only_device_open_restarts_the_decoder() {
        assert!(super::is_device_open(br#"{"event":"device_open"}"#));
        assert!(!super::is_device_open(br#"{"event":"swap","generation":2,"config":"x"}"#));
        assert!(!super::is_device_open(br#"{"event":"decode_error","sample":12}"#));
    }
}

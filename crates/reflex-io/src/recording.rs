//! `run --record LOG.mcap`: what the daemon read, decoded and predicted, in an MCAP file that
//! Foxglove and the `mcap` Python reader open.
//!
//! Channels: `/imu/raw` (the bytes exactly as read from the port, `log_time` = receive time),
//! `/imu/samples` and `/reflex/predictions` (JSON, with JSON schemas), and `/reflex/events`
//! (JSON: `device_open`, so a replay restarts its decoder where the live one did). Metadata
//! `reflex` holds the config text, the wire format and the SHA-256 of the weights file and of
//! every plugin library in use.
//!
//! The writer runs on its own thread behind a bounded queue: recording never slows the reader
//! or inference (if the disk cannot keep up, entries are dropped and counted). A chunk is
//! closed at least every second, so a recording cut by power loss or `kill -9` still replays
//! up to its last completed chunk.
//!
//! Once warm, recording allocates nothing: the raw bytes travel in buffers the writer hands
//! back to the reader, samples in inline arrays (up to 16 channels), predictions as the very
//! records the sinks got, and the MCAP writer reuses its chunk and index buffers.

use crate::error::Error;
use crate::mcap::McapWriter;
use crate::record::Prediction;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The bytes exactly as read.
pub const RAW: &str = "/imu/raw";
/// Each decoded sample, as JSON.
pub const SAMPLES: &str = "/imu/samples";
/// Each prediction record, as JSON.
pub const PREDICTIONS: &str = "/reflex/predictions";
/// Device events (`device_open`), as JSON.
pub const EVENTS: &str = "/reflex/events";
/// The metadata record's name.
pub const METADATA: &str = "reflex";

const QUEUE: usize = 1 << 16;
const CHUNK_EVERY: Duration = Duration::from_secs(1);
/// A chunk is also closed when it holds this many bytes (the `mcap` crate's default).
const CHUNK_BYTES: usize = 768 * 1024;
/// Raw buffers, made at the start and used over and over: more than the raw entries in flight
/// while the writer closes a chunk.
const SPARE_RAW: usize = 32;
/// A raw buffer's capacity: more than a serial read or a log read brings (a larger read gets
/// a buffer of its own size, kept from then on).
const RAW_CAPACITY: usize = 16 * 1024;
/// The JSON buffer's capacity: more than a sample's or a record's JSON takes.
const JSON_CAPACITY: usize = 64 * 1024;

/// Nanoseconds since the Unix epoch: MCAP's `log_time`, and (as seconds) a sample's `t`.
pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What the reader and the inference thread hand over; JSON is written on the recorder's own
/// thread, not on theirs.
enum Entry {
    Raw { ns: u64, bytes: Vec<u8> },
    Sample { ns: u64, n: u64, t: Option<f64>, values: SmallVec<[f32; 16]> },
    Prediction { ns: u64, record: Arc<Prediction> },
    DeviceOpen { ns: u64 },
}

/// The sending side, cloned into the reader and the inference thread.
#[derive(Clone)]
pub struct RecordHandle {
    tx: Sender<Entry>,
    dropped: Arc<AtomicU64>,
    /// Raw buffers the writer is done with.
    spare: Receiver<Vec<u8>>,
}

impl RecordHandle {
    fn send(&self, e: Entry) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(e) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bytes as read, received at `ns` (Unix nanoseconds).
    pub fn raw(&self, ns: u64, bytes: &[u8]) {
        let mut buf = match self.spare.try_recv() {
            Ok(b) if b.capacity() >= bytes.len() => b,
            _ => Vec::with_capacity(RAW_CAPACITY.max(bytes.len())),
        };
        buf.clear();
        buf.extend_from_slice(bytes);
        self.send(Entry::Raw { ns, bytes: buf });
    }

    /// Sample number `n`, its time and values.
    pub fn sample(&self, ns: u64, n: u64, t: Option<f64>, values: &[f32]) {
        self.send(Entry::Sample { ns, n, t, values: SmallVec::from_slice(values) });
    }

    /// A prediction record, as the sinks got it.
    pub fn prediction(&self, ns: u64, record: Arc<Prediction>) {
        self.send(Entry::Prediction { ns, record });
    }

    /// The device was (re)opened: a replay starts a fresh decoder here.
    pub fn device_open(&self, ns: u64) {
        self.send(Entry::DeviceOpen { ns });
    }
}

/// A recording in progress.
pub struct Recorder {
    handle: RecordHandle,
    thread: JoinHandle<Result<(), Error>>,
}

const SAMPLE_SCHEMA: &str = r#"{"type":"object","title":"reflex.Sample","properties":{"sample":{"type":"integer","description":"sample number in decode order"},"t":{"type":["number","null"],"description":"timestamp in seconds"},"values":{"type":"array","items":{"type":"number"}}},"required":["sample","values"]}"#;
const PREDICTION_SCHEMA: &str = r#"{"type":"object","title":"reflex.Prediction","properties":{"window":{"type":"integer"},"last_sample":{"type":"integer"},"t":{"type":["number","null"]},"values":{"type":"array","items":{"type":"number"}},"label":{"type":"string"},"index":{"type":"integer"},"latency_us":{"type":"number"},"generation":{"type":"integer"}},"required":["window","last_sample","values","latency_us","generation"]}"#;
const EVENT_SCHEMA: &str = r#"{"type":"object","title":"reflex.Event","properties":{"event":{"type":"string","enum":["device_open"]}},"required":["event"]}"#;

type Writer = McapWriter<BufWriter<std::fs::File>>;

struct Channels {
    raw: u16,
    samples: u16,
    predictions: u16,
    events: u16,
}

fn open(path: &Path, metadata: BTreeMap<String, String>) -> Result<(Writer, Channels), Error> {
    let file = std::fs::File::create(path).map_err(|source| Error::Create { path: path.into(), source })?;
    let err = |source| Error::Write { path: path.into(), source };
    let library = concat!("reflexd ", env!("CARGO_PKG_VERSION"));
    let mut w = McapWriter::new(BufWriter::new(file), "", library, CHUNK_BYTES).map_err(err)?;
    let sample = w.add_schema("reflex.Sample", "jsonschema", SAMPLE_SCHEMA.as_bytes()).map_err(err)?;
    let prediction = w.add_schema("reflex.Prediction", "jsonschema", PREDICTION_SCHEMA.as_bytes()).map_err(err)?;
    let event = w.add_schema("reflex.Event", "jsonschema", EVENT_SCHEMA.as_bytes()).map_err(err)?;
    let channels = Channels {
        // Raw bytes have no schema; the wire format is in the metadata.
        raw: w.add_channel(0, RAW, "").map_err(err)?,
        samples: w.add_channel(sample, SAMPLES, "json").map_err(err)?,
        predictions: w.add_channel(prediction, PREDICTIONS, "json").map_err(err)?,
        events: w.add_channel(event, EVENTS, "json").map_err(err)?,
    };
    w.write_metadata(METADATA, &metadata).map_err(err)?;
    // The header, channels and metadata are on disk before the first sample.
    w.flush().map_err(err)?;
    Ok((w, channels))
}

impl Recorder {
    /// Creates `path` and starts the writer thread.
    pub fn start(path: &Path, metadata: BTreeMap<String, String>) -> Result<Recorder, Error> {
        let (mut writer, ch) = open(path, metadata)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let (spare_tx, spare) = crossbeam_channel::bounded(SPARE_RAW);
        for _ in 0..SPARE_RAW {
            let _ = spare_tx.try_send(Vec::with_capacity(RAW_CAPACITY));
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                write_loop(&mut writer, &ch, rx, spare_tx)
                    .and_then(|()| writer.finish().map(|_| ()))
                    .map_err(|source| Error::Write { path, source })
            })
            .map_err(|source| Error::Thread { thread: "recorder", source })?;
        Ok(Recorder { handle: RecordHandle { tx, dropped, spare }, thread })
    }

    /// A handle for the reader or the inference thread.
    pub fn handle(&self) -> RecordHandle {
        self.handle.clone()
    }

    /// Entries dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.handle.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued, the summary and the footer. Every handle must be gone.
    pub fn finish(self) -> Result<u64, Error> {
        let dropped = self.dropped();
        drop(self.handle);
        self.thread.join().map_err(|_| Error::Panicked { thread: "recorder" })??;
        Ok(dropped)
    }
}

#[derive(serde::Serialize)]
struct SampleJson<'a> {
    sample: u64,
    t: Option<f64>,
    values: &'a [f32],
}

fn write_loop(w: &mut Writer, ch: &Channels, rx: Receiver<Entry>, spare: Sender<Vec<u8>>) -> std::io::Result<()> {
    let mut sequence = 0u32;
    let mut json = Vec::with_capacity(JSON_CAPACITY);
    let mut last_chunk = Instant::now();
    loop {
        let entry = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if let Some(e) = entry {
            json.clear();
            sequence = sequence.wrapping_add(1);
            // Serializing numbers and strings into a Vec cannot fail.
            match e {
                Entry::Raw { ns, bytes } => {
                    w.write_message(ch.raw, sequence, ns, &bytes)?;
                    // Back to the reader, to be filled again.
                    let _ = spare.try_send(bytes);
                }
                Entry::Sample { ns, n, t, values } => {
                    let _ = serde_json::to_writer(&mut json, &SampleJson { sample: n, t, values: &values });
                    w.write_message(ch.samples, sequence, ns, &json)?;
                }
                Entry::Prediction { ns, record } => {
                    let _ = serde_json::to_writer(&mut json, &*record);
                    w.write_message(ch.predictions, sequence, ns, &json)?;
                }
                Entry::DeviceOpen { ns } => w.write_message(ch.events, sequence, ns, br#"{"event":"device_open"}"#)?,
            }
        }
        if last_chunk.elapsed() >= CHUNK_EVERY {
            w.flush()?;
            last_chunk = Instant::now();
        }
    }
}

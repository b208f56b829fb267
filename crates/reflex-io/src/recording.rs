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

pub const RAW: &str = "/imu/raw";
pub const SAMPLES: &str = "/imu/samples";
pub const PREDICTIONS: &str = "/reflex/predictions";
pub const EVENTS: &str = "/reflex/events";
/// The metadata record's name.
pub const METADATA: &str = "reflex";

const QUEUE: usize = 1 << 16;
const CHUNK_EVERY: Duration = Duration::from_secs(1);

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
}

impl RecordHandle {
    fn send(&self, e: Entry) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(e) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn raw(&self, ns: u64, bytes: &[u8]) {
        self.send(Entry::Raw { ns, bytes: bytes.to_vec() });
    }

    /// Sample number `n`, its time and values.
    pub fn sample(&self, ns: u64, n: u64, t: Option<f64>, values: &[f32]) {
        self.send(Entry::Sample { ns, n, t, values: SmallVec::from_slice(values) });
    }

    /// A prediction record, as the sinks got it.
    pub fn prediction(&self, ns: u64, record: Arc<Prediction>) {
        self.send(Entry::Prediction { ns, record });
    }

    pub fn device_open(&self, ns: u64) {
        self.send(Entry::DeviceOpen { ns });
    }
}

/// A recording in progress.
pub struct Recorder {
    handle: RecordHandle,
    thread: JoinHandle<Result<(), String>>,
}

const SAMPLE_SCHEMA: &str = r#"{"type":"object","title":"reflex.Sample","properties":{"sample":{"type":"integer","description":"sample number in decode order"},"t":{"type":["number","null"],"description":"timestamp in seconds"},"values":{"type":"array","items":{"type":"number"}}},"required":["sample","values"]}"#;
const PREDICTION_SCHEMA: &str = r#"{"type":"object","title":"reflex.Prediction","properties":{"window":{"type":"integer"},"last_sample":{"type":"integer"},"t":{"type":["number","null"]},"values":{"type":"array","items":{"type":"number"}},"label":{"type":"string"},"index":{"type":"integer"},"latency_us":{"type":"number"},"generation":{"type":"integer"}},"required":["window","last_sample","values","latency_us","generation"]}"#;
const EVENT_SCHEMA: &str = r#"{"type":"object","title":"reflex.Event","properties":{"event":{"type":"string","enum":["device_open"]}},"required":["event"]}"#;

type McapWriter = mcap::Writer<BufWriter<std::fs::File>>;

struct Channels {
    raw: u16,
    samples: u16,
    predictions: u16,
    events: u16,
}

fn open(path: &Path, metadata: BTreeMap<String, String>) -> Result<(McapWriter, Channels), String> {
    let shown = path.display();
    let file = std::fs::File::create(path).map_err(|e| format!("{shown}: cannot create: {e}"))?;
    let mut w = mcap::WriteOptions::new()
        .compression(None)
        .profile("")
        .library(concat!("reflexd ", env!("CARGO_PKG_VERSION")))
        .create(BufWriter::new(file))
        .map_err(|e| format!("{shown}: {e}"))?;
    let err = |e: mcap::McapError| format!("{shown}: {e}");
    let none = BTreeMap::new();
    let sample = w.add_schema("reflex.Sample", "jsonschema", SAMPLE_SCHEMA.as_bytes()).map_err(err)?;
    let prediction = w.add_schema("reflex.Prediction", "jsonschema", PREDICTION_SCHEMA.as_bytes()).map_err(err)?;
    let event = w.add_schema("reflex.Event", "jsonschema", EVENT_SCHEMA.as_bytes()).map_err(err)?;
    let channels = Channels {
        // Raw bytes have no schema; the wire format is in the metadata.
        raw: w.add_channel(0, RAW, "", &none).map_err(err)?,
        samples: w.add_channel(sample, SAMPLES, "json", &none).map_err(err)?,
        predictions: w.add_channel(prediction, PREDICTIONS, "json", &none).map_err(err)?,
        events: w.add_channel(event, EVENTS, "json", &none).map_err(err)?,
    };
    w.write_metadata(&mcap::records::Metadata { name: METADATA.into(), metadata }).map_err(err)?;
    // The header, channels and metadata are on disk before the first sample.
    w.flush().map_err(err)?;
    Ok((w, channels))
}

impl Recorder {
    /// Creates `path` and starts the writer thread.
    pub fn start(path: &Path, metadata: BTreeMap<String, String>) -> Result<Recorder, String> {
        let (mut writer, ch) = open(path, metadata)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                write_loop(&mut writer, &ch, rx)
                    .and_then(|()| writer.finish().map(|_| ()).map_err(|e| e.to_string()))
                    .map_err(|e| format!("{shown}: {e}"))
            })
            .map_err(|e| format!("cannot start the recorder thread: {e}"))?;
        Ok(Recorder { handle: RecordHandle { tx, dropped }, thread })
    }

    pub fn handle(&self) -> RecordHandle {
        self.handle.clone()
    }

    /// Entries dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.handle.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued, the summary and the footer. Every handle must be gone.
    pub fn finish(self) -> Result<u64, String> {
        let dropped = self.dropped();
        drop(self.handle);
        self.thread.join().map_err(|_| "the recorder thread failed".to_string())??;
        Ok(dropped)
    }
}

#[derive(serde::Serialize)]
struct SampleJson<'a> {
    sample: u64,
    t: Option<f64>,
    values: &'a [f32],
}

fn write_loop(w: &mut McapWriter, ch: &Channels, rx: Receiver<Entry>) -> Result<(), String> {
    let mut sequence = 0u32;
    let mut json = Vec::with_capacity(1024);
    let mut last_chunk = Instant::now();
    loop {
        let entry = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if let Some(e) = entry {
            json.clear();
            // Serializing numbers and strings into a Vec cannot fail.
            let (channel_id, ns, data): (u16, u64, &[u8]) = match &e {
                Entry::Raw { ns, bytes } => (ch.raw, *ns, bytes),
                Entry::Sample { ns, n, t, values } => {
                    let _ = serde_json::to_writer(&mut json, &SampleJson { sample: *n, t: *t, values });
                    (ch.samples, *ns, &json)
                }
                Entry::Prediction { ns, record } => {
                    let _ = serde_json::to_writer(&mut json, &**record);
                    (ch.predictions, *ns, &json)
                }
                Entry::DeviceOpen { ns } => (ch.events, *ns, br#"{"event":"device_open"}"#),
            };
            sequence = sequence.wrapping_add(1);
            let header = mcap::records::MessageHeader { channel_id, sequence, log_time: ns, publish_time: ns };
            w.write_to_known_channel(&header, &data).map_err(|e| e.to_string())?;
        }
        if last_chunk.elapsed() >= CHUNK_EVERY {
            w.flush().map_err(|e| e.to_string())?;
            last_chunk = Instant::now();
        }
    }
}

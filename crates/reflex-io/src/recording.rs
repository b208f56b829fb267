//! `run --record LOG.mcap`: what the daemon read, decoded and predicted, in an MCAP file that
//! Foxglove and the `mcap` Python reader open.
//!
//! Channels: `/imu/raw` (the bytes exactly as read from the port, `log_time` = receive time),
//! `/imu/samples` (JSON, each value under its channel's name, with a JSON schema naming them),
//! `/reflex/predictions` (JSON, with a JSON schema), and `/reflex/events` (JSON: `device_open`,
//! so a replay restarts its decoder where the live one did; `decode_error`, where malformed
//! input was skipped; `swap`, with the new generation's
//! config and hashes, so a replay follows the generations), and `/reflex/labels` (JSON: the
//! activity marks `reflexd label` sent, each with the sample it applies from). Metadata
//! `reflex` holds the config
//! text, the wire format, the channel names and units and the SHA-256 of the weights file and of
//! every plugin library in use. Chunks are zstd-compressed by default.
//!
//! The writer runs on its own thread behind a bounded queue, fed by the
//! [`Tap`](crate::tap::Tap): recording never slows the reader or inference (if the disk
//! cannot keep up, entries are dropped and counted). A chunk is closed at least every second,
//! so a recording cut by power loss or `kill -9` still replays up to its last completed chunk.
//!
//! Once warm, recording allocates nothing: the tap hands over without allocating, and the
//! MCAP writer reuses its chunk and index buffers.

use crate::error::Error;
use crate::mcap::{Compression, McapWriter};
use crate::tap::{Entry, SampleKeys, Topic};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
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
/// Activity marks (`reflexd label`), as JSON: see [`LabelMark`].
pub const LABELS: &str = "/reflex/labels";
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

/// A hot swap, as `/reflex/events` records it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SwapEvent {
    /// Always `swap`.
    pub event: String,
    /// The generation now in use (1 at start, +1 at each swap).
    pub generation: u64,
    /// The new config file's text.
    pub config: String,
    /// SHA-256 of the weights file, when the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// SHA-256 of each plugin library the new graph uses, by plugin name.
    #[serde(default)]
    pub plugin_sha256: BTreeMap<String, String>,
}

/// The recorder's end of the [`Tap`](crate::tap::Tap). Its queue keeps the file's order: when
/// it is full, the newest entry is dropped and counted.
#[derive(Clone)]
pub(crate) struct RecorderFeed {
    tx: Sender<Entry>,
    dropped: Arc<AtomicU64>,
    /// Raw buffers the writer is done with.
    spare: Receiver<Vec<u8>>,
}

impl RecorderFeed {
    pub(crate) fn send(&self, e: Entry) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(e) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `bytes` in a buffer the writer handed back (a new one only when none is spare).
    pub(crate) fn buffer(&self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = match self.spare.try_recv() {
            Ok(b) if b.capacity() >= bytes.len() => b,
            _ => Vec::with_capacity(RAW_CAPACITY.max(bytes.len())),
        };
        buf.clear();
        buf.extend_from_slice(bytes);
        buf
    }
}

/// How a recording is written.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// How its chunks are compressed.
    pub compression: Compression,
    /// One name per channel: the fields of `/imu/samples`.
    pub channel_names: Vec<String>,
    /// One unit per channel (`""` where unknown), for the schema's descriptions.
    pub units: Vec<String>,
}

/// `ch0`, `ch1`, …: the names of channels nobody named.
pub fn default_names(channels: usize) -> Vec<String> {
    (0..channels).map(|i| format!("ch{i}")).collect()
}

/// A recording in progress; [`Tap::new`](crate::tap::Tap::new) feeds it.
pub struct Recorder {
    feed: RecorderFeed,
    thread: JoinHandle<Result<(), Error>>,
}

/// The JSON schema of `/imu/samples`: `sample`, `t`, then one number per channel, named.
pub fn sample_schema(names: &[String], units: &[String]) -> String {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "sample".into(),
        serde_json::json!({"type": "integer", "description": "sample number in decode order"}),
    );
    properties
        .insert("t".into(), serde_json::json!({"type": ["number", "null"], "description": "timestamp in seconds"}));
    for (i, name) in names.iter().enumerate() {
        let mut p = serde_json::json!({"type": ["number", "null"], "description": format!("channel {i}")});
        if let Some(unit) = units.get(i).filter(|u| !u.is_empty()) {
            p["description"] = format!("channel {i}, in {unit}").into();
            p["unit"] = unit.clone().into();
        }
        properties.insert(name.clone(), p);
    }
    let mut required = vec!["sample".to_string()];
    required.extend(names.iter().cloned());
    serde_json::json!({"type": "object", "title": "reflex.Sample", "properties": properties, "required": required})
        .to_string()
}
/// The JSON schema of `/reflex/predictions`.
pub const PREDICTION_SCHEMA: &str = r#"{"type":"object","title":"reflex.Prediction","properties":{"window":{"type":"integer"},"last_sample":{"type":"integer"},"t":{"type":["number","null"]},"values":{"type":"array","items":{"type":"number"}},"label":{"type":"string"},"index":{"type":"integer"},"latency_us":{"type":"number"},"generation":{"type":"integer"}},"required":["window","last_sample","values","latency_us","generation"]}"#;
/// The JSON schema of `/reflex/events`.
pub const EVENT_SCHEMA: &str = r#"{"type":"object","title":"reflex.Event","properties":{"event":{"type":"string","enum":["device_open","swap","decode_error"]},"sample":{"type":"integer","description":"decode_error: the number of the next sample decoded"},"generation":{"type":"integer"},"config":{"type":"string"},"weights_sha256":{"type":"string"},"plugin_sha256":{"type":"object","additionalProperties":{"type":"string"}}},"required":["event"]}"#;

/// The JSON schema of `/reflex/labels`.
pub const LABEL_SCHEMA: &str = r#"{"type":"object","title":"reflex.Label","properties":{"sample":{"type":"integer","description":"the first sample the mark applies to: samples decoded when it arrived"},"label":{"type":["string","null"],"description":"the activity from this sample on; null ends the labelled span"},"received":{"type":"number","description":"receive time, Unix seconds"}},"required":["sample","label"]}"#;

/// An activity mark, as `/reflex/labels` records it: from sample `sample` on, the wearer does
/// `label` (`None`: nothing labelled, the end of the previous activity).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelMark {
    /// The first sample the mark applies to: the number of samples decoded when it arrived.
    pub sample: u64,
    /// The activity, or `None` (JSON `null`) to end the labelled span.
    pub label: Option<String>,
    /// When the daemon received it, in Unix seconds (the message's `log_time` too).
    pub received: f64,
}

type Writer = McapWriter<BufWriter<std::fs::File>>;

struct Channels {
    raw: u16,
    samples: u16,
    predictions: u16,
    events: u16,
    labels: u16,
}

fn open(path: &Path, metadata: BTreeMap<String, String>, options: &Options) -> Result<(Writer, Channels), Error> {
    let file = std::fs::File::create(path).map_err(|source| Error::Create { path: path.into(), source })?;
    let err = |source| Error::Write { path: path.into(), source };
    let library = concat!("reflexd ", env!("CARGO_PKG_VERSION"));
    let mut w = McapWriter::new(BufWriter::new(file), "", library, CHUNK_BYTES, options.compression).map_err(err)?;
    let schema = sample_schema(&options.channel_names, &options.units);
    let sample = w.add_schema("reflex.Sample", "jsonschema", schema.as_bytes()).map_err(err)?;
    let prediction = w.add_schema("reflex.Prediction", "jsonschema", PREDICTION_SCHEMA.as_bytes()).map_err(err)?;
    let event = w.add_schema("reflex.Event", "jsonschema", EVENT_SCHEMA.as_bytes()).map_err(err)?;
    let label = w.add_schema("reflex.Label", "jsonschema", LABEL_SCHEMA.as_bytes()).map_err(err)?;
    let channels = Channels {
        // Raw bytes have no schema; the wire format is in the metadata.
        raw: w.add_channel(0, RAW, "").map_err(err)?,
        samples: w.add_channel(sample, SAMPLES, "json").map_err(err)?,
        predictions: w.add_channel(prediction, PREDICTIONS, "json").map_err(err)?,
        events: w.add_channel(event, EVENTS, "json").map_err(err)?,
        labels: w.add_channel(label, LABELS, "json").map_err(err)?,
    };
    w.write_metadata(METADATA, &metadata).map_err(err)?;
    // The header, channels and metadata are on disk before the first sample.
    w.flush().map_err(err)?;
    Ok((w, channels))
}

impl Recorder {
    /// Creates `path` and starts the writer thread.
    pub fn start(path: &Path, metadata: BTreeMap<String, String>, options: &Options) -> Result<Recorder, Error> {
        let (mut writer, ch) = open(path, metadata, options)?;
        let keys = SampleKeys::new(&options.channel_names);
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
                let written = write_loop(&mut writer, &ch, &keys, rx, spare_tx)
                    .and_then(|()| writer.finish().map(|_| ()))
                    .map_err(|source| Error::Write { path, source });
                // Said when it happens, not at exit: the daemon may run for days after a disk
                // fills up. Predictions go on; [`Recorder::finish`] returns the error.
                if let Err(e) = &written {
                    tracing::error!(
                        "recording failed: {e}; predictions go on unrecorded, the file holds what precedes its last complete chunk"
                    );
                }
                written
            })
            .map_err(|source| Error::Thread { thread: "recorder", source })?;
        Ok(Recorder { feed: RecorderFeed { tx, dropped, spare }, thread })
    }

    pub(crate) fn feed(&self) -> RecorderFeed {
        self.feed.clone()
    }

    /// Entries dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.feed.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued, the summary and the footer. Every tap must be gone.
    pub fn finish(self) -> Result<u64, Error> {
        let dropped = self.dropped();
        drop(self.feed);
        self.thread.join().map_err(|_| Error::Panicked { thread: "recorder" })??;
        Ok(dropped)
    }
}

fn write_loop(
    w: &mut Writer,
    ch: &Channels,
    keys: &SampleKeys,
    rx: Receiver<Entry>,
    spare: Sender<Vec<u8>>,
) -> std::io::Result<()> {
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
            sequence = sequence.wrapping_add(1);
            let channel = match e.json(keys, &mut json) {
                Some(Topic::Samples) => ch.samples,
                Some(Topic::Predictions) => ch.predictions,
                Some(Topic::Events) => ch.events,
                Some(Topic::Labels) => ch.labels,
                None => ch.raw,
            };
            if let Entry::Raw { ns, bytes } = e {
                w.write_message(channel, sequence, ns, &bytes)?;
                // Back to the reader, to be filled again.
                let _ = spare.try_send(bytes);
            } else {
                w.write_message(channel, sequence, e.ns(), &json)?;
            }
        }
        if last_chunk.elapsed() >= CHUNK_EVERY {
            w.flush()?;
            last_chunk = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(compression: Compression) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.mcap");
        let names = vec!["acc_x".to_string(), "gyr \"z\"".to_string()];
        let options = Options { compression, channel_names: names, units: vec!["m/s^2".into(), String::new()] };
        let mut metadata = BTreeMap::new();
        metadata.insert("format".to_string(), "csv".to_string());
        let r = Recorder::start(&path, metadata, &options).unwrap();
        let h = crate::tap::Tap::new(Some(&r), None);
        h.raw(1, b"1,2\n");
        h.sample(2, 0, Some(0.5), &[1.0, f32::NAN]);
        h.sample(3, 1, None, &[2.5, 3.0, 4.0]);
        let swap = SwapEvent {
            event: "swap".into(),
            generation: 2,
            config: "[source]\n".into(),
            weights_sha256: Some("ab".into()),
            plugin_sha256: BTreeMap::from([("conv_standard".to_string(), "cd".to_string())]),
        };
        h.swap(4, &swap);
        h.label(5, &LabelMark { sample: 2, label: Some("walk".into()), received: 5e-9 });
        h.label(6, &LabelMark { sample: 2, label: None, received: 6e-9 });
        drop(h);
        assert_eq!(r.finish().unwrap(), 0);
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn samples_carry_named_values_and_their_schema_names_them() {
        for compression in [Compression::Zstd, Compression::Lz4, Compression::None] {
            let bytes = record(compression);
            let messages: Vec<_> = mcap::MessageStream::new(&bytes).unwrap().map(|m| m.unwrap()).collect();
            let samples: Vec<serde_json::Value> = messages
                .iter()
                .filter(|m| m.channel.topic == SAMPLES)
                .map(|m| serde_json::from_slice(&m.data).unwrap())
                .collect();
            assert_eq!(samples[0], serde_json::json!({"sample": 0, "t": 0.5, "acc_x": 1.0, "gyr \"z\"": null}));
            assert_eq!(
                samples[1],
                serde_json::json!({"sample": 1, "t": null, "acc_x": 2.5, "gyr \"z\"": 3.0, "ch2": 4.0})
            );
            let schema = messages.iter().find(|m| m.channel.topic == SAMPLES).unwrap().channel.schema.clone().unwrap();
            let schema: serde_json::Value = serde_json::from_slice(&schema.data).unwrap();
            assert_eq!(schema["properties"]["acc_x"]["unit"], "m/s^2");
            assert_eq!(schema["required"], serde_json::json!(["sample", "acc_x", "gyr \"z\""]));
            let swap = messages.iter().find(|m| m.channel.topic == EVENTS).unwrap();
            let swap: SwapEvent = serde_json::from_slice(&swap.data).unwrap();
            assert_eq!((swap.event.as_str(), swap.generation), ("swap", 2));
            assert_eq!(swap.plugin_sha256["conv_standard"], "cd");
            let labels: Vec<(u64, LabelMark)> = messages
                .iter()
                .filter(|m| m.channel.topic == LABELS)
                .map(|m| (m.log_time, serde_json::from_slice(&m.data).unwrap()))
                .collect();
            assert_eq!(labels.len(), 2);
            assert_eq!((labels[0].0, labels[0].1.sample, labels[0].1.label.as_deref()), (5, 2, Some("walk")));
            assert_eq!((labels[1].0, &labels[1].1.label), (6, &None));
            let raw: serde_json::Value = serde_json::from_slice(&messages.last().unwrap().data).unwrap();
            assert!(raw["label"].is_null(), "{raw}");
            let summary = mcap::Summary::read(&bytes).unwrap().unwrap();
            let chunk = &summary.chunk_indexes[0];
            assert_eq!(chunk.compression, compression.name());
        }
    }
}

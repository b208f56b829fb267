//! Which source feeds the pipeline, and how its bytes are decoded: the config's serial device
//! or log, or a log or recording given to `replay`.

use super::provenance;
use crate::model::Loaded;
use anyhow::Context;
use reflex_config::{Format, SourceKind, Speed};
use reflex_io::source::log::{csv_header, LogFile};
use reflex_io::source::mcap::McapRecording;
use reflex_io::source::serial::SerialDevice;
use reflex_io::source::{Counters, Decoding, Samples, Source};
use std::path::Path;
use std::sync::Arc;

/// A source with its decoding and pace.
pub struct Input {
    source: Box<dyn Source>,
    decoding: Decoding,
    speed: Speed,
    /// A replay waits for inference rather than drop a window.
    pub lossless: bool,
    /// A device, opened by the reader's first read (a log is open from the start).
    pub device: bool,
    /// One name per channel: the config's, else a csv log's header or a recording's, else
    /// `ch0`, `ch1`, ….
    pub names: Vec<String>,
    /// One unit per channel (`""` where unknown): the config's, else a recording's.
    pub units: Vec<String>,
}

/// The config's channel names and units, where it gives them.
fn configured(loaded: &Loaded) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let s = &loaded.config.source;
    (s.channel_names.clone(), s.units.clone())
}

/// Names and units, from the first that gives them: the config, `found` (a log's header or a
/// recording's metadata), `ch0…`.
fn channels(loaded: &Loaded, found: (Option<Vec<String>>, Option<Vec<String>>)) -> (Vec<String>, Vec<String>) {
    let n = loaded.config.source.channels;
    let (names, units) = configured(loaded);
    let found_names = found.0.filter(|f| match reflex_config::check_channel_names(f, n) {
        None => true,
        Some(why) => {
            tracing::warn!("the log's channel names are not used: {why}");
            false
        }
    });
    let names = names.or(found_names).unwrap_or_else(|| reflex_io::recording::default_names(n));
    let units = units.or(found.1.filter(|u| u.len() == n)).unwrap_or_else(|| vec![String::new(); n]);
    (names, units)
}

impl Input {
    /// The config's own source: the serial device, or the log of `kind = "replay"`.
    pub fn from_config(loaded: &Loaded) -> anyhow::Result<Input> {
        let s = &loaded.config.source;
        let shown = loaded.config.path.display();
        let path = s.path.as_deref().with_context(|| format!("{shown}: [source] path is required"))?;
        match s.kind {
            SourceKind::Serial => {
                usable_device(path)?;
                let source = Box::new(SerialDevice::new(path, s.baud_rate));
                let (names, units) = channels(loaded, (None, None));
                let decoding = Decoding::of(s);
                Ok(Input { source, decoding, speed: Speed::Max, lossless: false, device: true, names, units })
            }
            SourceKind::Replay => Input::log(loaded, path, s.speed),
        }
    }

    /// A csv (or raw) log read with the config's decoder settings.
    pub fn log(loaded: &Loaded, path: &Path, speed: Speed) -> anyhow::Result<Input> {
        let s = &loaded.config.source;
        if speed != Speed::Max && !(s.format == Format::Csv && s.time_column) {
            anyhow::bail!(
                "{}: replaying at speed {speed:?} needs timestamps: a csv log with [source] time_column = true (or speed \"max\")",
                loaded.config.path.display()
            );
        }
        if !path.is_file() {
            anyhow::bail!("{}: no such log file", path.display());
        }
        let source = Box::new(LogFile::open(path)?);
        let header = (s.format == Format::Csv).then(|| csv_header(path, s.channels, s.time_column)).flatten();
        let (names, units) = channels(loaded, (header, None));
        Ok(Input { source, decoding: Decoding::of(s), speed, lossless: true, device: false, names, units })
    }

    /// A recording made by `run --record`, decoded in the format it was recorded in. Warns
    /// when the config, weights or plugins differ from the ones recorded.
    pub fn mcap(loaded: &Loaded, path: &Path, speed: Speed) -> anyhow::Result<Input> {
        let recording = McapRecording::open(path)?;
        let mut decoding = Decoding::of(&loaded.config.source);
        if let Some(f) = recording.format().filter(|f| *f != decoding.format) {
            tracing::warn!(recorded = ?f, config = ?decoding.format, "the recording was made in another wire format; decoding it as recorded");
            decoding.format = f;
        }
        let metadata = recording.metadata();
        provenance::compare(loaded, &metadata, path);
        let list = |key: &str| metadata.get(key).and_then(|v| serde_json::from_str::<Vec<String>>(v).ok());
        let (names, units) = channels(loaded, (list("channel_names"), list("units")));
        Ok(Input { source: Box::new(recording), decoding, speed, lossless: true, device: false, names, units })
    }

    /// The pipeline's first stage on this input.
    pub fn samples(self, counters: Arc<Counters>) -> Samples<Box<dyn Source>> {
        Samples::new(self.source, self.decoding, self.speed, counters)
    }
}

/// A device missing or not readable and writable at start is the user's error (docs/cli.md): one
/// line and exit 1. Only a device that vanishes after it was opened is waited for. `access`
/// rather than `open`: opening a serial port toggles DTR, which resets many microcontrollers.
fn usable_device(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    // A path that exists but cannot be a serial port would be retried forever as a device
    // that vanished: refused now. Memory devices (/dev/null, /dev/zero: major 1) are character
    // devices, but no serial port.
    if let Ok(m) = std::fs::metadata(path) {
        let what = if m.is_dir() {
            Some("a directory")
        } else if !m.file_type().is_char_device() {
            Some("not a character device")
        } else if libc::major(m.rdev()) == 1 {
            Some("a memory device such as /dev/null")
        } else {
            None
        };
        if let Some(what) = what {
            anyhow::bail!("{}: not a serial device ({what})", path.display());
        }
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| anyhow::anyhow!("{}: not a device path", path.display()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("{}: cannot open the serial device: {e}", path.display());
    }
    Ok(())
}

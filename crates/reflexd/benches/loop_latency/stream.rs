//! What the driver writes: the samples of a bundled real recording as binary frames
//! (docs/wire-formats.md), the same bytes for every contender.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// The samples of a recording csv (`t, ch0, …`), as read, without normalisation: the
/// contenders both normalise as the config's `[window]` says.
pub struct Recording {
    pub path: PathBuf,
    rows: Vec<Vec<f32>>,
}

impl Recording {
    pub fn load(path: &Path, channels: usize) -> anyhow::Result<Recording> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let row: Vec<f32> = line
                .split(',')
                .skip(1)
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .with_context(|| format!("{} line {}: not numbers", path.display(), i + 1))?;
            if row.len() != channels {
                bail!(
                    "{} line {}: {} channels after the time column; the model takes {channels}",
                    path.display(),
                    i + 1,
                    row.len()
                );
            }
            rows.push(row);
        }
        if rows.is_empty() {
            bail!("{}: no samples", path.display());
        }
        Ok(Recording { path: path.to_path_buf(), rows })
    }

    /// Samples in the recording (the stream starts over at its end).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// `n` frames, counters 0, 1, …, cycling through the recording; one buffer, encoded before
    /// the schedule starts.
    pub fn frames(&self, n: usize) -> Frames {
        let len = reflex_codecs::encode::binary(0, &self.rows[0]).len();
        let mut bytes = Vec::with_capacity(n * len);
        for i in 0..n {
            bytes.extend_from_slice(&reflex_codecs::encode::binary(i as u32, &self.rows[i % self.rows.len()]));
        }
        Frames { bytes, len }
    }
}

/// Frames of one length, back to back.
pub struct Frames {
    bytes: Vec<u8>,
    len: usize,
}

impl Frames {
    pub fn iter(&self) -> std::slice::ChunksExact<'_, u8> {
        self.bytes.chunks_exact(self.len)
    }

    pub fn count(&self) -> usize {
        self.bytes.len() / self.len
    }
}

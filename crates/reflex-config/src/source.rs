//! `[source]`: where samples come from and how their frames are encoded (docs/config.md, docs/wire-formats.md).

use reflex_codecs::Format;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
/// Where samples come from.
pub enum SourceKind {
    /// A serial device (or a pseudo-terminal).
    #[default]
    Serial,
    /// A recorded log fed through the same decoder.
    Replay,
}

/// Replay pace: `"max"`, `"realtime"` or a factor of real time such as `4.0`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Speed {
    /// As fast as inference takes the windows.
    Max,
    /// At the pace they were recorded.
    #[default]
    Realtime,
    /// This many times faster than they were recorded.
    Factor(f64),
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let bad = || serde::de::Error::custom("speed must be \"max\", \"realtime\" or a positive factor such as 4.0");
        match Raw::deserialize(d).map_err(|_: D::Error| bad())? {
            Raw::Number(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            Raw::Text(s) if s == "max" => Ok(Speed::Max),
            Raw::Text(s) if s == "realtime" => Ok(Speed::Realtime),
            Raw::Text(s) => {
                s.parse::<f64>().ok().filter(|f| f.is_finite() && *f > 0.0).map(Speed::Factor).ok_or_else(bad)
            }
            Raw::Number(_) => Err(bad()),
        }
    }
}

/// The most values per sample.
pub const MAX_CHANNELS: usize = 4096;

fn default_baud_rate() -> u32 {
    115_200
}

/// `[source]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `"serial"` or `"replay"`.
    #[serde(default)]
    pub kind: SourceKind,
    /// The serial device, or the log to replay (relative to the config file).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Serial line speed; ignored by pseudo-terminals.
    #[serde(default = "default_baud_rate")]
    pub baud_rate: u32,
    /// How samples are framed on the wire.
    #[serde(default)]
    pub format: Format,
    /// Values per sample.
    pub channels: usize,
    /// csv only: the first field of each line is a timestamp in seconds.
    #[serde(default)]
    pub time_column: bool,
    /// Replay only: how fast to feed the log.
    #[serde(default)]
    pub speed: Speed,
    /// One name per channel (`acc_x`, …): recordings, plots and `reflexd info` use them.
    /// Default: a csv log's header, else `ch0`, `ch1`, ….
    #[serde(default)]
    pub channel_names: Option<Vec<String>>,
    /// One unit per channel (`m/s^2`, `deg/s`; `""` for none): plots group channels by unit.
    #[serde(default)]
    pub units: Option<Vec<String>>,
}

/// Field names a sample message already uses: no channel may take them.
pub const RESERVED_NAMES: [&str; 3] = ["sample", "t", "values"];

/// Why `names` cannot name `channels` channels, if it cannot: one line.
pub fn check_channel_names(names: &[String], channels: usize) -> Option<String> {
    if names.len() != channels {
        return Some(format!("channel_names has {} entries, expected one per channel ({channels})", names.len()));
    }
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() {
            return Some(format!("channel_names[{i}] is empty"));
        }
        if RESERVED_NAMES.contains(&n.as_str()) {
            return Some(format!(
                "channel_names[{i}] = \"{n}\" is reserved (sample, t and values are a sample's own fields)"
            ));
        }
        if names[..i].contains(n) {
            return Some(format!("channel_names[{i}] = \"{n}\" appears twice"));
        }
    }
    None
}

impl SourceConfig {
    /// The section's own checks: one line per problem.
    pub(crate) fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.channels == 0 {
            p.push("channels must be at least 1".to_string());
        }
        if self.channels > MAX_CHANNELS {
            p.push(format!("channels = {}: must be at most {MAX_CHANNELS}", self.channels));
        }
        if self.channels > 255 && self.format == Format::Binary {
            p.push(format!("channels = {}: the binary format carries at most 255 values per frame", self.channels));
        }
        if self.format == Format::Witmotion && self.channels != 6 {
            p.push(format!("channels = {}: the witmotion format gives exactly 6 (ax ay az wx wy wz)", self.channels));
        }
        if self.time_column && self.format != Format::Csv {
            p.push("time_column applies to format = \"csv\" only".to_string());
        }
        if self.baud_rate == 0 {
            p.push("baud_rate must be positive".to_string());
        }
        if let Some(why) = self.channel_names.as_deref().and_then(|n| check_channel_names(n, self.channels)) {
            p.push(why);
        }
        if let Some(units) = &self.units {
            if units.len() != self.channels {
                p.push(format!("units has {} entries, expected one per channel ({})", units.len(), self.channels));
            }
        }
        p
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = &mut self.path {
            crate::resolve(base, p);
        }
    }
}

//! `[[sinks]]`: where prediction records go.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
/// How a sink writes each record.
pub enum RecordFormat {
    /// One JSON object per record (docs/records.md).
    #[default]
    Json,
    /// `window,last_sample,t,latency_us,generation,index,label,values...`.
    Csv,
    /// The sink's `template`, e.g. `"TORQUE {index} {values[0]:.3}\n"`.
    Template,
}

/// Where one sink sends records.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkKind {
    /// The daemon's standard output.
    Stdout,
    /// A file, appended to.
    File {
        /// The file (relative to the config file).
        path: PathBuf,
    },
    /// One datagram per record.
    Udp {
        /// `host:port` of the actuator.
        target: String,
    },
    /// A serial line to the actuator controller.
    Serial {
        /// The device.
        path: PathBuf,
        /// Line speed.
        #[serde(default = "default_baud_rate")]
        baud_rate: u32,
    },
}

fn default_baud_rate() -> u32 {
    115_200
}

/// One `[[sinks]]` entry, read through [`RawSink`] so that every unknown key is an error
/// (serde's `flatten` would let `kind = "stdout"` take any key).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawSink")]
pub struct SinkConfig {
    /// `kind = "stdout" | "file" | "udp" | "serial"` and that kind's own keys.
    pub kind: SinkKind,
    /// How each record is written.
    pub format: RecordFormat,
    /// The text for `format = "template"`.
    pub template: Option<String>,
}

/// Every key any sink may have; which of them a kind takes is checked in `try_from`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    kind: String,
    path: Option<PathBuf>,
    target: Option<String>,
    baud_rate: Option<u32>,
    #[serde(default)]
    format: RecordFormat,
    #[serde(default)]
    template: Option<String>,
}

impl TryFrom<RawSink> for SinkConfig {
    type Error = String;

    fn try_from(r: RawSink) -> Result<SinkConfig, String> {
        let unused = |key: &str, kind: &str| format!("unknown field `{key}`: a {kind} sink has no such key");
        let kind = match r.kind.as_str() {
            "stdout" => {
                if let Some(key) =
                    [("path", r.path.is_some()), ("target", r.target.is_some()), ("baud_rate", r.baud_rate.is_some())]
                        .iter()
                        .find_map(|(k, set)| set.then_some(*k))
                {
                    return Err(unused(key, "stdout"));
                }
                SinkKind::Stdout
            }
            "file" => {
                if r.target.is_some() || r.baud_rate.is_some() {
                    return Err(unused(if r.target.is_some() { "target" } else { "baud_rate" }, "file"));
                }
                SinkKind::File { path: r.path.ok_or("missing field `path`")? }
            }
            "udp" => {
                if r.path.is_some() || r.baud_rate.is_some() {
                    return Err(unused(if r.path.is_some() { "path" } else { "baud_rate" }, "udp"));
                }
                SinkKind::Udp { target: r.target.ok_or("missing field `target`")? }
            }
            "serial" => {
                if r.target.is_some() {
                    return Err(unused("target", "serial"));
                }
                let path = r.path.ok_or("missing field `path`")?;
                SinkKind::Serial { path, baud_rate: r.baud_rate.unwrap_or_else(default_baud_rate) }
            }
            other => {
                return Err(format!("unknown variant `{other}`, expected one of `stdout`, `file`, `udp`, `serial`"))
            }
        };
        Ok(SinkConfig { kind, format: r.format, template: r.template })
    }
}

impl SinkConfig {
    /// The sink's own checks: one line per problem.
    pub(crate) fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        match (self.format, &self.template) {
            (RecordFormat::Template, None) => p.push("format = \"template\" needs a template".to_string()),
            (RecordFormat::Json | RecordFormat::Csv, Some(_)) => {
                p.push("template is only used with format = \"template\"".to_string())
            }
            _ => {}
        }
        if let SinkKind::Udp { target } = &self.kind {
            if target.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok()).is_none() {
                p.push(format!("target \"{target}\" is not host:port"));
            }
        }
        p
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        if let SinkKind::File { path } = &mut self.kind {
            crate::resolve(base, path);
        }
    }
}

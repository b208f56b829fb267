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

/// One `[[sinks]]` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SinkConfig {
    /// `kind = "stdout" | "file" | "udp" | "serial"` and that kind's own keys.
    #[serde(flatten)]
    pub kind: SinkKind,
    /// How each record is written.
    #[serde(default)]
    pub format: RecordFormat,
    /// The text for `format = "template"`.
    #[serde(default)]
    pub template: Option<String>,
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

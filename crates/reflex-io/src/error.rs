//! reflex-io's errors: what went wrong, with the file, sink or template field it concerns as
//! data. Their `Display` is the one line a user sees; `reflexd` adds the config file in front
//! and decides the exit status.

use std::io;
use std::path::PathBuf;

/// An input, a recording, the live view or a sink could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A recording could not be read: an I/O error, not a regular file, or past the size limit.
    #[error("{}: {source}", path.display())]
    ReadBounded {
        /// The file.
        path: PathBuf,
        /// Why.
        source: reflex_config::file::ReadError,
    },
    /// A recording given to `replay` is not an MCAP file.
    #[error("{}: not an MCAP file", path.display())]
    NotMcap {
        /// The file.
        path: PathBuf,
    },
    /// A recording damaged in the middle (not merely cut short at its end): replayed up to
    /// the damage, and no further.
    #[error("{}: damaged, replayed only up to it: {damage}", path.display())]
    Damaged {
        /// The recording.
        path: PathBuf,
        /// Where and how.
        damage: crate::mcap::Damage,
    },
    /// A file could not be created.
    #[error("{}: cannot create: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing to a file failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start the {thread} thread: {source}")]
    Thread {
        /// Which thread.
        thread: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A thread panicked.
    #[error("the {thread} thread failed")]
    Panicked {
        /// Which thread.
        thread: &'static str,
    },
    /// `[labels] listen` could not be bound (an address in use, or not this host's).
    #[error("[labels] listen = \"{addr}\": cannot bind: {source}")]
    Labels {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The live view cannot listen on its address (in use, not this machine's, not permitted).
    #[error("[live] listen = \"{addr}\": cannot listen there: {source}")]
    Listen {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The live view's server could not be set up.
    #[error("[live]: {source}")]
    Live {
        /// What the Foxglove SDK said.
        source: foxglove::FoxgloveError,
    },
    /// A sink could not be started.
    #[error("[{sink}]: {source}")]
    Sink {
        /// Which sink.
        sink: SinkName,
        /// Why.
        source: SinkError,
    },
}

/// A sink as the config lists it: `sinks[1] (udp 127.0.0.1:9000)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkName {
    /// Its index in `[[sinks]]`.
    pub index: usize,
    /// Its kind and target.
    pub what: String,
}

impl std::fmt::Display for SinkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sinks[{}] ({})", self.index, self.what)
    }
}

/// Why a sink could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Its template does not parse or names what the model does not output.
    #[error("template: {0}")]
    Template(#[from] TemplateError),
    /// `kind = "file"`: the file cannot be opened.
    #[error("cannot open {} for appending: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `kind = "udp"`: the target does not resolve.
    #[error("cannot resolve {target}: {source}")]
    Resolve {
        /// The target as written.
        target: String,
        /// Why.
        source: io::Error,
    },
    /// `kind = "udp"`: the target resolves to nothing.
    #[error("{target} resolves to no address")]
    NoAddress {
        /// The target as written.
        target: String,
    },
    /// `kind = "udp"`: no socket.
    #[error("cannot open a UDP socket: {0}")]
    Socket(io::Error),
    /// The sink's thread could not be started.
    #[error("cannot start its thread: {0}")]
    Thread(io::Error),
}

/// What is wrong with a record template.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `}` that closes nothing.
    #[error("a lone `}}` (write `}}}}` for a brace)")]
    LoneBrace,
    /// A `{` without its `}`.
    #[error("`{{{spec}` is not closed")]
    NotClosed {
        /// The field as far as it goes.
        spec: String,
    },
    /// A format other than a precision.
    #[error("`{{{spec}}}`: the only format is a precision such as `:.3`")]
    Format {
        /// The field with its format.
        spec: String,
    },
    /// A field no record has.
    #[error(
        "unknown field `{{{name}}}` (fields: window, last_sample, t, label, index, latency_us, generation, values, values[i])"
    )]
    UnknownField {
        /// The field's name.
        name: String,
    },
    /// `{values[i]}` past the model's outputs.
    #[error("`{{{name}}}` but the model outputs {outputs} values")]
    PastOutputs {
        /// The field's name.
        name: String,
        /// Values per record.
        outputs: usize,
    },
}

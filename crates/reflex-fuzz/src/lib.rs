//! Reflex's fuzz targets, each one plain function of the input bytes, so that the same body runs
//! under cargo-fuzz (nightly, coverage-guided, by hand: `fuzz/` at the repository root) and
//! under the stable harness ([`harness`], run by `cargo test -p reflex-fuzz`, hence by CI).
//!
//! The property every target checks is the daemon's: whatever the bytes, no panic, no hang and
//! bounded memory; errors are fine. Some add an oracle of their own (the decoders: any chunking
//! decodes the same).
//!
//! | target | input | what runs |
//! | --- | --- | --- |
//! | `binary`, `csv`, `witmotion` | a serial byte stream | the decoder, whole and in chunks ([`codecs`]) |
//! | `config` | a config file's text | parse, validate, build the graph of built-ins and plugins, run two windows ([`config`]) |
//! | `weights` | a safetensors file | read, check against the trained depthwise model, run a window ([`weights`]) |
//! | `mcap` | a recording | `reflexd info`'s summary, and replay's reading: every record, every sample decoded and windowed ([`mcap`]) |

pub mod codecs;
pub mod config;
pub mod harness;
pub mod mcap;
pub mod weights;

/// One fuzz target.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Its name: the cargo-fuzz binary's and its corpus directory's (`fuzz/corpus/NAME`).
    pub name: &'static str,
    /// Its body.
    pub run: fn(&[u8]),
    /// The most memory one input may hold at once, in bytes (the harness checks it).
    pub memory: usize,
}

const MIB: usize = 1 << 20;

/// Every target.
pub static TARGETS: [Target; 6] = [
    Target { name: "binary", run: codecs::binary, memory: 64 * MIB },
    Target { name: "csv", run: codecs::csv, memory: 64 * MIB },
    Target { name: "witmotion", run: codecs::witmotion, memory: 64 * MIB },
    Target { name: "config", run: config::run, memory: 256 * MIB },
    Target { name: "weights", run: weights::run, memory: 64 * MIB },
    Target { name: "mcap", run: mcap::run, memory: 64 * MIB },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A registry with the built-in layers and the five bundled convolution plugins, linked in
/// statically: the targets never dlopen, and never look in a plugin directory.
pub fn registry() -> reflex_graph::Registry {
    let mut r = reflex_graph::registry();
    for d in [
        &conv_standard::DESCRIPTOR,
        &conv_dilated::DESCRIPTOR,
        &conv_depthwise::DESCRIPTOR,
        &conv_grouped::DESCRIPTOR,
        &residual::DESCRIPTOR,
    ] {
        r.register_static(d);
    }
    r
}

/// A plugin directory that does not exist: a plugin name not registered stays unknown.
pub const NO_PLUGIN_DIR: &str = "/nonexistent/reflex-fuzz";

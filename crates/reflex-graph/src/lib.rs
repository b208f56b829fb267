//! The layer graph: turns `[model]` into configured, loaded layers with every buffer planned,
//! and runs one window through them without allocating.
//!
//! Layers are plugins (shared libraries, found by name in `model.plugin_dir`) or built-in
//! layers registered statically; both go through the same C ABI.
//!
//! ```no_run
//! use reflex_graph::{registry, Graph};
//! use reflex_plugin_sdk::Shape;
//!
//! let config = reflex_config::load("config/reflex.toml".as_ref())?;
//! let input = Shape::Seq { channels: config.source.channels, length: config.window.length };
//! let mut graph = Graph::build(&config.model, input, &mut registry(), "target/release".as_ref())?;
//! let values = graph.run(&vec![0.0; graph.input_len()])?;
//! println!("{values:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod builtin;
mod graph;
pub mod weights;

pub use graph::{Graph, LayerSummary, RunError, Stream, INPUT};
pub use reflex_plugin_host::{Origin, Registry};
pub use weights::{Tensor, Weights, WeightsError};

/// A registry holding the built-in layers; plugins are found on demand.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    for d in builtin::BUILTINS {
        r.register_static(d);
    }
    r
}

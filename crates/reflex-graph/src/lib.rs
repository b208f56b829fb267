//! The layer graph: turns `[model]` into configured, loaded layers with every buffer planned,
//! and runs windows through them without allocating.
//!
//! Three parts, as a window meets them:
//!
//! - **building** ([`Graph::build`], `build.rs`): each layer of `[model]` is created from its
//!   keys, configured with its input shapes and loaded with its tensors; shapes, routing and
//!   tensor names are checked, every problem collected ([`BuildErrors`]), and one buffer per
//!   value (the window, each layer's output) plus one scratch buffer are allocated.
//! - **the streaming planner** ([`Graph::set_hop`], `plan.rs`): for windows that follow each
//!   other by a hop, works out once which output positions of each layer carry over from the
//!   previous window ([`Stream`]). Apart from the rest, as tract keeps `pulse` apart from
//!   `core`: the graph runs without it.
//! - **the forward pass** ([`Graph::run`], `run.rs`): the window is copied into the input
//!   buffer, and each layer in turn reads its inputs' buffers and writes its own, whole or, when
//!   the window follows the previous one, only the positions the plan does not keep. Nothing is
//!   allocated.
//!
//! Every layer goes through one internal interface (`layer.rs`): plugins (shared libraries,
//! found by name in `model.plugin_dir`) and the built-in layers (registered statically) behind
//! the plugin C ABI, and `add`, the graph's own layer with several inputs.
//!
//! ```no_run
//! use reflex_graph::{registry, Graph};
//! use reflex_plugin_sdk::Shape;
//!
//! let config = reflex_config::load("config/reflex.toml".as_ref())?;
//! let input = Shape::Seq { channels: config.source.channels, length: config.window.length };
//! let mut graph = Graph::build(&config.model, input, &mut registry(), "target/release".as_ref())?;
//! graph.set_hop(config.window.hop);
//! let values = graph.run(&vec![0.0; graph.input_len()])?;
//! println!("{values:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod add;
mod buffer;
mod build;
pub mod builtin;
mod error;
mod graph;
mod layer;
mod plan;
mod run;
pub mod weights;

pub use error::{BuildError, BuildErrors, LayerError, RunError};
pub use graph::{Graph, LayerSummary, INPUT, MAX_VALUES};
pub use plan::{Stream, WhyWhole};
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

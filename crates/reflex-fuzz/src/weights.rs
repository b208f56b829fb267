//! `weights`: a safetensors file as `[model] weights` names it — read (every tensor converted to
//! f32), checked against the trained depthwise model of `examples/models/depthwise` (names,
//! shapes, unused tensors, BatchNorm statistics), and when it fits, run on a window.

use crate::{registry, NO_PLUGIN_DIR};
use reflex_graph::{Graph, Weights};
use reflex_plugin_sdk::Shape;
use std::path::Path;
use std::sync::OnceLock;

/// The model the weights are checked against: the bundled example's layers.
const MODEL: &str = include_str!("../../../examples/models/depthwise/reflex.toml");
/// A short window: the model's tensors do not depend on its length, and the run is quicker.
const LENGTH: usize = 16;

fn model() -> &'static reflex_config::Config {
    static MODEL_CONFIG: OnceLock<reflex_config::Config> = OnceLock::new();
    MODEL_CONFIG.get_or_init(|| {
        let path = Path::new("/fuzz/examples/models/depthwise/reflex.toml");
        reflex_config::parse(path, MODEL, std::iter::empty()).expect("the bundled depthwise model's config is valid")
    })
}

/// The target's body.
pub fn run(data: &[u8]) {
    let path = Path::new("/fuzz/weights.safetensors");
    let weights = match Weights::from_bytes(path, data) {
        Ok(w) => w,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let config = model();
    let input = Shape::Seq { channels: config.source.channels, length: LENGTH };
    match Graph::build_with_weights(&config.model, weights, input, &mut registry(), Path::new(NO_PLUGIN_DIR)) {
        Ok(mut graph) => {
            graph.set_hop(config.window.hop);
            let window: Vec<f32> = (0..graph.input_len()).map(|i| ((i % 11) as f32 - 5.0) / 3.0).collect();
            let _ = graph.run(&window);
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
}

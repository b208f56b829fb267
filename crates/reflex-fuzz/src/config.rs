//! `config`: a config file's text as `reflexd check` and `run` take it — parsed with the
//! environment's overrides, validated, its error lines rendered; a valid one's graph built from
//! the built-in layers and the bundled plugins, with weights made up to the shapes its layers
//! ask for, and run on two overlapping windows (the streaming planner's path).
//!
//! Lines `#env KEY=VALUE` (TOML comments) are also given as environment variables, so that the
//! `REFLEX__SECTION__KEY` overrides are fuzzed with the file.

use crate::{registry, NO_PLUGIN_DIR};
use reflex_graph::{BuildError, Graph, LayerError, Weights};
use reflex_plugin_sdk::Shape;
use std::path::Path;

/// Windows larger than this (channels × length) are not built: a large valid config is a
/// large graph by design (its limits are the config's and the graph's own checks).
const MAX_WINDOW: usize = 4096;
/// Made-up weights are only made up to this many values.
const MAX_WEIGHTS: usize = 1 << 20;
/// Graphs costing more multiply-accumulates per window than this are built but not run.
const MAX_MACS: u64 = 1 << 24;

/// The target's body.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = text.lines().filter_map(|l| l.strip_prefix("#env ")?.split_once('='));
    let env = env.map(|(k, v)| (k.to_string(), v.to_string()));
    let path = Path::new("/fuzz/reflex.toml");
    let mut config = match reflex_config::parse(path, text, env) {
        Ok(c) => c,
        Err(errors) => {
            let _ = errors.to_string();
            return;
        }
    };
    let (channels, length) = (config.source.channels, config.window.length);
    if channels.saturating_mul(length) > MAX_WINDOW {
        return;
    }
    // The weights target reads weights files; this one makes them up.
    config.model.weights = None;
    let input = Shape::Seq { channels, length };
    let Some(weights) = made_up_weights(&config.model, input) else { return };
    match Graph::build_with_weights(&config.model, weights, input, &mut registry(), Path::new(NO_PLUGIN_DIR)) {
        Ok(graph) => run_windows(graph, config.window.hop),
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
}

/// Weights of the shapes the model's layers ask for (found by building it with none), or
/// `None` when it cannot be built for another reason or they would be too large.
fn made_up_weights(model: &reflex_config::ModelConfig, input: Shape) -> Option<Weights> {
    let errors =
        match Graph::build_with_weights(model, Weights::default(), input, &mut registry(), NO_PLUGIN_DIR.as_ref()) {
            Ok(_) => return Some(Weights::default()),
            Err(e) => e,
        };
    let mut wanted = Vec::new();
    for e in errors.iter() {
        match e {
            BuildError::Layer { cause: LayerError::MissingTensor { tensor, dims, .. }, .. } => {
                wanted.push((tensor.clone(), dims.clone()));
            }
            _ => {
                let _ = e.to_string();
                return None;
            }
        }
    }
    let total = wanted.iter().try_fold(0usize, |sum, (_, dims)| {
        dims.iter().try_fold(1usize, |n, d| n.checked_mul(*d)).and_then(|n| sum.checked_add(n))
    });
    if total.is_none_or(|n| n > MAX_WEIGHTS) {
        return None;
    }
    Weights::from_bytes(Path::new("made-up.safetensors"), &safetensors_bytes(&wanted)).ok()
}

/// A safetensors file of f32 tensors: small values, variances of 1.
fn safetensors_bytes(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
    use safetensors::tensor::TensorView;
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(name, dims)| {
            let n: usize = dims.iter().product();
            let value = |i: usize| if name.ends_with("running_var") { 1.0 } else { ((i % 7) as f32 - 3.0) / 8.0 };
            (0..n).flat_map(|i| value(i).to_le_bytes()).collect()
        })
        .collect();
    let views = tensors.iter().zip(&data).filter_map(|((name, dims), bytes)| {
        TensorView::new(safetensors::Dtype::F32, dims.clone(), bytes).ok().map(|v| (name.clone(), v))
    });
    safetensors::serialize(views, &None).unwrap_or_default()
}

/// Two windows a hop apart: the second one streamed where the plan allows.
fn run_windows(mut graph: Graph, hop: usize) {
    if graph.layers().iter().map(|l| l.macs).fold(0u64, u64::saturating_add) > MAX_MACS {
        return;
    }
    graph.set_hop(hop);
    let window: Vec<f32> = (0..graph.input_len()).map(|i| ((i % 13) as f32 - 6.0) / 4.0).collect();
    for _ in 0..2 {
        if graph.run(&window).is_err() {
            return;
        }
    }
}

//! Shared by the graph's integration tests: a registry with every bundled plugin linked in
//! statically (the end-to-end tests in `reflexd` load the same plugins with dlopen instead).

#![allow(dead_code)]

use reflex_graph::{Graph, Registry};
use reflex_plugin_sdk::Shape;
use std::path::{Path, PathBuf};

/// The bundled convolution plugins, linked in.
pub static PLUGINS: [&reflex_plugin_sdk::abi::PluginDescriptor; 5] = [
    &conv_standard::DESCRIPTOR,
    &conv_dilated::DESCRIPTOR,
    &conv_depthwise::DESCRIPTOR,
    &conv_grouped::DESCRIPTOR,
    &residual::DESCRIPTOR,
];

pub fn registry() -> Registry {
    let mut r = reflex_graph::registry();
    for d in PLUGINS {
        r.register_static(d);
    }
    r
}

pub fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("reflex.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The plugin directory is never consulted: every plugin is registered statically.
pub fn build(config: &Path) -> Result<(reflex_config::Config, Graph), String> {
    let c = reflex_config::load(config).map_err(|p| p.to_string())?;
    let input = Shape::Seq { channels: c.source.channels, length: c.window.length };
    let g = Graph::build(&c.model, input, &mut registry(), Path::new("/nonexistent")).map_err(|p| p.to_string())?;
    Ok((c, g))
}

/// `input [N, C, L]` and `output [N, F]` as written by tools/make_fixtures.py.
pub fn io(dir: &Path) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let w = reflex_graph::Weights::open(&dir.join("io.safetensors")).expect("io.safetensors");
    let split = |name: &str| {
        let t = w.get(name).unwrap_or_else(|| panic!("{}: no `{name}`", dir.display()));
        let per = t.data.len() / t.shape[0];
        t.data.chunks(per).map(<[f32]>::to_vec).collect::<Vec<_>>()
    };
    (split("input"), split("output"))
}

/// docs/layers.md: within `1e-5 + 1e-4·max|values|` per window.
pub fn close(got: &[f32], want: &[f32]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} values, expected {}", got.len(), want.len()));
    }
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let tol = 1e-5 + 1e-4 * scale;
    match got.iter().zip(want).enumerate().find(|(_, (g, w))| (*g - *w).abs() > tol || g.is_nan()) {
        Some((i, (g, w))) => Err(format!("value {i}: {g} vs PyTorch {w} (tolerance {tol:e})")),
        None => Ok(()),
    }
}

/// Writes an f32 safetensors file.
pub fn write_weights(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (n.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, &None, path).unwrap();
}

/// A config file with `[source] channels`, `[window] length` and the given layers.
pub fn write_config(dir: &Path, channels: usize, length: usize, weights: bool, layers: &str) -> PathBuf {
    let w = if weights { "weights = \"weights.safetensors\"\n" } else { "" };
    let text = format!("[source]\nchannels = {channels}\n[window]\nlength = {length}\n[model]\n{w}{layers}");
    let p = dir.join("reflex.toml");
    std::fs::write(&p, text).unwrap();
    p
}

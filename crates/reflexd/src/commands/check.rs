//! `reflexd check`: every problem with the config, plugins and weights, or OK.

use crate::commands::thousands;
use std::path::Path;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let loaded = crate::model::load(path)?;
    let layers = loaded.graph.layers();
    println!(
        "{}: OK: {} layers, {} parameters, {} MACs per window, output [{}]",
        path.display(),
        layers.len(),
        thousands(layers.iter().map(|l| l.params).sum()),
        thousands(layers.iter().map(|l| l.macs).sum()),
        loaded.graph.output_len()
    );
    Ok(())
}

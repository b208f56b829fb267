//! `reflexd inspect`: the layer graph as a table.

use crate::commands::thousands;
use reflex_graph::Origin;
use std::path::Path;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let loaded = crate::model::load(path)?;
    let layers = loaded.graph.layers();
    let rows: Vec<[String; 8]> = layers
        .iter()
        .map(|l| {
            [
                l.name.clone(),
                l.plugin.clone(),
                l.input.to_string(),
                l.output.to_string(),
                thousands(l.params),
                thousands(l.macs),
                l.receptive_field.map_or("-".into(), |r| r.to_string()),
                l.stream.to_string(),
            ]
        })
        .collect();
    let total = [
        "total".to_string(),
        String::new(),
        String::new(),
        String::new(),
        thousands(layers.iter().map(|l| l.params).sum()),
        thousands(layers.iter().map(|l| l.macs).sum()),
        String::new(),
        String::new(),
    ];
    // Streaming inference: of each layer's output positions, how many a window recomputes
    // when it follows the previous one by `window.hop` samples.
    let recomputed = format!("recomputed at hop {}", loaded.config.window.hop);
    let head =
        ["layer", "plugin", "input", "output", "params", "MACs", "receptive field", &recomputed].map(String::from);
    let mut widths = [0usize; 8];
    for row in std::iter::once(&head).chain(&rows).chain(std::iter::once(&total)) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 8]| {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            // Text left, numbers right.
            .map(|(i, (c, w))| if (4..6).contains(&i) { format!("{c:>w$}") } else { format!("{c:<w$}") })
            .collect();
        cells.join("  ").trim_end().to_string()
    };
    println!("{}", line(&head));
    for r in &rows {
        println!("{}", line(r));
    }
    println!("{}", line(&total));
    println!();
    let mut seen = Vec::new();
    for l in layers {
        if seen.contains(&l.plugin) {
            continue;
        }
        seen.push(l.plugin.clone());
        match &l.origin {
            Origin::Static => println!("{} {}: built in", l.plugin, l.version),
            Origin::Library { path, sha256 } => {
                println!("{} {}: {} (sha256 {})", l.plugin, l.version, path.display(), sha256)
            }
        }
    }
    Ok(())
}

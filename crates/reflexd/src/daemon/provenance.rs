//! What a recording remembers to be replayed faithfully — the config text, the SHA-256 of the
//! weights file and of every plugin library — and the check a replay makes against it.

use crate::model::Loaded;
use reflex_io::recording::SwapEvent;
use std::collections::BTreeMap;
use std::path::Path;

/// The config text and the hashes of what computes the predictions, as a recording's
/// metadata names them.
fn provenance(loaded: &Loaded) -> Vec<(String, String)> {
    let e = swap_event(&loaded.config, &loaded.graph);
    let mut v = vec![("config".to_string(), e.config)];
    v.extend(e.weights_sha256.map(|h| ("weights_sha256".to_string(), h)));
    v.extend(e.plugin_sha256.into_iter().map(|(plugin, h)| (format!("plugin_sha256.{plugin}"), h)));
    v
}

/// A recording's `swap` event for a graph built from `config` (generation 0: the inference
/// thread sets it when it swaps the graph in). The weights' hash is of the bytes the graph
/// loaded, not of the file as it is now.
pub fn swap_event(config: &reflex_config::Config, graph: &reflex_graph::Graph) -> SwapEvent {
    let weights_sha256 = graph.weights_sha256().map(str::to_string);
    let mut plugin_sha256 = BTreeMap::new();
    for l in graph.layers() {
        if let reflex_graph::Origin::Library { sha256, .. } = &l.origin {
            plugin_sha256.insert(l.plugin.to_string(), sha256.clone());
        }
    }
    SwapEvent { event: "swap".into(), generation: 0, config: config.text.clone(), weights_sha256, plugin_sha256 }
}

/// The `reflex` metadata record of a recording; `names` and `units` are the channels'.
pub fn metadata(loaded: &Loaded, names: &[String], units: &[String]) -> BTreeMap<String, String> {
    let s = &loaded.config.source;
    let mut m: BTreeMap<String, String> = provenance(loaded).into_iter().collect();
    m.insert("channel_names".into(), serde_json::to_string(names).unwrap_or_default());
    m.insert("units".into(), serde_json::to_string(units).unwrap_or_default());
    m.insert("config_path".into(), loaded.config.path.display().to_string());
    m.insert("format".into(), s.format.name().into());
    m.insert("channels".into(), s.channels.to_string());
    m.insert("reflexd_version".into(), env!("CARGO_PKG_VERSION").into());
    m
}

/// Warns about every difference between what a recording was made with and what replays it.
pub fn compare(loaded: &Loaded, recorded: &BTreeMap<String, String>, path: &Path) {
    for (key, now) in provenance(loaded) {
        match recorded.get(&key) {
            Some(then) if *then == now => {}
            Some(_) => tracing::warn!(
                "{}: {key} differs from the recording's: values may differ from the live ones",
                path.display()
            ),
            None if key != "config" => tracing::warn!("{}: the recording has no {key}", path.display()),
            None => {}
        }
    }
}

//! What a recording remembers to be replayed faithfully — the config text, the SHA-256 of the
//! weights file and of every plugin library — and the check a replay makes against it.

use crate::model::Loaded;
use std::collections::BTreeMap;
use std::path::Path;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    sha2::Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The config text and the hashes of what computes the predictions.
fn provenance(loaded: &Loaded) -> Vec<(String, String)> {
    let mut v = vec![("config".to_string(), loaded.config.text.clone())];
    if let Some(bytes) = loaded.config.model.weights.as_ref().and_then(|w| std::fs::read(w).ok()) {
        v.push(("weights_sha256".into(), sha256_hex(&bytes)));
    }
    for l in loaded.graph.layers() {
        if let reflex_graph::Origin::Library { sha256, .. } = &l.origin {
            let key = format!("plugin_sha256.{}", l.plugin);
            if !v.iter().any(|(k, _)| *k == key) {
                v.push((key, sha256.clone()));
            }
        }
    }
    v
}

/// The `reflex` metadata record of a recording.
pub fn metadata(loaded: &Loaded) -> BTreeMap<String, String> {
    let s = &loaded.config.source;
    let mut m: BTreeMap<String, String> = provenance(loaded).into_iter().collect();
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

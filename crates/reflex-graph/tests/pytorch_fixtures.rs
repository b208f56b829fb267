//! Every plugin and built-in layer against PyTorch: fixtures made by tools/make_fixtures.py.

mod common;

use std::collections::BTreeSet;

#[test]
fn every_fixture_matches_pytorch() {
    let dirs = common::fixtures();
    assert!(dirs.len() >= 80, "only {} fixture cases found", dirs.len());
    let mut failures = Vec::new();
    for dir in &dirs {
        let case = dir.file_name().unwrap().to_string_lossy().to_string();
        let (_, mut graph) = match common::build(&dir.join("reflex.toml")) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{case}: does not build: {e}"));
                continue;
            }
        };
        let (inputs, outputs) = common::io(dir);
        for (n, (x, want)) in inputs.iter().zip(&outputs).enumerate() {
            match graph.run(x) {
                Ok(got) => {
                    if let Err(e) = common::close(got, want) {
                        failures.push(format!("{case} window {n}: {e}"));
                    }
                }
                Err(e) => failures.push(format!("{case} window {n}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Guards the fixture set itself: a regenerated set that lost a layer or an activation fails.
#[test]
fn fixtures_cover_every_layer_activation_and_padding() {
    let mut plugins = BTreeSet::new();
    let mut activations = BTreeSet::new();
    let mut paddings = BTreeSet::new();
    let mut strided = false;
    for dir in common::fixtures() {
        let c = reflex_config::load(&dir.join("reflex.toml")).unwrap();
        for l in &c.model.layers {
            plugins.insert(l.plugin.clone());
            for key in ["activation", "function", "mid_activation"] {
                if let Some(a) = l.params.get(key).and_then(|v| v.as_str()) {
                    activations.insert(a.to_string());
                }
            }
            if let Some(p) = l.params.get("padding") {
                paddings.insert(if p.is_number() { "int".to_string() } else { p.as_str().unwrap_or("?").to_string() });
            }
            strided |= l.params.get("stride").and_then(|v| v.as_u64()).unwrap_or(1) > 1;
        }
    }
    let want_plugins = [
        "conv_standard",
        "conv_dilated",
        "conv_depthwise",
        "conv_grouped",
        "residual",
        "activation",
        "batch_norm",
        "max_pool",
        "avg_pool",
        "global_avg_pool",
        "global_max_pool",
        "flatten",
        "linear",
        "add",
        "softmax",
    ];
    for p in want_plugins {
        assert!(plugins.contains(p), "no fixture uses {p}");
    }
    for a in ["none", "relu", "relu6", "leaky_relu", "elu", "silu", "gelu", "tanh", "sigmoid", "hardswish"] {
        assert!(activations.contains(a), "no fixture uses activation {a}");
    }
    for p in ["same", "valid", "causal", "int"] {
        assert!(paddings.contains(p), "no fixture uses padding {p}");
    }
    assert!(strided, "no fixture uses a stride above 1");
}

/// The benchmark models (random weights) and the trained example models (real IMU windows).
#[test]
fn the_bundled_models_match_pytorch() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for variant in ["standard", "dilated", "depthwise", "grouped", "residual"]
        .iter()
        .flat_map(|v| [format!("bench/{v}"), format!("models/{v}")])
    {
        let dir = root.join(&variant);
        let (_, mut graph) = common::build(&dir.join("reflex.toml")).unwrap();
        let (inputs, outputs) = common::io(&dir);
        for (x, want) in inputs.iter().zip(&outputs) {
            common::close(graph.run(x).unwrap(), want).unwrap_or_else(|e| panic!("{variant}: {e}"));
        }
    }
}

//! What `reflexd check` relies on: every problem at once, one line each, naming the layer and
//! the key or tensor; and no input, however broken, that panics.

mod common;

use proptest::prelude::*;

const LAYERS: &str = r#"
[[model.layers]]
name = "c1"
plugin = "conv_standard"
out_channels = 4
kernel_size = 3
kernal_size = 3

[[model.layers]]
name = "c2"
plugin = "conv_standard"
input = "input"
out_channels = 4
kernel_size = 3

[[model.layers]]
name = "c3"
plugin = "conv_nonesuch"
out_channels = 4
kernel_size = 3

[[model.layers]]
name = "pool"
plugin = "global_avg_pool"
input = "c2"

[[model.layers]]
name = "c4"
plugin = "conv_standard"
out_channels = 2
kernel_size = 1

[[model.layers]]
name = "fc"
plugin = "linear"
out_features = 2
input = "pool"
"#;

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), 2, 8, true, LAYERS);
    common::write_weights(
        &dir.path().join("weights.safetensors"),
        &[
            ("c1.weight", vec![4, 2, 3], vec![0.1; 24]),
            ("c1.bias", vec![4], vec![0.0; 4]),
            ("c2.weight", vec![4, 2, 5], vec![0.1; 40]),
            ("fc.weight", vec![2, 4], vec![0.1; 8]),
            ("fc.bias", vec![2], vec![0.0; 2]),
            ("stray.weight", vec![1], vec![0.0]),
        ],
    );
    let problems = common::build(&cfg).err().expect("the config is broken");
    let lines: Vec<&str> = problems.lines().collect();
    let has = |a: &str, b: &str| lines.iter().any(|l| l.contains(a) && l.contains(b));
    assert!(has("layer c1 (conv_standard)", "kernal_size"), "{problems}");
    assert!(has("layer c2", "tensor `c2.weight`") && has("c2.weight", "[4, 2, 5], expected [4, 2, 3]"), "{problems}");
    assert!(has("layer c2", "`c2.bias`") && has("c2.bias", "missing"), "{problems}");
    assert!(has("layer c3", "plugin `conv_nonesuch` not found"), "{problems}");
    assert!(has("layer c4", "expects an input [channels, length], got [4]"), "{problems}");
    assert!(has("stray.weight", "not used by any layer"), "{problems}");
    assert_eq!(lines.len(), 6, "one line per problem, no noise:\n{problems}");
}

/// A layer whose keys are wrong has no known output shape: the layers after it are still
/// checked for their keys and plugin, not for shapes or tensors.
#[test]
fn layers_after_a_broken_one_still_have_their_keys_checked() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[model.layers]]\nname = \"a\"\nplugin = \"max_pool\"\nkernel = 2\n\
                  [[model.layers]]\nname = \"b\"\nplugin = \"linear\"\nout_feature = 2\n";
    let cfg = common::write_config(dir.path(), 2, 8, false, layers);
    let p = common::build(&cfg).err().unwrap();
    assert!(p.contains("layer a (max_pool): unknown field `kernel`"), "{p}");
    assert!(p.contains("layer b (linear): unknown field `out_feature`"), "{p}");
}

#[test]
fn shapes_that_do_not_chain_name_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let layers = r#"
[[model.layers]]
name = "pool"
plugin = "max_pool"
kernel_size = 16
[[model.layers]]
name = "fc"
plugin = "linear"
out_features = 2
"#;
    let cfg = common::write_config(dir.path(), 2, 8, false, layers);
    let p = common::build(&cfg).err().unwrap();
    assert!(p.contains("layer pool (max_pool): kernel_size 16 is longer than the input length 8"), "{p}");
}

#[test]
fn the_final_layer_must_be_one_dimensional() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[model.layers]]\nname = \"act\"\nplugin = \"activation\"\nfunction = \"relu\"\n";
    let cfg = common::write_config(dir.path(), 2, 8, false, layers);
    let p = common::build(&cfg).err().unwrap();
    assert!(p.contains("layer act (activation): the final layer outputs [2, 8]"), "{p}");
}

#[test]
fn stride_two_with_same_padding_is_a_config_error_naming_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[model.layers]]\nname = \"c\"\nplugin = \"conv_standard\"\nout_channels = 2\nkernel_size = 3\nstride = 2\n[[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n";
    let cfg = common::write_config(dir.path(), 2, 8, true, layers);
    common::write_weights(&dir.path().join("weights.safetensors"), &[]);
    let p = common::build(&cfg).err().unwrap();
    assert!(p.contains("layer c (conv_standard): padding \"same\" requires stride 1"), "{p}");
}

#[test]
fn routing_to_a_later_or_unknown_layer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layers = r#"
[[model.layers]]
name = "a"
plugin = "flatten"
input = "b"
[[model.layers]]
name = "b"
plugin = "add"
inputs = ["a", "ghost"]
"#;
    let cfg = common::write_config(dir.path(), 2, 8, false, layers);
    let p = common::build(&cfg).err().unwrap();
    assert!(p.contains("layer a (flatten): input `b` is not an earlier layer"), "{p}");
    assert!(p.contains("layer b (add): input `ghost` is not an earlier layer"), "{p}");
}

#[test]
fn a_negative_batch_norm_variance_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[model.layers]]\nname = \"bn\"\nplugin = \"batch_norm\"\n[[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n";
    let cfg = common::write_config(dir.path(), 2, 4, true, layers);
    let t = |n: &'static str, v: Vec<f32>| (n, vec![2], v);
    common::write_weights(
        &dir.path().join("weights.safetensors"),
        &[
            t("bn.weight", vec![1.0; 2]),
            t("bn.bias", vec![0.0; 2]),
            t("bn.running_mean", vec![0.0; 2]),
            t("bn.running_var", vec![1.0, -2.0]),
        ],
    );
    let p = common::build(&cfg).err().unwrap();
    assert!(p.contains("layer bn (batch_norm): running_var holds -2"), "{p}");
}

#[test]
fn a_weights_file_that_is_not_safetensors_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), 2, 8, true, "[[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n");
    std::fs::write(dir.path().join("weights.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    let p = common::build(&cfg).err().unwrap();
    assert_eq!(p.lines().count(), 1, "{p}");
    assert!(p.contains("weights.safetensors: not a safetensors file"), "{p}");
}

/// `torch.save(nn.Sequential(...).state_dict())` names tensors by position: one line says so
/// and how to export instead, rather than one line per missing and unused tensor.
#[test]
fn a_bare_sequential_state_dict_is_one_line_pointing_to_the_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[model.layers]]\nname = \"c1\"\nplugin = \"conv_standard\"\nout_channels = 4\nkernel_size = 3\n\
                  [[model.layers]]\nname = \"bn\"\nplugin = \"batch_norm\"\n\
                  [[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n";
    let cfg = common::write_config(dir.path(), 2, 8, true, layers);
    let t = |n: &'static str, s: Vec<usize>| {
        let len = s.iter().product();
        (n, s, vec![0.5; len])
    };
    common::write_weights(
        &dir.path().join("weights.safetensors"),
        &[
            t("0.weight", vec![4, 2, 3]),
            t("0.bias", vec![4]),
            t("1.weight", vec![4]),
            t("1.bias", vec![4]),
            t("1.running_mean", vec![4]),
            t("1.running_var", vec![4]),
        ],
    );
    let p = common::build(&cfg).err().unwrap();
    assert_eq!(p.lines().count(), 1, "{p}");
    assert!(
        p.contains("weights.safetensors: the tensors are named like a bare nn.Sequential state_dict ('0.bias', '1.bias', …); Reflex names them after the config's layers (c1.weight …): export the model with reflex.export(model, out_dir, channels=…, length=…) from the reflex Python package"),
        "{p}"
    );
}

/// Sizes far beyond any wearable-robot model are errors naming the key, never a crash while
/// planning buffers or an overflow inside a plugin.
#[test]
fn absurd_sizes_are_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    for (keys, needle) in [
        (
            "plugin = \"conv_standard\"\nout_channels = 4611686018427387904\nkernel_size = 3",
            "out_channels = 4611686018427387904: must be between 1 and",
        ),
        (
            "plugin = \"conv_dilated\"\nout_channels = 2\nkernel_size = 3\ndilation = 9223372036854775807",
            "dilation = 9223372036854775807",
        ),
        (
            "plugin = \"conv_standard\"\nout_channels = 1000000\nkernel_size = 3",
            "more than the 67108864 a layer may use",
        ),
    ] {
        let layers =
            format!("[[model.layers]]\nname = \"c\"\n{keys}\n[[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n");
        let cfg = common::write_config(dir.path(), 4, 1000, false, &layers);
        let p = common::build(&cfg).err().unwrap();
        assert!(p.contains(needle) && p.lines().count() == 1, "{p}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // Arbitrary bytes as a weights file: an error or a graph, never a panic.
    #[test]
    fn arbitrary_weight_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), header in 0u64..200) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = common::write_config(dir.path(), 2, 8, true, LAYERS);
        let mut file = header.to_le_bytes().to_vec();
        file.extend(bytes);
        std::fs::write(dir.path().join("weights.safetensors"), file).unwrap();
        let _ = common::build(&cfg);
    }

    // Arbitrary values for every key of a layer: an error or a graph, never a panic.
    #[test]
    fn arbitrary_layer_keys_never_panic(
        plugin in prop::sample::select(vec!["conv_standard", "conv_dilated", "conv_depthwise", "conv_grouped", "residual", "max_pool", "linear", "activation"]),
        k in 0i64..12, out in 0i64..9, stride in -1i64..4, dil in 0i64..4, groups in 0i64..5, mid in 0i64..5,
        padding in prop::sample::select(vec!["\"same\"", "\"valid\"", "\"causal\"", "0", "3", "-2", "\"x\"", "1.5"]),
        length in 1usize..12,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let layers = format!(
            "[[model.layers]]\nname = \"l\"\nplugin = \"{plugin}\"\nkernel_size = {k}\nout_channels = {out}\nstride = {stride}\n\
             dilation = {dil}\ngroups = {groups}\nmid_channels = {mid}\npadding = {padding}\nout_features = {out}\nfunction = \"relu\"\n\
             [[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n"
        );
        let cfg = common::write_config(dir.path(), 4, length, true, &layers);
        common::write_weights(&dir.path().join("weights.safetensors"), &[]);
        let _ = common::build(&cfg);
    }
}

/// Built-in layers and bundled plugins live in one namespace (`plugin = "…"`): no name twice.
#[test]
fn layer_names_are_unique() {
    use reflex_plugin_host::Plugin;
    let mut names: Vec<String> = reflex_graph::builtin::BUILTINS.iter().map(|d| Plugin::from_static(d).name).collect();
    names.push(reflex_graph::builtin::ADD.to_string());
    names.extend(common::PLUGINS.iter().map(|d| Plugin::from_static(d).name));
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    assert_eq!(names.len(), 15);
}

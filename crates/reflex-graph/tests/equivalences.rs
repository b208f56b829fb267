//! Property tests between plugins: the special cases of the general convolutions are the
//! standard convolution, to the bit or nearly.

mod common;

use proptest::prelude::*;

/// Input channels and length, output channels, kernel size.
#[derive(Clone, Copy)]
struct Dims {
    c: usize,
    l: usize,
    o: usize,
    k: usize,
}

fn run(plugin_keys: &str, Dims { c, l, o, k }: Dims, weight: &[f32], bias: &[f32], x: &[f32]) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let layers = format!(
        "[[model.layers]]\nname = \"c\"\n{plugin_keys}\n[[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n"
    );
    let cfg = common::write_config(dir.path(), c, l, true, &layers);
    common::write_weights(
        &dir.path().join("weights.safetensors"),
        &[("c.weight", vec![o, c, k], weight.to_vec()), ("c.bias", vec![o], bias.to_vec())],
    );
    let (_, mut g) = common::build(&cfg).unwrap();
    g.run(x).unwrap().to_vec()
}

fn case() -> impl Strategy<Value = (usize, usize, usize, usize, &'static str, Vec<f32>)> {
    (
        1usize..6,
        1usize..5,
        1usize..6,
        6usize..20,
        prop::sample::select(vec!["\"same\"", "\"valid\"", "\"causal\"", "2"]),
    )
        .prop_flat_map(|(c, o, k, l, pad)| {
            let n = o * c * k + o + c * l;
            (Just(c), Just(o), Just(k), Just(l), Just(pad), prop::collection::vec(-2.0f32..2.0, n))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn dilated_with_dilation_one_is_standard((c, o, k, l, pad, v) in case()) {
        let (w, rest) = v.split_at(o * c * k);
        let (b, x) = rest.split_at(o);
        let d = Dims { c, l, o, k };
        let keys = format!("out_channels = {o}\nkernel_size = {k}\npadding = {pad}\nactivation = \"relu\"");
        let std = run(&format!("plugin = \"conv_standard\"\n{keys}"), d, w, b, x);
        let dil = run(&format!("plugin = \"conv_dilated\"\ndilation = 1\n{keys}"), d, w, b, x);
        prop_assert_eq!(std, dil);
    }

    #[test]
    fn grouped_with_one_group_and_no_shuffle_is_standard((c, o, k, l, pad, v) in case()) {
        let (w, rest) = v.split_at(o * c * k);
        let (b, x) = rest.split_at(o);
        let d = Dims { c, l, o, k };
        let keys = format!("out_channels = {o}\nkernel_size = {k}\npadding = {pad}\nactivation = \"tanh\"");
        let std = run(&format!("plugin = \"conv_standard\"\n{keys}"), d, w, b, x);
        let grp = run(&format!("plugin = \"conv_grouped\"\ngroups = 1\nshuffle = false\n{keys}"), d, w, b, x);
        prop_assert_eq!(std, grp);
    }
}

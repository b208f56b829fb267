//! `conv_standard` through the SDK's conformance harness: odd and even kernels, every padding
//! mode, strides, with and without bias, BatchNorm and activations.

use reflex_plugin_sdk::conformance::{Case, Harness};
use reflex_plugin_sdk::Shape;

reflex_plugin_sdk::count_allocations!();

#[test]
fn conformance() {
    let report = Harness::new(&conv_standard::DESCRIPTOR)
        .case(Case::seq(r#"{"out_channels": 4, "kernel_size": 3, "activation": "relu"}"#, 3, 16))
        .case(Case::seq(r#"{"out_channels": 2, "kernel_size": 4, "bias": false}"#, 2, 11))
        .case(Case::seq(r#"{"out_channels": 5, "kernel_size": 1}"#, 6, 8))
        .case(Case::seq(r#"{"out_channels": 3, "kernel_size": 4, "padding": "causal", "batch_norm": true}"#, 2, 13))
        .case(Case::seq(
            r#"{"out_channels": 3, "kernel_size": 5, "stride": 2, "padding": "valid", "batch_norm": true,
                "activation": "leaky_relu", "negative_slope": 0.2}"#,
            3,
            20,
        ))
        .case(Case::seq(
            r#"{"out_channels": 2, "kernel_size": 3, "stride": 3, "padding": 2, "activation": "gelu"}"#,
            2,
            17,
        ))
        // Long enough for the kernels' wide tiles and for random ranges.
        .case(Case::seq(r#"{"out_channels": 8, "kernel_size": 6, "padding": "same", "activation": "silu"}"#, 4, 64))
        .rejects(r#"{"out_channels": 4, "kernel_size": 3, "stride": 2}"#, Shape::Seq { channels: 3, length: 16 })
        .rejects(r#"{"out_channels": 4, "kernel_size": 0}"#, Shape::Seq { channels: 3, length: 16 })
        .rejects(r#"{"out_channels": 4, "kernel_size": 9, "padding": "valid"}"#, Shape::Seq { channels: 3, length: 8 })
        .rejects(r#"{"out_channels": 4, "kernel_size": 3, "dilation": 2}"#, Shape::Seq { channels: 3, length: 16 })
        .rejects(r#"{"out_channels": 4, "kernel_size": 3}"#, Shape::Flat(16))
        .expect_streaming()
        .run();
    assert_eq!(report.cases, 7, "{report:?}");
    // Not vacuous: ranges were compared and windows streamed.
    assert!(report.ranges > 1000 && report.streamed > 0, "{report:?}");
}

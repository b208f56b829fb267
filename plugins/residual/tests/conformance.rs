//! `residual` through the SDK's conformance harness: identity and projection shortcuts, odd
//! and even middle kernels, "same" and "causal" padding, dilation, BatchNorm on every
//! convolution.

use reflex_plugin_sdk::conformance::{Case, Harness};
use reflex_plugin_sdk::Shape;

reflex_plugin_sdk::count_allocations!();

#[test]
fn conformance() {
    let report = Harness::new(&residual::DESCRIPTOR)
        // Identity shortcut (out = in).
        .case(Case::seq(r#"{"kernel_size": 3, "mid_channels": 2}"#, 4, 16))
        // Projection shortcut.
        .case(Case::seq(r#"{"kernel_size": 3, "mid_channels": 3, "out_channels": 6}"#, 4, 16))
        .case(Case::seq(
            r#"{"kernel_size": 2, "mid_channels": 2, "dilation": 2, "padding": "causal", "batch_norm": true}"#,
            3,
            15,
        ))
        .case(Case::seq(
            r#"{"kernel_size": 4, "mid_channels": 4, "out_channels": 2, "batch_norm": true, "bias": false,
                "activation": "leaky_relu", "negative_slope": 0.1}"#,
            5,
            12,
        ))
        .case(Case::seq(r#"{"kernel_size": 5, "mid_channels": 4, "dilation": 3}"#, 8, 48))
        .rejects(r#"{"kernel_size": 3, "mid_channels": 2, "padding": "valid"}"#, Shape::Seq { channels: 4, length: 16 })
        .rejects(r#"{"kernel_size": 3, "mid_channels": 2, "stride": 2}"#, Shape::Seq { channels: 4, length: 16 })
        .rejects(r#"{"kernel_size": 3, "mid_channels": 0}"#, Shape::Seq { channels: 4, length: 16 })
        .expect_streaming()
        .run();
    assert_eq!(report.cases, 5, "{report:?}");
    // Not vacuous: ranges were compared and windows streamed.
    assert!(report.ranges > 1000 && report.streamed > 0, "{report:?}");
}

//! `conv_depthwise` through the SDK's conformance harness: odd and even depthwise kernels,
//! dilation, stride, every padding mode, an activation between the two convolutions,
//! BatchNorm after the pointwise one.

use reflex_plugin_sdk::conformance::{Case, Harness};
use reflex_plugin_sdk::Shape;

reflex_plugin_sdk::count_allocations!();

#[test]
fn conformance() {
    let report = Harness::new(&conv_depthwise::DESCRIPTOR)
        .case(Case::seq(r#"{"out_channels": 4, "kernel_size": 3}"#, 3, 16))
        .case(Case::seq(
            r#"{"out_channels": 5, "kernel_size": 4, "dilation": 2, "padding": "causal",
                "mid_activation": "relu", "batch_norm": true, "activation": "elu"}"#,
            2,
            18,
        ))
        .case(Case::seq(
            r#"{"out_channels": 3, "kernel_size": 5, "stride": 2, "padding": "valid", "bias": false}"#,
            4,
            21,
        ))
        .case(Case::seq(r#"{"out_channels": 2, "kernel_size": 2, "stride": 3, "padding": 1}"#, 2, 13))
        .case(Case::seq(r#"{"out_channels": 16, "kernel_size": 7, "activation": "relu"}"#, 8, 64))
        .rejects(r#"{"out_channels": 4, "kernel_size": 3, "groups": 3}"#, Shape::Seq { channels: 3, length: 16 })
        .rejects(r#"{"out_channels": 0, "kernel_size": 3}"#, Shape::Seq { channels: 3, length: 16 })
        .rejects(r#"{"out_channels": 4, "kernel_size": 3, "stride": 2}"#, Shape::Seq { channels: 3, length: 16 })
        .expect_streaming()
        .run();
    assert_eq!(report.cases, 5, "{report:?}");
    // Not vacuous: ranges were compared and windows streamed.
    assert!(report.ranges > 1000 && report.streamed > 0, "{report:?}");
}

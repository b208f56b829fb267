//! `conv_grouped` through the SDK's conformance harness: groups with and without the channel
//! shuffle, odd and even kernels, dilation, stride, BatchNorm (indexed before the shuffle).

use reflex_plugin_sdk::conformance::{Case, Harness};
use reflex_plugin_sdk::Shape;

reflex_plugin_sdk::count_allocations!();

#[test]
fn conformance() {
    let report = Harness::new(&conv_grouped::DESCRIPTOR)
        .case(Case::seq(r#"{"out_channels": 4, "kernel_size": 3, "groups": 2}"#, 4, 16))
        .case(Case::seq(r#"{"out_channels": 6, "kernel_size": 4, "groups": 3, "shuffle": false}"#, 3, 12))
        .case(Case::seq(
            r#"{"out_channels": 8, "kernel_size": 2, "groups": 4, "dilation": 2, "padding": "causal",
                "batch_norm": true, "activation": "relu"}"#,
            4,
            14,
        ))
        .case(Case::seq(
            r#"{"out_channels": 4, "kernel_size": 3, "groups": 2, "stride": 2, "padding": "valid",
                "activation": "hardswish"}"#,
            2,
            17,
        ))
        .case(Case::seq(r#"{"out_channels": 8, "kernel_size": 5, "groups": 4, "activation": "sigmoid"}"#, 8, 40))
        .rejects(r#"{"out_channels": 4, "kernel_size": 3, "groups": 2}"#, Shape::Seq { channels: 3, length: 16 })
        .rejects(r#"{"out_channels": 5, "kernel_size": 3, "groups": 2}"#, Shape::Seq { channels: 4, length: 16 })
        .rejects(r#"{"out_channels": 4, "kernel_size": 3}"#, Shape::Seq { channels: 4, length: 16 })
        .expect_streaming()
        .run();
    assert_eq!(report.cases, 5, "{report:?}");
    // Not vacuous: ranges were compared and windows streamed.
    assert!(report.ranges > 1000 && report.streamed > 0, "{report:?}");
}

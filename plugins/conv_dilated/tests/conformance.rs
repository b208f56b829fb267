//! `conv_dilated` through the SDK's conformance harness: dilations 2 and 3 with odd and even
//! kernels, every padding mode, a stride, BatchNorm.

use reflex_plugin_sdk::conformance::{Case, Harness};
use reflex_plugin_sdk::Shape;

reflex_plugin_sdk::count_allocations!();

#[test]
fn conformance() {
    let report = Harness::new(&conv_dilated::DESCRIPTOR)
        .case(Case::seq(r#"{"out_channels": 4, "kernel_size": 3, "dilation": 2}"#, 3, 16))
        .case(Case::seq(r#"{"out_channels": 2, "kernel_size": 4, "dilation": 3, "padding": "causal"}"#, 2, 20))
        .case(Case::seq(
            r#"{"out_channels": 3, "kernel_size": 2, "dilation": 2, "stride": 2, "padding": "valid",
                "batch_norm": true, "activation": "tanh"}"#,
            2,
            15,
        ))
        .case(Case::seq(r#"{"out_channels": 2, "kernel_size": 3, "dilation": 4, "padding": 3, "bias": false}"#, 1, 12))
        .case(Case::seq(r#"{"out_channels": 6, "kernel_size": 5, "dilation": 2, "activation": "relu6"}"#, 4, 48))
        .rejects(r#"{"out_channels": 4, "kernel_size": 3}"#, Shape::Seq { channels: 3, length: 16 })
        .rejects(r#"{"out_channels": 4, "kernel_size": 3, "dilation": 0}"#, Shape::Seq { channels: 3, length: 16 })
        .rejects(
            r#"{"out_channels": 4, "kernel_size": 3, "dilation": 8, "padding": "valid"}"#,
            Shape::Seq { channels: 3, length: 16 },
        )
        .expect_streaming()
        .run();
    assert_eq!(report.cases, 5, "{report:?}");
    // Not vacuous: ranges were compared and windows streamed.
    assert!(report.ranges > 1000 && report.streamed > 0, "{report:?}");
}

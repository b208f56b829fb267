//! `moving_average` through the SDK's conformance harness, as a third-party plugin runs it. The
//! layer computes whole windows only (no `forward_range`), so the harness checks `forward`:
//! deterministic whatever its buffers held, allocation-free, and its refused keys.

use reflex_plugin_sdk::conformance::{Case, Harness};
use reflex_plugin_sdk::Shape;

reflex_plugin_sdk::count_allocations!();

#[test]
fn conformance() {
    let report = Harness::new(&moving_average::DESCRIPTOR)
        .case(Case::seq(r#"{"length": 1}"#, 1, 5))
        .case(Case::seq(r#"{"length": 3}"#, 2, 16))
        .case(Case::seq(r#"{"length": 4}"#, 6, 128))
        // Longer than the window: every output averages what exists.
        .case(Case::seq(r#"{"length": 20}"#, 3, 8))
        .rejects(r#"{"length": 0}"#, Shape::Seq { channels: 2, length: 16 })
        .rejects(r#"{"length": 3}"#, Shape::Flat(16))
        .rejects(r#"{"length": 3, "width": 2}"#, Shape::Seq { channels: 2, length: 16 })
        .run();
    assert_eq!((report.cases, report.rejected), (4, 3), "{report:?}");
}

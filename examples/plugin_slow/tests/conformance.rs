//! `slow` through the SDK's conformance harness, and the harness's check that a panic inside a
//! plugin comes back through the ABI as an error for that window.

use reflex_plugin_sdk::conformance::{Case, Harness};
use reflex_plugin_sdk::Shape;

reflex_plugin_sdk::count_allocations!();

#[test]
fn conformance() {
    let report = Harness::new(&slow::DESCRIPTOR)
        .case(Case::seq(r#"{"ms": 0}"#, 2, 8))
        .case(Case::new(r#"{"ms": 1}"#, Shape::Flat(5)))
        // Random inputs lie in [-1, 1): only the declared window exceeds the limit.
        .case(Case::seq(r#"{"ms": 0, "panic_above": 10}"#, 1, 4).panics_on(vec![0.0, 11.0, 0.0, 0.0]))
        .case(Case::new(r#"{"ms": 0, "panic_above": 1}"#, Shape::Flat(3)).panics_on(vec![2.0, 0.0, 0.0]))
        .rejects(r#"{}"#, Shape::Flat(3))
        .rejects(r#"{"ms": -1}"#, Shape::Flat(3))
        .run();
    assert_eq!((report.cases, report.panics), (4, 2), "{report:?}");
}

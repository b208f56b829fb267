//! The conformance harness catches what it is for: each test-only layer below breaks one rule,
//! and the harness must fail on it, naming the rule. A layer that keeps the rules passes.

use reflex_plugin_sdk::abi::PluginDescriptor;
use reflex_plugin_sdk::conformance::{Case, Harness, Report};
use reflex_plugin_sdk::{descriptor_for, Error, Layer, LayerInfo, Shape, TensorSpec};
use std::ops::Range;

reflex_plugin_sdk::count_allocations!();

/// How a [`Scale`] breaks the rules.
#[derive(serde::Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
enum Bug {
    #[default]
    None,
    /// `forward_range` computes the positions one further on.
    OffByOne,
    /// `forward` allocates.
    Allocates,
    /// `forward_range` writes every position.
    WritesOutside,
    /// Output `t` reads input `t - 1` too, which its declared field (one sample) does not cover.
    ReadsOutside,
    /// `forward` adds what the scratch buffer held.
    ReadsScratch,
    /// Panics when the first input value is above 100.
    Panics,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    factor: f32,
    #[serde(default)]
    bug: Bug,
}

/// Multiplies by `factor` and its one tensor; one sample per output position.
struct Scale {
    keys: Keys,
    shape: Shape,
    weight: f32,
}

impl Scale {
    /// Output `t` of a row.
    fn value(&self, row: &[f32], t: usize) -> f32 {
        let left = if self.keys.bug == Bug::ReadsOutside && t > 0 { 0.5 * row[t - 1] } else { 0.0 };
        row[t] * self.keys.factor * self.weight + left
    }
}

impl Layer for Scale {
    const NAME: &'static str = "scale";
    const VERSION: &'static str = "0.0.1";
    type Params = Keys;
    fn configure(keys: Keys, shape: Shape) -> Result<Self, Error> {
        if keys.factor == 0.0 {
            return Err(Error::config("factor must not be 0"));
        }
        Ok(Scale { keys, shape, weight: 0.0 })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo { scratch_len: 1, ..LayerInfo::elementwise(self.shape) }
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new("weight", &[1])]
    }
    fn load(&mut self, t: &[&[f32]]) -> Result<(), Error> {
        self.weight = t[0][0];
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        match self.keys.bug {
            Bug::Allocates => drop(std::hint::black_box(vec![0u8; 16])),
            Bug::Panics if x[0] > 100.0 => panic!("a bug"),
            _ => {}
        }
        let extra = if self.keys.bug == Bug::ReadsScratch { scratch[0] } else { 0.0 };
        let n = self.shape.len() / self.shape.seq()?.0;
        for (xs, ys) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            for (t, y) in ys.iter_mut().enumerate() {
                *y = self.value(xs, t) + extra;
            }
        }
        Ok(())
    }
    fn stream_offset(&self) -> Option<usize> {
        Some(0)
    }
    fn forward_range(&self, x: &[f32], y: &mut [f32], _: &mut [f32], r: Range<usize>) -> Result<(), Error> {
        let n = self.shape.seq()?.1;
        let r = match self.keys.bug {
            Bug::WritesOutside => 0..n,
            Bug::OffByOne => (r.start + 1).min(n)..(r.end + 1).min(n),
            _ => r,
        };
        for (xs, ys) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            for t in r.clone() {
                ys[t] = self.value(xs, t);
            }
        }
        Ok(())
    }
}

static SCALE: PluginDescriptor = descriptor_for::<Scale>();

fn run(bug: &str) -> Report {
    Harness::new(&SCALE)
        .case(Case::seq(&format!(r#"{{"factor": 2, "bug": "{bug}"}}"#), 2, 9))
        .case(Case::seq(&format!(r#"{{"factor": 3, "bug": "{bug}"}}"#), 1, 40))
        .expect_streaming()
        .run()
}

/// The harness's panic message for `bug`.
fn failure(bug: &str) -> String {
    failure_of(|| run(bug))
}

fn failure_of(f: impl FnOnce() -> Report) -> String {
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("the harness passed a broken layer");
    e.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn a_layer_that_keeps_the_rules_passes() {
    let r = Harness::new(&SCALE)
        .case(Case::seq(r#"{"factor": 2}"#, 2, 9))
        .case(Case::seq(r#"{"factor": 2, "bug": "panics"}"#, 1, 3).panics_on(vec![101.0, 0.0, 0.0]))
        .case(Case::seq(r#"{"factor": 1}"#, 1, 40).weights(|s| vec![0.5; s.len()]))
        .rejects(r#"{"factor": 0}"#, Shape::Seq { channels: 1, length: 4 })
        .rejects(r#"{"factor": 1, "colour": 2}"#, Shape::Seq { channels: 1, length: 4 })
        .expect_streaming()
        .run();
    // Every range over 9 and 3 positions; over 40, every start with 3 ends plus 64 random
    // ones; each for 2 inputs.
    assert_eq!(r.ranges, 2 * (10 * 11 / 2 + 4 * 5 / 2 + (41 * 3 + 64)));
    assert_eq!((r.cases, r.panics, r.rejected), (3, 1, 2));
    assert!(r.streamed > 0 && r.windows > 0);
}

#[test]
fn a_range_off_by_one_is_caught() {
    let m = failure("off_by_one");
    assert!(m.contains("differs from forward"), "{m}");
}

#[test]
fn an_allocation_in_forward_is_caught() {
    let m = failure("allocates");
    assert!(m.contains("forward allocated"), "{m}");
}

#[test]
fn a_range_that_writes_outside_itself_is_caught() {
    let m = failure("writes_outside");
    assert!(m.contains("outside the range"), "{m}");
}

#[test]
fn a_range_that_reads_outside_its_field_is_caught() {
    let m = failure("reads_outside");
    assert!(m.contains("reads inputs outside the receptive field"), "{m}");
}

#[test]
fn reading_scratch_before_writing_it_is_caught() {
    let m = failure("reads_scratch");
    assert!(m.contains("depends on what its output and scratch buffers held"), "{m}");
}

#[test]
fn a_declared_panic_that_does_not_happen_is_caught() {
    let h = Harness::new(&SCALE).case(Case::seq(r#"{"factor": 2}"#, 1, 3).panics_on(vec![101.0, 0.0, 0.0]));
    let m = failure_of(|| h.run());
    assert!(m.contains("declared to panic"), "{m}");
}

#[test]
fn a_configuration_that_should_be_refused_is_caught() {
    let h = Harness::new(&SCALE).rejects(r#"{"factor": 1}"#, Shape::Seq { channels: 1, length: 4 });
    let m = failure_of(|| h.run());
    assert!(m.contains("was accepted"), "{m}");
}

//! A conformance harness a plugin runs in its own tests (cargo feature `conformance`).
//!
//! It drives the plugin through its exported descriptor, that is through the same C entry
//! points the daemon calls, over a few layer configurations the plugin's test names, and
//! checks what the host relies on but cannot check at run time:
//!
//! - **`forward` is a function of its input only**: the same window gives the same bits
//!   whatever the output and scratch buffers held before (the host shares scratch between
//!   layers, so it holds another layer's leftovers).
//! - **`forward_range` is `forward`, in part**: for every range of output positions over a
//!   small window (every `start..end`; all starts plus random ranges over a larger one), the
//!   range equals the same slice of `forward`'s output bit for bit, the rest of the output is
//!   left untouched, and the result does not change when every input position outside the
//!   range's receptive field (`rf_span`, `rf_stride`, `pad_left`) holds something else.
//! - **Streaming**: windows cut from one signal at several hops, each computed the way the
//!   daemon does (the previous output shifted, only positions whose inputs changed recomputed
//!   with `forward_range`), equal whole-window `forward` outputs bit for bit, window after
//!   window.
//! - **No allocation** in `forward` or `forward_range` once the layer is loaded, counted by a
//!   [`CountingAlloc`] the test binary installs with [`count_allocations!`](crate::count_allocations)
//!   (the harness fails if it is not installed, rather than pass without counting).
//! - **Panics are contained**: a case declared to panic on some input
//!   ([`Case::panics_on`]) gets `STATUS_PANIC` back through the ABI, not an unwind (which
//!   would abort the test binary), and the instance still computes the next window.
//! - **Errors are errors**: configurations declared wrong ([`Harness::rejects`]) are refused
//!   with a configuration or shape error, not a panic; the host's protocol mistakes (a window
//!   of the wrong size, a call before `load`, a range beyond the output) are reported as
//!   `STATUS_MISUSE`.
//!
//! The feature is on by default; a plugin that turns the SDK's default features off names it in
//! its `[dev-dependencies]` (`reflex-plugin-sdk = { …, features = ["conformance"] }`). In the
//! plugin's `tests/conformance.rs` (the plugin crate must also be an `rlib`, for the test to
//! reach `DESCRIPTOR`, which [`export_plugin!`](crate::export_plugin) emits):
//!
//! ```
//! # mod my_plugin {
//! #     use reflex_plugin_sdk::{Error, Layer, LayerInfo, Shape, TensorSpec};
//! #     pub struct Scale(f32, Shape);
//! #     #[derive(serde::Deserialize)]
//! #     pub struct Keys { factor: f32 }
//! #     impl Layer for Scale {
//! #         const NAME: &'static str = "scale";
//! #         const VERSION: &'static str = "0.1.0";
//! #         type Params = Keys;
//! #         fn configure(k: Keys, s: Shape) -> Result<Self, Error> {
//! #             if k.factor == 0.0 { return Err(Error::config("factor must not be 0")) }
//! #             Ok(Scale(k.factor, s))
//! #         }
//! #         fn info(&self) -> LayerInfo { LayerInfo::elementwise(self.1) }
//! #         fn tensors(&self) -> Vec<TensorSpec> { Vec::new() }
//! #         fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> { Ok(()) }
//! #         fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
//! #             y.iter_mut().zip(x).for_each(|(y, x)| *y = x * self.0);
//! #             Ok(())
//! #         }
//! #     }
//! #     reflex_plugin_sdk::export_plugin!(scale, Scale);
//! # }
//! use reflex_plugin_sdk::conformance::{Case, Harness};
//! use reflex_plugin_sdk::Shape;
//!
//! reflex_plugin_sdk::count_allocations!();
//!
//! #[test]
//! fn conformance() {
//!     check();
//! }
//!
//! fn check() {
//!     Harness::new(&my_plugin::DESCRIPTOR)
//!         .case(Case::seq(r#"{"factor": 2}"#, 2, 16))
//!         .case(Case::new(r#"{"factor": -1}"#, Shape::Flat(5)))
//!         .rejects(r#"{"factor": 0}"#, Shape::Flat(5))
//!         .run();
//! }
//! # fn main() { check() }
//! ```
//!
//! Weights are random unless a case brings its own ([`Case::weights`]); BatchNorm variances
//! (`…running_var`) are kept positive. A failure panics with the plugin, the case and what
//! differed.

mod alloc;
mod driver;

pub use alloc::{allocations_during, counting_installed, CountingAlloc};
pub use driver::Failure;

use crate::abi::*;
use crate::{Shape, TensorSpec};
use driver::Driver;
use std::fmt;

/// Makes the weights of one tensor (`spec.len()` values).
pub type WeightFn = Box<dyn Fn(&TensorSpec) -> Vec<f32>>;

/// One layer configuration: its keys, its input shape, and optionally its weights and an
/// input it is declared to panic on.
pub struct Case {
    keys: String,
    input: Shape,
    weights: Option<WeightFn>,
    panics_on: Option<Vec<f32>>,
}

impl Case {
    /// The layer's keys (a JSON object, as the host passes them) and its input shape.
    pub fn new(keys: &str, input: Shape) -> Case {
        Case { keys: keys.into(), input, weights: None, panics_on: None }
    }

    /// [`Case::new`] with a `[channels, length]` input.
    pub fn seq(keys: &str, channels: usize, length: usize) -> Case {
        Case::new(keys, Shape::Seq { channels, length })
    }

    /// Weights from `f` instead of random ones.
    pub fn weights(mut self, f: impl Fn(&TensorSpec) -> Vec<f32> + 'static) -> Case {
        self.weights = Some(Box::new(f));
        self
    }

    /// Declares that `forward` panics on this window: the harness checks that the panic comes
    /// back as `STATUS_PANIC` and that the instance still works afterwards.
    pub fn panics_on(mut self, input: Vec<f32>) -> Case {
        self.panics_on = Some(input);
        self
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.keys, self.input)
    }
}

/// What a run checked, for a test that wants to be sure something was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Cases configured, loaded and run.
    pub cases: usize,
    /// Whole windows compared (`forward` against itself with other buffer contents).
    pub windows: usize,
    /// `forward_range` calls compared with `forward`.
    pub ranges: usize,
    /// Windows computed as the daemon streams them.
    pub streamed: usize,
    /// Declared panics seen contained.
    pub panics: usize,
    /// Configurations seen refused.
    pub rejected: usize,
}

/// The harness: a plugin's descriptor and the cases to run it on.
pub struct Harness {
    descriptor: &'static PluginDescriptor,
    cases: Vec<Case>,
    rejects: Vec<(String, Shape)>,
    streaming: bool,
}

impl Harness {
    /// A harness for the plugin `descriptor` describes (the plugin's `DESCRIPTOR` static).
    pub fn new(descriptor: &'static PluginDescriptor) -> Harness {
        Harness { descriptor, cases: Vec::new(), rejects: Vec::new(), streaming: false }
    }

    /// Adds a configuration to check.
    pub fn case(mut self, case: Case) -> Harness {
        self.cases.push(case);
        self
    }

    /// Adds a configuration the layer must refuse with a configuration or shape error.
    pub fn rejects(mut self, keys: &str, input: Shape) -> Harness {
        self.rejects.push((keys.into(), input));
        self
    }

    /// Requires every case to compute ranges (`stream` says supported), so that a plugin that
    /// stops streaming fails its tests instead of skipping the range checks.
    pub fn expect_streaming(mut self) -> Harness {
        self.streaming = true;
        self
    }

    /// Runs every check on every case; panics on the first failure, naming it.
    pub fn run(self) -> Report {
        assert!(
            counting_installed(),
            "conformance: the test binary's global allocator does not count allocations: add \
             `reflex_plugin_sdk::count_allocations!();` at the top of the test file"
        );
        let header = &self.descriptor.header;
        assert!(
            header.magic == MAGIC && header.abi_major == ABI_MAJOR && header.abi_minor >= 1,
            "conformance: not a Reflex plugin descriptor of ABI {ABI_MAJOR}.1 or later"
        );
        // SAFETY: a descriptor's strings are 'static literals (`descriptor_for`).
        let name = String::from_utf8_lossy(unsafe { self.descriptor.name.as_bytes() }).into_owned();
        let mut report = Report::default();
        for case in &self.cases {
            let mut rng = Rng::new(&case.keys);
            let mut l = Loaded::new(self.descriptor, case, &mut rng).unwrap_or_else(|e| fail(&name, case, &e));
            let ctx = Ctx { plugin: &name, case };
            l.check(&ctx, &mut rng, self.streaming, &mut report);
            report.cases += 1;
        }
        for (keys, input) in &self.rejects {
            check_rejected(self.descriptor, &name, keys, *input);
            report.rejected += 1;
        }
        report
    }
}

fn fail(plugin: &str, case: &Case, what: &dyn fmt::Display) -> ! {
    panic!("conformance of `{plugin}`, case {case}: {what}")
}

/// Which plugin and case a failure is about.
struct Ctx<'a> {
    plugin: &'a str,
    case: &'a Case,
}

impl Ctx<'_> {
    fn fail(&self, what: impl fmt::Display) -> ! {
        fail(self.plugin, self.case, &what)
    }
}

fn check_rejected(d: &'static PluginDescriptor, plugin: &str, keys: &str, input: Shape) {
    let result = Driver::create(d, keys).and_then(|mut l| l.configure(input).map(drop));
    match result {
        Err(Failure { status: STATUS_CONFIG | STATUS_SHAPE, message }) if !message.is_empty() => {}
        Err(f) => panic!("conformance of `{plugin}`: {keys} on {input} must be refused with a message and status {STATUS_CONFIG} or {STATUS_SHAPE}, got {f}"),
        Ok(()) => panic!("conformance of `{plugin}`: {keys} on {input} was accepted; it must be refused"),
    }
}

/// NaN with a payload nothing computes: what a buffer holds where nothing may be read, and
/// where an untouched position must still hold it afterwards.
const POISON: f32 = f32::from_bits(0x7fc0_beef);

/// `[channels, length]` of a shape, `(1, len)` for a flat one.
fn rows(s: Shape) -> (usize, usize) {
    match s {
        Shape::Seq { channels, length } => (channels, length),
        Shape::Flat(n) => (1, n),
    }
}

/// The first position where two buffers differ in their bits.
fn first_difference(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits())
}

mod checks;
use checks::Loaded;

/// SplitMix64: reproducible inputs and weights without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from the case, so that a failure reproduces.
    fn new(seed: &str) -> Rng {
        Rng(seed.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| (h ^ b as u64).wrapping_mul(0x1000_0000_01b3)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn values(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

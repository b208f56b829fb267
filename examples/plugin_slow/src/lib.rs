//! `slow`: passes its input through unchanged after sleeping `ms` milliseconds. A stand-in for
//! a model too heavy for the host, to watch the daemon drop the oldest windows under overload
//! (and to test that it does) without needing a heavy model.
//!
//! ```toml
//! [[model.layers]]
//! name = "drag"
//! plugin = "slow"
//! ms = 20
//! ```
//!
//! With `panic_above = x` it also panics on any window holding a value above `x`: a stand-in
//! for a plugin bug, to watch (and test) that a panicking plugin fails that window only.
//!
//! Hostile keys, for the safety tests (each one passes the plain windows of zeros, ones and
//! minus ones a graph is checked with when it is loaded, for `x` ≥ 1): `nan_above = x` outputs
//! NaN for a window holding a value above `x`; `loop_above = x` never returns from such a window;
//! `fail_above = x` returns an error for it.

use reflex_plugin_sdk::{export_plugin, Error, Layer, LayerInfo, Shape, TensorSpec};
use serde::Deserialize;
use std::time::Duration;

/// Keys of `slow`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Milliseconds to sleep per window.
    pub ms: u64,
    /// Panic on a window holding a value above this.
    #[serde(default)]
    pub panic_above: Option<f32>,
    /// Output NaN for a window holding a value above this.
    #[serde(default)]
    pub nan_above: Option<f32>,
    /// Never return from a window holding a value above this.
    #[serde(default)]
    pub loop_above: Option<f32>,
    /// Return an error for a window holding a value above this.
    #[serde(default)]
    pub fail_above: Option<f32>,
}

/// A configured `slow` layer.
pub struct Slow {
    shape: Shape,
    pause: Duration,
    panic_above: Option<f32>,
    nan_above: Option<f32>,
    loop_above: Option<f32>,
    fail_above: Option<f32>,
}

impl Layer for Slow {
    const NAME: &'static str = "slow";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Params = Params;

    fn configure(p: Params, input: Shape) -> Result<Self, Error> {
        Ok(Slow {
            shape: input,
            pause: Duration::from_millis(p.ms),
            panic_above: p.panic_above,
            nan_above: p.nan_above,
            loop_above: p.loop_above,
            fail_above: p.fail_above,
        })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo::elementwise(self.shape)
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        Vec::new()
    }
    fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> {
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        std::thread::sleep(self.pause);
        if let Some(limit) = self.panic_above {
            if x.iter().any(|&v| v > limit) {
                panic!("slow: a value above {limit}");
            }
        }
        let above = |limit: Option<f32>| limit.is_some_and(|l| x.iter().any(|&v| v > l));
        if above(self.loop_above) {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        if above(self.fail_above) {
            return Err(Error::runtime("slow: a value above fail_above"));
        }
        if above(self.nan_above) {
            y.fill(f32::NAN);
            return Ok(());
        }
        y.copy_from_slice(x);
        Ok(())
    }
}

export_plugin!(slow, Slow);

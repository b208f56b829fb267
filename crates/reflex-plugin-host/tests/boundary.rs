//! The ABI boundary, exercised with statically registered plugins: a panic inside a plugin is
//! an error for that call, never an unwind into the host; errors keep their kind and message.

use reflex_plugin_host::{Plugin, PluginError};
use reflex_plugin_sdk::abi::{PluginDescriptor, STATUS_CONFIG, STATUS_PANIC, STATUS_SHAPE};
use reflex_plugin_sdk::{descriptor_for, Error, Layer, LayerInfo, Shape, TensorSpec};
use serde::Deserialize;
use std::sync::Arc;

/// Panics where its keys say.
struct Grenade {
    shape: Shape,
    at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// "configure", "load" or "forward".
    panic_in: String,
}

impl Layer for Grenade {
    const NAME: &'static str = "grenade";
    const VERSION: &'static str = "0.0.1";
    type Params = Keys;
    fn configure(p: Keys, input: Shape) -> Result<Self, Error> {
        if p.panic_in == "configure" {
            panic!("boom in configure");
        }
        if input.is_empty() {
            return Err(Error::shape("empty input"));
        }
        Ok(Grenade { shape: input, at: p.panic_in })
    }
    fn info(&self) -> LayerInfo {
        LayerInfo::elementwise(self.shape)
    }
    fn tensors(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new("weight", &[2])]
    }
    fn load(&mut self, t: &[&[f32]]) -> Result<(), Error> {
        if self.at == "load" {
            let v: Vec<f32> = Vec::new();
            let _ = v[t.len() + 5]; // an index panic, as real bugs are
        }
        Ok(())
    }
    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        if self.at == "forward" && x[0] > 0.0 {
            panic!("boom in forward");
        }
        y.copy_from_slice(x);
        Ok(())
    }
}

static GRENADE: PluginDescriptor = descriptor_for::<Grenade>();

fn plugin() -> Arc<Plugin> {
    Arc::new(Plugin::from_static(&GRENADE))
}

const SHAPE: Shape = Shape::Seq { channels: 1, length: 2 };

#[test]
fn descriptor_strings_cross_the_boundary() {
    let p = plugin();
    assert_eq!((p.name.as_str(), p.version.as_str()), ("grenade", "0.0.1"));
}

#[test]
fn a_panic_in_configure_or_load_is_an_error() {
    let e = plugin().create(r#"{"panic_in": "configure"}"#).unwrap().configure(SHAPE).unwrap_err();
    assert_eq!(e.status, STATUS_PANIC);
    // The message, and where it happened: the panic hook printed nothing.
    assert!(e.message.contains("plugin panicked at crates/reflex-plugin-host/tests/boundary.rs:"), "{e}");
    assert!(e.message.ends_with(": boom in configure"), "{e}");

    let mut l = plugin().create(r#"{"panic_in": "load"}"#).unwrap();
    l.configure(SHAPE).unwrap();
    let e = l.load(&[&[1.0, 2.0]]).unwrap_err();
    assert_eq!(e.status, STATUS_PANIC);
    assert!(e.message.contains("index out of bounds"), "{e}");
}

#[test]
fn a_panic_in_forward_fails_that_window_only() {
    let mut l = plugin().create(r#"{"panic_in": "forward"}"#).unwrap();
    l.configure(SHAPE).unwrap();
    assert_eq!(l.tensor_specs().unwrap(), vec![TensorSpec::new("weight", &[2])]);
    l.load(&[&[0.0, 0.0]]).unwrap();
    let mut y = [0.0; 2];
    let e: PluginError = l.forward(&[1.0, 2.0], &mut y, &mut []).unwrap_err();
    assert_eq!(e.status, STATUS_PANIC);
    assert!(e.to_string().contains("boom in forward"));
    // The instance is still usable for the next window.
    l.forward(&[-1.0, 2.0], &mut y, &mut []).unwrap();
    assert_eq!(y, [-1.0, 2.0]);
}

#[test]
fn layer_errors_keep_their_kind_and_message() {
    let e = plugin().create(r#"{"panic_in": "x", "colour": 1}"#).unwrap_err();
    assert_eq!(e.status, STATUS_CONFIG);
    assert!(e.message.starts_with("unknown field `colour`"), "{e}");
    let e = plugin().create(r#"{"panic_in": "x"}"#).unwrap().configure(Shape::Flat(0)).unwrap_err();
    assert_eq!((e.status, e.message.as_str()), (STATUS_SHAPE, "empty input"));
}

#[test]
fn the_host_cannot_break_the_protocol() {
    let mut l = plugin().create(r#"{"panic_in": "x"}"#).unwrap();
    let mut y = [0.0; 2];
    // Before configure and load.
    assert!(l.forward(&[1.0, 2.0], &mut y, &mut []).is_err());
    l.configure(SHAPE).unwrap();
    // A tensor of the wrong size.
    assert!(l.load(&[&[1.0]]).is_err());
    l.load(&[&[1.0, 2.0]]).unwrap();
    // An input of the wrong size.
    assert!(l.forward(&[1.0], &mut y, &mut []).is_err());
}

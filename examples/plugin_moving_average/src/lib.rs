//! An example of a layer plugin written outside Reflex, against the SDK only.
//!
//! `moving_average` smooths every channel with a causal moving average of `length` samples
//! (shorter at the start of the window, where fewer samples exist). Build it as a `cdylib`,
//! put `libmoving_average.so` in `model.plugin_dir`, and name it in the config:
//!
//! ```toml
//! [[model.layers]]
//! name = "smooth"
//! plugin = "moving_average"
//! length = 4
//! ```

use reflex_plugin_sdk::{export_plugin, Error, Layer, LayerInfo, Shape, TensorSpec};
use serde::Deserialize;

/// Keys of `moving_average`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Samples averaged, ending at the output's own position.
    pub length: usize,
}

/// A configured `moving_average` layer.
pub struct MovingAverage {
    channels: usize,
    len: usize,
    n: usize,
}

impl Layer for MovingAverage {
    const NAME: &'static str = "moving_average";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Params = Params;

    fn configure(p: Params, input: Shape) -> Result<Self, Error> {
        let (channels, len) = input.seq()?;
        if p.length == 0 {
            return Err(Error::config("length must be at least 1"));
        }
        Ok(MovingAverage { channels, len, n: p.length })
    }

    fn info(&self) -> LayerInfo {
        LayerInfo {
            rf_span: Some(self.n as u64),
            ..LayerInfo::elementwise(Shape::Seq { channels: self.channels, length: self.len })
        }
    }

    fn tensors(&self) -> Vec<TensorSpec> {
        Vec::new()
    }

    fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> {
        Ok(())
    }

    fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        for (xs, ys) in x.chunks_exact(self.len).zip(y.chunks_exact_mut(self.len)) {
            let mut sum = 0.0f64;
            for t in 0..self.len {
                sum += xs[t] as f64;
                if t >= self.n {
                    sum -= xs[t - self.n] as f64;
                }
                ys[t] = (sum / (t + 1).min(self.n) as f64) as f32;
            }
        }
        Ok(())
    }
}

export_plugin!(moving_average, MovingAverage);

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_plugin_host::Plugin;
    use std::sync::Arc;

    #[test]
    fn averages_the_last_samples_of_each_channel() {
        let p = Arc::new(Plugin::from_static(&DESCRIPTOR));
        let mut l = p.create(r#"{"length": 2}"#).unwrap();
        let info = l.configure(Shape::Seq { channels: 2, length: 4 }).unwrap();
        assert_eq!(info.rf_span, Some(2));
        l.load(&[]).unwrap();
        let mut y = [0.0; 8];
        l.forward(&[1.0, 3.0, 5.0, 7.0, 0.0, 2.0, 0.0, 2.0], &mut y, &mut []).unwrap();
        assert_eq!(y, [1.0, 2.0, 4.0, 6.0, 0.0, 1.0, 1.0, 1.0]);
    }
}

//! `conv_dilated`: PyTorch `Conv1d(in, out, k, stride, padding, dilation=d)`: a wider receptive
//! field for the same number of taps. Tensors as `conv_standard`.

use reflex_plugin_sdk::conv::{ConvFlavour, ConvSpec, PlainConv};
use reflex_plugin_sdk::{conv_params, export_plugin};

conv_params! {
    /// Keys of `conv_dilated`.
    pub struct Params {
        /// Spacing between taps (required: a dilated layer says how dilated it is).
        dilation: usize,
    }
}

/// What makes a [`PlainConv`] `conv_dilated`: its name and keys.
pub struct Dilated;

impl ConvFlavour for Dilated {
    const NAME: &'static str = "conv_dilated";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Params = Params;
    fn spec(p: &Params) -> ConvSpec {
        p.conv_spec(p.dilation, 1, false)
    }
}

/// A configured `conv_dilated` layer.
pub type ConvDilated = PlainConv<Dilated>;

export_plugin!(conv_dilated, ConvDilated);

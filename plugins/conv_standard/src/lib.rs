//! `conv_standard`: PyTorch `Conv1d(in, out, k, stride, padding)`, optional BatchNorm and
//! activation. Tensors `{name}.weight [out, in, k]`, `{name}.bias [out]`.

use reflex_plugin_sdk::conv::{ConvFlavour, ConvSpec, PlainConv};
use reflex_plugin_sdk::{conv_params, export_plugin};

conv_params! {
    /// Keys of `conv_standard`: the common convolution keys only (no `dilation`).
    pub struct Params {}
}

/// What makes a [`PlainConv`] `conv_standard`: its name and keys.
pub struct Standard;

impl ConvFlavour for Standard {
    const NAME: &'static str = "conv_standard";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Params = Params;
    fn spec(p: &Params) -> ConvSpec {
        p.conv_spec(1, 1, false)
    }
}

/// A configured `conv_standard` layer.
pub type ConvStandard = PlainConv<Standard>;

export_plugin!(conv_standard, ConvStandard);

//! `conv_grouped`: PyTorch `Conv1d(…, groups=g)` followed, by default, by ShuffleNet's channel
//! shuffle (after the activation), so that the next grouped layer mixes information across
//! groups. Tensors `{name}.weight [out, in/g, k]`, `{name}.bias [out]`; BatchNorm is indexed by
//! the convolution's channel, before the shuffle.

use reflex_plugin_sdk::conv::{default_one, default_true, ConvFlavour, ConvSpec, PlainConv};
use reflex_plugin_sdk::{conv_params, export_plugin};

conv_params! {
    /// Keys of `conv_grouped`.
    pub struct Params {
        /// Number of groups; divides both the input and the output channels.
        groups: usize,
        /// Channel shuffle after the activation.
        #[serde(default = "default_true")]
        shuffle: bool,
        /// Spacing between taps.
        #[serde(default = "default_one")]
        dilation: usize,
    }
}

/// What makes a [`PlainConv`] `conv_grouped`: its name and keys.
pub struct Grouped;

impl ConvFlavour for Grouped {
    const NAME: &'static str = "conv_grouped";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Params = Params;
    fn spec(p: &Params) -> ConvSpec {
        p.conv_spec(p.dilation, p.groups, p.shuffle)
    }
}

/// A configured `conv_grouped` layer.
pub type ConvGrouped = PlainConv<Grouped>;

export_plugin!(conv_grouped, ConvGrouped);

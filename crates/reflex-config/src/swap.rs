//! `[swap]`: how a hot-swapped graph proves itself before it drives the actuators.

use serde::Deserialize;

/// The most shadow windows a swap may ask for: at 1 kHz and hop 1, ten seconds.
const MAX_SHADOW_WINDOWS: u32 = 10_000;

/// `[swap]`; without it, 20 shadow windows.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapConfig {
    /// A new graph runs beside the running one on this many live windows (off the hot path)
    /// and is adopted only if every one gave finite values without error. 0: adopted after
    /// its warm-up window alone. Read from the new config, so an edit may change it.
    #[serde(default = "default_shadow_windows")]
    pub shadow_windows: u32,
}

fn default_shadow_windows() -> u32 {
    20
}

impl Default for SwapConfig {
    fn default() -> SwapConfig {
        SwapConfig { shadow_windows: default_shadow_windows() }
    }
}

impl crate::Setting for SwapConfig {
    fn validate(&self) -> Vec<String> {
        if self.shadow_windows > MAX_SHADOW_WINDOWS {
            vec![format!("shadow_windows is {}: at most {MAX_SHADOW_WINDOWS}", self.shadow_windows)]
        } else {
            Vec::new()
        }
    }
}

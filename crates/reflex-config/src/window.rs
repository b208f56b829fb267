//! `[window]`: how the sample stream is cut into the model's input windows.

use serde::Deserialize;

fn one() -> usize {
    1
}
fn default_queue() -> usize {
    32
}

/// The largest `length`, `hop` and `queue`.
pub const MAX_SIZE: usize = 1 << 20;
/// The most values in one window (channels × length).
pub const MAX_WINDOW: usize = 1 << 24;

/// The smallest `std` entry: dividing by less turns ordinary readings into inf (issue 15: a
/// std of 1e-45 passed `check` and made every window NaN).
pub const MIN_STD: f32 = 1e-6;

/// `[window]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Samples per window: the model's input length L.
    pub length: usize,
    /// Samples between the starts of consecutive windows.
    #[serde(default = "one")]
    pub hop: usize,
    /// Windows waiting for inference; when full the oldest is dropped and counted (live only).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Per-channel mean subtracted before the model (default 0).
    #[serde(default)]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation divided by (default 1); every entry must be positive.
    #[serde(default)]
    pub std: Option<Vec<f32>>,
}

impl WindowConfig {
    /// The section's checks against `channels`: one line per problem.
    pub(crate) fn validate(&self, channels: usize) -> Vec<String> {
        let mut p = Vec::new();
        for (key, v) in [("length", self.length), ("hop", self.hop), ("queue", self.queue)] {
            if v == 0 {
                p.push(format!("{key} must be at least 1"));
            } else if v > MAX_SIZE {
                p.push(format!("{key} = {v}: must be at most {MAX_SIZE}"));
            }
        }
        if self.length <= MAX_SIZE && channels.saturating_mul(self.length) > MAX_WINDOW {
            p.push(format!(
                "a window of {channels} channels × {} samples is more than the {MAX_WINDOW} values Reflex plans for",
                self.length
            ));
        }
        for (key, values) in [("mean", &self.mean), ("std", &self.std)] {
            let Some(values) = values else { continue };
            if values.len() != channels {
                p.push(format!("{key} has {} entries but source.channels is {channels}", values.len()));
            }
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                p.push(format!("{key} holds {v}"));
            }
        }
        if let Some(v) = self.std.iter().flatten().find(|v| **v <= 0.0) {
            p.push(format!("std holds {v}: every entry must be positive"));
        } else if let Some(v) = self.std.iter().flatten().find(|v| **v < MIN_STD) {
            p.push(format!(
                "std holds {v}: every entry must be at least {MIN_STD} (a smaller one turns the input into inf)"
            ));
        }
        p
    }
}

//! `[safety]`: what the actuators get when the graph has nothing good to give.

use serde::Deserialize;

/// What a fallback record carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// The last values the graph produced finitely.
    #[default]
    Hold,
    /// The section's `neutral` values.
    Neutral,
    /// Nothing is sent; the fallback is only counted.
    Silent,
}

/// `[safety]`; without it: `hold`, no stale records.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// No new sample decoded for this long: the sinks get `stale` fallback records, repeated at
    /// this interval while it lasts. Off without it.
    #[serde(default)]
    pub stale_after_ms: Option<u64>,
    /// What a fallback record carries.
    #[serde(default)]
    pub fallback: Fallback,
    /// The values of `fallback = "neutral"`, one per output value.
    #[serde(default)]
    pub neutral: Option<Vec<f32>>,
    /// A window whose graph call has not returned after this long gets a `late` record from
    /// the supervisor, then `stale` ones while the call lasts. Off without it.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

/// (That `neutral` has one entry per output value is checked with the graph.)
impl crate::Setting for SafetyConfig {
    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.stale_after_ms == Some(0) {
            p.push("stale_after_ms must be at least 1".to_string());
        }
        if self.deadline_ms == Some(0) {
            p.push("deadline_ms must be at least 1".to_string());
        }
        match (&self.fallback, &self.neutral) {
            (Fallback::Neutral, None) => {
                p.push("fallback = \"neutral\" needs neutral, one value per output".to_string())
            }
            (Fallback::Hold | Fallback::Silent, Some(_)) => {
                p.push("neutral is only used with fallback = \"neutral\"".to_string())
            }
            _ => {}
        }
        if let Some(v) = self.neutral.iter().flatten().find(|v| !v.is_finite()) {
            p.push(format!("neutral holds {v}: every value must be finite"));
        }
        p
    }
}

//! `[output]`: what the final layer's values mean.

use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
/// What the model's output values are.
pub enum OutputKind {
    /// `label` = `labels[argmax(values)]`.
    Classify,
    /// The values themselves (e.g. joint torques).
    #[default]
    Regress,
}

/// `[output]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `"classify"` or `"regress"`.
    #[serde(default)]
    pub kind: OutputKind,
    /// One per output value; required by `classify`.
    #[serde(default)]
    pub labels: Vec<String>,
}

impl OutputConfig {
    /// The section's own checks: one line per problem.
    pub(crate) fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.kind == OutputKind::Classify && self.labels.is_empty() {
            p.push("kind = \"classify\" needs labels, one per output value".to_string());
        }
        for (i, l) in self.labels.iter().enumerate() {
            if self.labels[..i].contains(l) {
                p.push(format!("label \"{l}\" appears twice"));
            }
        }
        p
    }
}

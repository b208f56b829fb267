//! The weights file: one safetensors file, every tensor converted to f32 when it is opened.

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a safetensors file: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{}: tensor `{name}` is {dtype}; Reflex reads F32, F16 and BF16", path.display())]
    Dtype { path: PathBuf, name: String, dtype: String },
    #[error("{}: tensor `{name}` holds {value}", path.display())]
    NotFinite { path: PathBuf, name: String, value: f32 },
}

/// A tensor converted to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every tensor of a weights file, by name.
#[derive(Debug, Default)]
pub struct Weights {
    pub path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
}

/// PyTorch saves BatchNorm's step counter next to its statistics; it plays no part in eval.
fn ignored(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

impl Weights {
    pub fn open(path: &Path) -> Result<Weights, WeightsError> {
        let bytes = std::fs::read(path).map_err(|source| WeightsError::Io { path: path.into(), source })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses safetensors bytes; `path` only names the file in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Weights, WeightsError> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| WeightsError::Format { path: path.into(), message: e.to_string() })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if ignored(&name) {
                continue;
            }
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                Dtype::F16 => raw.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                Dtype::BF16 => raw.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                other => {
                    return Err(WeightsError::Dtype { path: path.into(), name, dtype: format!("{other:?}") });
                }
            };
            if let Some(&value) = data.iter().find(|v| !v.is_finite()) {
                return Err(WeightsError::NotFinite { path: path.into(), name, value });
            }
            tensors.insert(name, Tensor { shape: view.shape().to_vec(), data });
        }
        Ok(Weights { path: path.into(), tensors })
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Names not in `used`, for the "unused tensor" check.
    pub fn unused<'a>(&'a self, used: &'a BTreeSet<String>) -> impl Iterator<Item = &'a str> {
        self.names().filter(move |n| !used.contains(*n))
    }
}

//! The weights file: one safetensors file, every tensor converted to f32 when it is opened.

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A weights file that cannot be used, and which file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file cannot be read: an I/O error, not a regular file, or past the size limit.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: reflex_config::file::ReadError,
    },
    /// The file is not safetensors.
    #[error("{}: not a safetensors file: {source}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What the safetensors parser said.
        source: safetensors::SafeTensorError,
    },
    /// A tensor has a type Reflex does not read.
    #[error("{}: tensor `{tensor}` is {dtype}; Reflex reads F32, F16 and BF16", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its type.
        dtype: String,
    },
    /// A tensor holds an infinity or NaN.
    #[error("{}: tensor `{tensor}` holds {value}", path.display())]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The first value that is not finite.
        value: f32,
    },
}

/// A tensor converted to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Its dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// Every tensor of a weights file, by name.
#[derive(Debug, Default)]
pub struct Weights {
    /// The file they were read from.
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the bytes parsed: what recordings name the weights by.
    pub sha256: String,
    tensors: BTreeMap<String, Tensor>,
}

/// PyTorch saves BatchNorm's step counter next to its statistics; it plays no part in eval.
fn ignored(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

impl Weights {
    /// Reads and converts the file at `path`.
    pub fn open(path: &Path) -> Result<Weights, WeightsError> {
        let bytes = reflex_config::file::read_bounded(path, reflex_config::file::WEIGHTS_LIMIT)
            .map_err(|source| WeightsError::Read { path: path.into(), source })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses safetensors bytes; `path` only names the file in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Weights, WeightsError> {
        let st =
            SafeTensors::deserialize(bytes).map_err(|source| WeightsError::Format { path: path.into(), source })?;
        let sha256 = reflex_plugin_host::sha256_hex(bytes);
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
                    return Err(WeightsError::Dtype { path: path.into(), tensor: name, dtype: format!("{other:?}") });
                }
            };
            if let Some(&value) = data.iter().find(|v| !v.is_finite()) {
                return Err(WeightsError::NotFinite { path: path.into(), tensor: name, value });
            }
            tensors.insert(name, Tensor { shape: view.shape().to_vec(), data });
        }
        Ok(Weights { path: path.into(), sha256, tensors })
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Every tensor's name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Names not in `used`, for the "unused tensor" check.
    pub fn unused<'a>(&'a self, used: &'a BTreeSet<String>) -> impl Iterator<Item = &'a str> {
        self.names().filter(move |n| !used.contains(*n))
    }
}

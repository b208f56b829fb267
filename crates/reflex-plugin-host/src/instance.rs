//! A safe handle on one layer instance living inside a plugin.

use crate::{entry, Plugin};
use reflex_plugin_sdk::abi::*;
use reflex_plugin_sdk::{ErrorKind, LayerInfo, Shape, TensorSpec};
use std::fmt;
use std::sync::Arc;

/// Long enough for any message a layer has a reason to send; longer ones are cut.
const ERROR_CAP: usize = 1024;

/// A call into a plugin failed: the status code and message it returned (or the host's own,
/// [`STATUS_MISUSE`], when the plugin broke the protocol), and which plugin it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", StatusSuffix(*.status))]
pub struct PluginError {
    /// One of the ABI's `STATUS_*` codes.
    pub status: Status,
    /// The plugin's one line, without the layer's name.
    pub message: String,
    /// The plugin's name (its descriptor's).
    pub plugin: String,
}

/// Panics and protocol errors are bugs, not configuration mistakes: their status is shown so
/// that a bug report says which.
struct StatusSuffix(Status);

impl fmt::Display for StatusSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            STATUS_PANIC | STATUS_MISUSE => write!(f, " (status {})", self.0),
            _ => Ok(()),
        }
    }
}

impl PluginError {
    /// The SDK's kind for this status, when it is one of the layer's own (not a panic or misuse).
    pub fn kind(&self) -> Option<ErrorKind> {
        match self.status {
            STATUS_CONFIG => Some(ErrorKind::Config),
            STATUS_SHAPE => Some(ErrorKind::Shape),
            STATUS_TENSOR => Some(ErrorKind::Tensor),
            STATUS_RUNTIME => Some(ErrorKind::Runtime),
            _ => None,
        }
    }

    /// The host's own error about `plugin`.
    fn host(plugin: &Plugin, message: &str) -> Self {
        PluginError { status: STATUS_MISUSE, message: message.into(), plugin: plugin.name.clone() }
    }
}

/// One layer inside a plugin: created from its keys, configured with its input shape, loaded
/// with its tensors, then run once per window.
pub struct LayerInstance {
    plugin: Arc<Plugin>,
    inst: Instance,
    info: Option<LayerInfo>,
    tensor_count: u32,
    /// Preallocated so that a failing `forward` reports without allocating on the hot path.
    err: Box<[u8; ERROR_CAP]>,
}

// SAFETY: the ABI requires instances to be usable from any one thread at a time (the SDK's
// `Layer: Send`), and `LayerInstance` is not `Sync`.
unsafe impl Send for LayerInstance {}

impl fmt::Debug for LayerInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerInstance").field("plugin", &self.plugin.name).field("info", &self.info).finish()
    }
}

impl LayerInstance {
    pub(crate) fn create(plugin: Arc<Plugin>, params_json: &str) -> Result<Self, PluginError> {
        let mut err = Box::new([0u8; ERROR_CAP]);
        let mut inst: Instance = std::ptr::null_mut();
        let params = RxStr { ptr: params_json.as_ptr(), len: params_json.len() };
        let mut e = RxError { buf: err.as_mut_ptr(), cap: ERROR_CAP, len: 0 };
        // SAFETY: arguments follow the ABI; `params` outlives the call.
        let status = unsafe { entry!(plugin, create)(params, &mut inst, &mut e) };
        if status != STATUS_OK {
            return Err(PluginError { status, message: message(&err[..], e.len), plugin: plugin.name.clone() });
        }
        if inst.is_null() {
            return Err(PluginError::host(&plugin, "plugin returned no instance"));
        }
        Ok(LayerInstance { plugin, inst, info: None, tensor_count: 0, err })
    }

    /// The plugin this instance lives in.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    fn call(&mut self, f: impl FnOnce(Instance, *mut RxError) -> Status) -> Result<(), PluginError> {
        let mut e = RxError { buf: self.err.as_mut_ptr(), cap: ERROR_CAP, len: 0 };
        let status = f(self.inst, &mut e);
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(PluginError { status, message: message(&self.err[..], e.len), plugin: self.plugin.name.clone() })
        }
    }

    /// Checks the input shape; returns what the layer produces and needs.
    pub fn configure(&mut self, input: Shape) -> Result<LayerInfo, PluginError> {
        let shape = input.to_abi();
        let mut raw = RxLayerInfo::default();
        let configure = entry!(self.plugin, configure);
        // SAFETY: `inst` is live (from `create`, destroyed only in Drop) and `&mut self` keeps
        // other calls off it; `shape` and `raw` are valid for the call.
        self.call(|inst, e| unsafe { configure(inst, &shape, &mut raw, e) })?;
        let output = Shape::from_abi(&raw.output)
            .ok_or_else(|| PluginError::host(&self.plugin, "plugin reported a bad output shape"))?;
        let info = LayerInfo {
            output,
            scratch_len: usize::try_from(raw.scratch_len)
                .map_err(|_| PluginError::host(&self.plugin, "scratch too large"))?,
            params: raw.params,
            macs: raw.macs,
            rf_span: (raw.rf_span > 0).then_some(raw.rf_span),
            rf_stride: raw.rf_stride.max(1),
        };
        self.info = Some(info);
        self.tensor_count = raw.tensor_count;
        Ok(info)
    }

    /// The tensors `load` expects, with names relative to the layer.
    pub fn tensor_specs(&self) -> Result<Vec<TensorSpec>, PluginError> {
        let mut v = Vec::with_capacity(self.tensor_count as usize);
        for i in 0..self.tensor_count {
            let mut raw = RxTensorSpec { name: RxStr { ptr: std::ptr::null(), len: 0 }, rank: 0, dims: [0; 4] };
            // SAFETY: i < tensor_count; the name is owned by the instance and copied at once.
            let status = unsafe { entry!(self.plugin, tensor_spec)(self.inst, i, &mut raw) };
            if status != STATUS_OK || raw.rank > 4 || (raw.name.len > 0 && raw.name.ptr.is_null()) {
                return Err(PluginError::host(&self.plugin, "plugin failed to describe a tensor"));
            }
            // SAFETY: checked non-null above; valid while the instance lives.
            let name = String::from_utf8_lossy(unsafe { raw.name.as_bytes() }).into_owned();
            let dims = raw.dims[..raw.rank as usize].iter().map(|&d| d as usize).collect();
            v.push(TensorSpec { name, dims });
        }
        Ok(v)
    }

    /// Hands over the tensors in `tensor_specs` order (BatchNorm folding etc. happen here).
    pub fn load(&mut self, tensors: &[&[f32]]) -> Result<(), PluginError> {
        let raw: Vec<RxTensor> = tensors.iter().map(|t| RxTensor { data: t.as_ptr(), len: t.len() }).collect();
        let load = entry!(self.plugin, load);
        // SAFETY: `raw` borrows `tensors`, which outlive the call.
        self.call(|inst, e| unsafe { load(inst, raw.as_ptr(), raw.len() as u32, e) })
    }

    /// Runs one window. `output` must have the configured output length and `scratch` at least
    /// `scratch_len` elements. Allocates nothing unless the plugin fails.
    pub fn forward(&mut self, input: &[f32], output: &mut [f32], scratch: &mut [f32]) -> Result<(), PluginError> {
        let forward = entry!(self.plugin, forward);
        // SAFETY: the slices are valid for the call and do not overlap (distinct borrows).
        self.call(|inst, e| unsafe {
            forward(
                inst,
                input.as_ptr(),
                input.len(),
                output.as_mut_ptr(),
                output.len(),
                scratch.as_mut_ptr(),
                scratch.len(),
                e,
            )
        })
    }
}

impl LayerInstance {
    /// Streaming (after `configure`): `Some(pad_left)` when the layer can compute any range of
    /// its output positions by itself ([`LayerInstance::forward_range`]); `None` for a layer
    /// that cannot, or a plugin built before ABI minor 1.
    pub fn stream_offset(&mut self) -> Option<usize> {
        let (stream, _) = self.plugin.streaming?;
        let mut raw = RxStream::default();
        // SAFETY: `inst` is live and used by this call only (`&mut self`); the plugin reports a
        // call before `configure` as misuse; `raw` is valid for the call.
        let status = unsafe { stream(self.inst, &mut raw) };
        (status == STATUS_OK && raw.supported == 1).then(|| usize::try_from(raw.pad_left).ok()).flatten()
    }

    /// Output positions `range` of every channel only, reading only the input positions they
    /// see; the rest of `output` is left as it is. Only for layers with a
    /// [`stream_offset`](LayerInstance::stream_offset). Allocates nothing unless the plugin fails.
    pub fn forward_range(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
        range: std::ops::Range<usize>,
    ) -> Result<(), PluginError> {
        let Some((_, forward_range)) = self.plugin.streaming else {
            return Err(PluginError::host(&self.plugin, "this plugin cannot compute part of its output"));
        };
        // SAFETY: as `forward`; the plugin checks the range against its output.
        self.call(|inst, e| unsafe {
            forward_range(
                inst,
                input.as_ptr(),
                input.len(),
                output.as_mut_ptr(),
                output.len(),
                scratch.as_mut_ptr(),
                scratch.len(),
                range.start,
                range.end,
                e,
            )
        })
    }
}

fn message(buf: &[u8], len: usize) -> String {
    String::from_utf8_lossy(&buf[..len.min(buf.len())]).into_owned()
}

impl Drop for LayerInstance {
    fn drop(&mut self) {
        // SAFETY: `inst` came from this plugin's `create` and is destroyed once.
        unsafe { entry!(self.plugin, destroy)(self.inst) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bugs_show_their_status() {
        let e = |status| PluginError { status, message: "m".into(), plugin: "p".into() }.to_string();
        assert_eq!(e(STATUS_CONFIG), "m");
        assert_eq!(e(STATUS_PANIC), format!("m (status {STATUS_PANIC})"));
        assert_eq!(e(STATUS_MISUSE), format!("m (status {STATUS_MISUSE})"));
    }
}

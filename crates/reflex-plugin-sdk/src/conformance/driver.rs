//! One layer instance driven through a plugin's C entry points, as the host drives it.

use crate::abi::*;
use crate::{Shape, TensorSpec};

/// Room for any message a layer has a reason to send.
const ERROR_CAP: usize = 1024;

/// What an entry point returned when it did not return `STATUS_OK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The `STATUS_*` code.
    pub status: Status,
    /// The plugin's message.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {}: {}", self.status, self.message)
    }
}

/// A live instance of the plugin, destroyed on drop.
pub(crate) struct Driver {
    d: &'static PluginDescriptor,
    inst: Instance,
    /// Preallocated, so that a failing call's message costs no allocation inside the call.
    err: Box<[u8; ERROR_CAP]>,
}

/// The window buffers of a `forward` or `forward_range` call.
pub(crate) struct Bufs<'a> {
    pub(crate) input: &'a [f32],
    pub(crate) output: &'a mut [f32],
    pub(crate) scratch: &'a mut [f32],
}

impl Driver {
    /// `create` with the layer's keys.
    pub(crate) fn create(d: &'static PluginDescriptor, keys: &str) -> Result<Driver, Failure> {
        let mut driver = Driver { d, inst: std::ptr::null_mut(), err: Box::new([0; ERROR_CAP]) };
        let params = RxStr { ptr: keys.as_ptr(), len: keys.len() };
        let mut inst: Instance = std::ptr::null_mut();
        // SAFETY: `params` points at `keys`, which outlives the call; `inst` and the error
        // buffer are valid for writes (the ABI's contract for `create`).
        driver.call(|e| unsafe { (d.create)(params, &mut inst, e) })?;
        if inst.is_null() {
            return Err(Failure { status: STATUS_MISUSE, message: "create returned no instance".into() });
        }
        driver.inst = inst;
        Ok(driver)
    }

    fn call(&mut self, f: impl FnOnce(*mut RxError) -> Status) -> Result<(), Failure> {
        let mut e = RxError { buf: self.err.as_mut_ptr(), cap: ERROR_CAP, len: 0 };
        match f(&mut e) {
            STATUS_OK => Ok(()),
            status => {
                let message = String::from_utf8_lossy(&self.err[..e.len.min(ERROR_CAP)]).into_owned();
                Err(Failure { status, message })
            }
        }
    }

    /// `configure` with the input shape.
    pub(crate) fn configure(&mut self, input: Shape) -> Result<RxLayerInfo, Failure> {
        let (shape, mut info, inst, f) = (input.to_abi(), RxLayerInfo::default(), self.inst, self.d.configure);
        // SAFETY: `inst` is live (from `create`, destroyed in Drop) and `&mut self` keeps other
        // calls off it; `shape`, `info` and the error buffer are valid for the call.
        self.call(|e| unsafe { f(inst, &shape, &mut info, e) })?;
        Ok(info)
    }

    /// Every `tensor_spec` of a configured instance.
    pub(crate) fn tensor_specs(&mut self, count: u32) -> Result<Vec<TensorSpec>, Failure> {
        (0..count).map(|i| self.tensor_spec(i)).collect()
    }

    fn tensor_spec(&mut self, index: u32) -> Result<TensorSpec, Failure> {
        let mut raw = RxTensorSpec { name: RxStr { ptr: std::ptr::null(), len: 0 }, rank: 0, dims: [0; 4] };
        // SAFETY: `inst` is live and used by this call only; `raw` is valid for writes.
        let status = unsafe { (self.d.tensor_spec)(self.inst, index, &mut raw) };
        if status != STATUS_OK || raw.rank > 4 || (raw.name.len > 0 && raw.name.ptr.is_null()) {
            return Err(Failure { status, message: format!("tensor_spec({index}) failed") });
        }
        // SAFETY: non-null when non-empty (checked above); the name lives as long as the
        // instance (the ABI) and is copied at once.
        let name = String::from_utf8_lossy(unsafe { raw.name.as_bytes() }).into_owned();
        let dims = raw.dims[..raw.rank as usize].iter().map(|&d| d as usize).collect();
        Ok(TensorSpec { name, dims })
    }

    /// `load` with the tensors in `tensor_spec` order.
    pub(crate) fn load(&mut self, tensors: &[Vec<f32>]) -> Result<(), Failure> {
        let raw: Vec<RxTensor> = tensors.iter().map(|t| RxTensor { data: t.as_ptr(), len: t.len() }).collect();
        let (inst, f) = (self.inst, self.d.load);
        // SAFETY: `raw` and the tensors it points at outlive the call; `inst` is live and used
        // by this call only.
        self.call(|e| unsafe { f(inst, raw.as_ptr(), raw.len() as u32, e) })
    }

    /// `stream`: `Some(pad_left)` when the layer computes ranges.
    pub(crate) fn stream(&mut self) -> Result<Option<usize>, Failure> {
        let mut raw = RxStream::default();
        // SAFETY: `inst` is live and used by this call only; `raw` is valid for writes.
        let status = unsafe { (self.d.stream)(self.inst, &mut raw) };
        if status != STATUS_OK {
            return Err(Failure { status, message: "stream failed".into() });
        }
        Ok((raw.supported == 1).then_some(raw.pad_left as usize))
    }

    /// `forward` on one window.
    pub(crate) fn forward(&mut self, b: Bufs<'_>) -> Result<(), Failure> {
        let (inst, f) = (self.inst, self.d.forward);
        let (x, y, s) = (b.input, b.output, b.scratch);
        // SAFETY: three distinct borrows, valid for their lengths for the call; `inst` is live
        // and used by this call only.
        self.call(|e| unsafe { f(inst, x.as_ptr(), x.len(), y.as_mut_ptr(), y.len(), s.as_mut_ptr(), s.len(), e) })
    }

    /// `forward_range` on output positions `start..end`.
    pub(crate) fn forward_range(&mut self, b: Bufs<'_>, start: usize, end: usize) -> Result<(), Failure> {
        let (inst, f) = (self.inst, self.d.forward_range);
        let (x, y, s) = (b.input, b.output, b.scratch);
        // SAFETY: as `forward`.
        self.call(|e| unsafe {
            f(inst, x.as_ptr(), x.len(), y.as_mut_ptr(), y.len(), s.as_mut_ptr(), s.len(), start, end, e)
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.inst.is_null() {
            // SAFETY: `inst` came from this descriptor's `create` and is destroyed once, here.
            unsafe { (self.d.destroy)(self.inst) }
        }
    }
}

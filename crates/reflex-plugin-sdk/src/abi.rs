//! The plugin boundary: everything that crosses between the host and a layer plugin.
//!
//! Only `#[repr(C)]` plain data and `extern "C"` function pointers cross it; no Rust type with a
//! layout the compiler may change (String, Vec, Box<dyn …>, Result) ever does, so a plugin built
//! with another compiler version still loads.
//!
//! Versioning: the host reads [`DescriptorHeader`] first and refuses anything whose `magic` is
//! not [`MAGIC`] or whose `abi_major` differs from [`ABI_MAJOR`] before touching any function
//! pointer. A minor bump may only append fields at the end of [`PluginDescriptor`]; the host reads
//! an appended field only when the plugin's `abi_minor` says it is there, and never forms a
//! reference to a whole descriptor of a lower minor (it would reach past the plugin's static).
//!
//! The life of one layer instance:
//! `create(params)` → `configure(input shape)` → `tensor_spec(i)` for each tensor →
//! `load(tensors)` → `forward(…)` per window, any number of times → `destroy`.
//! Since minor 1, a layer that can compute part of its output says so through `stream`, and the
//! host may then call `forward_range` instead of `forward` to recompute only the positions of a
//! window that differ from the previous window's, shifted (streaming inference).

use std::ffi::c_void;

/// Bumped when a change breaks plugins built against the previous version.
pub const ABI_MAJOR: u32 = 1;
/// Bumped when fields are appended to [`PluginDescriptor`]. 1: `stream`, `forward_range`.
pub const ABI_MINOR: u32 = 1;
/// First bytes of every descriptor: a library exporting the symbol by accident is still refused.
pub const MAGIC: [u8; 8] = *b"REFLEXPL";
/// The exported symbol is `reflex_plugin_<name>`, so that several plugins can be linked
/// statically into one test binary without clashing.
pub const SYMBOL_PREFIX: &str = "reflex_plugin_";

/// Status codes returned by every fallible entry point.
pub type Status = i32;
/// The call succeeded.
pub const STATUS_OK: Status = 0;
/// The layer's keys are wrong (unknown key, bad value, missing key).
pub const STATUS_CONFIG: Status = 1;
/// The input shape does not fit the layer.
pub const STATUS_SHAPE: Status = 2;
/// A tensor's contents are unusable (e.g. a negative BatchNorm variance).
pub const STATUS_TENSOR: Status = 3;
/// The forward pass failed for this window.
pub const STATUS_RUNTIME: Status = 4;
/// The plugin panicked; the panic was caught at the boundary.
pub const STATUS_PANIC: Status = 5;
/// The host broke the protocol (wrong lengths, wrong order of calls).
pub const STATUS_MISUSE: Status = 6;

/// A borrowed UTF-8 string; who owns it is stated where it is used.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RxStr {
    /// The first byte; may dangle when `len` is 0.
    pub ptr: *const u8,
    /// Bytes, not characters.
    pub len: usize,
}

// SAFETY: an `RxStr` is a read-only view; the ABI only ever shares ones that point at
// immutable bytes (descriptor strings are 'static literals, the others are borrowed for one
// call), so reading them from any thread is sound.
unsafe impl Sync for RxStr {}
// SAFETY: as for `Sync`: nothing is written through the pointer, and it owns nothing.
unsafe impl Send for RxStr {}

impl RxStr {
    /// A view of a string that lives for the program, for descriptors.
    pub const fn from_static(s: &'static str) -> RxStr {
        RxStr { ptr: s.as_ptr(), len: s.len() }
    }

    /// The bytes viewed.
    ///
    /// # Safety
    /// `ptr` must point at `len` bytes that stay valid and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.len == 0 {
            &[]
        } else {
            // SAFETY: non-empty, so `ptr` points at `len` bytes valid for `'a` (the contract).
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// A host-owned buffer the plugin writes an error message into (truncated to `cap`).
#[repr(C)]
#[derive(Debug)]
pub struct RxError {
    /// Where the message goes; null when the host does not want one.
    pub buf: *mut u8,
    /// Bytes `buf` holds.
    pub cap: usize,
    /// Bytes the plugin wrote (UTF-8, cut on a character boundary).
    pub len: usize,
}

/// A tensor shape: rank 1 is `[features]`, rank 2 is `[channels, length]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxShape {
    /// 1 or 2.
    pub rank: u32,
    /// The first `rank` entries are used.
    pub dims: [u64; 2],
}

/// One tensor the layer wants from the weights file. `name` is relative to the layer
/// (`weight`, `bn.running_var`, `pointwise.bias`) and owned by the instance.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RxTensorSpec {
    /// Relative to the layer, owned by the instance until `destroy`.
    pub name: RxStr,
    /// At most 4.
    pub rank: u32,
    /// The first `rank` entries are used.
    pub dims: [u64; 4],
}

/// A tensor handed to `load`: f32, row-major, host-owned, valid only during the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RxTensor {
    /// The first element.
    pub data: *const f32,
    /// Elements (the product of the spec's dims).
    pub len: usize,
}

/// What the host needs to plan and describe the layer, filled in by `configure`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RxLayerInfo {
    /// The shape `forward` writes.
    pub output: RxShape,
    /// f32 elements of scratch memory `forward` needs.
    pub scratch_len: u64,
    /// Weight elements loaded (BatchNorm statistics included).
    pub params: u64,
    /// Multiply-accumulates per window.
    pub macs: u64,
    /// Input samples one output position sees; 0 when the layer removes the time axis.
    pub rf_span: u64,
    /// Input samples between neighbouring output positions.
    pub rf_stride: u64,
    /// Tensors the layer wants (`tensor_spec` indices `0..tensor_count`).
    pub tensor_count: u32,
}

/// Whether and how a layer computes part of its output (filled by `stream`, minor 1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxStream {
    /// 1 when `forward_range` can compute any range of output positions on its own.
    pub supported: u32,
    /// Output position `j` reads input positions `j * rf_stride - pad_left` onwards, `rf_span`
    /// of them (those outside the input are the layer's zero padding).
    pub pad_left: u64,
}

/// Opaque per-layer state owned by the plugin.
pub type Instance = *mut c_void;

/// The part of the descriptor that never changes, whatever the ABI version.
#[repr(C)]
#[derive(Debug)]
pub struct DescriptorHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`ABI_MAJOR`] of the SDK the plugin was built with.
    pub abi_major: u32,
    /// [`ABI_MINOR`] of the SDK the plugin was built with.
    pub abi_minor: u32,
}

/// What a plugin library exports, through `extern "C" fn reflex_plugin_<name>() -> *const PluginDescriptor`.
#[repr(C)]
pub struct PluginDescriptor {
    /// Read first, alone, to check magic and version.
    pub header: DescriptorHeader,
    /// The name a config file uses in `plugin = "…"`.
    pub name: RxStr,
    /// The plugin's own version (its crate version).
    pub version: RxStr,
    /// Parses the layer's keys (a JSON object, without the host's keys `name`, `plugin`,
    /// `input`, `inputs`). On success `*out` holds a new instance.
    pub create: unsafe extern "C" fn(params_json: RxStr, out: *mut Instance, err: *mut RxError) -> Status,
    /// Checks the input shape and fills `info`; must be called once, before anything below.
    pub configure: unsafe extern "C" fn(
        inst: Instance,
        input: *const RxShape,
        info: *mut RxLayerInfo,
        err: *mut RxError,
    ) -> Status,
    /// Describes tensor `index` (< `info.tensor_count`).
    pub tensor_spec: unsafe extern "C" fn(inst: Instance, index: u32, out: *mut RxTensorSpec) -> Status,
    /// Hands over every tensor, in `tensor_spec` order, each with exactly the announced size.
    pub load: unsafe extern "C" fn(inst: Instance, tensors: *const RxTensor, count: u32, err: *mut RxError) -> Status,
    /// Runs one window: `input` and `output` sized by the shapes from `configure`, `scratch`
    /// at least `info.scratch_len` elements. Must not allocate.
    #[allow(clippy::type_complexity)]
    pub forward: unsafe extern "C" fn(
        inst: Instance,
        input: *const f32,
        input_len: usize,
        output: *mut f32,
        output_len: usize,
        scratch: *mut f32,
        scratch_len: usize,
        err: *mut RxError,
    ) -> Status,
    /// Frees an instance from `create`, once; it must not be used afterwards.
    pub destroy: unsafe extern "C" fn(inst: Instance),
    // ---- Minor 1. A host reads these only when `header.abi_minor >= 1`. ----
    /// See [`StreamFn`].
    pub stream: StreamFn,
    /// See [`ForwardRangeFn`].
    pub forward_range: ForwardRangeFn,
}

/// Minor 1. After `configure`: whether the layer can run `forward_range`, and its left padding.
pub type StreamFn = unsafe extern "C" fn(inst: Instance, out: *mut RxStream) -> Status;

/// Minor 1. Like `forward`, but computes only output positions `start..end` (of every channel),
/// reading only the input positions they see, and leaves the rest of `output` as it is.
/// Called only when `stream` said `supported`. Must not allocate.
pub type ForwardRangeFn = unsafe extern "C" fn(
    inst: Instance,
    input: *const f32,
    input_len: usize,
    output: *mut f32,
    output_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
    start: usize,
    end: usize,
    err: *mut RxError,
) -> Status;

// SAFETY: a descriptor is immutable after its static is initialised: plain data, function
// pointers and `RxStr`s to 'static literals (which are `Sync`), so sharing it is sound.
unsafe impl Sync for PluginDescriptor {}

/// The type of the exported symbol.
pub type DescriptorFn = unsafe extern "C" fn() -> *const PluginDescriptor;

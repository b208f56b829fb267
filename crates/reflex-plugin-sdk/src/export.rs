//! The `extern "C"` side of a [`Layer`]: trampolines that turn ABI calls into trait calls.
//!
//! Each trampoline runs its body inside [`guard`] (or, for `destroy`, its own `catch_unwind`),
//! so no unwind ever crosses into the host: since Rust 1.81 an unwind out of an `extern "C"`
//! function aborts the process, so an uncaught panic would take the daemon down with it. Each
//! also checks the protocol (call order, buffer sizes) so that a misbehaving host gets an
//! error, not UB in safe plugin code.
//!
//! What the trampolines rely on, and what every `SAFETY` comment below refers to as "the ABI":
//! the host passes pointers that are null or valid for the documented lengths for the duration
//! of the call, an `inst` that this plugin's `create` returned (for this layer type) and that
//! is not yet destroyed, and it never calls into one instance from two threads at once
//! (`abi.rs`, [`crate::Layer`]).

use crate::abi::*;
use crate::{Error, ErrorKind, Layer, LayerInfo, Shape, TensorSpec};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The descriptor of a layer type, usable in a `static` (what [`export_plugin!`](crate::export_plugin) emits, and
/// how a host registers built-in layers without a shared library).
pub const fn descriptor_for<L: Layer>() -> PluginDescriptor {
    PluginDescriptor {
        header: DescriptorHeader { magic: MAGIC, abi_major: ABI_MAJOR, abi_minor: ABI_MINOR },
        name: RxStr::from_static(L::NAME),
        version: RxStr::from_static(L::VERSION),
        create: create::<L>,
        configure: configure::<L>,
        tensor_spec: tensor_spec::<L>,
        load: load::<L>,
        forward: forward::<L>,
        destroy: destroy::<L>,
        stream: stream::<L>,
        forward_range: forward_range::<L>,
    }
}

/// Exports a [`Layer`] type as a plugin: `export_plugin!(conv_standard, ConvStandard);` emits
/// `DESCRIPTOR` and the C symbol `reflex_plugin_conv_standard` the host looks up. The first
/// argument must equal the layer's `NAME` and the library's file stem.
#[macro_export]
macro_rules! export_plugin {
    ($name:ident, $ty:ty) => {
        /// This plugin's descriptor, for registering it statically (tests, embedded builds).
        pub static DESCRIPTOR: $crate::abi::PluginDescriptor = $crate::descriptor_for::<$ty>();

        const _: () = {
            #[export_name = concat!("reflex_plugin_", stringify!($name))]
            pub extern "C" fn reflex_plugin_descriptor() -> *const $crate::abi::PluginDescriptor {
                &DESCRIPTOR
            }
        };
    };
}

/// Per-instance state: the parsed keys until `configure`, the layer after it.
struct Slot<L: Layer> {
    params: Option<L::Params>,
    layer: Option<L>,
    info: Option<LayerInfo>,
    specs: Vec<TensorSpec>,
    in_len: usize,
    loaded: bool,
    /// The layer's `stream_offset`, asked once at `configure`.
    stream: Option<usize>,
}

fn status_of(kind: ErrorKind) -> Status {
    match kind {
        ErrorKind::Config => STATUS_CONFIG,
        ErrorKind::Shape => STATUS_SHAPE,
        ErrorKind::Tensor => STATUS_TENSOR,
        ErrorKind::Runtime => STATUS_RUNTIME,
    }
}

/// Copies `msg` into the host's error buffer, truncated to its capacity.
///
/// # Safety
/// `err` is null or points at an `RxError` whose `buf` is null or valid for `cap` bytes of
/// writes, none of them overlapping `msg`.
unsafe fn write_err(err: *mut RxError, msg: &str) {
    // SAFETY: `err` is null or valid (this function's contract).
    let Some(err) = (unsafe { err.as_mut() }) else { return };
    if err.buf.is_null() {
        return;
    }
    // Truncate on a char boundary so the host always gets valid UTF-8.
    let mut n = msg.len().min(err.cap);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `n <= cap`, `buf` is valid for `cap` bytes and does not overlap `msg`.
    unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), err.buf, n) };
    err.len = n;
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into());
    match quiet::location() {
        Some(at) => format!("plugin panicked at {at}: {what}"),
        None => format!("plugin panicked: {what}"),
    }
}

/// Panics inside a guarded call are not printed: the panic hook would write three lines or more
/// to the daemon's stderr for every window a broken plugin fails on, unthrottled. The message
/// and its location go back to the host as the call's error instead, which the host logs at
/// its own pace (one line per stats period). Panics outside a guarded call — the host's own,
/// when built-in layers share its standard library — still reach the hook that was there.
mod quiet {
    use std::cell::{Cell, RefCell};

    thread_local! {
        static GUARDED: Cell<bool> = const { Cell::new(false) };
        static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Runs `f` with panics kept quiet on this thread.
    pub fn run<T>(f: impl FnOnce() -> T) -> T {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if GUARDED.with(Cell::get) {
                    let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                    LOCATION.with(|l| *l.borrow_mut() = at);
                } else {
                    previous(info);
                }
            }));
        });
        let outer = GUARDED.with(|g| g.replace(true));
        let result = f();
        GUARDED.with(|g| g.set(outer));
        result
    }

    /// Where the last quiet panic on this thread happened (taken once).
    pub fn location() -> Option<String> {
        LOCATION.with(|l| l.borrow_mut().take())
    }
}

/// Runs `f`, turning its error or panic into a status code and a message.
///
/// `AssertUnwindSafe` holds because a panic cannot leave a half-updated instance in use: the
/// slot records a layer as configured or loaded only after `configure` or `load` returned, so
/// later calls are refused as out of order, and `forward` takes the layer by `&self`.
///
/// # Safety
/// `err` as for [`write_err`].
unsafe fn guard(err: *mut RxError, f: impl FnOnce() -> Result<(), (Status, String)>) -> Status {
    let (status, msg) = match quiet::run(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(())) => return STATUS_OK,
        Ok(Err(failed)) => failed,
        Err(payload) => {
            let msg = panic_message(&*payload);
            // A payload whose own Drop panics would unwind from here, outside the catch: leak
            // it instead (one small allocation per panic, which is already the slow path).
            std::mem::forget(payload);
            (STATUS_PANIC, msg)
        }
    };
    // SAFETY: `err` is null or valid (this function's contract).
    unsafe { write_err(err, &msg) };
    status
}

fn fail(e: Error) -> (Status, String) {
    (status_of(e.kind), e.message)
}

fn misuse(m: &str) -> (Status, String) {
    (STATUS_MISUSE, m.to_string())
}

/// serde_json appends "at line 1 column 42" to its messages, which points into JSON the user
/// never wrote. Hosts parsing layer keys themselves use it too.
pub fn config_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// # Safety
/// The ABI's: `params` points at `len` bytes valid for the call, `out` is null or writable,
/// `err` is null or valid.
unsafe extern "C" fn create<L: Layer>(params: RxStr, out: *mut Instance, err: *mut RxError) -> Status {
    let body = || {
        if out.is_null() {
            return Err(misuse("create: null out pointer"));
        }
        // SAFETY: the host's JSON stays valid for the call (the ABI).
        let json = unsafe { params.as_bytes() };
        let p: L::Params = serde_json::from_slice(json).map_err(|e| (STATUS_CONFIG, config_message(&e)))?;
        let slot: Box<Slot<L>> = Box::new(Slot {
            params: Some(p),
            layer: None,
            info: None,
            specs: Vec::new(),
            in_len: 0,
            loaded: false,
            stream: None,
        });
        // SAFETY: checked non-null above; the host passes a writable pointer (the ABI).
        unsafe { *out = Box::into_raw(slot).cast() };
        Ok(())
    };
    // SAFETY: `err` is null or valid (the ABI).
    unsafe { guard(err, body) }
}

/// The instance's state.
///
/// # Safety
/// `inst` is null or came from [`create`] for this `L` and is not destroyed, and no other
/// reference to it is alive for `'a` (the host calls one instance from one thread at a time).
unsafe fn slot<'a, L: Layer>(inst: Instance) -> Result<&'a mut Slot<L>, (Status, String)> {
    // SAFETY: this function's contract.
    unsafe { inst.cast::<Slot<L>>().as_mut() }.ok_or_else(|| misuse("null instance"))
}

/// # Safety
/// The ABI's: `inst` as for [`slot`], `input` null or readable, `info` null or writable, `err`
/// null or valid.
unsafe extern "C" fn configure<L: Layer>(
    inst: Instance,
    input: *const RxShape,
    info: *mut RxLayerInfo,
    err: *mut RxError,
) -> Status {
    let body = || {
        // SAFETY: `inst` is this plugin's live instance, used by this call only (the ABI).
        let s = unsafe { slot::<L>(inst)? };
        // SAFETY: null or valid for the call (the ABI); `as_ref`/`as_mut` check for null.
        let (input, info_out) = unsafe { (input.as_ref(), info.as_mut()) };
        let input = input.and_then(Shape::from_abi).ok_or_else(|| misuse("configure: bad input shape"))?;
        let info_out = info_out.ok_or_else(|| misuse("configure: null info"))?;
        configure_slot(s, input, info_out)
    };
    // SAFETY: `err` is null or valid (the ABI).
    unsafe { guard(err, body) }
}

/// `configure` on safe ground: the layer from its keys and input shape, and what the host
/// learns about it.
fn configure_slot<L: Layer>(s: &mut Slot<L>, input: Shape, info_out: &mut RxLayerInfo) -> Result<(), (Status, String)> {
    let params = s.params.take().ok_or_else(|| misuse("configure called twice"))?;
    let layer = L::configure(params, input).map_err(fail)?;
    let li = layer.info();
    s.specs = layer.tensors();
    *info_out = RxLayerInfo {
        output: li.output.to_abi(),
        scratch_len: li.scratch_len as u64,
        params: li.params,
        macs: li.macs,
        rf_span: li.rf_span.unwrap_or(0),
        rf_stride: li.rf_stride,
        tensor_count: s.specs.len() as u32,
    };
    s.in_len = input.len();
    s.info = Some(li);
    s.stream = layer.stream_offset();
    s.layer = Some(layer);
    Ok(())
}

/// # Safety
/// The ABI's: `inst` as for [`slot`], `out` null or writable.
unsafe extern "C" fn tensor_spec<L: Layer>(inst: Instance, index: u32, out: *mut RxTensorSpec) -> Status {
    let body = || {
        // SAFETY: `inst` is this plugin's live instance, used by this call only (the ABI).
        let s = unsafe { slot::<L>(inst)? };
        // SAFETY: null or writable for the call (the ABI).
        let out = unsafe { out.as_mut() }.ok_or_else(|| misuse("null spec"))?;
        let spec = s.specs.get(index as usize).ok_or_else(|| misuse("tensor index"))?;
        if spec.dims.len() > 4 {
            return Err(misuse("tensor rank above 4"));
        }
        let mut dims = [0u64; 4];
        for (d, &v) in dims.iter_mut().zip(&spec.dims) {
            *d = v as u64;
        }
        // The name points into the instance's `specs`, which live until `destroy`.
        let name = RxStr { ptr: spec.name.as_ptr(), len: spec.name.len() };
        *out = RxTensorSpec { name, rank: spec.dims.len() as u32, dims };
        Ok(())
    };
    // SAFETY: a null error buffer is allowed (this entry point reports a status only).
    unsafe { guard(std::ptr::null_mut(), body) }
}

/// # Safety
/// The ABI's: `inst` as for [`slot`]; `tensors` points at `count` tensors, each pointing at
/// `len` floats, all valid for the call; `err` null or valid.
unsafe extern "C" fn load<L: Layer>(inst: Instance, tensors: *const RxTensor, count: u32, err: *mut RxError) -> Status {
    let body = || {
        // SAFETY: `inst` is this plugin's live instance, used by this call only (the ABI).
        let s = unsafe { slot::<L>(inst)? };
        let layer = s.layer.as_mut().ok_or_else(|| misuse("load before configure"))?;
        if count as usize != s.specs.len() || (count > 0 && tensors.is_null()) {
            return Err(misuse("load: wrong tensor count"));
        }
        let raw: &[RxTensor] =
            // SAFETY: non-null and `count` long (the ABI), checked above.
            if count == 0 { &[] } else { unsafe { std::slice::from_raw_parts(tensors, count as usize) } };
        let mut views: Vec<&[f32]> = Vec::with_capacity(raw.len());
        for (t, spec) in raw.iter().zip(&s.specs) {
            if t.len != spec.len() || (t.len > 0 && t.data.is_null()) {
                return Err(misuse("load: tensor size differs from its spec"));
            }
            // SAFETY: non-null and `len` floats long, valid for the call (the ABI).
            views.push(if t.len == 0 { &[] } else { unsafe { std::slice::from_raw_parts(t.data, t.len) } });
        }
        layer.load(&views).map_err(fail)?;
        s.loaded = true;
        Ok(())
    };
    // SAFETY: `err` is null or valid (the ABI).
    unsafe { guard(err, body) }
}

/// The raw window buffers of a `forward` or `forward_range` call.
struct Buffers {
    input: *const f32,
    input_len: usize,
    output: *mut f32,
    output_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
}

/// The layer, its info, its stream offset, input, output and scratch.
type Window<'a, L> = (&'a L, &'a LayerInfo, Option<usize>, &'a [f32], &'a mut [f32], &'a mut [f32]);

/// The loaded layer and its buffers as slices, once the host is known to follow the
/// protocol: the layer is loaded and the buffers have the sizes `configure` announced (the
/// host plans them from it; checking is a few compares per window).
///
/// # Safety
/// `inst` as for [`slot`]; each buffer is null or valid for its length for `'a`, the output
/// and scratch writable, and none overlaps another (the ABI).
unsafe fn window<'a, L: Layer>(inst: Instance, b: &Buffers, call: &str) -> Result<Window<'a, L>, (Status, String)> {
    // SAFETY: this function's contract.
    let s = unsafe { slot::<L>(inst)? };
    let (Some(layer), Some(info), true) = (s.layer.as_ref(), s.info.as_ref(), s.loaded) else {
        return Err(misuse(&format!("{call} before load")));
    };
    if b.input_len != s.in_len
        || b.output_len != info.output.len()
        || b.scratch_len < info.scratch_len
        || b.input.is_null()
        || b.output.is_null()
        || (b.scratch_len > 0 && b.scratch.is_null())
    {
        return Err(misuse(&format!("{call}: buffer sizes differ from configure")));
    }
    // SAFETY: non-null (checked above), valid for their lengths for `'a` and disjoint (this
    // function's contract), so one shared and two unique borrows cannot alias.
    let (x, y) = unsafe {
        (std::slice::from_raw_parts(b.input, b.input_len), std::slice::from_raw_parts_mut(b.output, b.output_len))
    };
    let sc: &mut [f32] = if b.scratch_len == 0 {
        &mut []
    } else {
        // SAFETY: as for the output.
        unsafe { std::slice::from_raw_parts_mut(b.scratch, b.scratch_len) }
    };
    Ok((layer, info, s.stream, x, y, sc))
}

/// # Safety
/// The ABI's: see [`window`]; `err` null or valid.
#[allow(clippy::too_many_arguments, reason = "the C ABI passes each buffer as a pointer and a length")]
unsafe extern "C" fn forward<L: Layer>(
    inst: Instance,
    input: *const f32,
    input_len: usize,
    output: *mut f32,
    output_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
    err: *mut RxError,
) -> Status {
    let b = Buffers { input, input_len, output, output_len, scratch, scratch_len };
    let body = || {
        // SAFETY: the buffers and instance follow the ABI (this function's contract).
        let (layer, _, _, x, y, sc) = unsafe { window::<L>(inst, &b, "forward")? };
        layer.forward(x, y, sc).map_err(fail)
    };
    // SAFETY: `err` is null or valid (the ABI).
    unsafe { guard(err, body) }
}

/// # Safety
/// The ABI's: `inst` as for [`slot`], `out` null or writable.
unsafe extern "C" fn stream<L: Layer>(inst: Instance, out: *mut RxStream) -> Status {
    let body = || {
        // SAFETY: `inst` is this plugin's live instance, used by this call only (the ABI).
        let s = unsafe { slot::<L>(inst)? };
        if s.layer.is_none() {
            return Err(misuse("stream before configure"));
        }
        // SAFETY: null or writable for the call (the ABI).
        let out = unsafe { out.as_mut() }.ok_or_else(|| misuse("stream: null out"))?;
        *out = match s.stream {
            Some(pad_left) => RxStream { supported: 1, pad_left: pad_left as u64 },
            None => RxStream::default(),
        };
        Ok(())
    };
    // SAFETY: a null error buffer is allowed (this entry point reports a status only).
    unsafe { guard(std::ptr::null_mut(), body) }
}

/// # Safety
/// As [`forward`].
#[allow(clippy::too_many_arguments, reason = "the C ABI passes each buffer as a pointer and a length")]
unsafe extern "C" fn forward_range<L: Layer>(
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
) -> Status {
    let b = Buffers { input, input_len, output, output_len, scratch, scratch_len };
    let body = || {
        // SAFETY: the buffers and instance follow the ABI (this function's contract).
        let (layer, info, stream, x, y, sc) = unsafe { window::<L>(inst, &b, "forward_range")? };
        match info.output {
            Shape::Seq { length, .. } if start <= end && end <= length && stream.is_some() => {
                layer.forward_range(x, y, sc, start..end).map_err(fail)
            }
            _ => Err(misuse("forward_range: a range beyond the output, or a layer that cannot compute one")),
        }
    };
    // SAFETY: `err` is null or valid (the ABI).
    unsafe { guard(err, body) }
}

/// # Safety
/// The ABI's: `inst` is null or came from [`create`] for this `L`, and is destroyed once.
unsafe extern "C" fn destroy<L: Layer>(inst: Instance) {
    if inst.is_null() {
        return;
    }
    // SAFETY: `inst` is the `Box<Slot<L>>` that `create` leaked, destroyed once (the ABI).
    let slot = unsafe { Box::from_raw(inst.cast::<Slot<L>>()) };
    // A panicking Drop must not unwind into the host either; leaking is the lesser evil.
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(slot))) {
        std::mem::forget(payload);
    }
}

//! The `extern "C"` side of a [`Layer`]: trampolines that turn ABI calls into trait calls.
//!
//! Each trampoline catches panics, so no unwind ever crosses into the host, and checks the
//! protocol (call order, buffer sizes) so that a misbehaving host gets an error, not UB in safe
//! plugin code.

use crate::abi::*;
use crate::{Error, ErrorKind, Layer, LayerInfo, Shape, TensorSpec};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The descriptor of a layer type, usable in a `static` (what [`export_plugin!`] emits, and
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

unsafe fn write_err(err: *mut RxError, msg: &str) {
    let Some(err) = err.as_mut() else { return };
    if err.buf.is_null() {
        return;
    }
    // Truncate on a char boundary so the host always gets valid UTF-8.
    let mut n = msg.len().min(err.cap);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    std::ptr::copy_nonoverlapping(msg.as_ptr(), err.buf, n);
    err.len = n;
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into());
    format!("plugin panicked: {what}")
}

/// Runs `f`, turning its error or panic into a status code and a message.
unsafe fn guard(err: *mut RxError, f: impl FnOnce() -> Result<(), (Status, String)>) -> Status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err((status, msg))) => {
            write_err(err, &msg);
            status
        }
        Err(p) => {
            write_err(err, &panic_message(&*p));
            STATUS_PANIC
        }
    }
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

unsafe extern "C" fn create<L: Layer>(params: RxStr, out: *mut Instance, err: *mut RxError) -> Status {
    guard(err, || {
        if out.is_null() {
            return Err(misuse("create: null out pointer"));
        }
        let json = params.as_bytes();
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
        *out = Box::into_raw(slot).cast();
        Ok(())
    })
}

unsafe fn slot<'a, L: Layer>(inst: Instance) -> Result<&'a mut Slot<L>, (Status, String)> {
    inst.cast::<Slot<L>>().as_mut().ok_or_else(|| misuse("null instance"))
}

unsafe extern "C" fn configure<L: Layer>(
    inst: Instance,
    input: *const RxShape,
    info: *mut RxLayerInfo,
    err: *mut RxError,
) -> Status {
    guard(err, || {
        let s = slot::<L>(inst)?;
        let params = s.params.take().ok_or_else(|| misuse("configure called twice"))?;
        let input = input.as_ref().and_then(Shape::from_abi).ok_or_else(|| misuse("configure: bad input shape"))?;
        let info_out = info.as_mut().ok_or_else(|| misuse("configure: null info"))?;
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
    })
}

unsafe extern "C" fn tensor_spec<L: Layer>(inst: Instance, index: u32, out: *mut RxTensorSpec) -> Status {
    guard(std::ptr::null_mut(), || {
        let s = slot::<L>(inst)?;
        let spec = s.specs.get(index as usize).ok_or_else(|| misuse("tensor index"))?;
        let out = out.as_mut().ok_or_else(|| misuse("null spec"))?;
        if spec.dims.len() > 4 {
            return Err(misuse("tensor rank above 4"));
        }
        let mut dims = [0u64; 4];
        for (d, &v) in dims.iter_mut().zip(&spec.dims) {
            *d = v as u64;
        }
        *out = RxTensorSpec {
            name: RxStr { ptr: spec.name.as_ptr(), len: spec.name.len() },
            rank: spec.dims.len() as u32,
            dims,
        };
        Ok(())
    })
}

unsafe extern "C" fn load<L: Layer>(inst: Instance, tensors: *const RxTensor, count: u32, err: *mut RxError) -> Status {
    guard(err, || {
        let s = slot::<L>(inst)?;
        let layer = s.layer.as_mut().ok_or_else(|| misuse("load before configure"))?;
        if count as usize != s.specs.len() {
            return Err(misuse("load: wrong tensor count"));
        }
        let raw: &[RxTensor] = if count == 0 { &[] } else { std::slice::from_raw_parts(tensors, count as usize) };
        let mut views: Vec<&[f32]> = Vec::with_capacity(raw.len());
        for (t, spec) in raw.iter().zip(&s.specs) {
            if t.len != spec.len() || (t.len > 0 && t.data.is_null()) {
                return Err(misuse("load: tensor size differs from its spec"));
            }
            views.push(if t.len == 0 { &[] } else { std::slice::from_raw_parts(t.data, t.len) });
        }
        layer.load(&views).map_err(fail)?;
        s.loaded = true;
        Ok(())
    })
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
unsafe fn window<'a, L: Layer>(inst: Instance, b: &Buffers, call: &str) -> Result<Window<'a, L>, (Status, String)> {
    let s = slot::<L>(inst)?;
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
    let x = std::slice::from_raw_parts(b.input, b.input_len);
    let y = std::slice::from_raw_parts_mut(b.output, b.output_len);
    let sc: &mut [f32] =
        if b.scratch_len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(b.scratch, b.scratch_len) };
    Ok((layer, info, s.stream, x, y, sc))
}

#[allow(clippy::too_many_arguments)]
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
    guard(err, || {
        let b = Buffers { input, input_len, output, output_len, scratch, scratch_len };
        let (layer, _, _, x, y, sc) = window::<L>(inst, &b, "forward")?;
        layer.forward(x, y, sc).map_err(fail)
    })
}

unsafe extern "C" fn stream<L: Layer>(inst: Instance, out: *mut RxStream) -> Status {
    guard(std::ptr::null_mut(), || {
        let s = slot::<L>(inst)?;
        if s.layer.is_none() {
            return Err(misuse("stream before configure"));
        }
        let out = out.as_mut().ok_or_else(|| misuse("stream: null out"))?;
        *out = match s.stream {
            Some(pad_left) => RxStream { supported: 1, pad_left: pad_left as u64 },
            None => RxStream::default(),
        };
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
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
    guard(err, || {
        let b = Buffers { input, input_len, output, output_len, scratch, scratch_len };
        let (layer, info, stream, x, y, sc) = window::<L>(inst, &b, "forward_range")?;
        match info.output {
            Shape::Seq { length, .. } if start <= end && end <= length && stream.is_some() => {
                layer.forward_range(x, y, sc, start..end).map_err(fail)
            }
            _ => Err(misuse("forward_range: a range beyond the output, or a layer that cannot compute one")),
        }
    })
}

unsafe extern "C" fn destroy<L: Layer>(inst: Instance) {
    if inst.is_null() {
        return;
    }
    // A panicking Drop must not unwind into the host either; leaking is the lesser evil.
    let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(inst.cast::<Slot<L>>()))));
}

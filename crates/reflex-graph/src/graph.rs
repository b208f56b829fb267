//! Building a graph from `[model]` (every problem collected) and running it (nothing allocated).

use crate::builtin::ADD;
use crate::weights::Weights;
use reflex_config::{LayerConfig, ModelConfig, Problems};
use reflex_kernels::{add_activate, add_assign, Activation};
use reflex_plugin_host::{LayerInstance, Origin, Registry};
use reflex_plugin_sdk::conv::{default_negative_slope, ActivationName};
use reflex_plugin_sdk::Shape;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most values one layer's output or scratch may hold (256 MiB of f32).
pub const MAX_VALUES: usize = 1 << 26;

/// The name of the graph's own input in `input = "…"`.
pub const INPUT: &str = "input";

/// What `inspect` shows of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    pub name: String,
    pub plugin: String,
    pub version: String,
    pub origin: Origin,
    pub input: Shape,
    pub output: Shape,
    pub params: u64,
    pub macs: u64,
    /// Input samples one output position sees; `None` once the time axis is gone.
    pub receptive_field: Option<u64>,
    /// What streaming inference does with this layer (set by [`Graph::set_hop`]).
    pub stream: Stream,
}

/// How a layer runs when consecutive windows overlap (streaming inference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// No hop set, or windows that do not overlap: every window is computed whole.
    Off,
    /// Keeps the previous window's output, shifted, and recomputes `recomputed` of its
    /// `length` positions per window: the new positions and those near the padded edges.
    Partial { recomputed: usize, length: usize },
    /// Computes its whole output for every window, for the reason given.
    Whole(String),
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Off => f.write_str("-"),
            Stream::Partial { recomputed, length } => write!(f, "{recomputed} of {length}"),
            Stream::Whole(why) => write!(f, "all ({why})"),
        }
    }
}

/// A forward pass failed for one window.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("the window has {got} values, the graph takes {expected}")]
    InputLength { expected: usize, got: usize },
    #[error("layer {layer}: {message}")]
    Layer { layer: String, message: String },
}

/// Keys of `add`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKeys {
    /// Applied to the sum.
    #[serde(default)]
    activation: ActivationName,
    /// Slope of `leaky_relu` for negative inputs.
    #[serde(default = "default_negative_slope")]
    negative_slope: f32,
}

enum Op {
    Layer(LayerInstance),
    Add(Activation),
}

struct Node {
    op: Op,
    /// Indices into `Graph::values`; always below this node's own output index.
    inputs: Vec<usize>,
    scratch_len: usize,
    /// Output position `j` reads input positions `j*stride - pad_left ..+ span`; `pad_left`
    /// is `None` when the layer cannot compute part of its output.
    window: Option<Window>,
    output: Shape,
}

/// What a layer reads for one output position.
#[derive(Clone, Copy, Debug)]
struct Window {
    pad_left: usize,
    span: usize,
    stride: usize,
}

/// Streaming plan of one node: output position `j` of a window equals position `j + shift`
/// of the previous window's output for `j` in `keep`; the rest is recomputed.
#[derive(Clone, Debug)]
struct Keep {
    shift: usize,
    keep: Range<usize>,
}

/// One `[C, n]` value (a layer's output), row-major, at `base` in its buffer.
///
/// A streamed layer moves its previous output `shift` positions back before recomputing the
/// edges. Moving `base` forward by `shift` does that for every row at once: position `j` of
/// row `c` then reads what was position `j + shift`, and the last `shift` positions of a row
/// (recomputed anyway) read the next row's first ones. So the buffer of a streamed value has
/// room for `SLIDES` slides, and is copied back to its start only when `base` reaches its end:
/// a copy of the kept values every `SLIDES` windows, not every window.
struct Value {
    buf: Vec<f32>,
    /// Where the value starts when it has not slid: a cache line.
    start: usize,
    base: usize,
    len: usize,
}

/// Windows between two copies of a streamed value back to the start of its buffer. (The
/// tests run more windows than this, so that the copy is exercised.)
const SLIDES: usize = 64;

/// f32 values per 64-byte cache line.
const LINE: usize = 16;

/// A zeroed buffer with room for `len` values from a cache line on, and where that is. The
/// kernels' 512-bit stores of whole rows then do not straddle two lines (each would cost two).
fn aligned(len: usize) -> (Vec<f32>, usize) {
    let buf = vec![0.0f32; len + LINE];
    let at = buf.as_ptr().align_offset(64).min(LINE);
    (buf, at)
}

impl Value {
    fn new(len: usize) -> Value {
        let (buf, start) = aligned(len);
        Value { buf, start, base: start, len }
    }

    fn get(&self) -> &[f32] {
        &self.buf[self.base..self.base + self.len]
    }

    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.base..self.base + self.len]
    }

    /// Makes room to [`slide`](Value::slide) by `shift` (allocates; before the loop).
    fn reserve_slides(&mut self, shift: usize) {
        let room = shift.saturating_mul(SLIDES).clamp(shift, self.len.max(shift));
        let (buf, start) = aligned(self.len + room);
        *self = Value { buf, start, base: start, len: self.len };
    }

    /// Position `j` of every row takes the value of position `j + shift`, for
    /// `j < n - shift`; the last `shift` positions of each row are left to be recomputed.
    fn slide(&mut self, shift: usize) {
        let base = self.base + shift;
        if base + self.len <= self.buf.len() {
            self.base = base;
        } else {
            self.buf.copy_within(base..self.base + self.len, self.start);
            self.base = self.start;
        }
    }
}

/// A built graph: every layer configured and loaded, every buffer allocated.
pub struct Graph {
    nodes: Vec<Node>,
    /// `values[0]` is the input window, `values[i + 1]` node i's output.
    values: Vec<Value>,
    /// Layers' scratch, from `scratch_at` (a cache line) on.
    scratch: Vec<f32>,
    scratch_at: usize,
    summary: Vec<LayerSummary>,
    input: Shape,
    /// Samples between consecutive windows; 0 when streaming is off.
    hop: usize,
    /// Per node, for `hop`.
    plan: Vec<Option<Keep>>,
    /// `values` hold the complete activations of the last window (a failed run clears it).
    primed: bool,
    /// The last window reused the one before it.
    streamed: bool,
}

/// Per-value facts known while building; `None` where an upstream layer failed.
#[derive(Clone, Copy)]
struct Known {
    shape: Shape,
    /// (span, jump) in input samples, or `None` once the time axis is gone.
    rf: Option<(u64, u64)>,
}

impl Graph {
    /// Builds the graph for windows of `input` shape. Returns every problem found, each one
    /// line naming the layer and the key or tensor.
    pub fn build(
        model: &ModelConfig,
        input: Shape,
        registry: &mut Registry,
        plugin_dir: &Path,
    ) -> Result<Graph, Problems> {
        let mut problems = Problems::default();
        let weights = match &model.weights {
            Some(path) => match Weights::open(path) {
                Ok(w) => Some(w),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            },
            None => Some(Weights::default()),
        };
        let weights_missing = weights.is_none();
        let weights_file = model.weights.as_ref().map(|p| p.display().to_string());
        let mut used = BTreeSet::new();
        let mut failed_prefixes = Vec::new();

        // Value index and facts per name; facts are None when an upstream layer failed.
        let mut index: HashMap<&str, (usize, Option<Known>)> = HashMap::new();
        index.insert(INPUT, (0, Some(Known { shape: input, rf: Some((1, 1)) })));
        let mut nodes = Vec::new();
        let mut summary = Vec::new();
        let mut shapes = vec![input];

        for (i, layer) in model.layers.iter().enumerate() {
            let name = layer.name.as_str();
            let fail =
                |problems: &mut Problems, m: String| problems.push(format!("layer {name} ({}): {m}", layer.plugin));
            let value = i + 1;
            if index.contains_key(name) {
                let why = if name == INPUT { "is reserved for the graph's input" } else { "is used twice" };
                fail(&mut problems, format!("the name `{name}` {why}"));
                failed_prefixes.push(format!("{name}."));
                continue;
            }
            let sources = match input_names(layer, i, model) {
                Ok(s) => s,
                Err(m) => {
                    fail(&mut problems, m);
                    index.insert(name, (value, None));
                    failed_prefixes.push(format!("{name}."));
                    continue;
                }
            };
            let mut inputs = Vec::new();
            let mut known = Vec::new();
            for s in &sources {
                match index.get(s.as_str()) {
                    Some((idx, k)) => {
                        inputs.push(*idx);
                        known.push(*k);
                    }
                    None => {
                        fail(&mut problems, format!("input `{s}` is not an earlier layer (or `{INPUT}`)"));
                        known.push(None);
                    }
                }
            }
            let upstream: Option<Vec<Known>> = known.into_iter().collect();

            let mut errors = Vec::new();
            let built = if layer.plugin == ADD {
                build_add(layer, upstream.as_deref(), &mut errors)
            } else {
                let ctx =
                    LayerCtx { weights: weights.as_ref(), weights_file: weights_file.as_deref(), used: &mut used };
                build_layer(layer, upstream.as_ref().map(|u| u[0]), registry, plugin_dir, ctx, &mut errors)
            };
            for m in errors {
                fail(&mut problems, m);
            }
            // A layer whose shape is known keeps the shape checks of the layers after it going,
            // even when its own tensors are wrong.
            index.insert(name, (value, built.known));
            match (built.node, built.known) {
                (Some((op, scratch_len, window, s)), Some(known)) => {
                    summary.push(LayerSummary { receptive_field: known.rf.map(|r| r.0), ..s });
                    shapes.push(known.shape);
                    nodes.push(Node { op, inputs, scratch_len, window, output: known.shape });
                }
                _ => failed_prefixes.push(format!("{name}.")),
            }
        }

        if let (Some(w), false) = (&weights, weights_missing) {
            for n in w.unused(&used) {
                if !failed_prefixes.iter().any(|p| n.starts_with(p.as_str())) {
                    problems.push(format!(
                        "tensor `{n}` in {} is not used by any layer",
                        weights_file.as_deref().unwrap_or("the weights file")
                    ));
                }
            }
        }
        if let Some(last) = model.layers.last() {
            if let Some((_, Some(k))) = index.get(last.name.as_str()) {
                if let Shape::Seq { .. } = k.shape {
                    problems.push(format!(
                        "layer {} ({}): the final layer outputs {}, but the model's output must be 1-D: end with global_avg_pool, flatten or linear",
                        last.name, last.plugin, k.shape
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let values = shapes.iter().map(|s| Value::new(s.len())).collect();
        let (scratch, scratch_at) = aligned(nodes.iter().map(|n| n.scratch_len).max().unwrap_or(0));
        let plan = vec![None; nodes.len()];
        Ok(Graph { nodes, values, scratch, scratch_at, summary, input, hop: 0, plan, primed: false, streamed: false })
    }

    /// Streaming inference for windows that start `hop` samples apart (`window.hop`): when a
    /// window is the previous one shifted by `hop` samples (checked on its values, so a
    /// dropped window or a gap simply runs whole), each layer keeps the part of its previous
    /// output that cannot have changed and recomputes only the rest. Results are those of
    /// whole-window runs. Sets [`LayerSummary::stream`]. Allocates; call it before the loop.
    pub fn set_hop(&mut self, hop: usize) {
        let input = self.input;
        // Per value: how far it shifts between windows, and which positions carry over.
        let mut state: Vec<Option<Keep>> = Vec::with_capacity(self.values.len());
        state.push(match input {
            Shape::Seq { length, .. } if hop > 0 && hop < length => Some(Keep { shift: hop, keep: 0..length - hop }),
            _ => None,
        });
        self.hop = if state[0].is_some() { hop } else { 0 };
        self.primed = false;
        for (i, node) in self.nodes.iter().enumerate() {
            let (keep, stream) = if self.hop == 0 {
                (None, Stream::Off)
            } else {
                match plan_node(node, &state) {
                    Ok(k) => {
                        let length = seq_len(node.output);
                        let stream = Stream::Partial { recomputed: length - k.keep.len(), length };
                        (Some(k), stream)
                    }
                    Err(why) => (None, Stream::Whole(why)),
                }
            };
            self.summary[i].stream = stream;
            if let Some(k) = &keep {
                self.values[i + 1].reserve_slides(k.shift);
            }
            self.plan[i] = keep.clone();
            state.push(keep);
        }
        if self.plan.iter().all(Option::is_none) {
            // Nothing to reuse: no need to compare windows.
            self.hop = 0;
        }
    }

    pub fn input_len(&self) -> usize {
        self.values[0].len
    }

    pub fn output_len(&self) -> usize {
        self.values.last().map_or(0, |v| v.len)
    }

    /// Whether the last window reused the previous window's activations (see [`Graph::set_hop`]).
    pub fn streamed(&self) -> bool {
        self.streamed
    }

    /// One entry per layer, in order.
    pub fn layers(&self) -> &[LayerSummary] {
        &self.summary
    }

    /// Runs one window (`[C, L]` row-major) and returns the final layer's values.
    pub fn run(&mut self, window: &[f32]) -> Result<&[f32], RunError> {
        self.run_inner(window, None)
    }

    /// Like [`Graph::run`], adding each layer's time to `times` (one entry per layer).
    pub fn run_timed(&mut self, window: &[f32], times: &mut [Duration]) -> Result<&[f32], RunError> {
        self.run_inner(window, Some(times))
    }

    fn run_inner(&mut self, window: &[f32], mut times: Option<&mut [Duration]>) -> Result<&[f32], RunError> {
        let expected = self.values[0].len;
        if window.len() != expected {
            return Err(RunError::InputLength { expected, got: window.len() });
        }
        let streaming =
            self.primed && self.hop > 0 && follows(self.values[0].get(), window, seq_len(self.input), self.hop);
        // Set again only once every layer has succeeded.
        self.primed = false;
        self.streamed = streaming;
        self.values[0].get_mut().copy_from_slice(window);
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let start = times.is_some().then(Instant::now);
            let (done, rest) = self.values.split_at_mut(i + 1);
            let out = &mut rest[0];
            let scratch = &mut self.scratch[self.scratch_at..self.scratch_at + node.scratch_len];
            let failed = |e: reflex_plugin_host::PluginError| RunError::Layer {
                layer: self.summary[i].name.clone(),
                message: e.to_string(),
            };
            match (&self.plan[i], streaming) {
                (Some(Keep { shift, keep }), true) => {
                    let n = seq_len(node.output);
                    out.slide(*shift);
                    let out = out.get_mut();
                    for range in [0..keep.start, keep.end..n] {
                        if range.is_empty() {
                            continue;
                        }
                        match &mut node.op {
                            Op::Layer(layer) => {
                                layer.forward_range(done[node.inputs[0]].get(), out, scratch, range).map_err(failed)?
                            }
                            Op::Add(activation) => add_range(out, done, &node.inputs, n, range, *activation),
                        }
                    }
                }
                _ => match &mut node.op {
                    Op::Layer(layer) => {
                        layer.forward(done[node.inputs[0]].get(), out.get_mut(), scratch).map_err(failed)?
                    }
                    Op::Add(activation) => {
                        let out = out.get_mut();
                        let len = out.len();
                        add_into(out, done, &node.inputs, 0..len, *activation);
                    }
                },
            }
            if let (Some(t), Some(start)) = (times.as_deref_mut(), start) {
                t[i] += start.elapsed();
            }
        }
        self.primed = true;
        Ok(self.values.last().map_or(&[][..], Value::get))
    }
}

/// Whether `window` is `previous` moved `hop` samples on: every row's first `len - hop`
/// values are bit for bit the previous row's last ones.
fn follows(previous: &[f32], window: &[f32], len: usize, hop: usize) -> bool {
    len > hop
        && previous
            .chunks_exact(len)
            .zip(window.chunks_exact(len))
            .all(|(p, w)| p[hop..].iter().zip(&w[..len - hop]).all(|(a, b)| a.to_bits() == b.to_bits()))
}

/// Positions `range` of every row of an `add`.
fn add_range(out: &mut [f32], values: &[Value], inputs: &[usize], n: usize, range: Range<usize>, a: Activation) {
    for (c, row) in out.chunks_exact_mut(n).enumerate() {
        add_into(&mut row[range.clone()], values, inputs, c * n + range.start..c * n + range.end, a);
    }
}

/// `dst` = the activation of the sum of the inputs' values at flat positions `at`; the last
/// addition and the activation are one pass.
fn add_into(dst: &mut [f32], values: &[Value], inputs: &[usize], at: Range<usize>, a: Activation) {
    dst.copy_from_slice(&values[inputs[0]].get()[at.clone()]);
    match inputs[1..].split_last() {
        Some((&last, rest)) => {
            for &j in rest {
                add_assign(dst, &values[j].get()[at.clone()]);
            }
            add_activate(dst, &values[last].get()[at], a);
        }
        None => a.apply(dst),
    }
}

/// The length of a `[channels, length]` shape; 0 once the time axis is gone.
fn seq_len(shape: Shape) -> usize {
    match shape {
        Shape::Seq { length, .. } => length,
        Shape::Flat(_) => 0,
    }
}

/// The streaming plan of one node, given the plans of the values before it, or why it has to
/// compute its whole output.
fn plan_node(node: &Node, state: &[Option<Keep>]) -> Result<Keep, String> {
    let Shape::Seq { length, .. } = node.output else {
        return Err("no time axis".into());
    };
    let inputs: Vec<&Keep> = node.inputs.iter().filter_map(|&i| state[i].as_ref()).collect();
    if inputs.len() < node.inputs.len() {
        return Err("its input is computed whole".into());
    }
    let keep = match (&node.op, node.window) {
        (Op::Add(_), _) => {
            let shift = inputs[0].shift;
            if inputs.iter().any(|k| k.shift != shift) {
                return Err("its inputs move by different amounts".into());
            }
            let start = inputs.iter().map(|k| k.keep.start).max().unwrap_or(0);
            let end = inputs.iter().map(|k| k.keep.end).min().unwrap_or(0);
            Keep { shift, keep: start..end.max(start) }
        }
        (Op::Layer(_), None) => return Err("the layer cannot compute part of its output".into()),
        (Op::Layer(_), Some(w)) => {
            let Keep { shift, keep } = inputs[0];
            if shift % w.stride != 0 {
                return Err(format!("its stride {} does not divide the shift of {shift}", w.stride));
            }
            let shift = shift / w.stride;
            // Output j reads inputs [j*stride - pad_left, j*stride - pad_left + span); it is
            // unchanged when they all are (none of them padding), and then equals the previous
            // output at j + shift.
            // A plugin reports pad_left and span: saturate rather than trust them not to overflow.
            let first = keep.start.saturating_add(w.pad_left).div_ceil(w.stride);
            let end = match keep.end.saturating_add(w.pad_left).checked_sub(w.span) {
                Some(last) => last / w.stride + 1,
                None => 0,
            };
            let end = end.min(length.saturating_sub(shift));
            Keep { shift, keep: first.min(end)..end }
        }
    };
    if keep.keep.is_empty() {
        return Err("no position carries over".into());
    }
    Ok(keep)
}

/// The names a layer reads: `inputs` for add, else `input` or the previous layer.
fn input_names(layer: &LayerConfig, i: usize, model: &ModelConfig) -> Result<Vec<String>, String> {
    let previous = || {
        if i == 0 {
            INPUT.to_string()
        } else {
            model.layers[i - 1].name.clone()
        }
    };
    if layer.plugin == ADD {
        if layer.input.is_some() {
            return Err("`add` takes `inputs = [\"A\", \"B\"]`, not `input`".into());
        }
        match &layer.inputs {
            Some(v) if v.len() >= 2 => Ok(v.clone()),
            _ => Err("`add` needs `inputs` naming at least two layers".into()),
        }
    } else {
        if layer.inputs.is_some() {
            return Err("`inputs` is for `add`; name one layer with `input`".into());
        }
        Ok(vec![layer.input.clone().unwrap_or_else(previous)])
    }
}

/// What building one layer established: its output facts when its shape is known, and the
/// runnable node when everything (tensors included) is right.
struct Built {
    known: Option<Known>,
    node: Option<(Op, usize, Option<Window>, LayerSummary)>,
}

const UNKNOWN: Built = Built { known: None, node: None };

fn build_add(layer: &LayerConfig, upstream: Option<&[Known]>, errors: &mut Vec<String>) -> Built {
    let keys: AddKeys = match serde_json::from_value(serde_json::Value::Object(layer.params.clone())) {
        Ok(k) => k,
        Err(e) => {
            errors.push(reflex_plugin_sdk::config_message(&e));
            return UNKNOWN;
        }
    };
    let Some(up) = upstream else { return UNKNOWN };
    let shape = up[0].shape;
    if let Some(other) = up.iter().find(|k| k.shape != shape) {
        errors.push(format!("inputs have different shapes: {} and {}", shape, other.shape));
        return UNKNOWN;
    }
    let rf =
        up.iter().map(|k| k.rf).try_fold((0, u64::MAX), |(span, jump), r| r.map(|(s, j)| (span.max(s), jump.min(j))));
    let known = Known { shape, rf };
    let summary = LayerSummary {
        name: layer.name.clone(),
        plugin: ADD.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        origin: Origin::Static,
        input: shape,
        output: shape,
        params: 0,
        macs: 0,
        receptive_field: None,
        stream: Stream::Off,
    };
    let add = Op::Add(keys.activation.with(keys.negative_slope));
    Built { known: Some(known), node: Some((add, 0, None, summary)) }
}

struct LayerCtx<'a> {
    weights: Option<&'a Weights>,
    weights_file: Option<&'a str>,
    used: &'a mut BTreeSet<String>,
}

fn build_layer(
    layer: &LayerConfig,
    upstream: Option<Known>,
    registry: &mut Registry,
    plugin_dir: &Path,
    ctx: LayerCtx<'_>,
    errors: &mut Vec<String>,
) -> Built {
    let plugin = match registry.resolve(&layer.plugin, plugin_dir) {
        Ok(p) => p,
        Err(e) => {
            errors.push(e.to_string());
            return UNKNOWN;
        }
    };
    let params = serde_json::Value::Object(layer.params.clone()).to_string();
    let mut inst = match plugin.create(&params) {
        Ok(i) => i,
        Err(e) => {
            errors.push(e.to_string());
            return UNKNOWN;
        }
    };
    let Some(up) = upstream else { return UNKNOWN };
    let info = match inst.configure(up.shape) {
        Ok(i) => i,
        Err(e) => {
            errors.push(e.to_string());
            return UNKNOWN;
        }
    };
    // Buffers are planned from these sizes: refuse what could not be allocated, rather than
    // aborting when the graph is built.
    if info.output.len() > MAX_VALUES || info.scratch_len > MAX_VALUES {
        errors.push(format!(
            "output {} and scratch of {} values: more than the {MAX_VALUES} a layer may use",
            info.output, info.scratch_len
        ));
        return UNKNOWN;
    }
    let rf = match (up.rf, info.rf_span) {
        (Some((span, jump)), Some(s)) => Some((span + (s - 1) * jump, jump * info.rf_stride)),
        _ => None,
    };
    let known = Some(Known { shape: info.output, rf });
    let specs = match inst.tensor_specs() {
        Ok(s) => s,
        Err(e) => {
            errors.push(e.to_string());
            return Built { known, node: None };
        }
    };

    let before = errors.len();
    let mut tensors: Vec<&[f32]> = Vec::new();
    for spec in &specs {
        let full = format!("{}.{}", layer.name, spec.name);
        match (ctx.weights, ctx.weights_file) {
            (None, _) => {}
            (Some(_), None) => errors.push(format!("needs tensor `{full}` but [model] names no weights file")),
            (Some(w), Some(file)) => match w.get(&full) {
                None => errors.push(format!("tensor `{full}` {:?} is missing from {file}", spec.dims)),
                Some(t) if t.shape != spec.dims => {
                    errors.push(format!("tensor `{full}` in {file} has shape {:?}, expected {:?}", t.shape, spec.dims))
                }
                Some(t) => tensors.push(&t.data),
            },
        }
        ctx.used.insert(full);
    }
    if ctx.weights.is_none() || errors.len() > before {
        return Built { known, node: None };
    }
    if let Err(e) = inst.load(&tensors) {
        errors.push(e.to_string());
        return Built { known, node: None };
    }
    let summary = summarize(layer, inst.plugin(), up.shape, &info);
    let window = match (inst.stream_offset(), info.rf_span, up.shape, info.output) {
        (Some(pad_left), Some(span), Shape::Seq { .. }, Shape::Seq { .. }) => {
            usize::try_from(span).ok().map(|span| Window { pad_left, span, stride: info.rf_stride as usize })
        }
        _ => None,
    };
    Built { known, node: Some((Op::Layer(inst), info.scratch_len, window, summary)) }
}

fn summarize(
    layer: &LayerConfig,
    plugin: &Arc<reflex_plugin_host::Plugin>,
    input: Shape,
    info: &reflex_plugin_sdk::LayerInfo,
) -> LayerSummary {
    LayerSummary {
        name: layer.name.clone(),
        plugin: plugin.name.clone(),
        version: plugin.version.clone(),
        origin: plugin.origin.clone(),
        input,
        output: info.output,
        params: info.params,
        macs: info.macs,
        receptive_field: None,
        stream: Stream::Off,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sliding a `[3, 10]` value by 3 positions, window after window, far past the point where
    /// it is copied back to the start of its buffer: every kept position holds what the
    /// previous window held 3 positions on, and the value stays on a cache line when the
    /// slides are whole lines.
    #[test]
    fn a_value_slides_by_the_shift_and_is_copied_back_when_full() {
        let (rows, n, shift) = (3, 10, 3);
        // Row r at absolute time t.
        let at = |r: usize, t: usize| (r * 100_000 + t) as f32;
        let mut v = Value::new(rows * n);
        v.reserve_slides(shift);
        for (i, x) in v.get_mut().iter_mut().enumerate() {
            *x = at(i / n, i % n);
        }
        for w in 1..5 * SLIDES {
            v.slide(shift);
            let x = v.get_mut();
            for r in 0..rows {
                for j in 0..n - shift {
                    assert_eq!(x[r * n + j], at(r, w * shift + j), "window {w} row {r} position {j}");
                }
                // What the layer recomputes: the newest positions.
                for j in n - shift..n {
                    x[r * n + j] = at(r, w * shift + j);
                }
            }
        }
        let mut lines = Value::new(4 * 64);
        lines.reserve_slides(16);
        for _ in 0..3 * SLIDES {
            lines.slide(16);
            assert_eq!(lines.get().as_ptr() as usize % 64, 0);
        }
    }
}

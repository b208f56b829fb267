//! Building: `[model]` → configured, loaded layers with every shape checked and every buffer
//! planned. Every problem is collected, not just the first: a layer whose shape is known keeps
//! the checks of the layers after it going, even when its own tensors are wrong.

use crate::buffer::{aligned, Value};
use crate::builtin::ADD;
use crate::error::{BuildError, BuildErrors, LayerError};
use crate::graph::{Graph, LayerSummary, Node, INPUT, MAX_VALUES};
use crate::layer::{self, Layer};
use crate::plan::{ReadField, Stream};
use crate::weights::Weights;
use reflex_config::{LayerConfig, ModelConfig};
use reflex_plugin_host::Registry;
use reflex_plugin_sdk::{LayerInfo, Shape, TensorSpec};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Per-value facts known while building.
#[derive(Clone, Copy)]
struct Known {
    shape: Shape,
    /// (span, jump) in input samples, or `None` once the time axis is gone.
    rf: Option<(u64, u64)>,
}

/// Where the layers' tensors come from.
enum Source {
    /// `[model]` names no weights file.
    Absent,
    /// It cannot be used (the problem is already reported): tensors are not checked.
    Unusable,
    /// Its names are those of an unnamed `nn.Sequential` (`found`): tensors are not checked.
    Sequential { file: PathBuf, found: Vec<String> },
    /// Read.
    File(Weights),
}

/// What building one layer established: its output facts when its shape is known, and the
/// runnable layer when everything (tensors included) is right.
struct Built {
    known: Option<Known>,
    ready: Option<Ready>,
}

struct Ready {
    layer: Box<dyn Layer>,
    scratch_len: usize,
    window: Option<ReadField>,
    summary: LayerSummary,
}

const UNKNOWN: Built = Built { known: None, ready: None };

struct Builder<'m> {
    model: &'m ModelConfig,
    registry: &'m mut Registry,
    plugin_dir: &'m Path,
    source: Source,
    errors: Vec<BuildError>,
    /// Every tensor name a layer asked for, in order.
    wanted: Vec<String>,
    /// `NAME.` of layers that were not built: their tensors are not reported unused.
    failed: Vec<String>,
    /// Value index and facts per name; facts are `None` when an upstream layer failed.
    index: HashMap<&'m str, (usize, Option<Known>)>,
    nodes: Vec<Node>,
    summary: Vec<LayerSummary>,
    shapes: Vec<Shape>,
}

impl Graph {
    /// Builds the graph for windows of `input` shape. Returns every problem found, each one
    /// naming the layer and the key or tensor.
    pub fn build(
        model: &ModelConfig,
        input: Shape,
        registry: &mut Registry,
        plugin_dir: &Path,
    ) -> Result<Graph, BuildErrors> {
        let mut errors = Vec::new();
        let source = open_weights(model, &mut errors);
        Self::build_from(model, source, errors, input, registry, plugin_dir)
    }

    /// Like [`Graph::build`] with the weights already read (`model.weights` is not opened):
    /// what the weights fuzz target checks arbitrary bytes with.
    pub fn build_with_weights(
        model: &ModelConfig,
        weights: Weights,
        input: Shape,
        registry: &mut Registry,
        plugin_dir: &Path,
    ) -> Result<Graph, BuildErrors> {
        Self::build_from(model, classify(weights, model), Vec::new(), input, registry, plugin_dir)
    }

    fn build_from(
        model: &ModelConfig,
        source: Source,
        errors: Vec<BuildError>,
        input: Shape,
        registry: &mut Registry,
        plugin_dir: &Path,
    ) -> Result<Graph, BuildErrors> {
        let mut b = Builder::new(model, source, errors, input, registry, plugin_dir);
        for (i, layer) in model.layers.iter().enumerate() {
            b.layer(i, layer);
        }
        b.check_tensors_used();
        b.check_output();
        if !b.errors.is_empty() {
            return Err(BuildErrors(b.errors));
        }
        let values = b.shapes.iter().map(|s| Value::new(s.len())).collect();
        let (scratch, scratch_at) = aligned(b.nodes.iter().map(|n| n.scratch_len).max().unwrap_or(0));
        let plan = vec![None; b.nodes.len()];
        let weights_sha256 = match b.source {
            Source::File(w) => Some(w.sha256),
            _ => None,
        };
        let (nodes, summary) = (b.nodes, b.summary);
        Ok(Graph {
            nodes,
            values,
            scratch,
            scratch_at,
            summary,
            input,
            weights_sha256,
            hop: 0,
            plan,
            primed: false,
            streamed: false,
        })
    }
}

impl<'m> Builder<'m> {
    fn new(
        model: &'m ModelConfig,
        source: Source,
        errors: Vec<BuildError>,
        input: Shape,
        registry: &'m mut Registry,
        plugin_dir: &'m Path,
    ) -> Self {
        let mut index = HashMap::new();
        index.insert(INPUT, (0, Some(Known { shape: input, rf: Some((1, 1)) })));
        Builder {
            model,
            registry,
            plugin_dir,
            source,
            errors,
            wanted: Vec::new(),
            failed: Vec::new(),
            index,
            nodes: Vec::new(),
            summary: Vec::new(),
            shapes: vec![input],
        }
    }

    fn fail(&mut self, layer: &LayerConfig, cause: LayerError) {
        self.errors.push(BuildError::Layer { layer: layer.name.clone(), plugin: layer.plugin.clone(), cause });
    }

    /// Layer `i`: its name and inputs checked, then the layer itself built.
    fn layer(&mut self, i: usize, layer: &'m LayerConfig) {
        let name = layer.name.as_str();
        let value = i + 1;
        if self.index.contains_key(name) {
            let cause = if name == INPUT { LayerError::ReservedName } else { LayerError::DuplicateName(name.into()) };
            self.fail(layer, cause);
            self.failed.push(format!("{name}."));
            return;
        }
        let sources = match input_names(layer, i, self.model) {
            Ok(s) => s,
            Err(cause) => {
                self.fail(layer, cause);
                self.index.insert(name, (value, None));
                self.failed.push(format!("{name}."));
                return;
            }
        };
        let (inputs, upstream) = self.resolve(layer, &sources);
        let mut errors = Vec::new();
        let built = self.build_layer(layer, upstream, &mut errors);
        for cause in errors {
            self.fail(layer, cause);
        }
        self.index.insert(name, (value, built.known));
        match (built.ready, built.known) {
            (Some(r), Some(known)) => {
                self.summary.push(LayerSummary { receptive_field: known.rf.map(|r| r.0), ..r.summary });
                self.shapes.push(known.shape);
                let (layer, scratch_len, window) = (r.layer, r.scratch_len, r.window);
                self.nodes.push(Node { layer, inputs, scratch_len, window, output: known.shape });
            }
            _ => self.failed.push(format!("{name}.")),
        }
    }

    /// The value indices of `sources`, and their facts when all are known.
    fn resolve(&mut self, layer: &LayerConfig, sources: &[String]) -> (Vec<usize>, Option<Vec<Known>>) {
        let mut inputs = Vec::new();
        let mut known = Vec::new();
        for s in sources {
            match self.index.get(s.as_str()) {
                Some((idx, k)) => {
                    inputs.push(*idx);
                    known.push(*k);
                }
                None => {
                    self.fail(layer, LayerError::UnknownInput(s.clone()));
                    known.push(None);
                }
            }
        }
        (inputs, known.into_iter().collect())
    }

    fn build_layer(
        &mut self,
        config: &LayerConfig,
        upstream: Option<Vec<Known>>,
        errors: &mut Vec<LayerError>,
    ) -> Built {
        let mut layer = match layer::create(config, self.registry, self.plugin_dir) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                return UNKNOWN;
            }
        };
        let Some(up) = upstream else { return UNKNOWN };
        let shapes: Vec<Shape> = up.iter().map(|k| k.shape).collect();
        let info = match configure(layer.as_mut(), &shapes) {
            Ok(i) => i,
            Err(e) => {
                errors.push(e);
                return UNKNOWN;
            }
        };
        let known = Some(Known { shape: info.output, rf: receptive_field(&up, &info) });
        if !self.load(config, layer.as_mut(), errors) {
            return Built { known, ready: None };
        }
        let window = window(layer.as_mut(), &info, shapes[0]);
        let summary = summarize(config, layer.as_ref(), shapes[0], &info);
        Built { known, ready: Some(Ready { layer, scratch_len: info.scratch_len, window, summary }) }
    }

    /// Looks the layer's tensors up and loads them; false when that fails (the problems pushed)
    /// or the weights file cannot be used.
    fn load(&mut self, config: &LayerConfig, layer: &mut dyn Layer, errors: &mut Vec<LayerError>) -> bool {
        let loaded = layer.tensor_specs().and_then(|specs| {
            match lookup(&self.source, &mut self.wanted, &config.name, &specs, errors) {
                Some(tensors) => layer.load(&tensors).map(|()| true),
                None => Ok(false),
            }
        });
        loaded.unwrap_or_else(|e| {
            errors.push(e);
            false
        })
    }

    /// Tensors in the weights file that no layer asked for, except those of layers that failed
    /// (already reported).
    fn check_tensors_used(&mut self) {
        let used: BTreeSet<String> = self.wanted.iter().cloned().collect();
        match &self.source {
            Source::File(w) => {
                for tensor in w.unused(&used) {
                    if !self.failed.iter().any(|p| tensor.starts_with(p.as_str())) {
                        let file = w.path.clone();
                        self.errors.push(BuildError::UnusedTensor { file, tensor: tensor.into() });
                    }
                }
            }
            Source::Sequential { file, found } => {
                let first_layer = self.model.layers.first().map_or("conv1", |l| l.name.as_str());
                let expected = self.wanted.first().cloned().unwrap_or_else(|| format!("{first_layer}.weight"));
                let e = BuildError::BareStateDict { file: file.clone(), found: found.clone(), expected };
                self.errors.insert(0, e);
            }
            Source::Absent | Source::Unusable => {}
        }
    }

    /// The model's output is a vector.
    fn check_output(&mut self) {
        let Some(last) = self.model.layers.last() else { return };
        let shape = self.index.get(last.name.as_str()).and_then(|(_, k)| *k).map(|k| k.shape);
        if let Some(shape @ Shape::Seq { .. }) = shape {
            self.fail(last, LayerError::NotOneDimensional(shape));
        }
    }
}

/// The weights file of `[model]`, if any, opened.
fn open_weights(model: &ModelConfig, errors: &mut Vec<BuildError>) -> Source {
    let Some(path) = &model.weights else { return Source::Absent };
    match Weights::open(path) {
        Err(e) => {
            errors.push(e.into());
            Source::Unusable
        }
        Ok(w) => classify(w, model),
    }
}

/// Weights read: usable, or named like an unnamed `nn.Sequential`'s.
fn classify(w: Weights, model: &ModelConfig) -> Source {
    match sequential_names(&w, model) {
        Some(found) => Source::Sequential { file: w.path, found },
        None => Source::File(w),
    }
}

/// When every tensor is named like `0.weight` or `3.running_mean`, as `state_dict()` names an
/// unnamed `nn.Sequential`'s, and no layer has such a name: one name of each of the first two
/// modules. One line then says it all, rather than one per tensor.
fn sequential_names(w: &Weights, model: &ModelConfig) -> Option<Vec<String>> {
    let numbered = |n: &str| {
        let m = module(n);
        !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) && !model.layers.iter().any(|l| l.name == m)
    };
    if w.names().next().is_none() || !w.names().all(numbered) {
        return None;
    }
    let mut found: Vec<String> = Vec::new();
    for n in w.names() {
        if found.len() < 2 && found.last().is_none_or(|f| module(f) != module(n)) {
            found.push(n.into());
        }
    }
    Some(found)
}

/// `0` of `0.weight`.
fn module(tensor: &str) -> &str {
    tensor.split('.').next().unwrap_or_default()
}

/// The names a layer reads: `inputs` for add, else `input` or the previous layer.
fn input_names(layer: &LayerConfig, i: usize, model: &ModelConfig) -> Result<Vec<String>, LayerError> {
    if layer.plugin == ADD {
        if layer.input.is_some() {
            return Err(LayerError::AddTakesInputs);
        }
        return match &layer.inputs {
            Some(v) if v.len() >= 2 => Ok(v.clone()),
            _ => Err(LayerError::AddNeedsTwoInputs),
        };
    }
    if layer.inputs.is_some() {
        return Err(LayerError::InputsIsForAdd);
    }
    let previous = || if i == 0 { INPUT.to_string() } else { model.layers[i - 1].name.clone() };
    Ok(vec![layer.input.clone().unwrap_or_else(previous)])
}

/// Configures the layer for its input shapes, refusing buffers that could not be allocated
/// (rather than aborting when they are).
fn configure(layer: &mut dyn Layer, shapes: &[Shape]) -> Result<LayerInfo, LayerError> {
    let info = layer.configure(shapes)?;
    if info.output.len() > MAX_VALUES || info.scratch_len > MAX_VALUES {
        return Err(LayerError::TooLarge { output: info.output, scratch: info.scratch_len });
    }
    Ok(info)
}

/// The receptive field after the layer: its inputs' joined (the widest span, the finest jump),
/// widened by what one output position sees.
fn receptive_field(up: &[Known], info: &LayerInfo) -> Option<(u64, u64)> {
    let joined =
        up.iter().map(|k| k.rf).try_fold((0, u64::MAX), |(span, jump), r| r.map(|(s, j)| (span.max(s), jump.min(j))));
    match (joined, info.rf_span) {
        (Some((span, jump)), Some(s)) => Some((span + (s - 1) * jump, jump * info.rf_stride)),
        _ => None,
    }
}

/// The layer's tensors from the weights file, each checked against its spec, every name
/// recorded in `wanted`; `None` when they cannot all be had (the problems pushed, or the file
/// unusable).
fn lookup<'w>(
    source: &'w Source,
    wanted: &mut Vec<String>,
    layer: &str,
    specs: &[TensorSpec],
    errors: &mut Vec<LayerError>,
) -> Option<Vec<&'w [f32]>> {
    let before = errors.len();
    let mut found = Vec::new();
    for spec in specs {
        let tensor = format!("{layer}.{}", spec.name);
        match source {
            Source::Unusable | Source::Sequential { .. } => {}
            Source::Absent => errors.push(LayerError::NoWeightsFile { tensor: tensor.clone() }),
            Source::File(w) => match w.get(&tensor) {
                None => errors.push(LayerError::MissingTensor {
                    file: w.path.clone(),
                    tensor: tensor.clone(),
                    dims: spec.dims.clone(),
                }),
                Some(t) if t.shape != spec.dims => errors.push(LayerError::TensorShape {
                    file: w.path.clone(),
                    tensor: tensor.clone(),
                    found: t.shape.clone(),
                    expected: spec.dims.clone(),
                }),
                Some(t) => found.push(&t.data[..]),
            },
        }
        wanted.push(tensor);
    }
    let usable = matches!(source, Source::Absent | Source::File(_));
    (usable && errors.len() == before).then_some(found)
}

/// What one output position reads, when the layer can compute part of its output.
fn window(layer: &mut dyn Layer, info: &LayerInfo, input: Shape) -> Option<ReadField> {
    match (layer.stream_offset(), info.rf_span, input, info.output) {
        (Some(pad_left), Some(span), Shape::Seq { .. }, Shape::Seq { .. }) => {
            usize::try_from(span).ok().map(|span| ReadField { pad_left, span, stride: info.rf_stride as usize })
        }
        _ => None,
    }
}

fn summarize(config: &LayerConfig, layer: &dyn Layer, input: Shape, info: &LayerInfo) -> LayerSummary {
    let p = layer.provider();
    LayerSummary {
        name: config.name.clone(),
        plugin: p.name,
        version: p.version,
        origin: p.origin,
        input,
        output: info.output,
        params: info.params,
        macs: info.macs,
        receptive_field: None,
        stream: Stream::Off,
    }
}

"""Front-end independent part of export and import: primitive ops -> Reflex layers -> files.

A front end (torch.fx in `export.py`, ONNX in `onnx_import.py`) turns a model into a list of
primitive `Op`s in topological order (a convolution, a batch norm, an activation, ...), with
numpy tensors. `build_model` fuses them into the layers of docs/layers.md — a BatchNorm and an
activation that follow a convolution go into that layer, a depthwise convolution followed by a
1×1 becomes `conv_depthwise`, a grouped convolution followed by a channel shuffle becomes
`conv_grouped` with `shuffle = true` — checks every shape, and collects every problem before
raising, so the user sees them all at once.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import ExportError

INPUT = "input"
BN_EPS = 1e-5
ACTIVATIONS = ("none", "relu", "relu6", "leaky_relu", "elu", "silu", "gelu", "tanh", "sigmoid",
               "hardswish")


@dataclass
class Op:
    """One primitive operation of the source model.

    `key` names its output (an fx node name, an ONNX tensor name), `inputs` the keys it reads
    (`INPUT` for the model's input), `where` is what an error message shows (module path, node).
    Kinds and their attrs/tensors:
      conv     stride, padding (int | "same" | "valid" | "causal"), dilation, groups; weight, bias?
      bn       eps; weight, bias, running_mean, running_var
      act      function, negative_slope
      pool     kind ("max" | "avg"), kernel_size
      gpool    kind ("avg" | "max")
      flatten  -
      linear   weight, bias?
      add      -
      softmax  -
      shuffle  groups
      block    plugin, keys (config keys), tensors named as the plugin's
      alias    - (a no-op: Identity, Dropout, contiguous)
      unsupported  message
    """

    key: str
    kind: str
    inputs: list[str]
    where: str
    attrs: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    name: str | None = None  # the layer name to use, when `where` is not a good one


@dataclass
class Layer:
    """One `[[model.layers]]` table, its tensors (without the `name.` prefix) and where it came from."""

    name: str
    plugin: str
    keys: dict[str, Any]
    tensors: dict[str, np.ndarray]
    input: str | None  # None: the previous layer
    source_key: str  # the op whose output this layer's output equals (for per-layer checks)
    shape: tuple[int, ...] = ()


@dataclass
class Exported:
    """What `export` / `from_onnx` wrote: the directory, its two files, the layers and the check's outcome."""

    out_dir: Path
    config: Path
    weights: Path
    layers: list[str]
    plugins: list[str]
    verified: bool
    max_error: float | None = None


@dataclass
class ModelSpec:
    """A Reflex model before it is written: source/window settings, layers and weights."""

    channels: int
    length: int
    layers: list[Layer]
    hop: int = 1
    mean: list[float] | None = None
    std: list[float] | None = None
    labels: list[str] | None = None
    origin: str = ""

    def state_dict(self) -> dict[str, np.ndarray]:
        """All tensors named as Reflex expects (`conv1.weight`, `conv1.bn.running_var`, ...)."""
        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            for k, v in layer.tensors.items():
                out[f"{layer.name}.{k}"] = np.ascontiguousarray(v, dtype=np.float32)
        return out

    @property
    def output_size(self) -> int:
        return self.layers[-1].shape[0]

    def prefix(self, n: int) -> "ModelSpec":
        """The first n layers, ending in a flatten when the n-th output is 2-D (for per-layer checks)."""
        layers = list(self.layers[:n])
        last = layers[-1]
        if len(last.shape) == 2:
            layers.append(Layer(f"{last.name}__flat", "flatten", {}, {}, None, last.source_key,
                                (last.shape[0] * last.shape[1],)))
        return ModelSpec(self.channels, self.length, layers, self.hop, self.mean, self.std, None,
                         self.origin)


# ---------------------------------------------------------------------------------------------
# shapes


def conv_out_len(length: int, k: int, stride: int, padding: Any, dilation: int) -> int:
    total = _pad_total(padding, k, dilation)
    return (length + total - dilation * (k - 1) - 1) // stride + 1


def _pad_total(padding: Any, k: int, dilation: int) -> int:
    if padding in ("same", "causal"):
        return dilation * (k - 1)
    if padding == "valid":
        return 0
    return 2 * int(padding)


# ---------------------------------------------------------------------------------------------
# fusion


class _Builder:
    def __init__(self, ops: list[Op], output: str, channels: int, length: int):
        self.problems: list[str] = []
        self.alias: dict[str, str] = {}
        self.ops: dict[str, Op] = {}
        for op in ops:
            if op.kind == "alias":
                self.alias[op.key] = self.resolve(op.inputs[0])
            elif op.kind == "unsupported":
                self.problems.append(f"{op.where}: {op.attrs['message']}")
                self.ops[op.key] = op
            else:
                op.inputs = [self.resolve(i) for i in op.inputs]
                self.ops[op.key] = op
        self.order = [op.key for op in ops if op.key in self.ops]
        self.output = self.resolve(output)
        self.users: dict[str, list[str]] = {}
        for key in self.order:
            for i in self.ops[key].inputs:
                self.users.setdefault(i, []).append(key)
        self.users.setdefault(self.output, []).append("<output>")
        self.shapes: dict[str, tuple[int, ...]] = {INPUT: (channels, length)}
        self.layer_of: dict[str, str] = {INPUT: INPUT}  # op key -> Reflex layer name
        self.layers: list[Layer] = []
        self.names: set[str] = {INPUT}
        self.consumed: set[str] = set()

    def resolve(self, key: str) -> str:
        while key in self.alias:
            key = self.alias[key]
        return key

    def sole_user(self, key: str, kind: str) -> Op | None:
        """The op reading `key` when it is the only reader and of `kind` (so fusing loses nothing)."""
        users = self.users.get(key, [])
        if len(users) != 1 or users[0] == "<output>":
            return None
        op = self.ops[users[0]]
        if op.kind != kind or op.inputs[0] != key or len(op.inputs) != 1:
            return None
        return op

    def name_for(self, op: Op) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", op.name or op.where.split(" ")[0]).strip("_") or op.kind
        if base[0].isdigit():  # an nn.Sequential index: say what it is
            base = f"{op.kind}{base}"
        name, i = base, 1
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def in_shape(self, op: Op, ndim: int | None, what: str) -> tuple[int, ...] | None:
        missing = [i for i in op.inputs if i not in self.shapes]
        if missing:  # already reported where it is computed
            if not any(i in self.ops and self.ops[i].kind == "unsupported" for i in missing):
                self.problems.append(f"{op.where}: {what} reads an operation Reflex cannot compute")
            return None
        shape = self.shapes[op.inputs[0]]
        if ndim is not None and len(shape) != ndim:
            want = "[C, L]" if ndim == 2 else "a 1-D"
            self.problems.append(f"{op.where}: {what} needs {want} input per window, got {list(shape)}")
            return None
        return shape

    def emit(self, op: Op, plugin: str, keys: dict, tensors: dict, last: Op, shape: tuple) -> None:
        name = self.name_for(op)
        src = self.layer_of[op.inputs[0]]
        prev = self.layers[-1].name if self.layers else INPUT
        layer_input = None if src == prev else src
        if plugin == "add":
            layer_input = None
            keys = {"inputs": [self.layer_of[i] for i in op.inputs], **keys}
        self.layers.append(Layer(name, plugin, keys, tensors, layer_input, last.key, shape))
        self.layer_of[last.key] = name
        self.shapes[last.key] = shape

    # -- fusing helpers -------------------------------------------------------------------

    def absorb_bn(self, key: str, channels: int, tensors: dict, prefix: str = "bn.") -> str:
        bn = self.sole_user(key, "bn")
        if bn is None or bn.tensors["weight"].shape[0] != channels:
            return key
        tensors.update({prefix + k: v for k, v in bn_tensors(bn).items()})
        self.consumed.add(bn.key)
        return bn.key

    def absorb_act(self, key: str, keys: dict, slot: str = "activation") -> str:
        act = self.sole_user(key, "act")
        if act is None:
            return key
        slope = act.attrs.get("negative_slope", 0.01)
        if act.attrs["function"] == "leaky_relu":
            if "negative_slope" in keys and keys["negative_slope"] != slope:
                return key  # one slope per layer (docs/layers.md): keep it a separate layer
            keys["negative_slope"] = slope
        keys[slot] = act.attrs["function"]
        self.consumed.add(act.key)
        return act.key

    # -- per kind --------------------------------------------------------------------------

    def conv(self, op: Op) -> None:
        shape = self.in_shape(op, 2, "Conv1d")
        if shape is None:
            return
        a = op.attrs
        w = op.tensors["weight"]
        cout, cin_g, k = w.shape
        cin, length = shape
        if cin_g * a["groups"] != cin:
            self.problems.append(f"{op.where}: Conv1d expects {cin_g * a['groups']} input channels, gets {cin}")
            return
        if a["padding"] == "same" and a["stride"] != 1:
            self.problems.append(f"{op.where}: padding 'same' needs stride 1")
            return
        lout = conv_out_len(length, k, a["stride"], a["padding"], a["dilation"])
        if lout < 1:
            self.problems.append(f"{op.where}: Conv1d output would be empty (length {length})")
            return
        if a["groups"] == cin == cout and cin > 1 and self.try_depthwise(op, shape, lout):
            return
        keys: dict[str, Any] = {"out_channels": int(cout), "kernel_size": int(k), "stride": a["stride"],
                                "padding": a["padding"]}
        if a["groups"] > 1:
            plugin = "conv_grouped"
            keys.update(groups=a["groups"], dilation=a["dilation"], shuffle=False)
        elif a["dilation"] > 1:
            plugin = "conv_dilated"
            keys["dilation"] = a["dilation"]
        else:
            plugin = "conv_standard"
        tensors = {"weight": w}
        keys["bias"] = "bias" in op.tensors
        if keys["bias"]:
            tensors["bias"] = op.tensors["bias"]
        last = self.absorb_bn(op.key, cout, tensors)
        keys["batch_norm"] = last != op.key
        last = self.absorb_act(last, keys)
        if plugin == "conv_grouped":
            sh = self.sole_user(last, "shuffle")
            if sh is not None and sh.attrs["groups"] == a["groups"]:
                keys["shuffle"] = True
                self.consumed.add(sh.key)
                last = sh.key
        self.emit(op, plugin, keys, tensors, self.ops[last], (int(cout), lout))

    def try_depthwise(self, dw: Op, shape: tuple, lout: int) -> bool:
        """A groups=in convolution whose only reader is a 1×1 (maybe through an activation)."""
        keys: dict[str, Any] = {}
        key = self.absorb_act_peek(dw.key)
        pw = self.sole_user(key, "conv")
        if pw is None:
            return False
        pa, pwt = pw.attrs, pw.tensors["weight"]
        if pwt.shape[2] != 1 or pa["groups"] != 1 or pa["stride"] != 1 or pa["dilation"] != 1 \
                or pa["padding"] not in (0, "valid", "same") or pwt.shape[1] != shape[0]:
            return False
        if key != dw.key:
            self.absorb_act(dw.key, keys, "mid_activation")
        a = dw.attrs
        cout = int(pwt.shape[0])
        keys = {"out_channels": cout, "kernel_size": int(dw.tensors["weight"].shape[2]),
                "stride": a["stride"], "padding": a["padding"], "dilation": a["dilation"], **keys}
        tensors = {"depthwise.weight": dw.tensors["weight"], "pointwise.weight": pwt}
        has_bias = "bias" in dw.tensors or "bias" in pw.tensors
        keys["bias"] = has_bias
        if has_bias:  # the plugin's `bias` covers both: a missing one is exactly zero
            tensors["depthwise.bias"] = dw.tensors.get("bias", np.zeros(shape[0], np.float32))
            tensors["pointwise.bias"] = pw.tensors.get("bias", np.zeros(cout, np.float32))
        self.consumed.add(pw.key)
        last = self.absorb_bn(pw.key, cout, tensors)
        keys["batch_norm"] = last != pw.key
        last = self.absorb_act(last, keys)
        self.emit(dw, "conv_depthwise", keys, tensors, self.ops[last], (cout, lout))
        return True

    def absorb_act_peek(self, key: str) -> str:
        act = self.sole_user(key, "act")
        return act.key if act is not None else key

    def simple(self, op: Op) -> None:
        kind = op.kind
        if kind == "bn":
            shape = self.in_shape(op, 2, "BatchNorm1d")
            if shape is not None:
                self.emit(op, "batch_norm", {}, bn_tensors(op), op, shape)
        elif kind == "act":
            shape = self.in_shape(op, None, "activation")
            if shape is not None:
                keys = {"function": op.attrs["function"]}
                if op.attrs["function"] == "leaky_relu":
                    keys["negative_slope"] = op.attrs["negative_slope"]
                self.emit(op, "activation", keys, {}, op, shape)
        elif kind == "pool":
            shape = self.in_shape(op, 2, "pooling")
            if shape is not None:
                k = op.attrs["kernel_size"]
                if shape[1] // k < 1:
                    self.problems.append(f"{op.where}: pool of {k} on {shape[1]} samples is empty")
                    return
                self.emit(op, f"{op.attrs['kind']}_pool", {"kernel_size": k}, {}, op,
                          (shape[0], shape[1] // k))
        elif kind == "gpool":
            shape = self.in_shape(op, 2, "global pooling")
            if shape is not None:
                self.emit(op, f"global_{op.attrs['kind']}_pool", {}, {}, op, (shape[0],))
        elif kind == "flatten":
            shape = self.in_shape(op, None, "flatten")
            if shape is None:
                return
            if len(shape) == 1:  # already 1-D in Reflex (after a global pool): nothing to do
                self.layer_of[op.key] = self.layer_of[op.inputs[0]]
                self.shapes[op.key] = shape
            else:
                self.emit(op, "flatten", {}, {}, op, (shape[0] * shape[1],))
        elif kind == "linear":
            shape = self.in_shape(op, 1, "Linear")
            if shape is None:
                return
            w = op.tensors["weight"]
            if w.shape[1] != shape[0]:
                self.problems.append(f"{op.where}: Linear expects {w.shape[1]} inputs, gets {shape[0]}")
                return
            tensors = {"weight": w}
            if "bias" in op.tensors:
                tensors["bias"] = op.tensors["bias"]
            self.emit(op, "linear", {"out_features": int(w.shape[0]), "bias": "bias" in op.tensors},
                      tensors, op, (int(w.shape[0]),))
        elif kind == "add":
            self.add(op)
        elif kind == "softmax":
            shape = self.in_shape(op, 1, "softmax")
            if shape is not None:
                self.emit(op, "softmax", {}, {}, op, shape)
        elif kind == "shuffle":
            self.shuffle(op)
        elif kind == "block":
            self.block(op)
        else:
            self.problems.append(f"{op.where}: {kind} is not a Reflex operation")

    def add(self, op: Op) -> None:
        shape = self.in_shape(op, None, "add")
        if shape is None:
            return
        if len(op.inputs) != 2 or any(self.shapes.get(i) != shape for i in op.inputs):
            shapes = [list(self.shapes.get(i, ())) for i in op.inputs]
            self.problems.append(f"{op.where}: add needs two tensors of one shape, got {shapes}")
            return
        keys: dict[str, Any] = {}
        last = self.absorb_act(op.key, keys)
        self.emit(op, "add", keys, {}, self.ops[last], shape)

    def shuffle(self, op: Op) -> None:
        """A channel shuffle not fused into a grouped convolution: an exact 1×1 permutation."""
        shape = self.in_shape(op, 2, "channel shuffle")
        if shape is None:
            return
        c, g = shape[0], op.attrs["groups"]
        w = np.zeros((c, c, 1), np.float32)
        for i in range(c // g):
            for j in range(g):
                w[i * g + j, j * (c // g) + i, 0] = 1.0
        keys = {"out_channels": c, "kernel_size": 1, "stride": 1, "padding": "valid", "bias": False}
        self.emit(op, "conv_standard", keys, {"weight": w}, op, shape)

    def block(self, op: Op) -> None:
        shape = self.in_shape(op, 2, op.attrs["plugin"])
        if shape is None:
            return
        keys = dict(op.attrs["keys"])
        a = op.attrs
        cout = keys.get("out_channels", shape[0])
        lout = conv_out_len(shape[1], keys["kernel_size"], keys.get("stride", 1), keys.get("padding", "same"),
                            keys.get("dilation", 1))
        self.emit(op, a["plugin"], keys, dict(op.tensors), op, (int(cout), lout))

    def run(self) -> list[Layer]:
        for key in self.order:
            op = self.ops[key]
            if key in self.consumed or op.kind == "unsupported":
                continue
            if op.kind == "conv":
                self.conv(op)
            else:
                self.simple(op)
        if not self.problems:
            if self.output not in self.layer_of or self.output == INPUT:
                self.problems.append("output: the model's output is not computed by Reflex layers")
            elif self.layer_of[self.output] != self.layers[-1].name:
                self.problems.append(f"output: Reflex's output is its last layer, but the model returns "
                                     f"{self.layer_of[self.output]!r}, computed before {self.layers[-1].name!r}")
            elif len(self.shapes[self.output]) != 1:
                self.problems.append(f"output: the model's output must be 1-D per window (flatten or a "
                                     f"global pool first), got {list(self.shapes[self.output])}")
        if self.problems:
            raise ExportError(self.problems)
        return self.layers


def bn_tensors(op: Op) -> dict[str, np.ndarray]:
    """BatchNorm tensors for Reflex's fixed eps 1e-5: another eps is moved into running_var (exact to f32)."""
    t = dict(op.tensors)
    eps = float(op.attrs.get("eps", BN_EPS))
    if eps != BN_EPS:
        t["running_var"] = (t["running_var"].astype(np.float64) + (eps - BN_EPS)).astype(np.float32)
    return t


def build_model(ops: list[Op], output: str, *, channels: int, length: int, hop: int = 1,
                mean: list[float] | None = None, std: list[float] | None = None,
                labels: list[str] | None = None, origin: str = "") -> ModelSpec:
    """Fuse primitive ops into Reflex layers; raises ExportError listing every problem."""
    layers = _Builder(ops, output, channels, length).run()
    spec = ModelSpec(channels, length, layers, hop, mean, std, labels, origin)
    if labels is not None and len(labels) != spec.output_size:
        raise ExportError([f"labels: {len(labels)} labels for {spec.output_size} outputs"])
    return spec


# ---------------------------------------------------------------------------------------------
# writing


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"non-finite value {v} in config")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def config_text(spec: ModelSpec, *, weights: str = "weights.safetensors",
                source: dict[str, Any] | None = None, sinks: bool = True) -> str:
    """The reflex.toml of a ModelSpec. `source` replaces the default serial csv source."""
    src = source or {"kind": "serial", "path": "/dev/ttyACM0", "baud_rate": 115200, "format": "csv",
                     "channels": spec.channels, "time_column": False}
    lines = [f"# Written by the reflex Python package{' from ' + spec.origin if spec.origin else ''}.",
             "# Edit [source] for your sensor; see docs/config.md.", "", "[source]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in src.items()]
    lines += ["", "[window]", f"length = {spec.length}", f"hop = {spec.hop}"]
    if spec.mean is not None:
        lines.append(f"mean = {toml_value([float(x) for x in spec.mean])}")
    if spec.std is not None:
        lines.append(f"std = {toml_value([float(x) for x in spec.std])}")
    lines += ["", "[model]", f"weights = {toml_value(weights)}"]
    for layer in spec.layers:
        lines += ["", "[[model.layers]]", f"name = {toml_value(layer.name)}",
                  f"plugin = {toml_value(layer.plugin)}"]
        if layer.input is not None:
            lines.append(f"input = {toml_value(layer.input)}")
        lines += [f"{k} = {toml_value(v)}" for k, v in layer.keys.items()]
        lines[-1] += f"    # -> {list(layer.shape)}" if layer.keys else ""
    lines += ["", "[output]"]
    if spec.labels is not None:
        lines += ['kind = "classify"', f"labels = {toml_value(list(spec.labels))}"]
    else:
        lines.append('kind = "regress"')
    if sinks:
        lines += ["", "[[sinks]]", 'kind = "stdout"', 'format = "json"']
    return "\n".join(lines) + "\n"


def write_model(spec: ModelSpec, out_dir: str | Path) -> tuple[Path, Path]:
    """Write out_dir/reflex.toml and out_dir/weights.safetensors; returns both paths."""
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg, weights = out / "reflex.toml", out / "weights.safetensors"
    save_file(spec.state_dict(), str(weights))
    cfg.write_text(config_text(spec))
    return cfg, weights

"""`reflex import-onnx` / `reflex.from_onnx`: an ONNX model -> `reflex.toml` + weights (docs/python.md).

Nodes become the same primitive ops as in `reflex.export`; multi-node idioms that exporters
write are recognised first: GELU's Erf form, x·Sigmoid(x) (SiLU), x·HardSigmoid(x)
(HardSwish), MatMul + Add (Linear), Reshape–Transpose–Reshape (channel shuffle), and Sub/Div by
constants on the input (`window.mean`/`std`). The check runs onnxruntime with every layer's
tensor added as a graph output, so a disagreement names the first layer where it starts.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import _graph as g
from ._errors import ExportError
from ._graph import INPUT, Exported, Op

__all__ = ["from_onnx"]

_ACTS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish", "Elu": "elu",
         "LeakyRelu": "leaky_relu", "Gelu": "gelu"}


def from_onnx(model: Any, out_dir: str | Path, *, hop: int = 1, labels: Sequence[str] | None = None,
              length: int | None = None, verify: bool = True) -> Exported:
    """Import an ONNX model (path or `onnx.ModelProto`) and write `out_dir/reflex.toml` + weights.

    Args:
        model: opset >= 13, one input `[N, C, L]` (N = 1 or symbolic), one output `[N, F]`.
        out_dir: created if missing.
        hop: `window.hop`.
        labels: class names (`output.kind = "classify"`), else a regression output.
        length: the window length, needed only when the model's time axis is symbolic.
        verify: compare `reflexd replay` with onnxruntime on windows of the bundled recording
            (needs the `onnxruntime` extra); raises `reflex.VerifyError` naming the first layer
            that disagrees.

    Raises:
        ExportError: every unsupported node, one line each (`node NAME (OpType): ...`).
    """
    import onnx

    proto = onnx.load(str(model)) if not isinstance(model, onnx.ModelProto) else model
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise ExportError([f"model: opset {opset}; Reflex imports opset 13 or later (onnx.version_converter "
                           "can convert it)"])
    proto, channels, length = _static_input(proto, length)
    frontend = _OnnxFrontend(proto)
    ops, output = frontend.ops()
    spec = g.build_model(ops, output, channels=channels, length=length, hop=hop, mean=frontend.mean,
                         std=frontend.std, labels=list(labels) if labels is not None else None,
                         origin=f"{Path(str(model)).name if not isinstance(model, onnx.ModelProto) else 'ONNX'} "
                                "(reflex import-onnx)")
    cfg, weights = g.write_model(spec, out_dir)
    res = Exported(Path(out_dir), cfg, weights, [x.name for x in spec.layers], [x.plugin for x in spec.layers],
                   False)
    if verify:
        from ._verify import verify_spec

        report = verify_spec(spec, _ort_reference(proto, frontend.input_name, spec),
                             what=str(model) if not isinstance(model, onnx.ModelProto) else "ONNX model")
        res.verified, res.max_error = True, report.max_error
    return res


def _static_input(proto: Any, length: int | None) -> tuple[Any, int, int]:
    """Fix the input to [1, C, L] so shape inference gives every tensor's shape."""
    init = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise ExportError([f"graph: Reflex models take one input, this one takes {len(inputs)}"])
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 3:
        raise ExportError([f"input {inputs[0].name}: expected [N, C, L], got rank {len(dims)}"])
    if not dims[1].HasField("dim_value"):
        raise ExportError([f"input {inputs[0].name}: the channel axis must be static"])
    channels = dims[1].dim_value
    if dims[2].HasField("dim_value"):
        if length is not None and length != dims[2].dim_value:
            raise ExportError([f"input {inputs[0].name}: length {length} given, the model has {dims[2].dim_value}"])
        length = dims[2].dim_value
    elif length is None:
        raise ExportError([f"input {inputs[0].name}: the time axis is symbolic; pass --length"])
    if dims[0].HasField("dim_value") and dims[0].dim_value != 1:
        raise ExportError([f"input {inputs[0].name}: batch size {dims[0].dim_value}; need 1 or symbolic"])
    proto = copy.deepcopy(proto)
    d = proto.graph.input[[i.name for i in proto.graph.input].index(inputs[0].name)].type.tensor_type.shape.dim
    d[0].dim_value, d[2].dim_value = 1, length
    return _fold_constants(proto), channels, length


_RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def _fold_constants(proto: Any) -> Any:
    """Shape arithmetic that exporters leave (Shape, Gather, Concat, ... of static shapes) -> initializers.

    Repeats shape inference and folding until nothing changes; every node whose inputs are all
    constants (or a Shape of a static tensor) is evaluated with onnx's reference evaluator.
    """
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    while True:
        proto = onnx.shape_inference.infer_shapes(proto)
        g_ = proto.graph
        consts = {i.name: numpy_helper.to_array(i) for i in g_.initializer}
        shapes = {vi.name: [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
                  for vi in list(g_.value_info) + list(g_.input)}
        outputs = {o.name for o in g_.output}
        folded = []
        values: list[Any]
        for n in g_.node:
            if n.op_type in _RANDOM or any(o in outputs for o in n.output):
                continue
            if n.op_type == "Shape" and -1 not in shapes.get(n.input[0], [-1]) and n.input[0] in shapes:
                shape = np.asarray(shapes[n.input[0]], np.int64)
                start, end = _attr(n, "start", 0), _attr(n, "end", None)
                values = [shape[start:end]]
            elif all(i in consts for i in n.input if i):
                try:
                    feeds = {i: consts[i] for i in n.input if i}
                    values = list(ReferenceEvaluator(n).run(None, feeds))
                except Exception:  # not evaluable here: left for the importer to report
                    continue
            else:
                continue
            for name, v in zip(n.output, values):
                consts[name] = np.asarray(v)
                g_.initializer.append(numpy_helper.from_array(np.asarray(v), name))
            folded.append(n)
        if not folded:
            used = {i for n in g_.node for i in n.input} | outputs
            keep = [i for i in g_.initializer if i.name in used]
            del g_.initializer[:]
            g_.initializer.extend(keep)
            return proto
        for n in folded:
            g_.node.remove(n)


class _OnnxFrontend:
    def __init__(self, proto: Any):
        from onnx import numpy_helper

        self.graph = proto.graph
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        for n in self.graph.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t) \
                    if n.attribute[0].name == "value" else np.asarray(_attr(n, n.attribute[0].name))
        self.input_name = next(i.name for i in self.graph.input if i.name not in self.consts)
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in list(self.graph.value_info) + list(self.graph.input) + list(self.graph.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        self.consumers: dict[str, list[Any]] = {}
        for n in self.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.done: set[int] = set()  # ids of nodes already folded into an op
        self.out: list[Op] = []
        self.mean: list[float] | None = None
        self.std: list[float] | None = None

    def key(self, name: str) -> str:
        return INPUT if name == self.input_name else name

    def where(self, n: Any) -> str:
        return f"node {n.name or n.output[0]} ({n.op_type})"

    def sole(self, name: str) -> Any | None:
        users = self.consumers.get(name, [])
        outputs = {o.name for o in self.graph.output}
        return users[0] if len(users) == 1 and name not in outputs else None

    def other(self, n: Any, name: str) -> str | None:
        """Mul/Add's other operand."""
        ins = list(n.input)
        if len(ins) != 2 or name not in ins:
            return None
        return ins[1] if ins[0] == name else ins[0]

    def const_is(self, name: str | None, value: float, rtol: float = 1e-4) -> bool:
        c = self.consts.get(name) if name else None
        return c is not None and c.size == 1 and math.isclose(float(c.reshape(())), value, rel_tol=rtol)

    @staticmethod
    def layer_name(n: Any) -> str:
        """torch's "/features/0/Conv" -> "features_0"; "/Add_1" -> "add_1"; else the output name."""
        parts = [p for p in (n.name or n.output[0]).split("/") if p]
        if len(parts) > 1 and parts[-1].split("_")[0] == n.op_type:
            parts = parts[:-1]
        name = "_".join(parts)
        return name[0].lower() + name[1:] if name else n.op_type.lower()

    def ops(self) -> tuple[list[Op], str]:
        if len(self.graph.output) != 1:
            raise ExportError([f"graph: one output expected, found {len(self.graph.output)}"])
        self.input_normalisation()
        for n in self.graph.node:
            if id(n) in self.done or n.op_type == "Constant":
                continue
            op = self.convert(n)
            if op is not None:
                op.name = self.layer_name(n)
                self.out.append(op)
        return self.out, self.key(self.graph.output[0].name)

    # -- idioms ----------------------------------------------------------------------------

    def input_normalisation(self) -> None:
        """Sub(input, mean) and/or Div(·, std) with per-channel constants -> window.mean/std."""
        name = self.input_name
        c = self.shapes[name][1]
        for op_type in ("Sub", "Div"):
            n = self.sole(name)
            if n is None or n.op_type != op_type or n.input[0] != name or n.input[1] not in self.consts:
                continue
            v = self.consts[n.input[1]].astype(np.float64)
            per_channel = v.size == c and v.ndim >= 2 and v.shape[-1] == 1 and v.shape[-2] == c
            if v.size != 1 and not per_channel:
                continue  # not per channel ([C] alone would broadcast over time): left to report
            # the shortest decimal that is the same f32 (0.8, not 0.800000011920929)
            vals = [float(str(np.float32(x))) for x in np.broadcast_to(v.reshape(-1), (c,))]
            if op_type == "Sub":
                self.mean = vals
            else:
                self.std = vals
            self.done.add(id(n))
            self.out.append(Op(n.output[0], "alias", [INPUT], self.where(n)))
            name = n.output[0]

    def convert(self, n: Any) -> Op | None:
        t = n.op_type
        ins = [self.key(i) for i in n.input if i and i not in self.consts]
        mk = lambda kind, attrs=None, tensors=None: Op(n.output[0], kind, ins, self.where(n), attrs or {}, tensors or {})  # noqa: E731
        try:
            if t == "Conv":
                return self.conv(n, mk)
            if t == "Pad":
                return self.pad(n)
            if t == "BatchNormalization":
                s, b, m, v = (self.const(n, i) for i in n.input[1:5])
                return mk("bn", {"eps": float(_attr(n, "epsilon", 1e-5))},
                          {"weight": s, "bias": b, "running_mean": m, "running_var": v})
            if t in _ACTS:
                return self.activation(n, mk)
            if t == "Clip":
                return self.clip(n, mk)
            if t in ("Identity", "Dropout"):
                return mk("alias")
            if t in ("MaxPool", "AveragePool"):
                return self.pool(n, mk)
            if t in ("GlobalAveragePool", "GlobalMaxPool"):
                return mk("gpool", {"kind": "avg" if t == "GlobalAveragePool" else "max"})
            if t in ("ReduceMean", "ReduceMax"):
                return self.reduce(n, mk)
            if t in ("Flatten", "Squeeze", "Reshape"):
                return self.reshape(n, mk)
            if t == "Gemm":
                return self.gemm(n, mk)
            if t == "MatMul":
                return self.matmul(n)
            if t == "Mul":
                return self.mul(n)
            if t == "Erf":
                return self.gelu_erf(n)
            if t == "HardSigmoid":
                return self.hard_sigmoid(n)
            if t == "Add":
                if len(ins) == 2:
                    return mk("add")
                raise _Unsupported("Add of a constant outside a recognised pattern (Linear bias, GELU)")
            if t == "Softmax":
                axis = int(_attr(n, "axis", -1))
                rank = len(self.shapes.get(n.input[0], ()))
                if rank != 2 or axis not in (1, -1):
                    raise _Unsupported(f"Softmax over axis {axis} of a rank-{rank} tensor: only over features")
                return mk("softmax")
        except _Unsupported as e:
            return mk("unsupported", {"message": str(e)})
        return mk("unsupported", {"message": "not a Reflex operation"})

    def const(self, n: Any, name: str) -> np.ndarray:
        if name not in self.consts:
            raise _Unsupported(f"input {name} must be a constant (an initializer)")
        return self.consts[name].astype(np.float32)

    def conv(self, n: Any, mk: Any) -> Op:
        w = self.const(n, n.input[1])
        if w.ndim != 3:
            raise _Unsupported(f"a {w.ndim - 2}-D convolution: only Conv1d")
        k = w.shape[2]
        stride = _one(_attr(n, "strides", [1]))
        dil = _one(_attr(n, "dilations", [1]))
        auto = _attr(n, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        total = dil * (k - 1)
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if stride != 1 or (auto == "SAME_LOWER" and total % 2):
                raise _Unsupported(f"auto_pad {auto} with stride {stride}")
            padding: Any = "same"
        elif auto == "VALID":
            padding = "valid"
        else:
            pads = list(_attr(n, "pads", [0, 0]))
            extra = self.pad_before(n)
            pads = [pads[0] + extra[0], pads[1] + extra[1]]
            if pads[0] == pads[1]:
                padding = int(pads[0])
            elif stride == 1 and pads == [total // 2, total - total // 2]:
                padding = "same"
            elif pads == [total, 0]:
                padding = "causal"
            else:
                raise _Unsupported(f"padding {pads} (begin, end): only symmetric, 'same' or causal")
        tensors = {"weight": w}
        if len(n.input) > 2 and n.input[2]:
            tensors["bias"] = self.const(n, n.input[2])
        if self.pad_before(n) != [0, 0]:
            ins = [self.key(self.producer[n.input[0]].input[0])]
            return Op(n.output[0], "conv", ins, self.where(n), {"stride": stride, "padding": padding,
                      "dilation": dil, "groups": int(_attr(n, "group", 1))}, tensors)
        return mk("conv", {"stride": stride, "padding": padding, "dilation": dil,
                           "groups": int(_attr(n, "group", 1))}, tensors)

    def zero_pad(self, p: Any) -> list[int] | None:
        """A Pad node's [begin, end] on the time axis, if it pads only time, with zeros."""
        if p is None or p.op_type != "Pad":
            return None
        mode = _attr(p, "mode", b"constant")
        pads = self.consts.get(p.input[1]) if len(p.input) > 1 else None
        value = self.consts.get(p.input[2]) if len(p.input) > 2 and p.input[2] else None
        if mode not in (b"constant", "constant") or pads is None or (value is not None and float(value) != 0.0):
            return None
        ints = [int(v) for v in pads.reshape(-1)]
        if len(ints) != 6 or ints[0] or ints[1] or ints[3] or ints[4] or (len(p.input) > 3 and p.input[3]):
            return None
        return [ints[2], ints[5]]

    def pad_before(self, n: Any) -> list[int]:
        """Zero padding a Pad node adds in front of this Conv (F.pad for causal convolutions)."""
        p = self.producer.get(n.input[0])
        pads = self.zero_pad(p)
        if p is None or pads is None or self.sole(p.output[0]) is not n:
            return [0, 0]
        return pads

    def pad(self, n: Any) -> Op | None:
        user = self.sole(n.output[0])
        if self.zero_pad(n) is not None and user is not None and user.op_type == "Conv":
            return None  # merged into that Conv's padding
        return Op(n.output[0], "unsupported", [], self.where(n), {"message": "Pad not followed by a Conv"})

    def activation(self, n: Any, mk: Any) -> Op:
        f = _ACTS[n.op_type]
        if f == "elu" and not math.isclose(float(_attr(n, "alpha", 1.0)), 1.0):
            raise _Unsupported(f"Elu alpha {_attr(n, 'alpha')}: Reflex's ELU has alpha 1")
        if f == "gelu" and _attr(n, "approximate", b"none") not in (b"none", "none"):
            raise _Unsupported("Gelu approximate=tanh: Reflex has the exact (erf) GELU only")
        if f == "leaky_relu":
            return mk("act", {"function": f, "negative_slope": float(_attr(n, "alpha", 0.01))})
        return mk("act", {"function": f})

    def clip(self, n: Any, mk: Any) -> Op:
        lo = self.consts.get(n.input[1]) if len(n.input) > 1 and n.input[1] else _attr(n, "min", None)
        hi = self.consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else _attr(n, "max", None)
        lo = None if lo is None else float(np.asarray(lo).reshape(()))
        hi = None if hi is None else float(np.asarray(hi).reshape(()))
        if lo == 0.0 and hi == 6.0:
            return mk("act", {"function": "relu6"})
        if lo == 0.0 and (hi is None or math.isinf(hi)):
            return mk("act", {"function": "relu"})
        raise _Unsupported(f"Clip({lo}, {hi}): only 0…6 (relu6)")

    def pool(self, n: Any, mk: Any) -> Op:
        k = _one(_attr(n, "kernel_shape", [1]))
        stride = _one(_attr(n, "strides", [1]))
        pads = list(_attr(n, "pads", [0, 0]))
        if stride != k or any(pads) or _attr(n, "ceil_mode", 0) or _one(_attr(n, "dilations", [1])) != 1:
            raise _Unsupported(f"kernel {k}, stride {stride}, pads {pads}: only kernel = stride, no padding, floor")
        return mk("pool", {"kind": "max" if n.op_type == "MaxPool" else "avg", "kernel_size": k})

    def reduce(self, n: Any, mk: Any) -> Op:
        axes = _attr(n, "axes", None)
        if axes is None and len(n.input) > 1 and n.input[1] in self.consts:
            axes = self.consts[n.input[1]].tolist()
        if axes is None or [a % 3 for a in np.atleast_1d(axes)] != [2]:
            raise _Unsupported(f"{n.op_type} over axes {axes}: only over time (axis 2)")
        return mk("gpool", {"kind": "avg" if n.op_type == "ReduceMean" else "max"})

    def reshape(self, n: Any, mk: Any) -> Op:
        src, out = self.shapes.get(n.input[0]), self.shapes.get(n.output[0])
        if src is None or out is None or -1 in src or -1 in out:
            raise _Unsupported("shape unknown after shape inference")
        if len(out) == 2 and out[0] == src[0] and int(np.prod(src[1:])) == out[1]:
            return mk("flatten")
        if out == src:
            return mk("alias")
        shuffle = self.shuffle(n, src, out)
        if shuffle is not None:
            return shuffle
        raise _Unsupported(f"reshape {list(src)} -> {list(out)}: only flatten to [N, F] or a channel shuffle")

    def shuffle(self, n: Any, src: tuple, out: tuple) -> Op | None:
        """Reshape [N, C, L] -> [N, g, C/g, L], Transpose (0, 2, 1, 3), Reshape back to [N, C, L]."""
        if n.op_type != "Reshape" or len(src) != 3 or len(out) != 4 or out[1] * out[2] != src[1]:
            return None
        tr = self.sole(n.output[0])
        if tr is None or tr.op_type != "Transpose" or list(_attr(tr, "perm", [])) != [0, 2, 1, 3]:
            return None
        back = self.sole(tr.output[0])
        if back is None or back.op_type != "Reshape" or self.shapes.get(back.output[0]) != src:
            return None
        self.done.update({id(tr), id(back)})
        return Op(back.output[0], "shuffle", [self.key(n.input[0])], self.where(n), {"groups": int(out[1])})

    def gemm(self, n: Any, mk: Any) -> Op:
        if _attr(n, "transA", 0) or not math.isclose(_attr(n, "alpha", 1.0), 1.0) \
                or not math.isclose(_attr(n, "beta", 1.0), 1.0):
            raise _Unsupported("Gemm with transA, alpha or beta: only x·Wᵀ + b")
        w = self.const(n, n.input[1])
        w = w if _attr(n, "transB", 0) else w.T
        tensors = {"weight": np.ascontiguousarray(w)}
        if len(n.input) > 2 and n.input[2]:
            b = self.const(n, n.input[2]).reshape(-1)
            tensors["bias"] = np.broadcast_to(b, (w.shape[0],)).copy()
        return mk("linear", {}, tensors)

    def matmul(self, n: Any) -> Op:
        """MatMul(x, W) (+ Add(b)) -> Linear with weight Wᵀ."""
        if n.input[1] not in self.consts or self.consts[n.input[1]].ndim != 2:
            return Op(n.output[0], "unsupported", [], self.where(n),
                      {"message": "MatMul with a non-constant or non-2-D right operand"})
        w = self.consts[n.input[1]].astype(np.float32).T
        tensors = {"weight": np.ascontiguousarray(w)}
        key = n.output[0]
        add = self.sole(key)
        bias = self.other(add, key) if add is not None and add.op_type == "Add" else None
        if add is not None and bias is not None and bias in self.consts:
            tensors["bias"] = np.broadcast_to(self.consts[bias].astype(np.float32).reshape(-1),
                                              (w.shape[0],)).copy()
            self.done.add(id(add))
            key = add.output[0]
        return Op(key, "linear", [self.key(n.input[0])], self.where(n), {}, tensors)

    def mul(self, n: Any) -> Op:
        """x·Sigmoid(x) (SiLU) or x·HardSigmoid(x) (HardSwish), both written as Mul by exporters."""
        for a, b in (tuple(n.input), tuple(reversed(n.input))):
            p = self.producer.get(b)
            if p is None:
                continue
            if p.input[0] == a and p.op_type in ("Sigmoid", "HardSigmoid") and id(self.sole(b)) == id(n):
                if p.op_type == "HardSigmoid" and not (math.isclose(_attr(p, "alpha", 0.2), 1 / 6, rel_tol=1e-4)
                                                       and math.isclose(_attr(p, "beta", 0.5), 0.5)):
                    break
                self.out = [o for o in self.out if o.key != b]
                return Op(n.output[0], "act", [self.key(a)], self.where(n),
                          {"function": "silu" if p.op_type == "Sigmoid" else "hardswish"})
        return Op(n.output[0], "unsupported", [], self.where(n),
                  {"message": "Mul outside a recognised pattern (SiLU, HardSwish, GELU)"})

    def hard_sigmoid(self, n: Any) -> Op | None:
        user = self.sole(n.output[0])
        if user is not None and user.op_type == "Mul" and n.input[0] in user.input:
            return None  # part of x·HardSigmoid(x): the Mul emits it
        return Op(n.output[0], "unsupported", [], self.where(n), {"message": "HardSigmoid alone"})

    def gelu_erf(self, n: Any) -> Op:
        """0.5·x·(1 + erf(x/√2)) as torch writes it: Div (or Mul 1/√2), Erf, Add 1, Mul x, Mul 0.5."""
        fail = Op(n.output[0], "unsupported", [], self.where(n), {"message": "Erf outside GELU's erf form"})
        pre = self.producer.get(n.input[0])
        if pre is None or not ((pre.op_type == "Div" and self.const_is(pre.input[1], math.sqrt(2)))
                               or (pre.op_type == "Mul" and self.const_is(self.other(pre, pre.input[0]), 1 / math.sqrt(2)))):
            return fail
        x = pre.input[0]
        add = self.sole(n.output[0])
        if add is None or add.op_type != "Add" or not self.const_is(self.other(add, n.output[0]), 1.0):
            return fail
        m1 = self.sole(add.output[0])
        if m1 is None or m1.op_type != "Mul":
            return fail
        half_x = self.other(m1, add.output[0])
        hx = self.producer.get(half_x) if half_x else None
        if half_x == x:
            m2 = self.sole(m1.output[0])
            if m2 is None or m2.op_type != "Mul" or not self.const_is(self.other(m2, m1.output[0]), 0.5):
                return fail
            nodes, last = [m1, m2], m2
        elif hx is not None and hx.op_type == "Mul" and x in hx.input and self.const_is(self.other(hx, x), 0.5):
            nodes, last = [m1, hx], m1
        else:
            return fail
        self.done.update(id(v) for v in [add, *nodes])
        emitted = {pre.output[0], *(v.output[0] for v in nodes)}  # earlier nodes were emitted as unsupported
        self.out = [o for o in self.out if o.key not in emitted]
        return Op(last.output[0], "act", [self.key(x)], self.where(n), {"function": "gelu"})


class _Unsupported(Exception):
    pass


def _attr(n: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in n.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _one(v: Any) -> int:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(v) != 1:
        raise _Unsupported(f"{v}: a 1-D attribute was expected")
    return int(v[0])


def _ort_reference(proto: Any, input_name: str, spec: g.ModelSpec) -> Any:
    """onnxruntime with every layer's tensor as an extra output: per-layer reference values."""
    import onnx
    import onnxruntime as ort

    m = copy.deepcopy(proto)
    _explicit_same_pads(m)
    have = {o.name for o in m.graph.output}
    keys = [x.source_key for x in spec.layers if x.source_key not in have and x.source_key != INPUT]
    for k in dict.fromkeys(keys):
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(k))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the tensors as named
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    final = proto.graph.output[0].name

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        per = [dict(zip(names, sess.run(None, {input_name: w[None]}))) for w in x]
        res = {k: np.concatenate([p[k] for p in per]).astype(np.float64) for k in names}
        res["<output>"] = res[final]
        return res

    run.raw_input = True  # type: ignore[attr-defined]  # the graph applies its own Sub/Div
    return run


def _explicit_same_pads(m: Any) -> None:
    """auto_pad SAME_* -> the equivalent explicit pads (onnxruntime refuses SAME with dilation)."""
    from onnx import helper

    for n in m.graph.node:
        auto = _attr(n, "auto_pad", b"NOTSET")
        if n.op_type != "Conv" or auto not in (b"SAME_UPPER", b"SAME_LOWER", "SAME_UPPER", "SAME_LOWER"):
            continue
        w = next(i for i in m.graph.initializer if i.name == n.input[1])
        k, d = w.dims[2], _one(_attr(n, "dilations", [1]))
        total = d * (k - 1)
        small, big = total // 2, total - total // 2
        pads = [small, big] if auto in (b"SAME_UPPER", "SAME_UPPER") else [big, small]
        keep = [a for a in n.attribute if a.name != "auto_pad"]
        del n.attribute[:]
        n.attribute.extend(keep + [helper.make_attribute("pads", pads)])

"""`reflex.export`: a PyTorch module -> `reflex.toml` + `weights.safetensors` (docs/python.md).

The module is traced with torch.fx (so `forward` may use functional activations, `+` for a
residual, a view–transpose–reshape channel shuffle), shapes are propagated on one example
batch, and every fx node becomes a primitive op (`reflex._graph.Op`) that the shared builder
fuses into Reflex layers.
"""

from __future__ import annotations

import copy
import operator
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from . import _graph as g
from . import nn as rnn
from ._errors import ExportError
from ._graph import INPUT, Exported, Op

__all__ = ["export", "Exported", "to_model_spec"]


def export(module: nn.Module, out_dir: str | Path, *, channels: int, length: int, hop: int = 1,
           labels: Sequence[str] | None = None, mean: Sequence[float] | None = None,
           std: Sequence[float] | None = None, verify: bool = True) -> Exported:
    """Export `module` (eval mode) to `out_dir/reflex.toml` and `out_dir/weights.safetensors`.

    Args:
        module: an `nn.Module` taking `[N, channels, length]` and returning `[N, F]`, built of
            the operations docs/python.md lists (Conv1d, BatchNorm1d, the ten activations, pools,
            Flatten, Linear, `+`, softmax, channel shuffle, `reflex.nn` blocks).
        out_dir: created if missing; the two files are overwritten.
        channels, length: the window `[C, L]` Reflex cuts (`source.channels`, `window.length`).
        hop: `window.hop`, samples between windows.
        labels: class names; makes `output.kind = "classify"` (else `"regress"`).
        mean, std: per-channel normalisation Reflex applies before the model (`window.mean/std`);
            the module itself is expected to take normalised input.
        verify: run the real `reflexd` on windows of the bundled walking recording and raise
            `reflex.VerifyError` unless every output agrees with `module` within docs/layers.md's
            `1e-5 + 1e-4·max|values|` (the channels it feeds: `reflex._verify`, docs/python.md).

    Returns:
        An `Exported` record of the files, layer names and plugins.

    Raises:
        ExportError: every unsupported operation, one line each (module path and operation).
        VerifyError: `reflexd` disagrees; the message names the first layer that does.
    """
    module = copy.deepcopy(module).eval()
    spec, gm = to_model_spec(module, channels=channels, length=length, hop=hop, labels=labels,
                             mean=mean, std=std)
    cfg, weights = g.write_model(spec, out_dir)
    result = Exported(Path(out_dir), cfg, weights, [x.name for x in spec.layers],
                      [x.plugin for x in spec.layers], False)
    if verify:
        from ._verify import verify_spec

        report = verify_spec(spec, _fx_reference(gm), what=type(module).__name__)
        result.verified, result.max_error = True, report.max_error
    return result


def to_model_spec(module: nn.Module, *, channels: int, length: int, hop: int = 1,
                  labels: Sequence[str] | None = None, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None) -> tuple[g.ModelSpec, fx.GraphModule]:
    """Trace and map `module` without writing anything: the Reflex layers and the traced module."""
    gm = _trace(module)
    ShapeProp(gm).propagate(torch.randn(2, channels, length))
    ops, output = _FxFrontend(gm).ops()
    spec = g.build_model(ops, output, channels=channels, length=length, hop=hop,
                         mean=_floats(mean), std=_floats(std),
                         labels=list(labels) if labels is not None else None,
                         origin=f"{type(module).__name__} (reflex.export)")
    return spec, gm


def _floats(xs: Sequence[float] | None) -> list[float] | None:
    return None if xs is None else [float(x) for x in xs]


class _Tracer(fx.Tracer):
    """Keeps reflex.nn blocks whole: each is one Reflex layer."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (*rnn.BLOCKS, rnn.ChannelShuffle)):
            return True
        return super().is_leaf_module(m, qualname)


def _trace(module: nn.Module) -> fx.GraphModule:
    try:
        graph = _Tracer().trace(module)
    except Exception as e:  # data-dependent control flow and the like
        raise ExportError([f"{type(module).__name__}: torch.fx cannot trace forward(): {e}"]) from e
    return fx.GraphModule(module, graph)


def _fx_reference(gm: fx.GraphModule) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """x [N, C, L] -> every fx node's output by node name, and "<output>" (the per-layer reference)."""

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}

        class Rec(fx.Interpreter):
            def run_node(self, n: fx.Node) -> Any:
                out = super().run_node(n)
                if isinstance(out, torch.Tensor):
                    values[n.name] = out.detach().double().numpy()
                return out

        with torch.no_grad():
            values["<output>"] = Rec(gm).run(torch.from_numpy(x)).double().numpy()
        values[INPUT] = x
        return values

    return run


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().copy()


_ACT_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.ELU: "elu", nn.SiLU: "silu", nn.GELU: "gelu",
    nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Hardswish: "hardswish", nn.LeakyReLU: "leaky_relu",
}
_ACT_FUNCS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", F.elu: "elu", F.silu: "silu",
    F.gelu: "gelu", torch.tanh: "tanh", F.tanh: "tanh", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.hardswish: "hardswish", F.leaky_relu: "leaky_relu", torch.relu_: "relu",
}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
_NOOP_MODULES = (nn.Identity, nn.Dropout)
_ADD = (operator.add, operator.iadd, torch.add)
_SOFTMAX = (F.softmax, torch.softmax)
_FLATTEN_FUNCS = (torch.flatten, torch.reshape, torch.squeeze)
_FLATTEN_METHODS = ("flatten", "view", "reshape", "squeeze")


class _FxFrontend:
    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self.mods = dict(gm.named_modules())
        self.out: list[Op] = []
        self.skip: set[str] = set()
        self.output = ""

    @staticmethod
    def shape(n: Any) -> tuple[int, ...] | None:
        meta = n.meta.get("tensor_meta") if isinstance(n, fx.Node) else None
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def tensor_inputs(self, n: fx.Node) -> list[str]:
        args = list(n.args) + list(n.kwargs.values())
        return [self.key(a) for a in args if isinstance(a, fx.Node) and self.shape(a) is not None]

    @staticmethod
    def key(n: fx.Node) -> str:
        return INPUT if n.op == "placeholder" else n.name

    def ops(self) -> tuple[list[Op], str]:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ExportError([f"forward: Reflex models take one input, this one takes {len(placeholders)}"])
        for n in self.gm.graph.nodes:
            if n.op in ("placeholder",) or n.name in self.skip:
                continue
            if n.op == "output":
                self.set_output(n)
                continue
            if self.shape(n) is None:
                if n.op == "get_attr":
                    self.unsupported(n, "a parameter or buffer used directly in forward()")
                elif n.op == "call_module":
                    self.unsupported(n, f"{type(self.mods[n.target]).__name__} is not a Reflex operation")
                continue  # shape arithmetic (x.size(), x.shape[1] // g) feeds other ops only
            self.out.append(self.convert(n))
        return self.out, self.output

    def set_output(self, n: fx.Node) -> None:
        res = n.args[0]
        if not isinstance(res, fx.Node):
            self.out.append(Op("<output>", "unsupported", [], "output",
                               {"message": "forward() must return one tensor"}))
            return
        self.output = self.key(res)

    def unsupported(self, n: fx.Node, what: str) -> None:
        self.out.append(Op(n.name, "unsupported", [], self.where(n), {"message": what}))

    def where(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return str(n.target)
        stack = n.meta.get("nn_module_stack")
        path = next(reversed(stack.values()))[0] if stack else ""
        return f"{path + '.' if path else ''}{n.name}"

    def convert(self, n: fx.Node) -> Op:
        ins = self.tensor_inputs(n)
        try:
            if n.op == "call_module":
                op = self.module_op(n, self.mods[n.target], ins)
            elif n.op == "call_function":
                op = self.function_op(n, ins)
            elif n.op == "call_method":
                op = self.method_op(n, ins)
            else:
                op = None
        except _Unsupported as e:
            op = Op(n.name, "unsupported", ins, self.where(n), {"message": str(e)})
        if op is None:
            what = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
            kind = {"call_module": type(self.mods.get(n.target)).__name__ if n.op == "call_module" else "",
                    "call_function": f"{what}()", "call_method": f"Tensor.{what}()"}.get(n.op, n.op)
            op = Op(n.name, "unsupported", ins, self.where(n),
                    {"message": f"{kind} is not a Reflex operation"})
        return op

    # -- modules ---------------------------------------------------------------------------

    def module_op(self, n: fx.Node, m: nn.Module, ins: list[str]) -> Op | None:
        where = str(n.target)
        mk = lambda kind, attrs=None, tensors=None: Op(n.name, kind, ins, where, attrs or {}, tensors or {})  # noqa: E731
        if isinstance(m, rnn.BLOCKS):
            plugin, keys = m.reflex_layer()
            tensors = {k: _np(v) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
            return mk("block", {"plugin": plugin, "keys": keys}, tensors)
        if isinstance(m, rnn.ChannelShuffle):
            return mk("shuffle", {"groups": m.groups})
        if type(m) is nn.Conv1d:
            return mk("conv", _conv_attrs(m), _conv_tensors(m))
        if type(m) is nn.BatchNorm1d:
            return mk("bn", {"eps": m.eps}, _bn_tensors(m))
        if type(m) in _ACT_MODULES:
            return mk("act", _act_module_attrs(m))
        if isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (0.0, 6.0):
            return mk("act", {"function": "relu6"})
        if isinstance(m, _NOOP_MODULES):
            return mk("alias")
        if type(m) in (nn.MaxPool1d, nn.AvgPool1d):
            return mk("pool", _pool_attrs(m))
        if type(m) in (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d):
            if m.output_size not in (1, (1,)):
                raise _Unsupported(f"{type(m).__name__}({m.output_size}): only output size 1 (a global pool)")
            return mk("gpool", {"kind": "avg" if isinstance(m, nn.AdaptiveAvgPool1d) else "max"})
        if type(m) is nn.Flatten:
            return self.flatten(n, ins)
        if type(m) is nn.Linear:
            return mk("linear", {}, {"weight": _np(m.weight), **({"bias": _np(m.bias)} if m.bias is not None else {})})
        if type(m) is nn.Softmax:
            return self.softmax(n, ins, m.dim)
        return None

    # -- functions and methods -------------------------------------------------------------

    def function_op(self, n: fx.Node, ins: list[str]) -> Op | None:
        t = n.target
        if t in _ACT_FUNCS:
            return Op(n.name, "act", ins[:1], self.where(n), _act_func_attrs(_ACT_FUNCS[t], n))
        if t in _ADD:
            return self.add(n, ins)
        if t in _SOFTMAX:
            return self.softmax(n, ins, n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None))
        if t is F.dropout:
            return Op(n.name, "alias", ins[:1], self.where(n))
        if t in (F.max_pool1d, F.avg_pool1d):
            return self.functional_pool(n, ins)
        if t in (F.adaptive_avg_pool1d, F.adaptive_max_pool1d):
            size = n.args[1] if len(n.args) > 1 else n.kwargs.get("output_size")
            if size not in (1, (1,)):
                raise _Unsupported(f"{t.__name__}(…, {size}): only output size 1 (a global pool)")
            return Op(n.name, "gpool", ins, self.where(n), {"kind": "avg" if t is F.adaptive_avg_pool1d else "max"})
        if t in (torch.mean, torch.amax):
            return self.reduce(n, ins, "avg" if t is torch.mean else "max")
        if t in _FLATTEN_FUNCS:
            return self.reshape(n, ins)
        return None

    def method_op(self, n: fx.Node, ins: list[str]) -> Op | None:
        t = n.target
        if t in _ACT_METHODS:
            return Op(n.name, "act", ins[:1], self.where(n), {"function": _ACT_METHODS[t]})
        if t in ("add", "add_", "__add__"):
            return self.add(n, ins)
        if t == "softmax":
            return self.softmax(n, ins, n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None))
        if t == "contiguous":
            return Op(n.name, "alias", ins[:1], self.where(n))
        if t in ("mean", "amax"):
            return self.reduce(n, ins, "avg" if t == "mean" else "max")
        if t in _FLATTEN_METHODS:
            return self.reshape(n, ins)
        return None

    def add(self, n: fx.Node, ins: list[str]) -> Op:
        tensors = [a for a in n.args if isinstance(a, fx.Node) and self.shape(a) is not None]
        if len(tensors) != 2 or "alpha" in n.kwargs:
            raise _Unsupported("`+` of a tensor and a constant (only the sum of two tensors maps to `add`)")
        if self.shape(tensors[0]) != self.shape(tensors[1]):
            raise _Unsupported(f"`+` with broadcasting {self.shape(tensors[0])} + {self.shape(tensors[1])}")
        return Op(n.name, "add", ins, self.where(n))

    def softmax(self, n: fx.Node, ins: list[str], dim: Any) -> Op:
        shape = self.shape(n)
        if shape is None or len(shape) != 2 or dim not in (1, -1):
            raise _Unsupported(f"softmax over dim {dim} of {list(shape or ())}: only over the features of [N, F]")
        return Op(n.name, "softmax", ins, self.where(n))

    def reduce(self, n: fx.Node, ins: list[str], kind: str) -> Op:
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
        in_shape = self.shape(n.args[0])
        dims = dim if isinstance(dim, (list, tuple)) else [dim]
        if in_shape is None or len(in_shape) != 3 or len(dims) != 1 or dims[0] not in (2, -1):
            raise _Unsupported(f"{n.target} over dim {dim}: only over time (dim -1) of [N, C, L]")
        return Op(n.name, "gpool", ins, self.where(n), {"kind": kind})

    def functional_pool(self, n: fx.Node, ins: list[str]) -> Op:
        names = ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"]
        args = dict(zip(names, n.args)) | dict(n.kwargs)
        k = _int(args["kernel_size"])
        stride = args.get("stride")
        stride = k if stride in (None, [], ()) else _int(stride)
        if stride != k or _int(args.get("padding", 0)) != 0 or args.get("ceil_mode", False) \
                or _int(args.get("dilation", 1)) != 1:
            raise _Unsupported(f"{getattr(n.target, '__name__', n.target)}: only kernel = stride, no padding, floor")
        return Op(n.name, "pool", ins, self.where(n),
                  {"kind": "max" if n.target is F.max_pool1d else "avg", "kernel_size": k})

    def flatten(self, n: fx.Node, ins: list[str]) -> Op:
        return self.reshape(n, ins)

    def reshape(self, n: fx.Node, ins: list[str]) -> Op:
        """Flatten to [N, F], or the first node of a view–transpose–reshape channel shuffle."""
        src, out = self.shape(n.args[0]), self.shape(n)
        if src is None or out is None:
            raise _Unsupported("reshape of a non-tensor")
        if len(out) == 2 and out[0] == src[0] and int(np.prod(src[1:])) == out[1]:
            return Op(n.name, "flatten", ins, self.where(n))
        if out == src:
            return Op(n.name, "alias", ins, self.where(n))
        shuffle = self.match_shuffle(n, src, out)
        if shuffle is not None:
            return shuffle
        raise _Unsupported(f"reshape {list(src)} -> {list(out)} (only flatten to [N, F] or a channel shuffle)")

    def match_shuffle(self, n: fx.Node, src: tuple, out: tuple) -> Op | None:
        """[N, C, L] -> view [N, g, C/g, L] -> transpose(1, 2) -> (contiguous) -> reshape [N, C, L]."""
        if len(src) != 3 or len(out) != 4 or out[0] != src[0] or out[3] != src[2] or out[1] * out[2] != src[1]:
            return None
        chain = [n]

        def only_user() -> fx.Node | None:
            users = list(chain[-1].users)
            return users[0] if len(users) == 1 else None

        u = only_user()
        if u is None or not _is_swap12(u, self.shape(u)):
            return None
        chain.append(u)
        u = only_user()
        if u is not None and u.op == "call_method" and u.target == "contiguous":
            chain.append(u)
            u = only_user()
        if u is None or self.shape(u) != src or not (u.target in _FLATTEN_METHODS or u.target in _FLATTEN_FUNCS):
            return None
        chain.append(u)
        self.skip.update(c.name for c in chain[1:])
        src_node: Any = n.args[0]
        return Op(chain[-1].name, "shuffle", [self.key(src_node)], self.where(n), {"groups": int(out[1])})


class _Unsupported(Exception):
    pass


def _is_swap12(u: fx.Node, shape: tuple | None) -> bool:
    args: Any = u.args  # fx's Argument union: the dims are ints here
    if u.op == "call_method" and u.target == "transpose" or u.target is torch.transpose:
        dims = {d % 4 for d in args[1:3]} if len(args) >= 3 else set()
        return dims == {1, 2}
    if u.op == "call_method" and u.target == "permute" or u.target is torch.permute:
        perm = args[1:] if u.op == "call_method" else args[1]
        if len(perm) == 1 and isinstance(perm[0], (list, tuple)):
            perm = perm[0]
        return [p % 4 for p in perm] == [0, 2, 1, 3]
    return False


def _int(v: Any) -> int:
    if isinstance(v, (list, tuple)):
        if len(v) != 1:
            raise _Unsupported(f"{v}: a 1-D size was expected")
        v = v[0]
    return int(v)


def _conv_attrs(m: nn.Conv1d) -> dict[str, Any]:
    if m.padding_mode != "zeros":
        raise _Unsupported(f"Conv1d(padding_mode={m.padding_mode!r}): only zero padding")
    pad = m.padding if isinstance(m.padding, str) else int(m.padding[0])
    return {"stride": int(m.stride[0]), "padding": pad, "dilation": int(m.dilation[0]), "groups": int(m.groups)}


def _conv_tensors(m: nn.Conv1d) -> dict[str, np.ndarray]:
    t = {"weight": _np(m.weight)}
    if m.bias is not None:
        t["bias"] = _np(m.bias)
    return t


def _bn_tensors(m: nn.BatchNorm1d) -> dict[str, np.ndarray]:
    if m.running_mean is None or m.running_var is None:
        raise _Unsupported("BatchNorm1d(track_running_stats=False) normalises with batch statistics")
    c = m.num_features
    w = _np(m.weight) if m.weight is not None else np.ones(c, np.float32)
    b = _np(m.bias) if m.bias is not None else np.zeros(c, np.float32)
    return {"weight": w, "bias": b, "running_mean": _np(m.running_mean), "running_var": _np(m.running_var)}


def _act_module_attrs(m: nn.Module) -> dict[str, Any]:
    f = _ACT_MODULES[type(m)]
    if isinstance(m, nn.GELU) and m.approximate != "none":
        raise _Unsupported('GELU(approximate="tanh"): Reflex has the exact (erf) GELU only')
    if isinstance(m, nn.ELU) and m.alpha != 1.0:
        raise _Unsupported(f"ELU(alpha={m.alpha}): Reflex's ELU has alpha 1")
    if isinstance(m, nn.LeakyReLU):
        return {"function": f, "negative_slope": float(m.negative_slope)}
    return {"function": f}


def _act_func_attrs(f: str, n: fx.Node) -> dict[str, Any]:
    if f == "gelu" and n.kwargs.get("approximate", "none") != "none":
        raise _Unsupported('gelu(approximate="tanh"): Reflex has the exact (erf) GELU only')
    if f == "elu":
        alpha = n.kwargs.get("alpha", n.args[1] if len(n.args) > 1 else 1.0)
        if alpha != 1.0:
            raise _Unsupported(f"elu(alpha={alpha}): Reflex's ELU has alpha 1")
    if f == "leaky_relu":
        slope: Any = n.kwargs.get("negative_slope", n.args[1] if len(n.args) > 1 else 0.01)
        return {"function": f, "negative_slope": float(slope)}
    return {"function": f}


def _pool_attrs(m: nn.Module) -> dict[str, Any]:
    k = _int(m.kernel_size)
    stride = _int(m.stride) if m.stride is not None else k
    if stride != k or _int(m.padding) != 0 or m.ceil_mode or _int(getattr(m, "dilation", 1)) != 1:
        raise _Unsupported(f"{type(m).__name__}: only kernel = stride, no padding, floor")
    return {"kind": "max" if isinstance(m, nn.MaxPool1d) else "avg", "kernel_size": k}

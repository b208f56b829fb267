"""Independent PyTorch reference of the Reflex layer graph (docs/layers.md): config -> module.

Used by `reflex.verify`, `reflex.nn` and the repository's tools/ (fixtures, bench models,
trained examples), which import it as `from reflex import torch_ref as rt`.

`build_model(cfg)` turns a parsed Reflex config (the dict `tomllib` returns) into a
real `nn.Module` tree whose `state_dict()` keys are exactly the tensor names Reflex
expects (`c1.weight`, `c1.bn.running_var`, `blk.reduce.weight`, `dw.pointwise.bias`,
`fc.weight`, ...). The module works on batches `[N, C, L]`; Reflex's `[C, L]`
window is the `N = 1` case.

The implementation deliberately uses PyTorch's own operators (nn.Conv1d with
padding="same", nn.BatchNorm1d, nn.Linear, F.gelu, ...) so that it is a reference
and not a re-derivation of the Rust code.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BN_EPS = 1e-5

# PyTorch notes that padding="same" with an even total pads a copy of the input: expected.
warnings.filterwarnings("ignore", message="Using padding='same'")

ACTIVATIONS = (
    "none", "relu", "relu6", "leaky_relu", "elu", "silu", "gelu", "tanh", "sigmoid", "hardswish",
)

CONV_PLUGINS = ("conv_standard", "conv_dilated", "conv_depthwise", "conv_grouped", "residual")

# Keys each plugin accepts (besides name, plugin, input). Used to catch typos in
# generated configs: an unknown key is an error here, as it is in Reflex.
_COMMON_CONV = {"out_channels", "kernel_size", "stride", "padding", "bias", "activation",
                "batch_norm", "negative_slope"}
ALLOWED_KEYS = {
    "conv_standard": _COMMON_CONV,
    "conv_dilated": _COMMON_CONV | {"dilation"},
    "conv_depthwise": _COMMON_CONV | {"dilation", "mid_activation"},
    "conv_grouped": _COMMON_CONV | {"dilation", "groups", "shuffle"},
    "residual": {"out_channels", "kernel_size", "mid_channels", "dilation", "padding", "bias",
                 "activation", "batch_norm", "negative_slope"},
    "activation": {"function", "negative_slope"},
    "batch_norm": set(),
    "max_pool": {"kernel_size"},
    "avg_pool": {"kernel_size"},
    "global_avg_pool": set(),
    "global_max_pool": set(),
    "flatten": set(),
    "linear": {"out_features", "bias"},
    "add": {"inputs", "activation", "negative_slope"},
    "softmax": set(),
}


class Act(nn.Module):
    """One of the ten Reflex activations (no parameters, nothing in the state_dict)."""

    def __init__(self, function: str = "none", negative_slope: float = 0.01):
        super().__init__()
        if function not in ACTIVATIONS:
            raise ValueError(f"unknown activation {function!r}")
        self.function = function
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        f = self.function
        if f == "none":
            return x
        if f == "relu":
            return F.relu(x)
        if f == "relu6":
            return F.relu6(x)
        if f == "leaky_relu":
            return F.leaky_relu(x, self.negative_slope)
        if f == "elu":
            return F.elu(x, alpha=1.0)
        if f == "silu":
            return F.silu(x)
        if f == "gelu":
            return F.gelu(x, approximate="none")
        if f == "tanh":
            return torch.tanh(x)
        if f == "sigmoid":
            return torch.sigmoid(x)
        if f == "hardswish":
            return F.hardswish(x)
        raise AssertionError(f)

    def extra_repr(self):
        return self.function


class Conv(nn.Conv1d):
    """nn.Conv1d with Reflex padding modes and an optional BatchNorm1d at `.bn`.

    "same"  -> nn.Conv1d(padding="same") (PyTorch's own asymmetric split for even k)
    "valid" -> padding 0
    int p   -> p zeros on both sides
    "causal"-> F.pad(x, (dilation*(k-1), 0)) then no padding
    """

    def __init__(self, cin, cout, k, *, stride=1, padding="same", dilation=1, groups=1,
                 bias=True, batch_norm=False):
        self.causal = padding == "causal"
        if padding == "same":
            if stride != 1:
                raise ValueError('padding "same" requires stride 1')
            p = "same"
        elif padding in ("valid", "causal"):
            p = 0
        elif isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
            p = padding
        else:
            raise ValueError(f"bad padding {padding!r}")
        super().__init__(cin, cout, k, stride=stride, padding=p, dilation=dilation,
                         groups=groups, bias=bias)
        if batch_norm:
            self.bn = nn.BatchNorm1d(cout, eps=BN_EPS)
        else:
            self.bn = None

    def conv_forward(self, x):
        if self.causal:
            x = F.pad(x, (self.dilation[0] * (self.kernel_size[0] - 1), 0))
        y = super().forward(x)
        if self.bn is not None:
            y = self.bn(y)
        return y

    def forward(self, x):
        return self.conv_forward(x)


def channel_shuffle(x, groups):
    """docs/layers.md: x.view(g, out//g, L).transpose(0, 1).reshape(out, L), per window."""
    n, c, length = x.shape
    return x.reshape(n, groups, c // groups, length).transpose(1, 2).reshape(n, c, length)


class ConvLayer(Conv):
    """conv_standard / conv_dilated / conv_grouped: conv (+BN) -> activation (-> shuffle)."""

    def __init__(self, cin, cout, k, *, activation="none", negative_slope=0.01, shuffle_groups=0,
                 **kw):
        super().__init__(cin, cout, k, **kw)
        self.act = Act(activation, negative_slope)
        self.shuffle_groups = shuffle_groups

    def forward(self, x):
        y = self.act(self.conv_forward(x))
        if self.shuffle_groups > 1:
            y = channel_shuffle(y, self.shuffle_groups)
        return y


class DepthwiseLayer(nn.Module):
    """conv_depthwise: depthwise (k, groups=in) -> mid_activation -> pointwise (1x1) -> BN -> act."""

    def __init__(self, cin, cout, k, *, stride=1, padding="same", dilation=1, bias=True,
                 batch_norm=False, activation="none", mid_activation="none", negative_slope=0.01):
        super().__init__()
        self.depthwise = Conv(cin, cin, k, stride=stride, padding=padding, dilation=dilation,
                              groups=cin, bias=bias)
        self.pointwise = Conv(cin, cout, 1, padding="valid", bias=bias)
        self.bn = nn.BatchNorm1d(cout, eps=BN_EPS) if batch_norm else None
        self.mid_act = Act(mid_activation, negative_slope)
        self.act = Act(activation, negative_slope)

    def forward(self, x):
        y = self.pointwise(self.mid_act(self.depthwise(x)))
        if self.bn is not None:
            y = self.bn(y)
        return self.act(y)


class ResidualLayer(nn.Module):
    """residual bottleneck: act(reduce) -> act(conv k) -> expand, + shortcut, -> act."""

    def __init__(self, cin, cout, k, *, mid_channels, dilation=1, padding="same", bias=True,
                 batch_norm=False, activation="relu", negative_slope=0.01):
        super().__init__()
        if padding not in ("same", "causal"):
            raise ValueError('residual padding must be "same" or "causal"')
        self.reduce = Conv(cin, mid_channels, 1, padding="valid", bias=bias, batch_norm=batch_norm)
        self.conv = Conv(mid_channels, mid_channels, k, padding=padding, dilation=dilation,
                         bias=bias, batch_norm=batch_norm)
        self.expand = Conv(mid_channels, cout, 1, padding="valid", bias=bias, batch_norm=batch_norm)
        if cin != cout:
            self.shortcut = Conv(cin, cout, 1, padding="valid", bias=bias, batch_norm=batch_norm)
        else:
            self.shortcut = None
        self.act = Act(activation, negative_slope)

    def forward(self, x):
        h = self.act(self.reduce(x))
        h = self.act(self.conv(h))
        h = self.expand(h)
        s = x if self.shortcut is None else self.shortcut(x)
        return self.act(h + s)


class GlobalPool(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        return x.mean(dim=-1) if self.kind == "avg" else x.amax(dim=-1)


class Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class Softmax(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)


class Add(nn.Module):
    def __init__(self, inputs, activation="none", negative_slope=0.01):
        super().__init__()
        self.inputs = list(inputs)
        self.act = Act(activation, negative_slope)

    def forward(self, *xs):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return self.act(y)


def _make_layer(spec: dict, in_shape: tuple):
    """Build one layer module from its config table, given the per-window input shape."""
    plugin = spec["plugin"]
    extra = set(spec) - {"name", "plugin", "input"} - ALLOWED_KEYS[plugin]
    if extra:
        raise ValueError(f"layer {spec['name']}: unknown keys {sorted(extra)}")
    ns = spec.get("negative_slope", 0.01)
    if plugin in CONV_PLUGINS:
        if len(in_shape) != 2:
            raise ValueError(f"layer {spec['name']}: needs a [C, L] input, got {in_shape}")
        cin = in_shape[0]
        k = spec["kernel_size"]
        bias = spec.get("bias", True)
        bn = spec.get("batch_norm", False)
        if plugin == "residual":
            return ResidualLayer(cin, spec.get("out_channels", cin), k,
                                 mid_channels=spec["mid_channels"],
                                 dilation=spec.get("dilation", 1),
                                 padding=spec.get("padding", "same"), bias=bias, batch_norm=bn,
                                 activation=spec.get("activation", "relu"), negative_slope=ns)
        common = dict(stride=spec.get("stride", 1), padding=spec.get("padding", "same"),
                      bias=bias, batch_norm=bn)
        act = spec.get("activation", "none")
        cout = spec["out_channels"]
        if plugin == "conv_standard":
            return ConvLayer(cin, cout, k, activation=act, negative_slope=ns, **common)
        if plugin == "conv_dilated":
            return ConvLayer(cin, cout, k, activation=act, negative_slope=ns,
                             dilation=spec["dilation"], **common)
        if plugin == "conv_grouped":
            g = spec["groups"]
            shuffle = spec.get("shuffle", True)
            return ConvLayer(cin, cout, k, activation=act, negative_slope=ns,
                             dilation=spec.get("dilation", 1), groups=g,
                             shuffle_groups=g if shuffle else 0, **common)
        if plugin == "conv_depthwise":
            return DepthwiseLayer(cin, cout, k, dilation=spec.get("dilation", 1),
                                  activation=act, negative_slope=ns,
                                  mid_activation=spec.get("mid_activation", "none"), **common)
    if plugin == "activation":
        return Act(spec["function"], ns)
    if plugin == "batch_norm":
        return nn.BatchNorm1d(in_shape[0], eps=BN_EPS)
    if plugin == "max_pool":
        return nn.MaxPool1d(spec["kernel_size"], stride=spec["kernel_size"])
    if plugin == "avg_pool":
        return nn.AvgPool1d(spec["kernel_size"], stride=spec["kernel_size"])
    if plugin == "global_avg_pool":
        return GlobalPool("avg")
    if plugin == "global_max_pool":
        return GlobalPool("max")
    if plugin == "flatten":
        return Flatten()
    if plugin == "linear":
        if len(in_shape) != 1:
            raise ValueError(f"layer {spec['name']}: linear needs a 1-D input, got {in_shape}")
        return nn.Linear(in_shape[0], spec["out_features"], bias=spec.get("bias", True))
    if plugin == "add":
        return Add(spec["inputs"], spec.get("activation", "none"), ns)
    if plugin == "softmax":
        return Softmax()
    raise ValueError(f"unknown plugin {plugin!r}")


class ReflexModel(nn.Module):
    """The whole layer graph. Each layer is a direct child named like the config layer."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.channels = cfg["source"]["channels"]
        self.length = cfg["window"]["length"]
        self.specs = list(cfg["model"]["layers"])
        self.shapes = {"input": (self.channels, self.length)}
        self.routes = []  # (name, [source names])
        prev = "input"
        for spec in self.specs:
            name = spec["name"]
            if name in self.shapes or hasattr(self, name):
                raise ValueError(f"bad or duplicate layer name {name!r}")
            if spec["plugin"] == "add":
                srcs = list(spec["inputs"])
                in_shape = self.shapes[srcs[0]]
                for s in srcs:
                    if self.shapes[s] != in_shape:
                        raise ValueError(f"add {name}: shapes differ {srcs}")
            else:
                srcs = [spec.get("input", prev)]
                in_shape = self.shapes[srcs[0]]
            mod = _make_layer(spec, in_shape)
            self.add_module(name, mod)
            # shape inference with a dummy forward pass (eval mode: no BN stat updates)
            mod.eval()
            with torch.no_grad():
                out = mod(*[torch.zeros((1,) + self.shapes[s]) for s in srcs])
            self.shapes[name] = tuple(out.shape[1:])
            self.routes.append((name, srcs))
            prev = name
        if len(self.shapes[prev]) != 1:
            raise ValueError(f"final layer output must be 1-D, got {self.shapes[prev]}")
        self.out_features = self.shapes[prev][0]

    def forward(self, x):
        outs = {"input": x}
        name = "input"
        for name, srcs in self.routes:
            outs[name] = getattr(self, name)(*[outs[s] for s in srcs])
        return outs[name]


def build_model(cfg: dict) -> ReflexModel:
    return ReflexModel(cfg)


def load_config(path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_model(config_path) -> ReflexModel:
    """Build the model from a reflex.toml and load its weights (f16/bf16 -> f32)."""
    from safetensors.torch import load_file

    config_path = Path(config_path)
    cfg = load_config(config_path)
    model = build_model(cfg)
    w = cfg["model"].get("weights")
    if w is not None:
        sd = load_file(str(config_path.parent / w))
        sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
        model.load_state_dict(sd, strict=True)
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------
# random initialisation and statistics


def randomize_bn(model: nn.Module, gen: torch.Generator):
    """Non-trivial eval-mode BN parameters so that BN folding is really exercised."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            assert m.weight is not None and m.bias is not None and m.num_batches_tracked is not None
            assert m.running_mean is not None and m.running_var is not None
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.3 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.num_batches_tracked.fill_(int(torch.randint(1, 5000, (1,), generator=gen)))


def calibrate_bn(model: "ReflexModel", gen: torch.Generator, batches=20, batch_size=16):
    """Realistic BN statistics: run random-normal windows through in train mode and keep
    the cumulative running mean/var (momentum=None), then set random affine params."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        with torch.no_grad():
            m.weight.copy_(0.8 + 0.4 * torch.rand(m.num_features, generator=gen))
            m.bias.copy_(0.1 * torch.randn(m.num_features, generator=gen))
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            x = torch.randn((batch_size, model.channels, model.length), generator=gen)
            model(x)
    for m in bns:
        m.momentum = 0.1
    model.eval()


def param_count(model: nn.Module) -> int:
    """Weight elements Reflex loads (BN statistics included, num_batches_tracked not)."""
    return sum(v.numel() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked"))


def mac_count(model: ReflexModel) -> int:
    """docs/layers.md: sum over convolutions of out*L_out*(in/groups)*k plus in*out per linear."""
    total = 0
    hooks = []

    def conv_hook(m, inp, out):
        nonlocal total
        total += m.out_channels * out.shape[-1] * (m.in_channels // m.groups) * m.kernel_size[0]

    def lin_hook(m, inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    with torch.no_grad():
        model(torch.zeros(1, model.channels, model.length))
    for h in hooks:
        h.remove()
    return total


def reference_output(model: ReflexModel, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode output computed in float64 (from the f32 weights and inputs), cast to f32."""
    import copy

    m64 = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return m64(x.double()).float()


def tolerance(ref: torch.Tensor) -> torch.Tensor:
    """Per-window tolerance of docs/layers.md: 1e-5 + 1e-4 * max|values|."""
    return 1e-5 + 1e-4 * ref.abs().amax(dim=-1, keepdim=True)


def check_close(got: torch.Tensor, ref: torch.Tensor, what: str):
    err = (got - ref).abs()
    tol = tolerance(ref)
    if not bool((err <= tol).all()):
        raise AssertionError(f"{what}: max err {err.max().item():.3e} exceeds tolerance "
                             f"(tol {tol.min().item():.3e})")
    return err.max().item()

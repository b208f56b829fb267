#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures for the Reflex layer graph.

    python tools/make_fixtures.py            # (re)writes crates/reflex-graph/tests/fixtures/<case>/
    python tools/make_fixtures.py --only conv_standard_k4_same

Each case directory holds reflex.toml, weights.safetensors (unless the model has no tensors)
and io.safetensors (`input` [N, C, L] f32, `output` [N, F] f32). The expected output is
computed in float64 from the (f32, or f16/bf16-rounded) weights and the f32 inputs, in eval
mode, then cast to f32; the f32 PyTorch forward is checked against it within the tolerance of
tolerance. Everything is seeded from the case name, so reruns are byte-identical for a
given torch version.
"""

from __future__ import annotations

import argparse
import shutil
import tomllib
import zlib
from pathlib import Path

import torch
from safetensors.torch import save_file

from reflex import torch_ref as rt  # pip install -e ./python

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "crates" / "reflex-graph" / "tests" / "fixtures"
N_WINDOWS = 3


# ---------------------------------------------------------------------------------------------
# TOML writing (tiny subset: scalars, strings, lists of scalars)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def config_text(case: dict, has_weights: bool) -> str:
    lines = [f"# {case['comment']}", "[source]", f"channels = {case['C']}", "",
             "[window]", f"length = {case['L']}", "", "[model]"]
    if has_weights:
        lines.append('weights = "weights.safetensors"')
    for layer in case["layers"]:
        lines += ["", "[[model.layers]]"]
        keys = ["name", "plugin"] + [k for k in layer if k not in ("name", "plugin")]
        for k in keys:
            lines.append(f"{k} = {toml_value(layer[k])}")
    out = case.get("output", {"kind": "regress"})
    lines += ["", "[output]"] + [f"{k} = {toml_value(v)}" for k, v in out.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the cases

CASES: list[dict] = []


def case(name, comment, C, L, layers, **kw):
    assert all(c["name"] != name for c in CASES), name
    CASES.append(dict(name=name, comment=comment, C=C, L=L, layers=layers, **kw))


def L_(name, plugin, **keys):
    return dict(name=name, plugin=plugin, **keys)


FLAT = L_("flat", "flatten")

# --- conv_standard: every k in {2,3,4,5} with every padding mode -----------------------------
_std_acts = {2: "none", 3: "relu", 4: "none", 5: "tanh"}
for k in (2, 3, 4, 5):
    for pad, pname in (("same", "same"), ("valid", "valid"), ("causal", "causal"), (2, "pad2")):
        case(f"conv_standard_k{k}_{pname}",
             f"conv_standard, kernel_size {k} ({'even' if k % 2 == 0 else 'odd'}), "
             f"padding {pad!r}, activation {_std_acts[k]}",
             3, 17,
             [L_("c1", "conv_standard", out_channels=4, kernel_size=k, padding=pad,
                 activation=_std_acts[k]), FLAT])

case("conv_standard_k3_stride2_valid", "conv_standard stride 2, padding valid (L odd -> floor)",
     3, 18, [L_("c1", "conv_standard", out_channels=4, kernel_size=3, stride=2, padding="valid"),
             FLAT])
case("conv_standard_k4_stride2_pad1", "conv_standard stride 2, integer padding 1, even k",
     3, 17, [L_("c1", "conv_standard", out_channels=4, kernel_size=4, stride=2, padding=1,
                activation="relu"), FLAT])
case("conv_standard_k5_stride3_pad2", "conv_standard stride 3, integer padding 2 (L+4-5 not a "
     "multiple of 3)", 3, 20,
     [L_("c1", "conv_standard", out_channels=4, kernel_size=5, stride=3, padding=2), FLAT])
case("conv_standard_nobias", "conv_standard with bias = false (no .bias tensor)",
     3, 16, [L_("c1", "conv_standard", out_channels=4, kernel_size=3, padding="same",
                bias=False, activation="relu6"), FLAT], scale=3.0)
case("conv_standard_bn_relu", "conv_standard with batch_norm = true (BN before activation)",
     4, 16, [L_("c1", "conv_standard", out_channels=6, kernel_size=3, padding="same",
                batch_norm=True, activation="relu"), FLAT])
case("conv_standard_bn_nobias_causal", "conv_standard, batch_norm, bias = false, causal, even k",
     4, 15, [L_("c1", "conv_standard", out_channels=5, kernel_size=4, padding="causal",
                bias=False, batch_norm=True, activation="leaky_relu"), FLAT], scale=3.0)
case("conv_standard_c5_l23", "conv_standard with in_channels 5 (not a multiple of 4), odd L, "
     "out 7; two layers", 5, 23,
     [L_("c1", "conv_standard", out_channels=7, kernel_size=5, padding="same", activation="gelu"),
      L_("c2", "conv_standard", out_channels=3, kernel_size=3, padding="valid",
         activation="hardswish"), FLAT], scale=3.0)

# --- conv_dilated ----------------------------------------------------------------------------
for d, k, pad, act in ((2, 3, "same", "relu"), (2, 4, "same", "none"), (3, 3, "same", "elu"),
                       (3, 2, "same", "none"), (2, 3, "causal", "silu"), (3, 4, "causal", "none"),
                       (2, 3, "valid", "none"), (3, 5, "valid", "sigmoid"), (2, 3, 3, "none")):
    pname = pad if isinstance(pad, str) else f"pad{pad}"
    case(f"conv_dilated_d{d}_k{k}_{pname}",
         f"conv_dilated dilation {d}, kernel_size {k}, padding {pad!r}, activation {act}",
         3, 29, [L_("c1", "conv_dilated", out_channels=4, kernel_size=k, dilation=d, padding=pad,
                    activation=act), FLAT], scale=2.0)
case("conv_dilated_d2_k3_stride2_valid", "conv_dilated dilation 2 with stride 2, padding valid",
     3, 29, [L_("c1", "conv_dilated", out_channels=4, kernel_size=3, dilation=2, stride=2,
                padding="valid"), FLAT])
case("conv_dilated_d3_k4_stride2_pad3", "conv_dilated dilation 3, even k, stride 2, integer "
     "padding 3, batch_norm", 4, 30,
     [L_("c1", "conv_dilated", out_channels=4, kernel_size=4, dilation=3, stride=2, padding=3,
         batch_norm=True, activation="relu"), FLAT])

# --- conv_depthwise --------------------------------------------------------------------------
case("conv_depthwise_k3_same_midrelu", "conv_depthwise k 3, same, mid_activation relu",
     4, 17, [L_("dw", "conv_depthwise", out_channels=6, kernel_size=3, padding="same",
                mid_activation="relu"), FLAT])
case("conv_depthwise_k4_same", "conv_depthwise even k 4, same (asymmetric), no activations",
     4, 17, [L_("dw", "conv_depthwise", out_channels=6, kernel_size=4, padding="same"), FLAT])
case("conv_depthwise_k5_causal", "conv_depthwise k 5, causal, activation tanh",
     3, 17, [L_("dw", "conv_depthwise", out_channels=5, kernel_size=5, padding="causal",
                activation="tanh"), FLAT], scale=2.0)
case("conv_depthwise_k3_valid", "conv_depthwise k 3, valid, mid_activation relu, activation relu",
     5, 16, [L_("dw", "conv_depthwise", out_channels=3, kernel_size=3, padding="valid",
                mid_activation="relu", activation="relu"), FLAT])
case("conv_depthwise_k4_pad2", "conv_depthwise k 4, integer padding 2", 4, 15,
     [L_("dw", "conv_depthwise", out_channels=4, kernel_size=4, padding=2), FLAT])
case("conv_depthwise_k3_dil2_same", "conv_depthwise k 3, dilation 2, same", 4, 21,
     [L_("dw", "conv_depthwise", out_channels=6, kernel_size=3, dilation=2, padding="same",
         mid_activation="relu"), FLAT])
case("conv_depthwise_k4_dil2_causal", "conv_depthwise even k 4, dilation 2, causal", 3, 21,
     [L_("dw", "conv_depthwise", out_channels=4, kernel_size=4, dilation=2, padding="causal"),
      FLAT])
case("conv_depthwise_k3_stride2_valid", "conv_depthwise k 3, stride 2, valid", 4, 19,
     [L_("dw", "conv_depthwise", out_channels=6, kernel_size=3, stride=2, padding="valid",
         mid_activation="relu"), FLAT])
case("conv_depthwise_bn_nobias", "conv_depthwise with batch_norm (after pointwise, out channels), "
     "bias = false, leaky_relu slope 0.1 for mid and final", 4, 16,
     [L_("dw", "conv_depthwise", out_channels=6, kernel_size=5, padding="same", bias=False,
         batch_norm=True, mid_activation="leaky_relu", activation="leaky_relu",
         negative_slope=0.1), FLAT], scale=2.0)
case("conv_depthwise_bn_bias", "conv_depthwise with batch_norm and bias (both biases before BN)",
     4, 16, [L_("dw", "conv_depthwise", out_channels=4, kernel_size=3, padding="same",
                batch_norm=True, mid_activation="relu", activation="relu6"), FLAT], scale=2.0)

# --- conv_grouped ----------------------------------------------------------------------------
case("conv_grouped_g2_shuffle", "conv_grouped groups 2, shuffle (default true), in 4 out 6",
     4, 16, [L_("g1", "conv_grouped", out_channels=6, kernel_size=3, groups=2, padding="same"),
             FLAT])
case("conv_grouped_g4_shuffle", "conv_grouped groups 4, shuffle true, in 8 out 8", 8, 12,
     [L_("g1", "conv_grouped", out_channels=8, kernel_size=3, groups=4, shuffle=True,
         padding="same", activation="relu"), FLAT])
case("conv_grouped_g4_noshuffle", "conv_grouped groups 4, shuffle false, in 8 out 12", 8, 12,
     [L_("g1", "conv_grouped", out_channels=12, kernel_size=3, groups=4, shuffle=False,
         padding="same", activation="relu"), FLAT])
case("conv_grouped_g2_noshuffle_k4", "conv_grouped groups 2, shuffle false, even k 4 same",
     4, 13, [L_("g1", "conv_grouped", out_channels=4, kernel_size=4, groups=2, shuffle=False,
                padding="same"), FLAT])
case("conv_grouped_g2_dil2_causal", "conv_grouped groups 2, dilation 2, causal, shuffle", 4, 17,
     [L_("g1", "conv_grouped", out_channels=6, kernel_size=3, groups=2, dilation=2,
         padding="causal", activation="silu"), FLAT], scale=2.0)
case("conv_grouped_g4_dil3_same_bn", "conv_grouped groups 4, dilation 3, same, batch_norm, "
     "shuffle", 8, 20,
     [L_("g1", "conv_grouped", out_channels=8, kernel_size=4, groups=4, dilation=3,
         padding="same", batch_norm=True), FLAT])
case("conv_grouped_g4_bn_shuffle_relu", "conv_grouped groups 4, batch_norm (indexed before the "
     "shuffle), relu, shuffle; out 12", 8, 14,
     [L_("g1", "conv_grouped", out_channels=12, kernel_size=3, groups=4, padding="same",
         batch_norm=True, activation="relu"), FLAT])
case("conv_grouped_g2_stride2_valid", "conv_grouped groups 2, stride 2, valid, shuffle", 4, 18,
     [L_("g1", "conv_grouped", out_channels=6, kernel_size=3, groups=2, stride=2,
         padding="valid", activation="elu"), FLAT], scale=2.0)
case("conv_grouped_g2_stride2_pad1_nobias", "conv_grouped groups 2, stride 2, integer padding 1, "
     "bias = false, shuffle", 6, 15,
     [L_("g1", "conv_grouped", out_channels=4, kernel_size=4, groups=2, stride=2, padding=1,
         bias=False), FLAT])

# --- residual --------------------------------------------------------------------------------
case("residual_identity_same", "residual identity shortcut (in = out = 6), mid 3, k 3, same, relu",
     6, 16, [L_("blk", "residual", kernel_size=3, mid_channels=3), FLAT])
case("residual_projection_same", "residual projection shortcut (in 4 -> out 8), mid 3, k 3, same",
     4, 16, [L_("blk", "residual", kernel_size=3, mid_channels=3, out_channels=8), FLAT])
case("residual_identity_causal_k4", "residual identity (out_channels given = in), even k 4, "
     "causal", 5, 15,
     [L_("blk", "residual", kernel_size=4, mid_channels=2, out_channels=5, padding="causal"),
      FLAT])
case("residual_projection_causal_dil2", "residual projection (3 -> 6), k 3, dilation 2, causal",
     3, 19, [L_("blk", "residual", kernel_size=3, mid_channels=4, out_channels=6, dilation=2,
                padding="causal"), FLAT])
case("residual_identity_k4_dil2_same", "residual identity, even k 4, dilation 2, same (asymmetric)",
     4, 17, [L_("blk", "residual", kernel_size=4, mid_channels=2, dilation=2), FLAT])
case("residual_identity_bn", "residual identity with batch_norm (reduce/conv/expand BN)", 6, 16,
     [L_("blk", "residual", kernel_size=3, mid_channels=4, batch_norm=True), FLAT])
case("residual_projection_bn", "residual projection (4 -> 6) with batch_norm (incl. shortcut BN)",
     4, 16, [L_("blk", "residual", kernel_size=5, mid_channels=3, out_channels=6,
                batch_norm=True), FLAT])
case("residual_silu", "residual with activation silu (all three activations), projection", 3, 16,
     [L_("blk", "residual", kernel_size=3, mid_channels=4, out_channels=5, activation="silu"),
      FLAT], scale=2.0)
case("residual_nobias_bn_gelu", "residual identity, bias = false, batch_norm, gelu, k 2", 5, 14,
     [L_("blk", "residual", kernel_size=2, mid_channels=3, bias=False, batch_norm=True,
         activation="gelu"), FLAT], scale=2.0)
case("residual_leaky_default", "residual with leaky_relu at the default negative_slope 0.01",
     4, 14, [L_("blk", "residual", kernel_size=3, mid_channels=2, activation="leaky_relu"), FLAT],
     scale=3.0)

# --- every activation as an `activation` layer; inputs uniform in [-9, 9] plus special points --
for fn in rt.ACTIVATIONS:
    case(f"activation_{fn}", f"activation layer function {fn!r}; inputs cover [-9, 9]", 3, 16,
         [L_("act", "activation", function=fn), FLAT], input_kind="wide")
case("activation_leaky_relu_slope0p2", "activation layer leaky_relu with negative_slope 0.2",
     3, 16, [L_("act", "activation", function="leaky_relu", negative_slope=0.2), FLAT],
     input_kind="wide")
case("activation_after_conv_hardswish", "conv_standard activation hardswish on wide inputs "
     "(pre-activation values beyond +-3)", 3, 16,
     [L_("c1", "conv_standard", out_channels=4, kernel_size=3, activation="hardswish"), FLAT],
     scale=4.0)
case("activation_after_conv_leaky_slope", "conv_standard activation leaky_relu with "
     "negative_slope 0.25 (layer key)", 3, 16,
     [L_("c1", "conv_standard", out_channels=4, kernel_size=3, activation="leaky_relu",
         negative_slope=0.25), FLAT], scale=4.0)

# --- built-in layers -------------------------------------------------------------------------
case("builtin_batch_norm", "batch_norm layer on the input, then flatten", 4, 10,
     [L_("bn", "batch_norm"), FLAT], scale=2.0)
case("builtin_max_pool_k3", "max_pool kernel 3 with L 17 (not divisible: floor, tail dropped)",
     3, 17, [L_("c1", "conv_standard", out_channels=4, kernel_size=3),
             L_("pool", "max_pool", kernel_size=3), FLAT])
case("builtin_avg_pool_k4", "avg_pool kernel 4 with L 18 (not divisible: floor, tail dropped)",
     3, 18, [L_("c1", "conv_standard", out_channels=4, kernel_size=3),
             L_("pool", "avg_pool", kernel_size=4), FLAT])
case("builtin_global_avg_pool", "conv then global_avg_pool [C, L] -> [C]", 3, 17,
     [L_("c1", "conv_standard", out_channels=5, kernel_size=3, activation="relu"),
      L_("gap", "global_avg_pool")])
case("builtin_global_max_pool", "conv then global_max_pool [C, L] -> [C]", 3, 17,
     [L_("c1", "conv_standard", out_channels=5, kernel_size=3),
      L_("gmp", "global_max_pool")])
case("builtin_flatten_only", "flatten alone (row-major [C, L] -> [C*L]); no tensors, no weights "
     "key", 3, 5, [FLAT])
case("builtin_linear", "flatten then linear with bias", 3, 6,
     [FLAT, L_("fc", "linear", out_features=5)])
case("builtin_linear_nobias", "global_avg_pool then linear bias = false then linear", 4, 9,
     [L_("gap", "global_avg_pool"), L_("fc", "linear", out_features=6, bias=False),
      L_("fc2", "linear", out_features=3)])
case("builtin_softmax", "global_max_pool, linear, softmax (probabilities)", 4, 12,
     [L_("c1", "conv_standard", out_channels=6, kernel_size=3, activation="relu"),
      L_("gmp", "global_max_pool"), L_("fc", "linear", out_features=4), L_("prob", "softmax")],
     output={"kind": "classify", "labels": ["a", "b", "c", "d"]}, scale=3.0)
case("builtin_add_routing", "two branches from the graph input (second uses input = \"input\"), "
     "add with activation relu", 3, 16,
     [L_("a", "conv_standard", out_channels=4, kernel_size=3, activation="tanh"),
      L_("b", "conv_standard", input="input", out_channels=4, kernel_size=5),
      L_("sum", "add", inputs=["a", "b"], activation="relu"), FLAT])
case("builtin_add_skip", "skip connection: conv c2 reads c1, add(c1, c3) with silu; "
     "global_avg_pool names its input explicitly (input = \"sum\")", 4, 12,
     [L_("c1", "conv_standard", out_channels=4, kernel_size=3, activation="relu"),
      L_("c2", "conv_dilated", out_channels=4, kernel_size=3, dilation=2, padding="causal"),
      L_("c3", "conv_standard", out_channels=4, kernel_size=1, padding="valid"),
      L_("sum", "add", inputs=["c1", "c3"], activation="silu"),
      L_("gap", "global_avg_pool", input="sum")])
case("builtin_input_reads_input", "a later layer reads the raw graph input (input = \"input\") "
     "after other layers; add joins both paths", 3, 10,
     [L_("c1", "conv_standard", out_channels=3, kernel_size=3, activation="relu"),
      L_("gap", "global_avg_pool"),
      L_("gmp", "global_max_pool", input="input"),
      L_("sum", "add", inputs=["gap", "gmp"]),
      L_("fc", "linear", out_features=2)])

# --- weight dtypes ---------------------------------------------------------------------------
for dt in ("float16", "bfloat16"):
    case(f"dtype_{dt}", f"every float tensor stored as {dt} (expected output uses the rounded "
         "weights); num_batches_tracked stays int64", 4, 16,
         [L_("c1", "conv_standard", out_channels=6, kernel_size=3, batch_norm=True,
             activation="relu"),
          L_("dw", "conv_depthwise", out_channels=6, kernel_size=3, mid_activation="relu"),
          L_("gap", "global_avg_pool"), L_("fc", "linear", out_features=3)], dtype=dt)

# --- a full six-layer model ------------------------------------------------------------------
case("full_six_layer", "six convolution layers (all five plugins) with BN, global_avg_pool, "
     "linear, softmax", 6, 32,
     [L_("c1", "conv_standard", out_channels=8, kernel_size=5, padding="same", batch_norm=True,
         activation="relu"),
      L_("c2", "conv_dilated", out_channels=8, kernel_size=3, dilation=2, padding="same",
         batch_norm=True, activation="relu"),
      L_("c3", "conv_depthwise", out_channels=12, kernel_size=5, padding="same", batch_norm=True,
         mid_activation="relu", activation="relu"),
      L_("c4", "conv_grouped", out_channels=12, kernel_size=3, groups=4, padding="same",
         batch_norm=True, activation="relu"),
      L_("c5", "residual", kernel_size=3, mid_channels=4, batch_norm=True),
      L_("c6", "conv_standard", out_channels=8, kernel_size=3, stride=2, padding=1,
         batch_norm=True, activation="relu"),
      L_("gap", "global_avg_pool"),
      L_("fc", "linear", out_features=4),
      L_("prob", "softmax")],
     output={"kind": "classify", "labels": ["walk", "stairs_up", "stairs_down", "stand"]})


# ---------------------------------------------------------------------------------------------


def make_input(case, gen):
    C, L = case["C"], case["L"]
    if case.get("input_kind") == "wide":
        x = torch.rand((N_WINDOWS, C, L), generator=gen) * 18.0 - 9.0
        special = torch.tensor([0.0, -0.0, 3.0, -3.0, 6.0, -6.0, 8.0, -8.0, 1.0, -1.0, 0.5, -0.5])
        flat = x.view(-1)
        flat[: special.numel()] = special
        return x
    return torch.randn((N_WINDOWS, C, L), generator=gen) * case.get("scale", 1.0)


def generate(case, out_dir: Path):
    seed = zlib.crc32(case["name"].encode())
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # default nn init of Conv1d/Linear

    # The model is built from the TOML text that is written, parsed back: what Reflex reads.
    probe = rt.build_model(tomllib.loads(config_text(case, True)))
    has_weights = len(probe.state_dict()) > 0
    text = config_text(case, has_weights)
    cfg = tomllib.loads(text)
    torch.manual_seed(seed)
    model = rt.build_model(cfg)
    rt.randomize_bn(model, gen)
    model.eval()

    d = out_dir / case["name"]
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "reflex.toml").write_text(text)

    if has_weights:
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(case.get("dtype"))
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        if dtype is not None:
            sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
            # the reference runs on exactly the rounded values Reflex will load
            model.load_state_dict({k: (v.float() if v.is_floating_point() else v)
                                   for k, v in sd.items()})
        save_file(sd, str(d / "weights.safetensors"))

    x = make_input(case, gen).contiguous()
    ref = rt.reference_output(model, x)
    with torch.no_grad():
        got32 = model(x)
    err = rt.check_close(got32, ref, case["name"])
    assert ref.shape == (N_WINDOWS, model.out_features)
    save_file({"input": x, "output": ref.contiguous()}, str(d / "io.safetensors"))
    return model, ref, err


README_HEAD = """\
# Reflex layer-graph fixtures (PyTorch reference)

Generated by `python tools/make_fixtures.py` (from the repository root; `pip install -r
tools/requirements.txt` first) with torch {torch}, safetensors {st}. Do not edit by hand:
change `tools/make_fixtures.py` and regenerate (reruns are byte-identical with the pinned
versions). `python tools/check_fixtures.py` re-checks every case against PyTorch and an
independent numpy implementation of docs/layers.md. CI never runs Python.

Each `<case>/` directory holds:

- `reflex.toml` - a complete Reflex config (first line: a comment saying what the case
  covers): `[source] channels` = C, `[window] length` = L, `[model] weights` and
  `[[model.layers]]`, `[output]`. `weights` is absent only when the model has no tensors
  (`builtin_flatten_only`).
- `weights.safetensors` - the PyTorch `state_dict()` of a module tree named like the config
  (docs/layers.md names: `c1.weight`, `c1.bn.running_var`, `blk.reduce.bn.weight`,
  `dw.depthwise.weight`, `fc.bias`, ...). BatchNorm layers carry random non-trivial
  weight/bias/running_mean/running_var (var in 0.5..2) and the int64 scalar
  `*.num_batches_tracked` buffers PyTorch exports, which Reflex must ignore. All float
  tensors are f32, except in `dtype_float16` / `dtype_bfloat16` where every float tensor is
  f16 / bf16 (num_batches_tracked stays int64).
- `io.safetensors` - `input` f32 `[N, C, L]` (N = 3 windows, random normal, or uniform in
  [-9, 9] with the special points 0, -0, +-0.5, +-1, +-3, +-6, +-8 at the start of window 0,
  for `activation_*`) and
  `output` f32 `[N, F]`: the eval-mode model output computed in float64 from exactly the
  stored weights (f16/bf16 ones widened) and the f32 input, then rounded to f32. A Rust
  result passes when, per window, `max|got - output| <= 1e-5 + 1e-4 * max|output|`.

Window i of the batch is an independent `[C, L]` window: run the graph once per window.

## Cases

| case | covers |
|---|---|
"""


def write_readme(out_dir: Path):
    import safetensors

    text = README_HEAD.format(torch=torch.__version__, st=safetensors.__version__)
    for c in sorted(CASES, key=lambda c: c["name"]):
        text += f"| `{c['name']}` | {c['comment'].replace('|', '/')} |\n"
    (out_dir / "README.md").write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--only", nargs="*", help="generate only these case names")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    names = {c["name"] for c in CASES}
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.only:
        # remove stale case directories (never touches README.md or other files)
        for p in args.out.iterdir():
            if p.is_dir() and p.name not in names and (p / "reflex.toml").exists():
                shutil.rmtree(p)
    for c in CASES:
        if args.only and c["name"] not in args.only:
            continue
        model, ref, err = generate(c, args.out)
        print(f"{c['name']:40s} out {tuple(ref.shape)}  max|out| {ref.abs().max():9.4f}  "
              f"f32-vs-f64 {err:.2e}")
    write_readme(args.out)
    print(f"{len(CASES)} cases, torch {torch.__version__}")


if __name__ == "__main__":
    main()

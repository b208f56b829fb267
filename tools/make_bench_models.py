#!/usr/bin/env python3
"""Generate the five six-layer benchmark models under examples/bench/<variant>/.

    python tools/make_bench_models.py

Each variant directory gets a commented reflex.toml, weights.safetensors (random seeded
weights; BatchNorm statistics calibrated on random-normal windows so activations keep a
realistic scale) and io.safetensors (`input` [2, 6, 128], `output` [2, 4], same format as
the test fixtures). bench_torch.py times the same models in PyTorch.
"""

from __future__ import annotations

import shutil
import tomllib
import zlib
from pathlib import Path

import torch
from safetensors.torch import save_file

from reflex import torch_ref as rt  # pip install -e ./python

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "examples" / "bench"
VARIANTS = ("standard", "dilated", "depthwise", "grouped", "residual")
N_WINDOWS = 2
LABELS = ["walk", "stairs_up", "stairs_down", "stand"]

HEADER = {
    "standard": """\
# Benchmark model "standard": six plain 1-D convolutions (plugin conv_standard).
# Input: one window of 6 IMU channels (ax ay az wx wy wz) x 128 samples.
# conv1..conv6 (64 channels, kernel 5, "same" padding, BatchNorm, ReLU) -> global average
# pool -> linear 64 -> 4 class scores. Weights are random (seeded): this model is for timing
# and for checking Reflex against PyTorch (io.safetensors), not for real gait recognition.""",
    "dilated": """\
# Benchmark model "dilated": six dilated 1-D convolutions (plugin conv_dilated), a TCN-style
# stack with dilations 1, 2, 4, 8, 1, 2 so the receptive field grows quickly
# (1 + 4*(1+2+4+8+1+2) = 73 samples) at the same cost per layer as "standard".
# Input: 6 IMU channels x 128 samples; 64 channels, kernel 5, "same" padding, BatchNorm, ReLU;
# global average pool -> linear 64 -> 4. Random seeded weights (for timing and checking).""",
    "depthwise": """\
# Benchmark model "depthwise": six depthwise-separable convolutions (plugin conv_depthwise):
# each is a per-channel kernel-5 convolution (groups = in), a ReLU (mid_activation), then a
# 1x1 pointwise convolution to 64 channels, BatchNorm and ReLU. Far fewer MACs than "standard".
# Input: 6 IMU channels x 128 samples; global average pool -> linear 64 -> 4.
# Random seeded weights (for timing and checking).""",
    "grouped": """\
# Benchmark model "grouped": six grouped convolutions with channel shuffle (plugin
# conv_grouped, ShuffleNet-style). conv1 uses 2 groups (6 -> 64), conv2..conv6 use 8 groups;
# the shuffle after each layer mixes information between groups.
# Input: 6 IMU channels x 128 samples; 64 channels, kernel 5, "same", BatchNorm, ReLU;
# global average pool -> linear 64 -> 4. Random seeded weights (for timing and checking).""",
    "residual": """\
# Benchmark model "residual": six ResNet bottleneck blocks (plugin residual). Each block is
# 1x1 reduce (-> 16 channels), ReLU, kernel-5 conv (16 -> 16), ReLU, 1x1 expand (-> 64),
# plus the shortcut, then ReLU. res1 goes 6 -> 64 so it has a 1x1 projection shortcut; the
# other five keep 64 channels and add their input unchanged (identity shortcut).
# Input: 6 IMU channels x 128 samples; global average pool -> linear 64 -> 4.
# Random seeded weights (for timing and checking).""",
}

COMMON_TOP = """
[source]
# Only the channel count matters for a benchmark; add kind/path/format to run it on data
# (see config/reflex.toml). `reflexd bench` times the graph on one window.
channels = 6               # values per sample: the window is [6, 128]

[window]
length = 128               # samples per window (L)
hop = 8                    # a new window every 8 samples

[model]
weights = "weights.safetensors"   # relative to this file; PyTorch state_dict names (conv1.weight, ...)
"""

COMMON_BOTTOM = """
[[model.layers]]
name = "pool"
plugin = "global_avg_pool" # [64, 128] -> [64]: mean over time

[[model.layers]]
name = "fc"
plugin = "linear"          # tensors fc.weight [4, 64], fc.bias [4]
out_features = 4

[output]
kind = "classify"          # label = argmax of the 4 values
labels = {rt_labels}
""".replace("{rt_labels}", "[" + ", ".join(f'"{x}"' for x in LABELS) + "]")


def conv_layers(variant: str) -> str:
    out = []
    if variant == "standard":
        for i in range(1, 7):
            cin = 6 if i == 1 else 64
            if i == 1:
                out.append(f"""
[[model.layers]]
name = "conv1"             # tensor names start with the layer name: conv1.weight, conv1.bias, conv1.bn.*
plugin = "conv_standard"   # Conv1d(in, out, k); loaded from the conv_standard plugin library
out_channels = 64          # conv1.weight is [64, 6, 5]: 6 input channels here, 64 afterwards
kernel_size = 5            # taps per filter
padding = "same"           # 2 zeros on each side: the output keeps 128 samples
activation = "relu"        # applied after the batch norm
batch_norm = true          # eval-mode BatchNorm1d (conv1.bn.weight|bias|running_mean|running_var)
""")
            else:
                out.append(f"""
[[model.layers]]
name = "conv{i}"           # {cin} -> 64 channels
plugin = "conv_standard"
out_channels = 64
kernel_size = 5
padding = "same"
activation = "relu"
batch_norm = true
""")
    elif variant == "dilated":
        for i, d in enumerate((1, 2, 4, 8, 1, 2), start=1):
            span = d * 4 + 1
            first = i == 1
            out.append(f"""
[[model.layers]]
name = "conv{i}"{'             # tensors conv1.weight [64, 6, 5], conv1.bias, conv1.bn.*' if first else ''}
plugin = "conv_dilated"    # Conv1d(in, out, k, dilation=d)
out_channels = 64
kernel_size = 5
dilation = {d}               # taps {d} sample(s) apart: this filter spans {span} samples
padding = "same"           # {2 * d} zeros each side (dilation*(k-1) in total), length stays 128
activation = "relu"
batch_norm = true          # BN after the convolution, before the ReLU
""")
    elif variant == "depthwise":
        for i in range(1, 7):
            cin = 6 if i == 1 else 64
            if i == 1:
                out.append("""
[[model.layers]]
name = "conv1"
plugin = "conv_depthwise"  # depthwise Conv1d(6, 6, 5, groups=6) then pointwise Conv1d(6, 64, 1)
out_channels = 64          # channels after the pointwise convolution
kernel_size = 5            # the depthwise kernel (conv1.depthwise.weight [6, 1, 5])
padding = "same"           # applies to the depthwise convolution; length stays 128
mid_activation = "relu"    # between depthwise and pointwise
activation = "relu"        # after the pointwise convolution and its batch norm
batch_norm = true          # conv1.bn.* has 64 channels and follows the pointwise convolution
""")
            else:
                out.append(f"""
[[model.layers]]
name = "conv{i}"           # depthwise [{cin}, 1, 5], pointwise [64, {cin}, 1]
plugin = "conv_depthwise"
out_channels = 64
kernel_size = 5
padding = "same"
mid_activation = "relu"
activation = "relu"
batch_norm = true
""")
    elif variant == "grouped":
        for i in range(1, 7):
            g = 2 if i == 1 else 8
            cin = 6 if i == 1 else 64
            if i == 1:
                out.append("""
[[model.layers]]
name = "conv1"
plugin = "conv_grouped"    # Conv1d(6, 64, 5, groups=2), then channel shuffle
out_channels = 64
kernel_size = 5
groups = 2                 # 2 groups of 3 input -> 32 output channels; conv1.weight is [64, 3, 5]
shuffle = true             # interleave the groups' outputs after the activation (the default)
padding = "same"
activation = "relu"
batch_norm = true          # BN indexed by convolution channel, i.e. before the shuffle
""")
            else:
                out.append(f"""
[[model.layers]]
name = "conv{i}"
plugin = "conv_grouped"
out_channels = 64
kernel_size = 5
groups = 8                 # 8 groups of 8 -> 8 channels; conv{i}.weight is [64, 8, 5]
shuffle = true
padding = "same"
activation = "relu"
batch_norm = true
""")
    elif variant == "residual":
        for i in range(1, 7):
            if i == 1:
                out.append("""
[[model.layers]]
name = "res1"
plugin = "residual"        # bottleneck: reduce (1x1) -> conv (k) -> expand (1x1) + shortcut
kernel_size = 5            # kernel of the middle convolution (res1.conv.weight [16, 16, 5])
mid_channels = 16          # width of the bottleneck (res1.reduce.weight [16, 6, 1])
out_channels = 64          # != 6 input channels, so a 1x1 projection shortcut res1.shortcut.* exists
padding = "same"           # of the middle convolution ("same" or "causal")
activation = "relu"        # after reduce, after conv, and after the sum
batch_norm = true          # res1.reduce.bn.*, res1.conv.bn.*, res1.expand.bn.*, res1.shortcut.bn.*
""")
            else:
                out.append(f"""
[[model.layers]]
name = "res{i}"            # 64 -> 64: identity shortcut (out_channels defaults to the input's 64)
plugin = "residual"
kernel_size = 5
mid_channels = 16
padding = "same"
activation = "relu"
batch_norm = true          # three BNs: reduce, conv, expand
""")
    return "".join(out)


def config_text(variant: str) -> str:
    return HEADER[variant] + "\n" + COMMON_TOP + conv_layers(variant) + COMMON_BOTTOM


def generate(variant: str, out_dir: Path):
    text = config_text(variant)
    cfg = tomllib.loads(text)
    seed = zlib.crc32(("bench-" + variant).encode())
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = rt.build_model(cfg)
    rt.calibrate_bn(model, gen)
    d = out_dir / variant
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "reflex.toml").write_text(text)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(d / "weights.safetensors"))
    x = torch.randn((N_WINDOWS, 6, 128), generator=gen)
    ref = rt.reference_output(model, x)
    with torch.no_grad():
        err = rt.check_close(model(x), ref, variant)
    save_file({"input": x.contiguous(), "output": ref.contiguous()}, str(d / "io.safetensors"))
    print(f"{variant:10s} params {rt.param_count(model):7d}  MACs {rt.mac_count(model):9d}  "
          f"output {ref[0].tolist()}  f32-vs-f64 {err:.1e}")


def main():
    torch.set_num_threads(1)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for v in VARIANTS:
        generate(v, OUT_DIR)
    print(f"torch {torch.__version__}")


if __name__ == "__main__":
    main()

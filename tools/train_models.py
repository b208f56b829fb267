#!/usr/bin/env python3
"""Train the five six-layer example models on real IMU recordings -> examples/models/<variant>/.

    python tools/train_models.py            # CPU, 2 threads, a few minutes
    python tools/train_models.py --epochs 2 --only standard   # a quick try

Task: locomotion-mode classification walk / stairs_up / stairs_down from one foot-mounted IMU
(204.8 Hz, acc m/s^2 + gyr deg/s) using the bundled gaitmap recordings
examples/data/gaitmap/{healthy_2x20m,stair_up,stair_down}_{left,right}.csv (one class per file).

Split by time, per recording (see `split_rows`): the first 70 % of the samples are train; the
next WINDOW (128) samples are a gap that no window uses; the rest (the last 30 % minus the gap)
is test. No window straddles train and test, and no test sample is ever seen in training
(normalisation statistics included). examples/models/SPLIT.md and split.json record the exact
indices; evaluate_models.py reads split.json.

Per variant the directory gets:
  reflex.toml          a complete, commented Reflex config (replays a recording, prints JSON)
  weights.safetensors  the eval-mode state_dict (names as in SPEC section 3, via reflex.torch_ref)
  io.safetensors       `input` [6, 6, 128] = real normalised test windows (one per recording),
                       `output` [6, 3] = eval-mode outputs (float64 forward of the f32
                       weights, cast to f32, as in examples/bench/*/io.safetensors)

Normalisation is NOT part of the model: Reflex applies x' = (x - mean) / std from [window]
before the first layer, so training normalises its inputs with exactly the (rounded) values
written into the configs.

Everything is seeded (torch, numpy, per-variant seeds from the name) and runs with
torch.use_deterministic_algorithms(True) on 2 threads: reruns reproduce the same weights with
the pinned versions of tools/requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
import tomllib
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from reflex import torch_ref as rt  # pip install -e ./python

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "examples" / "data" / "gaitmap"
OUT_DIR = ROOT / "examples" / "models"

VARIANTS = ("standard", "dilated", "depthwise", "grouped", "residual")
LABELS = ["walk", "stairs_up", "stairs_down"]
# recording stem -> class index (each file holds a single activity)
RECORDINGS = {
    "healthy_2x20m_left": 0,
    "healthy_2x20m_right": 0,
    "stair_up_left": 1,
    "stair_up_right": 1,
    "stair_down_left": 2,
    "stair_down_right": 2,
}
RATE_HZ = 204.8
CHANNELS = 6
WINDOW = 128            # samples per window
TRAIN_HOP = 4           # hop between training windows
EVAL_HOP = 8            # hop of the configs (and of the test windows)
TRAIN_FRACTION = 0.7
GAP = WINDOW            # samples between the train and the test part, used by nobody
WIDTH = 32              # channels of every convolution layer
KERNEL = 5

# training hyper-parameters (fixed; no model selection on the test part)
EPOCHS = 15
BATCH = 64
LR = 3e-3
WEIGHT_DECAY = 1e-4
SEED = 20240611


# ---------------------------------------------------------------------------------------------
# data


def read_recording(stem: str):
    """-> (header line, list of the data lines as text, float64 array [n, 1 + CHANNELS])."""
    path = DATA_DIR / f"{stem}.csv"
    lines = path.read_text().splitlines()
    header, rows = lines[0], [ln for ln in lines[1:] if ln.strip()]
    arr = np.array([[float(v) for v in ln.split(",")] for ln in rows], dtype=np.float64)
    assert arr.shape[1] == 1 + CHANNELS, (stem, arr.shape)
    return header, rows, arr


def split_rows(n: int):
    """Time split of a recording of n samples (0-based data-row indices, header excluded):
    train = [0, s), gap = [s, s + GAP), test = [s + GAP, n), with s = floor(0.7 n)."""
    s = int(math.floor(TRAIN_FRACTION * n))
    return (0, s), (s, s + GAP), (s + GAP, n)


def windows(arr: np.ndarray, start: int, stop: int, hop: int) -> np.ndarray:
    """All windows [k, CHANNELS, WINDOW] fully inside samples [start, stop), starting at start,
    start + hop, ... (the windows Reflex cuts from a csv holding exactly these samples)."""
    x = arr[start:stop, 1:]
    count = (len(x) - WINDOW) // hop + 1
    if count <= 0:
        return np.zeros((0, CHANNELS, WINDOW))
    idx = np.arange(count)[:, None] * hop + np.arange(WINDOW)[None, :]
    return x[idx].transpose(0, 2, 1).copy()


def round_sig(v: float, digits: int = 6) -> float:
    return float(f"{v:.{digits}g}")


def load_data():
    recs = {}
    for stem, cls in RECORDINGS.items():
        header, rows, arr = read_recording(stem)
        (tr0, tr1), (g0, g1), (te0, te1) = split_rows(len(arr))
        recs[stem] = dict(cls=cls, header=header, rows=rows, arr=arr, train=(tr0, tr1),
                          gap=(g0, g1), test=(te0, te1))
    # per-channel normalisation from the training samples only (all recordings together);
    # rounded to 6 significant digits: these exact numbers go into [window] mean/std
    train_samples = np.concatenate([r["arr"][r["train"][0]:r["train"][1], 1:]
                                    for r in recs.values()])
    mean = [round_sig(v) for v in train_samples.mean(axis=0)]
    std = [round_sig(v) for v in train_samples.std(axis=0)]
    return recs, mean, std


# ---------------------------------------------------------------------------------------------
# configs


HEADERS = {
    "standard": """\
# Trained example "standard": six plain 1-D convolutions (plugin conv_standard), 32 channels,
# kernel 5, "same" padding, BatchNorm, ReLU -> global average pool -> linear 32 -> 3.""",
    "dilated": """\
# Trained example "dilated": six dilated 1-D convolutions (plugin conv_dilated), dilations
# 1, 2, 4, 8, 1, 2 (receptive field 1 + 4*(1+2+4+8+1+2) = 73 samples = 0.36 s), 32 channels,
# kernel 5, "same", BatchNorm, ReLU -> global average pool -> linear 32 -> 3.""",
    "depthwise": """\
# Trained example "depthwise": six depthwise-separable convolutions (plugin conv_depthwise):
# per-channel kernel-5 convolution, ReLU (mid_activation), 1x1 pointwise to 32 channels,
# BatchNorm, ReLU -> global average pool -> linear 32 -> 3.""",
    "grouped": """\
# Trained example "grouped": six grouped convolutions with channel shuffle (plugin
# conv_grouped, ShuffleNet-style): conv1 2 groups (6 -> 32), conv2..conv6 4 groups (32 -> 32),
# kernel 5, "same", BatchNorm, ReLU, shuffle -> global average pool -> linear 32 -> 3.""",
    "residual": """\
# Trained example "residual": six ResNet bottleneck blocks (plugin residual): 1x1 reduce to 8
# channels, ReLU, kernel-5 conv 8 -> 8, ReLU, 1x1 expand to 32, + shortcut, ReLU; res1 has a
# 1x1 projection shortcut (6 -> 32) -> global average pool -> linear 32 -> 3.""",
}

COMMON_HEADER = """\
#
# Locomotion mode (walk / stairs_up / stairs_down) from one foot-mounted IMU at 204.8 Hz,
# trained by tools/train_models.py on the bundled gaitmap recordings (examples/data/README.md):
# the first 70 % of every recording, test = the last 30 % after a 128-sample gap
# (examples/models/SPLIT.md). Compare the five variants with tools/evaluate_models.py.
# These recordings are tiny (one subject per activity): the model is an example, not a
# validated gait classifier.
#
#   target/release/reflexd run --config examples/models/{variant}/reflex.toml
#   target/release/reflexd replay --config examples/models/{variant}/reflex.toml --speed max \\
#       examples/data/gaitmap/stair_down_left.csv
"""


def fmt_list(values) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def top_text(variant: str, mean, std) -> str:
    return f"""
[source]
kind = "replay"            # replays a recording in place of a serial device
path = "../../data/gaitmap/stair_up_left.csv"   # relative to this file (examples/data/gaitmap/)
format = "csv"             # header line t,ch0,...,ch5 (skipped by the decoder)
channels = 6               # acc_x acc_y acc_z (m/s^2), gyr_x gyr_y gyr_z (deg/s), sensor frame
time_column = true         # the first field is the time in seconds: replay paces by it
speed = "realtime"         # "max" | "realtime" | a factor such as 4.0

[window]
length = 128               # 128 samples = 0.625 s at 204.8 Hz
hop = 8                    # a prediction every 8 samples (25.6 per second)
queue = 32                 # windows waiting for inference (live only; the oldest is dropped)
# x' = (x - mean) / std per channel before the model; mean and std of the TRAINING samples
# (first 70 % of the six recordings), exactly the values the model was trained with.
mean = {fmt_list(mean)}
std = {fmt_list(std)}

[model]
weights = "weights.safetensors"   # relative to this file; trained PyTorch state_dict (eval mode)
"""


BOTTOM = f"""
[[model.layers]]
name = "pool"
plugin = "global_avg_pool" # [{WIDTH}, 128] -> [{WIDTH}]: mean over time

[[model.layers]]
name = "fc"
plugin = "linear"          # fc.weight [3, {WIDTH}], fc.bias [3]: one score per class
out_features = 3

[output]
kind = "classify"          # label = argmax of the 3 scores (logits; no softmax)
labels = ["walk", "stairs_up", "stairs_down"]

[[sinks]]
kind = "stdout"            # one JSON prediction record per window
format = "json"
"""


def layer_text(variant: str) -> str:
    out = []
    for i in range(1, 7):
        cin = CHANNELS if i == 1 else WIDTH
        if variant == "standard":
            note = (f"  # conv1.weight [{WIDTH}, 6, 5], conv1.bias, conv1.bn.*" if i == 1
                    else f"  # {cin} -> {WIDTH} channels")
            out.append(f"""
[[model.layers]]
name = "conv{i}"{note}
plugin = "conv_standard"   # Conv1d(in, out, k)
out_channels = {WIDTH}
kernel_size = {KERNEL}
padding = "same"           # 2 zeros each side: the length stays 128
activation = "relu"        # after the batch norm
batch_norm = true          # eval-mode BatchNorm1d (conv{i}.bn.weight|bias|running_mean|running_var)
""")
        elif variant == "dilated":
            d = (1, 2, 4, 8, 1, 2)[i - 1]
            out.append(f"""
[[model.layers]]
name = "conv{i}"
plugin = "conv_dilated"    # Conv1d(in, out, k, dilation=d)
out_channels = {WIDTH}
kernel_size = {KERNEL}
dilation = {d}               # taps {d} sample(s) apart: the filter spans {d * (KERNEL - 1) + 1} samples
padding = "same"           # {2 * d} zeros each side, the length stays 128
activation = "relu"
batch_norm = true
""")
        elif variant == "depthwise":
            out.append(f"""
[[model.layers]]
name = "conv{i}"           # depthwise [{cin}, 1, 5], pointwise [{WIDTH}, {cin}, 1]
plugin = "conv_depthwise"  # Conv1d({cin}, {cin}, 5, groups={cin}) then Conv1d({cin}, {WIDTH}, 1)
out_channels = {WIDTH}
kernel_size = {KERNEL}
padding = "same"           # of the depthwise convolution
mid_activation = "relu"    # between depthwise and pointwise
activation = "relu"        # after the pointwise convolution and its batch norm
batch_norm = true          # conv{i}.bn.* ({WIDTH} channels) follows the pointwise convolution
""")
        elif variant == "grouped":
            g = 2 if i == 1 else 4
            out.append(f"""
[[model.layers]]
name = "conv{i}"
plugin = "conv_grouped"    # Conv1d({cin}, {WIDTH}, 5, groups={g}), then channel shuffle
out_channels = {WIDTH}
kernel_size = {KERNEL}
groups = {g}                 # {g} groups of {cin // g} inputs -> {WIDTH // g} outputs; conv{i}.weight [{WIDTH}, {cin // g}, 5]
shuffle = true             # interleave the groups' outputs after the activation
padding = "same"
activation = "relu"
batch_norm = true          # indexed by convolution channel (before the shuffle)
""")
        elif variant == "residual":
            if i == 1:
                out.append(f"""
[[model.layers]]
name = "res1"
plugin = "residual"        # bottleneck: reduce (1x1) -> conv (k) -> expand (1x1) + shortcut
kernel_size = {KERNEL}            # of the middle convolution (res1.conv.weight [8, 8, 5])
mid_channels = 8           # bottleneck width (res1.reduce.weight [8, 6, 1])
out_channels = {WIDTH}          # != 6 inputs: 1x1 projection shortcut res1.shortcut.* [{WIDTH}, 6, 1]
padding = "same"           # of the middle convolution
activation = "relu"        # after reduce, after conv, and after the sum
batch_norm = true          # res1.reduce.bn.*, res1.conv.bn.*, res1.expand.bn.*, res1.shortcut.bn.*
""")
            else:
                out.append(f"""
[[model.layers]]
name = "res{i}"            # {WIDTH} -> {WIDTH}: identity shortcut (out_channels defaults to the input's)
plugin = "residual"
kernel_size = {KERNEL}
mid_channels = 8
padding = "same"
activation = "relu"
batch_norm = true          # three BNs: reduce, conv, expand
""")
    return "".join(out)


def config_text(variant: str, mean, std) -> str:
    return (HEADERS[variant] + "\n" + COMMON_HEADER.replace("{variant}", variant)
            + top_text(variant, mean, std) + layer_text(variant) + BOTTOM)


# ---------------------------------------------------------------------------------------------
# training


def random_rotations(n: int, max_deg: float, gen: torch.Generator) -> torch.Tensor:
    """n rotation matrices about random axes by angles uniform in [-max_deg, max_deg]."""
    axis = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    axis = axis / axis.norm(dim=1, keepdim=True)
    ang = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * math.radians(max_deg)
    k = torch.zeros(n, 3, 3, dtype=torch.float64)
    k[:, 0, 1], k[:, 0, 2] = -axis[:, 2], axis[:, 1]
    k[:, 1, 0], k[:, 1, 2] = axis[:, 2], -axis[:, 0]
    k[:, 2, 0], k[:, 2, 1] = -axis[:, 1], axis[:, 0]
    s, c = torch.sin(ang)[:, None, None], torch.cos(ang)[:, None, None]
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    return eye + s * k + (1 - c) * (k @ k)


def augment(raw: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Light augmentation of raw (unnormalised, float64) windows [n, 6, L]: the same small
    random rotation of the accelerometer and gyroscope axes (sensor placement varies by a few
    degrees), and a random gain of 0.9..1.1 (walking speed / intensity)."""
    n = raw.shape[0]
    r = random_rotations(n, 10.0, gen)
    acc = r @ raw[:, 0:3]
    gyr = r @ raw[:, 3:6]
    gain = 0.9 + 0.2 * torch.rand(n, 1, 1, generator=gen, dtype=torch.float64)
    return torch.cat([acc, gyr], dim=1) * gain


def normalise(raw, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, dtype=torch.float64)[None, :, None]
    s = torch.tensor(std, dtype=torch.float64)[None, :, None]
    return ((raw - m) / s).float()


def accuracy(model, x: torch.Tensor, y: torch.Tensor):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 512]).argmax(dim=1) for i in range(0, len(x), 512)])
    per_class = [float((pred[y == c] == c).float().mean()) for c in range(len(LABELS))]
    return float((pred == y).float().mean()), per_class, pred


def train_variant(variant, text, xtr_raw, ytr, xte, yte, mean, std, epochs):
    cfg = tomllib.loads(text)
    seed = zlib.crc32(f"train-{variant}-{SEED}".encode())
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = rt.build_model(cfg)          # the module tree named like the config
    model.train()
    counts = torch.bincount(ytr, minlength=len(LABELS)).double()
    class_w = (counts.sum() / (len(LABELS) * counts)).float()   # balanced: walk is longer
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(xtr_raw) / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.2)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr_raw), generator=gen)
        total, seen = 0.0, 0
        for b in range(steps_per_epoch):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            x = normalise(augment(xtr_raw[idx], gen), mean, std)
            loss = F.cross_entropy(model(x), ytr[idx], weight=class_w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        print(f"  {variant:10s} epoch {epoch + 1:2d}/{epochs}  loss {total / seen:.4f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    return model, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# export


def write_split(recs, mean, std, ntrain, ntest):
    split = {
        "rate_hz": RATE_HZ, "window": WINDOW, "train_hop": TRAIN_HOP, "eval_hop": EVAL_HOP,
        "train_fraction": TRAIN_FRACTION, "gap": GAP, "labels": LABELS,
        "mean": mean, "std": std,
        "recordings": {},
    }
    for stem, r in recs.items():
        t = r["arr"][:, 0]
        entry = {"path": f"examples/data/gaitmap/{stem}.csv", "class": LABELS[r["cls"]],
                 "samples": len(r["arr"])}
        for part in ("train", "gap", "test"):
            a, b = r[part]
            entry[part] = {"first": a, "last": b - 1, "t_first": float(t[a]),
                           "t_last": float(t[b - 1]), "samples": b - a}
        entry["train"]["windows"] = ntrain[stem]
        entry["test"]["windows"] = ntest[stem]
        split["recordings"][stem] = entry
    (OUT_DIR / "split.json").write_text(json.dumps(split, indent=2) + "\n")

    lines = [
        "# Train/test split of the trained example models",
        "",
        "Generated by `tools/train_models.py`; `tools/evaluate_models.py` reads the same split",
        "from `split.json`. Data: the bundled gaitmap recordings (`examples/data/gaitmap/`,",
        "204.8 Hz, one foot-mounted IMU, one subject per activity, one class per file).",
        "",
        "**Split by time, per recording, never overlapping.** Sample indices count the data rows",
        "of each csv from 0 (the header line `t,ch0,...,ch5` is not counted; data row i is line",
        "i + 2 of the file). With n samples and s = floor(0.7 n): train = samples [0, s), a gap",
        f"of {GAP} samples (one window length) [s, s + {GAP}) used by nobody, test = [s + {GAP}, n)",
        "(the last 30 % of the recording minus the gap). Every window lies entirely inside one",
        "part, so no window straddles train and test. The normalisation mean/std is computed on",
        "the train samples only (all six recordings together).",
        "",
        f"Windows are {WINDOW} samples ({WINDOW / RATE_HZ:.3f} s): train hop {TRAIN_HOP}, test hop "
        f"{EVAL_HOP} (test window w of a recording covers test samples [w*{EVAL_HOP}, "
        f"w*{EVAL_HOP} + {WINDOW}), exactly the windows `reflexd replay` cuts from a csv holding",
        "only the test samples).",
        "",
        "| recording | class | samples | train: first..last sample (time s) | train windows | "
        "gap (samples) | test: first..last sample (time s) | test windows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stem, e in split["recordings"].items():
        tr, g, te = e["train"], e["gap"], e["test"]
        lines.append(
            f"| `{stem}.csv` | {e['class']} | {e['samples']} | {tr['first']}..{tr['last']} "
            f"({tr['t_first']:.4f}..{tr['t_last']:.4f}) | {tr['windows']} | "
            f"{g['first']}..{g['last']} | {te['first']}..{te['last']} "
            f"({te['t_first']:.4f}..{te['t_last']:.4f}) | {te['windows']} |")
    lines += ["", "Class counts (windows; train hop 4, test hop 8):", "",
              "| class | train samples | train windows | test samples | test windows |",
              "|---|---|---|---|---|"]
    for c, lab in enumerate(LABELS):
        stems = [s for s, r in recs.items() if r["cls"] == c]
        trs = sum(split["recordings"][s]["train"]["samples"] for s in stems)
        tes = sum(split["recordings"][s]["test"]["samples"] for s in stems)
        lines.append(f"| {lab} | {trs} | {sum(ntrain[s] for s in stems)} | {tes} | "
                     f"{sum(ntest[s] for s in stems)} |")
    lines.append(f"| total | {sum(e['train']['samples'] for e in split['recordings'].values())} | "
                 f"{sum(ntrain.values())} | "
                 f"{sum(e['test']['samples'] for e in split['recordings'].values())} | "
                 f"{sum(ntest.values())} |")
    lines += ["", "Training balances the classes by weighting the loss with "
              "total / (3 * class count) (the walk recordings are the longest).", "",
              "Normalisation written into every `reflex.toml` `[window]` (acc_x acc_y acc_z "
              "gyr_x gyr_y gyr_z):", "",
              f"- mean = {mean}", f"- std = {std}", "",
              "Caveats: one subject per activity, under a minute of data each; the walk",
              "recordings come from a different gaitmap example (and sensor mounting) than the",
              "stair recordings, so the gravity direction alone separates walk from stairs; the",
              "recordings start and end with the subject standing, and those windows carry the",
              "file's label. Accuracies on this data say little about other people or sensors.", ""]
    (OUT_DIR / "SPLIT.md").write_text("\n".join(lines))


def export(variant, text, model, io_x):
    d = OUT_DIR / variant
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "reflex.toml").write_text(text)
    model.eval()
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    for k, v in sd.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32, (k, v.dtype)
    save_file(sd, str(d / "weights.safetensors"))
    ref = rt.reference_output(model, io_x)
    with torch.no_grad():
        err = rt.check_close(model(io_x), ref, variant)
    save_file({"input": io_x.contiguous(), "output": ref.contiguous()}, str(d / "io.safetensors"))
    # round trip: the exported files rebuild the same model
    again = rt.load_model(d / "reflex.toml")
    with torch.no_grad():
        rt.check_close(again(io_x), ref, variant + " (reloaded)")
    return err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--only", nargs="+", choices=VARIANTS, help="train only these variants")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    t_start = time.perf_counter()

    recs, mean, std = load_data()
    xtr, ytr, xte, yte, ntrain, ntest, io_idx = [], [], [], [], {}, {}, []
    for stem, r in recs.items():
        w_tr = windows(r["arr"], *r["train"], TRAIN_HOP)
        w_te = windows(r["arr"], *r["test"], EVAL_HOP)
        ntrain[stem], ntest[stem] = len(w_tr), len(w_te)
        io_idx.append(sum(len(w) for w in xte) + len(w_te) // 2)   # a mid-test window per file
        xtr.append(w_tr)
        xte.append(w_te)
        ytr += [r["cls"]] * len(w_tr)
        yte += [r["cls"]] * len(w_te)
    xtr_raw = torch.from_numpy(np.concatenate(xtr))               # float64, unnormalised
    ytr = torch.tensor(ytr)
    xte = normalise(torch.from_numpy(np.concatenate(xte)), mean, std)
    yte = torch.tensor(yte)
    io_x = xte[io_idx].clone()

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_split(recs, mean, std, ntrain, ntest)
    print(f"train windows {len(xtr_raw)} {torch.bincount(ytr).tolist()}, "
          f"test windows {len(xte)} {torch.bincount(yte).tolist()}")
    print(f"mean {mean}\nstd  {std}")

    results = {}
    for variant in args.only or VARIANTS:
        text = config_text(variant, mean, std)
        model, secs = train_variant(variant, text, xtr_raw, ytr, xte, yte, mean, std, args.epochs)
        acc, per_class, _ = accuracy(model, xte, yte)
        err = export(variant, text, model, io_x)
        results[variant] = (acc, per_class, secs)
        print(f"{variant:10s} params {rt.param_count(model):6d}  MACs {rt.mac_count(model):8d}  "
              f"test acc {acc:.4f}  per class "
              + " ".join(f"{lab} {a:.3f}" for lab, a in zip(LABELS, per_class))
              + f"  train {secs:.0f} s  f32-vs-f64 {err:.1e}", flush=True)

    print("\nPyTorch test accuracy (eval mode, test windows hop 8):")
    for variant, (acc, per_class, secs) in results.items():
        print(f"  {variant:10s} {acc:.4f}  ("
              + ", ".join(f"{lab} {a:.3f}" for lab, a in zip(LABELS, per_class)) + ")")
    print(f"total time {time.perf_counter() - t_start:.0f} s, torch {torch.__version__}")


if __name__ == "__main__":
    main()

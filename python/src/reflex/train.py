"""The five convolution variants under one protocol, and their training loop (docs/compare.md).

Every variant has six convolution layers of the same width and kernel, each followed by
BatchNorm and ReLU, then a global average pool and one linear layer; only the convolution
differs:

| variant | six layers (C = input channels, W = width, k = kernel) |
|---|---|
| `standard`  | `nn.Conv1d(·, W, k, padding="same")` → plugin `conv_standard` |
| `dilated`   | the same with dilations 1, 2, 4, 8, 1, 2 → `conv_dilated` |
| `depthwise` | `reflex.nn.DepthwiseSeparable(·, W, k, mid_activation="relu")` → `conv_depthwise` |
| `grouped`   | `reflex.nn.GroupedShuffle(·, W, k, groups)` (4 groups, the first layer the largest of 4, 2, 1 dividing C) → `conv_grouped` |
| `residual`  | `reflex.nn.ResidualBottleneck(·, W // 4, k, out_channels=W)` → `residual` |

Training: AdamW (lr 3e-3, weight decay 1e-4), one-cycle schedule, batch 64, cross-entropy
weighted by inverse class frequency, dropout 0.1 before the linear layer, no augmentation; inputs
normalised with the training samples' per-channel mean and std, which the exported config
applies itself (`window.mean/std`). Seeded; `torch.set_num_threads(threads)`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import nn as rnn

__all__ = ["VARIANTS", "Protocol", "build_model", "train_model", "predict"]

VARIANTS = ("standard", "dilated", "depthwise", "grouped", "residual")
DILATIONS = (1, 2, 4, 8, 1, 2)


@dataclass
class Protocol:
    """One protocol for every variant: only the convolution differs."""

    window: int = 128
    hop: int = 64
    epochs: int = 15
    width: int = 32
    kernel: int = 5
    layers: int = 6
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    optimiser: str = "AdamW, one-cycle lr schedule, class-weighted cross-entropy"

    def as_dict(self) -> dict:
        return asdict(self)


def _first_groups(cin: int, width: int) -> int:
    for g in (4, 2, 1):
        if cin % g == 0 and width % g == 0:
            return g
    return 1


def _conv(variant: str, i: int, cin: int, p: Protocol) -> list[nn.Module]:
    w, k = p.width, p.kernel
    if variant == "standard":
        return [nn.Conv1d(cin, w, k, padding="same"), nn.BatchNorm1d(w), nn.ReLU()]
    if variant == "dilated":
        d = DILATIONS[i % len(DILATIONS)]
        return [nn.Conv1d(cin, w, k, padding="same", dilation=d), nn.BatchNorm1d(w), nn.ReLU()]
    if variant == "depthwise":
        return [rnn.DepthwiseSeparable(cin, w, k, mid_activation="relu", activation="relu",
                                       batch_norm=True)]
    if variant == "grouped":
        g = _first_groups(cin, w) if i == 0 else _first_groups(w, w)
        return [rnn.GroupedShuffle(cin, w, k, g, activation="relu", batch_norm=True)]
    if variant == "residual":
        return [rnn.ResidualBottleneck(cin, max(1, w // 4), k, out_channels=w, batch_norm=True)]
    raise ValueError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")


class Net(nn.Sequential):
    """Six convolution layers → global average pool → flatten → dropout → linear."""


def build_model(variant: str, channels: int, classes: int, p: Protocol) -> nn.Module:
    mods: list[nn.Module] = []
    cin = channels
    for i in range(p.layers):
        mods += _conv(variant, i, cin, p)
        cin = p.width
    mods += [nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(p.dropout), nn.Linear(p.width, classes)]
    return Net(*mods)


def train_model(model: nn.Module, x: np.ndarray, y: np.ndarray, p: Protocol, *, seed: int,
                progress: Callable[[int, float], None] | None = None) -> dict:
    """Train on normalised windows x [N, C, L] (float32), classes y [N]. Returns a log dict."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    n_classes = model[-1].out_features
    counts = torch.bincount(yt, minlength=n_classes).double().clamp(min=1)
    weight = (counts.sum() / (n_classes * counts)).float()
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    steps = max(1, math.ceil(len(xt) / p.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=p.epochs * steps,
                                                pct_start=0.2)
    losses = []
    t0 = time.perf_counter()
    for epoch in range(p.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for b in range(steps):
            idx = perm[b * p.batch:(b + 1) * p.batch]
            if len(idx) < 2:       # BatchNorm needs two samples
                continue
            loss = F.cross_entropy(model(xt[idx]), yt[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(xt))
        if progress:
            progress(epoch + 1, losses[-1])
    model.eval()
    return {"loss": losses, "seconds": time.perf_counter() - t0}


def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))))
    return torch.cat(out).numpy() if out else np.zeros((0, model[-1].out_features), np.float32)

"""Hand-written PyTorch models, one per mapping of docs/python.md, as a researcher would write them.

Each case: a builder (seeded), the window `[C, L]`, labels or None, and the Reflex plugins the
export must produce (so `reflexd inspect` shows the variant the researcher meant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import reflex.nn as rnn
from reflex.torch_ref import randomize_bn


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    channels: int
    length: int
    plugins: list[str]
    labels: list[str] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    extra: dict = field(default_factory=dict)


def _init(m: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights and non-trivial BatchNorm statistics (so BN mapping really matters)."""
    torch.manual_seed(seed)
    for p in m.modules():
        if isinstance(p, (nn.Conv1d, nn.Linear)):
            p.reset_parameters()
    randomize_bn(m, torch.Generator().manual_seed(seed))
    return m.eval()


def shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, length = x.shape
    return x.view(n, groups, c // groups, length).transpose(1, 2).contiguous().view(n, c, length)


def seq_standard() -> nn.Module:
    return _init(nn.Sequential(
        nn.Conv1d(6, 16, 5, padding="same"), nn.BatchNorm1d(16), nn.ReLU(),
        nn.Conv1d(16, 16, 4, stride=2, padding=1), nn.GELU(), nn.Dropout(0.1),
        nn.MaxPool1d(2), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 4), nn.Softmax(dim=-1)), 1)


class ResidualAdd(nn.Module):
    """A residual `+` in forward, functional activations, a stride and 'valid' padding."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(3, 12, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm1d(12)
        self.body = nn.Conv1d(12, 12, 5, padding="same")
        self.down = nn.Conv1d(12, 8, 3, stride=2, padding="valid")
        self.pool = nn.AvgPool1d(2)
        self.fc = nn.Linear(8 * 15, 2)

    def forward(self, x):
        h = F.relu(self.bn(self.stem(x)))
        h = F.relu(self.body(h) + h)
        h = torch.tanh(self.down(h))
        h = self.pool(h)
        return self.fc(torch.flatten(h, 1))


class FunctionalActs(nn.Module):
    """Every activation of docs/layers.md in its functional form, one channel in."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(1 if i == 0 else 4, 4, k, padding="same")
                                   for i, k in enumerate([3, 2, 5, 4, 3, 1, 7, 3]))
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        c = self.convs
        x = F.silu(c[0](x))
        x = F.leaky_relu(c[1](x), 0.2)
        x = torch.sigmoid(c[2](x))
        x = F.elu(c[3](x))
        x = F.hardswish(c[4](x))
        x = F.relu6(c[5](x))
        x = F.gelu(c[6](x))
        x = c[7](x).relu()
        return self.head(x.mean(dim=-1))


class GroupedShuffleNet(nn.Module):
    """ShuffleNet style: grouped convolutions each followed by BN, ReLU and a channel shuffle; 9 channels."""

    def __init__(self):
        super().__init__()
        self.g1 = nn.Conv1d(9, 12, 3, padding="same", groups=3)
        self.b1 = nn.BatchNorm1d(12)
        self.g2 = nn.Conv1d(12, 12, 5, groups=4, padding="valid")
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        x = shuffle(F.relu(self.b1(self.g1(x))), 3)
        x = self.g2(x)
        return self.fc(F.adaptive_max_pool1d(x, 1).flatten(1))


class DepthwiseNet(nn.Module):
    """Depthwise-separable pairs: groups = in, then a 1×1 (with a mid activation and without)."""

    def __init__(self):
        super().__init__()
        self.dw1 = nn.Conv1d(6, 6, 7, padding=3, groups=6)
        self.pw1 = nn.Conv1d(6, 24, 1)
        self.bn1 = nn.BatchNorm1d(24)
        self.dw2 = nn.Conv1d(24, 24, 4, stride=2, groups=24, bias=False)
        self.pw2 = nn.Conv1d(24, 16, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.pw1(F.relu(self.dw1(x)))))
        x = self.pw2(self.dw2(x))
        return self.fc(x.amax(dim=-1))


def dilated() -> nn.Module:
    return _init(nn.Sequential(
        nn.Conv1d(3, 8, 3, dilation=2, padding="same"), nn.ELU(),
        nn.Conv1d(8, 8, 2, dilation=4, padding=2), nn.BatchNorm1d(8), nn.SiLU(),
        nn.Conv1d(8, 4, 3, dilation=3, stride=2, padding=0), nn.Flatten(), nn.Linear(4 * 29, 2)), 6)


class Blocks(nn.Module):
    """reflex.nn blocks, and a standalone ChannelShuffle (exported as an exact 1×1 permutation)."""

    def __init__(self):
        super().__init__()
        self.dw = rnn.DepthwiseSeparable(6, 16, 5, mid_activation="relu", activation="relu", batch_norm=True)
        self.gs = rnn.GroupedShuffle(16, 16, 3, 4, activation="leaky_relu", batch_norm=True)
        self.res = rnn.ResidualBottleneck(16, 4, 3, out_channels=24, dilation=2, batch_norm=True)
        self.res2 = rnn.ResidualBottleneck(24, 8, 4, padding="causal", activation="hardswish")
        self.mix = nn.Conv1d(24, 24, 1)
        self.shuffle = rnn.ChannelShuffle(3)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):
        x = self.res2(self.res(self.gs(self.dw(x))))
        x = self.shuffle(torch.sigmoid(self.mix(x) + x))
        return self.fc(self.pool(x).squeeze(-1))


def even_kernels() -> nn.Module:
    """One channel, even kernels, strides, int padding, then a standalone BatchNorm and pool."""
    return _init(nn.Sequential(
        nn.Conv1d(1, 4, 2, stride=2, padding=0), nn.ReLU6(),
        nn.Conv1d(4, 6, 6, padding="same"), nn.Tanh(),
        nn.AvgPool1d(3), nn.BatchNorm1d(6, eps=1e-3), nn.Hardswish(),
        nn.Conv1d(6, 2, 4, stride=3, padding=2), nn.Flatten()), 9)


class HeadMLP(nn.Module):
    """Flatten via view, an MLP head with an activation on the 1-D features, a regression output."""

    def __init__(self):
        super().__init__()
        self.bn_in = nn.BatchNorm1d(6)
        self.conv = nn.Conv1d(6, 4, 8, stride=4, padding=2)
        self.fc1 = nn.Linear(4 * 8, 16)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x):
        x = F.leaky_relu(self.conv(self.bn_in(x)), 0.1)
        x = x.view(x.size(0), -1)
        return self.fc2(F.gelu(self.fc1(x)))


class ShuffleAfterAdd(nn.Module):
    """A channel shuffle that no grouped convolution precedes, and a grouped conv with shuffle off."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(3, 6, 3, padding=1)
        self.b = nn.Conv1d(3, 6, 5, padding=2, groups=3)
        self.c = nn.Conv1d(6, 6, 3, padding="same", groups=2)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        y = self.a(x) + self.b(x)
        n, c, length = y.shape
        y = y.view(n, 2, c // 2, length).transpose(1, 2).reshape(n, c, length)
        y = torch.relu(self.c(y))
        return torch.softmax(self.fc(y.mean(-1)), dim=1)


def trained(channels: int) -> nn.Module:
    """A small CNN trained for a few steps on the bundled recording (BN statistics learnt)."""
    from reflex._verify import recording_signal

    torch.manual_seed(3)
    m = nn.Sequential(nn.Conv1d(channels, 8, 5, padding="same"), nn.BatchNorm1d(8), nn.ReLU(),
                      nn.Conv1d(8, 8, 3, padding="same", groups=2), nn.BatchNorm1d(8), nn.ReLU(),
                      nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 2))
    x = torch.from_numpy(recording_signal(channels))
    wins = torch.stack([x[s:s + 64].T for s in range(0, len(x) - 64, 8)])
    target = (wins[:, 0].std(dim=1) > wins[:, 0].std(dim=1).median()).long()  # high vs low motion
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(30):
        opt.zero_grad()
        F.cross_entropy(m(wins), target).backward()
        opt.step()
    return m.eval()


CASES: list[Case] = [
    Case("seq_standard", seq_standard, 6, 64,
         ["conv_standard", "conv_standard", "max_pool", "global_avg_pool", "linear", "softmax"],
         labels=["walk", "run", "stand", "stairs"]),
    Case("residual_add", lambda: _init(ResidualAdd(), 2), 3, 64,
         ["conv_standard", "conv_standard", "add", "conv_standard", "avg_pool", "flatten", "linear"],
         labels=["a", "b"]),
    Case("functional_acts", lambda: _init(FunctionalActs(), 3), 1, 48,
         ["conv_standard"] * 8 + ["global_avg_pool", "linear"]),
    Case("grouped_shuffle_9ch", lambda: _init(GroupedShuffleNet(), 4), 9, 40,
         ["conv_grouped", "conv_grouped", "global_max_pool", "linear"]),
    Case("depthwise", lambda: _init(DepthwiseNet(), 5), 6, 50,
         ["conv_depthwise", "conv_depthwise", "global_max_pool", "linear"]),
    Case("dilated", dilated, 3, 64, ["conv_dilated", "conv_dilated", "conv_dilated", "flatten", "linear"]),
    Case("reflex_nn_blocks", lambda: _init(Blocks(), 7), 6, 32,
         ["conv_depthwise", "conv_grouped", "residual", "residual", "conv_standard", "add",
          "conv_standard", "global_avg_pool", "linear"]),
    Case("even_kernels_1ch", even_kernels, 1, 96,
         ["conv_standard", "conv_standard", "avg_pool", "batch_norm", "activation", "conv_standard", "flatten"]),
    Case("head_mlp_norm", lambda: _init(HeadMLP(), 10), 6, 32,
         ["batch_norm", "conv_standard", "flatten", "linear", "activation", "linear"],
         mean=[0.8, 0.4, 4.3, 5.4, -1.3, -1.2], std=[16.3, 8.6, 7.6, 71.9, 138.7, 147.9]),
    Case("shuffle_after_add", lambda: _init(ShuffleAfterAdd(), 11), 3, 40,
         ["conv_standard", "conv_grouped", "add", "conv_standard", "conv_grouped", "global_avg_pool",
          "linear", "softmax"], labels=["x", "y"]),
    Case("trained_6ch", lambda: trained(6), 6, 64,
         ["conv_standard", "conv_grouped", "global_avg_pool", "linear"], labels=["still", "moving"]),
    Case("trained_3ch", lambda: trained(3), 3, 64,
         ["conv_standard", "conv_grouped", "global_avg_pool", "linear"]),
]

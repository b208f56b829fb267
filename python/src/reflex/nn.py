"""Reflex's convolution plugins as PyTorch modules (docs/python.md).

Each block's `state_dict()` names are the plugin's tensor names (docs/layers.md) and its keyword
arguments are named like the config keys, so a model built of them exports one block to one
layer: `reflex.export` writes the block's keys and tensors as they are. They work on batches
`[N, C, L]`.

    >>> import torch, reflex.nn as rnn
    >>> block = rnn.DepthwiseSeparable(6, 32, 5, mid_activation="relu", activation="relu")
    >>> sorted(block.state_dict())[:2]
    ['depthwise.bias', 'depthwise.weight']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import torch_ref as _ref

__all__ = ["DepthwiseSeparable", "GroupedShuffle", "ResidualBottleneck", "ChannelShuffle"]



class DepthwiseSeparable(_ref.DepthwiseLayer):
    """`conv_depthwise`: `Conv1d(in, in, k, groups=in)` → mid_activation → `Conv1d(in, out, 1)` → BN → activation.

    Tensors: `depthwise.weight [in, 1, k]`, `depthwise.bias`, `pointwise.weight [out, in, 1]`,
    `pointwise.bias`, and `bn.*` (out channels, after the pointwise convolution) with `batch_norm`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int | str = "same", dilation: int = 1, bias: bool = True,
                 mid_activation: str = "none", activation: str = "none", batch_norm: bool = False,
                 negative_slope: float = 0.01):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, bias=bias, batch_norm=batch_norm, activation=activation,
                         mid_activation=mid_activation, negative_slope=negative_slope)
        self._keys = dict(out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                          padding=padding, dilation=dilation, bias=bias, mid_activation=mid_activation,
                          activation=activation, batch_norm=batch_norm)
        _slope(self._keys, negative_slope, activation, mid_activation)

    def reflex_layer(self) -> tuple[str, dict[str, Any]]:
        """The plugin name and config keys this block exports to."""
        return "conv_depthwise", dict(self._keys)


class GroupedShuffle(_ref.ConvLayer):
    """`conv_grouped`: `Conv1d(in, out, k, groups=g)` → BN → activation → channel shuffle (if `shuffle`).

    Tensors: `weight [out, in/g, k]`, `bias [out]`, and `bn.*` (indexed by the convolution's
    channel, before the shuffle) with `batch_norm`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int, *,
                 shuffle: bool = True, stride: int = 1, padding: int | str = "same", dilation: int = 1,
                 bias: bool = True, activation: str = "none", batch_norm: bool = False,
                 negative_slope: float = 0.01):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, batch_norm=batch_norm,
                         activation=activation, negative_slope=negative_slope,
                         shuffle_groups=groups if shuffle else 0)
        self._keys = dict(out_channels=out_channels, kernel_size=kernel_size, groups=groups,
                          shuffle=shuffle, stride=stride, padding=padding, dilation=dilation, bias=bias,
                          activation=activation, batch_norm=batch_norm)
        _slope(self._keys, negative_slope, activation)

    def reflex_layer(self) -> tuple[str, dict[str, Any]]:
        """The plugin name and config keys this block exports to."""
        return "conv_grouped", dict(self._keys)


class ResidualBottleneck(_ref.ResidualLayer):
    """`residual`: `act(reduce 1×1)` → `act(conv k)` → `expand 1×1`, plus the input (or a 1×1 `shortcut`), → act.

    Tensors: `reduce.weight [mid, in, 1]`, `conv.weight [mid, mid, k]`, `expand.weight [out, mid, 1]`,
    `shortcut.weight [out, in, 1]` (only when out ≠ in), each with `.bias` and, with `batch_norm`, `.bn.*`.
    """

    def __init__(self, in_channels: int, mid_channels: int, kernel_size: int, *,
                 out_channels: int | None = None, dilation: int = 1, padding: str = "same",
                 bias: bool = True, activation: str = "relu", batch_norm: bool = False,
                 negative_slope: float = 0.01):
        out = in_channels if out_channels is None else out_channels
        super().__init__(in_channels, out, kernel_size, mid_channels=mid_channels, dilation=dilation,
                         padding=padding, bias=bias, batch_norm=batch_norm, activation=activation,
                         negative_slope=negative_slope)
        self._keys = dict(out_channels=out, kernel_size=kernel_size, mid_channels=mid_channels,
                          dilation=dilation, padding=padding, bias=bias, activation=activation,
                          batch_norm=batch_norm)
        _slope(self._keys, negative_slope, activation)

    def reflex_layer(self) -> tuple[str, dict[str, Any]]:
        """The plugin name and config keys this block exports to."""
        return "residual", dict(self._keys)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: output channel `i*g + j` is input channel `j*(C/g) + i`."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = int(groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ref.channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def _slope(keys: dict[str, Any], slope: float, *activations: str) -> None:
    if "leaky_relu" in activations:
        keys["negative_slope"] = float(slope)


BLOCKS = (DepthwiseSeparable, GroupedShuffle, ResidualBottleneck)

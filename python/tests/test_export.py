"""reflex.export: every mapping, round trips through the real reflexd, unsupported operations."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import reflex
from models import CASES, Case
from reflex._export import _fx_reference, to_model_spec
from reflex._verify import verify_spec


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_export_round_trip(case: Case, tmp_path, reflexd):
    module = case.build()
    res = reflex.export(module, tmp_path, channels=case.channels, length=case.length, hop=4,
                        labels=case.labels, mean=case.mean, std=case.std)
    assert res.verified and res.max_error is not None
    assert res.plugins == case.plugins
    # the variant shows in `reflexd inspect` as the researcher meant it
    out = subprocess.run([reflexd, "inspect", "--config", str(res.config)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for plugin in set(case.plugins):
        assert plugin in out.stdout
    # padding is always explicit for convolutions
    text = res.config.read_text()
    assert text.count("padding =") >= sum(p.startswith("conv_") for p in case.plugins)


def test_verify_catches_a_wrong_mapping_and_names_the_layer(tmp_path, reflexd):
    """Break one layer on purpose (its padding): the check fails and points at that layer."""
    module = CASES[0].build()
    spec, gm = to_model_spec(module, channels=6, length=64)
    spec.layers[0].keys["padding"] = "causal"  # was "same": same shape, shifted values
    with pytest.raises(reflex.VerifyError) as e:
        verify_spec(spec, _fx_reference(gm))
    assert e.value.worst_layer == spec.layers[0].name
    assert spec.layers[0].name in str(e.value)


def test_verify_command_on_an_exported_dir(tmp_path, reflexd):
    case = CASES[4]
    reflex.export(case.build(), tmp_path, channels=case.channels, length=case.length, verify=False)
    report = reflex.verify(tmp_path)
    assert report.max_ratio <= 1.0
    cli = subprocess.run([sys.executable, "-m", "reflex", "verify", str(tmp_path)], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert "agree" in cli.stdout


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(6, 8, 3, padding=1, padding_mode="reflect")
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.act = nn.GELU(approximate="tanh")
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = self.act(self.conv(x)) * 2.0
        x = torch.cat([x, x], dim=1)[:, :8]
        return self.fc(x.mean(-1))


def test_unsupported_operations_are_listed_at_once(tmp_path):
    with pytest.raises(reflex.ExportError) as e:
        reflex.export(Unsupported().eval(), tmp_path, channels=6, length=32, verify=False)
    msg = str(e.value)
    assert "conv: Conv1d(padding_mode='reflect')" in msg
    assert "act: GELU(approximate=\"tanh\")" in msg
    assert "mul" in msg and "cat" in msg
    assert len(e.value.problems) >= 4
    assert not (tmp_path / "reflex.toml").exists()


def test_output_must_be_1d(tmp_path):
    with pytest.raises(reflex.ExportError, match="1-D"):
        reflex.export(nn.Sequential(nn.Conv1d(3, 4, 3)), tmp_path, channels=3, length=16, verify=False)


def test_nn_blocks_state_dict_names():
    import reflex.nn as rnn

    assert sorted(rnn.DepthwiseSeparable(4, 8, 3, batch_norm=True).state_dict()) == sorted([
        "depthwise.weight", "depthwise.bias", "pointwise.weight", "pointwise.bias", "bn.weight", "bn.bias",
        "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"])
    assert sorted(rnn.GroupedShuffle(4, 8, 3, 2, bias=False).state_dict()) == ["weight"]
    names = set(rnn.ResidualBottleneck(4, 2, 3, out_channels=6).state_dict())
    assert names == {f"{c}.{t}" for c in ("reduce", "conv", "expand", "shortcut") for t in ("weight", "bias")}
    x = torch.arange(12.0).reshape(1, 6, 2)
    y = rnn.ChannelShuffle(2)(x)
    assert y[0, :, 0].tolist() == [0.0, 6.0, 2.0, 8.0, 4.0, 10.0]  # out i*g+j = in j*(C/g)+i


def test_missing_reflexd_is_one_clear_line(tmp_path):
    case = CASES[0]
    reflex.export(case.build(), tmp_path, channels=case.channels, length=case.length, verify=False)
    env = {**os.environ, "REFLEX_BIN": str(tmp_path / "no-such-reflexd"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "reflex", "verify", str(tmp_path)], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("reflex verify: reflexd not found")
    assert "Traceback" not in out.stderr

"""reflex.from_onnx / `reflex import-onnx`: files written by torch.onnx.export, checked against onnxruntime."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reflex
from models import CASES, Case, shuffle

warnings.filterwarnings("ignore", category=DeprecationWarning)


def to_onnx(module: nn.Module, channels: int, length: int, path, *, dynamic_batch: bool = False) -> None:
    x = torch.randn(1, channels, length)
    torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17, input_names=["imu"],
                      output_names=["out"], dynamic_axes={"imu": {0: "N"}, "out": {0: "N"}} if dynamic_batch else None)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_onnx_import_of_every_case(case: Case, tmp_path, reflexd):
    """reflexd replay of the imported model agrees with onnxruntime on real recorded windows (verify=True)."""
    path = tmp_path / "model.onnx"
    to_onnx(case.build(), case.channels, case.length, path, dynamic_batch=case.name.startswith("trained"))
    res = reflex.from_onnx(path, tmp_path / "out", labels=case.labels, hop=2)
    assert res.verified and res.max_error is not None
    # the convolution variant survives ONNX (BN is folded into Conv by the exporter)
    variants = {p for p in case.plugins if p in ("conv_depthwise", "conv_dilated", "conv_grouped")}
    assert variants <= set(res.plugins)


class Normalised(nn.Module):
    """Normalisation on the input, GELU (Erf form), SiLU, relu6, pools, add, softmax, a channel shuffle."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.8, 0.4, 4.3, 5.4, -1.3, -1.2]).view(1, 6, 1))
        self.register_buffer("std", torch.tensor([16.3, 8.6, 7.6, 71.9, 138.7, 147.9]).view(1, 6, 1))
        self.c1 = nn.Conv1d(6, 12, 5, padding=2, groups=3)
        self.c2 = nn.Conv1d(12, 12, 3, padding=1)
        self.c3 = nn.Conv1d(12, 12, 3, padding=1)
        self.bn = nn.BatchNorm1d(12)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = shuffle(F.gelu(self.c1(x)), 3)
        y = F.silu(self.c2(x))
        x = F.relu6(self.bn(self.c3(y) + x))
        x = F.avg_pool1d(F.max_pool1d(x, 2), 2)
        return torch.softmax(self.fc(x.mean(dim=2)), dim=-1)


def test_onnx_normalisation_gelu_silu_relu6_pools_add_softmax_shuffle(tmp_path, reflexd):
    torch.manual_seed(0)
    m = Normalised().eval()
    with torch.no_grad():
        m.bn.running_var.uniform_(0.5, 2.0)
        m.bn.running_mean.normal_(0, 0.3)
    path = tmp_path / "m.onnx"
    to_onnx(m, 6, 64, path)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Erf", "Sub", "Div", "Sigmoid", "Clip", "Transpose", "Softmax"} <= ops  # the forms to recognise
    res = reflex.from_onnx(path, tmp_path / "out", labels=["a", "b", "c", "d"])
    assert res.plugins == ["conv_grouped", "conv_standard", "conv_standard", "add", "batch_norm", "activation",
                           "max_pool", "avg_pool", "global_avg_pool", "linear", "softmax"]
    text = res.config.read_text()
    assert "mean = [0.8" in text and "std = [16.3" in text
    assert 'activation = "gelu"' in text and 'activation = "silu"' in text and 'function = "relu6"' in text
    assert "shuffle = true" in text


def test_import_onnx_command(tmp_path, reflexd):
    case = CASES[0]
    to_onnx(case.build(), case.channels, case.length, tmp_path / "m.onnx", dynamic_batch=True)
    out = subprocess.run([sys.executable, "-m", "reflex", "import-onnx", str(tmp_path / "m.onnx"), str(tmp_path / "o"),
                          "--hop", "8", "--labels", "walk,run,stand,stairs"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "reflexd agrees" in out.stdout
    text = (tmp_path / "o" / "reflex.toml").read_text()
    assert "hop = 8" in text and 'labels = ["walk", "run", "stand", "stairs"]' in text


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = torch.cos(self.conv(x))
        x = torch.cumsum(x, dim=2)
        return self.fc(x.mean(dim=2)) * 3.0


def test_unsupported_nodes_one_line_each_exit_1(tmp_path):
    to_onnx(Unsupported().eval(), 3, 16, tmp_path / "u.onnx")
    out = subprocess.run([sys.executable, "-m", "reflex", "import-onnx", str(tmp_path / "u.onnx"), str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert any("(Cos)" in line for line in lines) and any("(CumSum)" in line for line in lines)
    assert any("(Mul)" in line for line in lines)
    assert all(line.startswith("reflex import-onnx: node ") for line in lines), lines
    assert not (tmp_path / "o" / "reflex.toml").exists()


def test_symbolic_length_needs_length(tmp_path):
    x = torch.randn(1, 3, 16)
    m = nn.Sequential(nn.Conv1d(3, 4, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten()).eval()
    torch.onnx.export(m, (x,), str(tmp_path / "s.onnx"), dynamo=False, opset_version=17, input_names=["x"],
                      dynamic_axes={"x": {0: "N", 2: "L"}})
    with pytest.raises(reflex.ExportError, match="--length"):
        reflex.from_onnx(tmp_path / "s.onnx", tmp_path / "o")
    res = reflex.from_onnx(tmp_path / "s.onnx", tmp_path / "o", length=40)
    assert res.verified and math.isfinite(res.max_error)


def test_hand_built_graph_matmul_gelu_reducemax_hardsigmoid(tmp_path, reflexd):
    """Forms torch's exporter does not write but others do: MatMul + Add, Gelu (opset 20), ReduceMax
    with axes as an input, x·HardSigmoid(x), Identity; checked against onnxruntime."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in [
        ("w1", rng.normal(size=(8, 3, 3)) * 0.5), ("b1", rng.normal(size=8) * 0.1),
        ("w2", rng.normal(size=(8, 8, 2)) * 0.3), ("fc", rng.normal(size=(8, 4)) * 0.5),
        ("fb", rng.normal(size=4) * 0.1)]] + [numpy_helper.from_array(np.array([2], np.int64), "axes")]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1]),
        helper.make_node("Gelu", ["c1"], ["g"]),
        helper.make_node("Conv", ["g", "w2"], ["c2"], pads=[1, 0]),
        helper.make_node("HardSigmoid", ["c2"], ["hs"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["c2", "hs"], ["hw"]),
        helper.make_node("Identity", ["hw"], ["id"]),
        helper.make_node("ReduceMax", ["id", "axes"], ["r"], keepdims=0),
        helper.make_node("MatMul", ["r", "fc"], ["mm"]),
        helper.make_node("Add", ["mm", "fb"], ["out"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 40])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    res = reflex.from_onnx(model, tmp_path / "o")
    assert res.plugins == ["conv_standard", "conv_standard", "global_max_pool", "linear"]
    text = res.config.read_text()
    assert 'activation = "gelu"' in text and 'activation = "hardswish"' in text


def test_old_opset_is_refused(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8])])
    with pytest.raises(reflex.ExportError, match="opset 11"):
        reflex.from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), tmp_path)

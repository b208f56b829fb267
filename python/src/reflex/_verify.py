"""The agreement check: the real `reflexd` against an independent reference (PyTorch, onnxruntime).

Windows come from a real recording bundled with the package (`reflex/data/walking_left.csv`,
5 s of a foot-mounted IMU while walking, 204.8 Hz). A model with C input channels sees:

- C = 1: the acceleration magnitude |acc|;
- C = 2..6: the first C of `acc_x acc_y acc_z gyr_x gyr_y gyr_z`;
- C > 6: those six real channels, then derived ones in this order, repeating: |acc|, |gyr|,
  and the time derivatives (first differences × rate) of acc_x, acc_y, acc_z, gyr_x, gyr_y,
  gyr_z — so 9 channels are 6 real + |acc|, |gyr|, d(acc_x)/dt.

Every channel is standardised over the segment (the model sees realistic, unit-scale input);
when the config has `window.mean`/`std`, the csv holds `z * std + mean` so that Reflex's own
normalisation gives the model the same standardised signal. Windows longer than the segment
repeat it. `reflexd replay` runs all windows in one call; on a disagreement, prefixes of the
graph (layers 1..i, then a flatten) are replayed one by one to name the first layer that
disagrees.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import _graph as g
from ._errors import ReflexdError, VerifyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["verify", "verify_spec", "VerifyReport", "find_reflexd", "recording_signal", "replay"]

RATE_HZ = 204.8
Reference = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass
class VerifyReport:
    """Outcome of a passed check: windows compared and the largest error (absolute, and / tolerance)."""

    windows: int
    max_error: float
    max_ratio: float


def find_reflexd() -> str:
    """`REFLEX_BIN` if set, else `reflexd` on PATH."""
    exe = os.environ.get("REFLEX_BIN") or shutil.which("reflexd")
    if not exe or not Path(exe).exists():
        raise ReflexdError("reflexd not found: put it on PATH or set REFLEX_BIN "
                           "(cargo build --release --workspace builds target/release/reflexd)")
    return str(Path(exe).resolve())


def _raw_recording() -> np.ndarray:
    """The bundled walking segment, [T, 6] float64 (acc m/s², gyr deg/s)."""
    path = resources.files("reflex") / "data" / "walking_left.csv"
    with resources.as_file(path) as p:
        return np.loadtxt(p, delimiter=",", skiprows=1)[:, 1:]


def recording_signal(channels: int, min_length: int = 0) -> np.ndarray:
    """The real recording as C standardised channels, [T, C] float32 (see the module docstring)."""
    raw = _raw_recording()
    acc, gyr = raw[:, :3], raw[:, 3:]
    derived = [np.linalg.norm(acc, axis=1), np.linalg.norm(gyr, axis=1)]
    derived += [np.diff(raw[:, i], prepend=raw[0, i]) * RATE_HZ for i in range(6)]
    if channels == 1:
        cols = [derived[0]]
    else:
        cols = [raw[:, i] for i in range(min(channels, 6))]
        cols += [derived[i % len(derived)] for i in range(max(0, channels - 6))]
    x = np.stack(cols, axis=1)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    reps = max(1, -(-min_length // len(x)))
    return np.tile(x, (reps, 1)).astype(np.float32)


def _csv_signal(spec: g.ModelSpec, z: np.ndarray) -> np.ndarray:
    """What the csv holds (f32 values): z itself, or z * std + mean for a config that normalises."""
    if spec.mean is None and spec.std is None:
        return z
    mean = np.asarray(spec.mean if spec.mean is not None else [0.0] * spec.channels, np.float64)
    std = np.asarray(spec.std if spec.std is not None else [1.0] * spec.channels, np.float64)
    return (z.astype(np.float64) * std + mean).astype(np.float32)


def _model_input(spec: g.ModelSpec, csv: np.ndarray) -> np.ndarray:
    """What the model sees: the csv values normalised as Reflex does, in f32."""
    if spec.mean is None and spec.std is None:
        return csv
    mean = np.asarray(spec.mean if spec.mean is not None else [0.0] * spec.channels, np.float32)
    std = np.asarray(spec.std if spec.std is not None else [1.0] * spec.channels, np.float32)
    return ((csv - mean) / std).astype(np.float32)


def write_csv(path: Path, x: np.ndarray) -> None:
    """A Reflex csv log: header `t,ch0,…`, time in seconds, values exactly the f32 ones."""
    with open(path, "w") as f:
        f.write("t," + ",".join(f"ch{i}" for i in range(x.shape[1])) + "\n")
        for i, row in enumerate(x):
            f.write(repr(i / RATE_HZ) + "," + ",".join(repr(float(v)) for v in row) + "\n")


def replay(config: Path, log: Path, out: Path) -> list[dict[str, Any]]:
    """`reflexd replay --config CONFIG --out OUT LOG`; the records, in order."""
    cmd = [find_reflexd(), "replay", "--config", str(config), "--speed", "max", "--out", str(out), str(log)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise ReflexdError(f"reflexd replay failed ({proc.returncode}) on {config}:\n{proc.stderr.strip()}")
    with open(out) as f:
        return [json.loads(line) for line in f if line.strip()]


def _run_spec(spec: g.ModelSpec, csv: Path, hop: int, tmp: Path, tag: str) -> np.ndarray:
    """Replay `csv` through `spec`; the values of every window, [W, F]."""
    from safetensors.numpy import save_file

    weights = tmp / f"{tag}.safetensors"
    save_file(spec.state_dict(), str(weights))
    cfg = tmp / f"{tag}.toml"
    source = {"kind": "replay", "path": str(csv), "format": "csv", "channels": spec.channels,
              "time_column": True, "speed": "max"}
    cfg.write_text(g.config_text(dataclasses.replace(spec, hop=hop), weights=str(weights), source=source,
                                 sinks=False))
    records = replay(cfg, csv, tmp / f"{tag}.jsonl")
    # A fallback record (non-finite output, a failed window) holds other values than the graph's.
    bad = next((r for r in records if r.get("health", "ok") != "ok"), None)
    if bad is not None:
        raise VerifyError(f"reflexd gave window {bad['window']} a fallback record (health {bad['health']!r}), "
                          "not the graph's output")
    return np.asarray([r["values"] for r in records], np.float32)


def _compare(got: np.ndarray, ref: np.ndarray) -> tuple[float, float, int]:
    """Largest absolute error, largest error/tolerance (docs/layers.md, per window), worst window."""
    ref = ref.reshape(ref.shape[0], -1)
    if got.shape != ref.shape:
        return float("inf"), float("inf"), 0
    tol = 1e-5 + 1e-4 * np.abs(ref).max(axis=1, keepdims=True)
    err = np.abs(got.astype(np.float64) - ref)
    ratio = (err / tol).max(axis=1)
    return float(err.max()), float(ratio.max()), int(ratio.argmax())


def verify_spec(spec: g.ModelSpec, reference: Reference, *, what: str = "model",
                windows: int = 16) -> VerifyReport:
    """Replay windows of the bundled recording through `reflexd` and compare with `reference`.

    `reference(x)` takes windows `[N, C, L]` (f32, normalised) and returns outputs by key:
    `"<output>"` for the model's output and each layer's `source_key` for its output.
    Raises VerifyError naming the first disagreeing layer.
    """
    length = spec.length
    z = recording_signal(spec.channels, length + 1)
    hop = max(1, (len(z) - length) // max(1, windows - 1))
    csv_values = _csv_signal(spec, z)
    x = _model_input(spec, csv_values)
    starts = list(range(0, len(x) - length + 1, hop))
    batch = np.stack([x[s:s + length].T for s in starts])
    if getattr(reference, "raw_input", False):  # the model normalises itself (ONNX Sub/Div on the input)
        refs = reference(np.stack([csv_values[s:s + length].T for s in starts]))
    else:
        refs = reference(batch)
    with tempfile.TemporaryDirectory(prefix="reflex-verify-") as d:
        tmp = Path(d)
        csv = tmp / "recording.csv"
        write_csv(csv, csv_values)
        got = _run_spec(spec, csv, hop, tmp, "model")
        n = len(batch)
        if len(got) != n:
            raise VerifyError(f"{what}: reflexd gave {len(got)} records for {n} windows")
        err, ratio, w = _compare(got, refs["<output>"])
        if ratio <= 1.0:
            return VerifyReport(n, err, ratio)
        worst = _first_bad_layer(spec, refs, csv, hop, tmp)
    where = f"; first disagreeing layer: {worst[0]} ({worst[1]})" if worst else ""
    raise VerifyError(f"{what}: reflexd's output differs from the reference by {err:.3e} "
                      f"({ratio:.1f}× the docs/layers.md tolerance, window {w} of {n}){where}",
                      worst[0] if worst else None)


def _first_bad_layer(spec: g.ModelSpec, refs: dict[str, np.ndarray], csv: Path, hop: int,
                     tmp: Path) -> tuple[str, str] | None:
    """Replay layers 1..i for growing i; the first layer whose output is out of tolerance."""
    for i, layer in enumerate(spec.layers, start=1):
        ref = refs.get(layer.source_key)
        if ref is None:
            continue
        try:
            got = _run_spec(spec.prefix(i), csv, hop, tmp, f"prefix{i}")
        except ReflexdError as e:
            return layer.name, f"reflexd refused the prefix: {e}"
        err, ratio, _ = _compare(got, ref)
        if ratio > 1.0:
            return layer.name, f"{layer.plugin}, error {err:.3e} = {ratio:.1f}× tolerance"
    return None


# ---------------------------------------------------------------------------------------------
# a written model directory: `reflex verify OUT_DIR`


def spec_from_dir(out_dir: str | Path) -> tuple[g.ModelSpec, Path]:
    """Read OUT_DIR/reflex.toml and its weights back into a ModelSpec (shapes from the PyTorch reference)."""
    from safetensors.numpy import load_file

    from . import torch_ref

    cfg_path = Path(out_dir) / "reflex.toml" if Path(out_dir).is_dir() else Path(out_dir)
    cfg = tomllib.loads(cfg_path.read_text())
    model = torch_ref.build_model(cfg)
    weights = load_file(str(cfg_path.parent / cfg["model"]["weights"]))
    layers = []
    for item in cfg["model"]["layers"]:
        name = item["name"]
        keys = {k: v for k, v in item.items() if k not in ("name", "plugin", "input")}
        tensors = {k[len(name) + 1:]: v.astype(np.float32) for k, v in weights.items()
                   if k.startswith(name + ".") and not k.endswith("num_batches_tracked")}
        layers.append(g.Layer(name, item["plugin"], keys, tensors, item.get("input"), name,
                              tuple(model.shapes[name])))
    w = cfg["window"]
    labels = cfg.get("output", {}).get("labels") if cfg.get("output", {}).get("kind") == "classify" else None
    spec = g.ModelSpec(cfg["source"]["channels"], w["length"], layers, w.get("hop", 1), w.get("mean"),
                       w.get("std"), labels, str(cfg_path))
    return spec, cfg_path


def torch_ref_reference(cfg_path: Path) -> Reference:
    """Per-layer outputs of the independent PyTorch reference built from the config (float64 forward)."""
    import torch

    from . import torch_ref

    model = torch_ref.load_model(cfg_path).double()

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        outs: dict[str, Any] = {"input": torch.from_numpy(x).double()}
        name = "input"
        with torch.no_grad():
            for name, srcs in model.routes:
                outs[name] = getattr(model, name)(*[outs[s] for s in srcs])
        res = {k: v.numpy() for k, v in outs.items()}
        res["<output>"] = res[name]
        return res

    return run


def verify(out_dir: str | Path, *, windows: int = 16) -> VerifyReport:
    """Re-run the agreement check of a written model directory against the PyTorch reference.

    The reference is `reflex.torch_ref` built from OUT_DIR/reflex.toml with its weights — an
    implementation on PyTorch's own operators, independent of reflexd's Rust code.
    """
    spec, cfg_path = spec_from_dir(out_dir)
    return verify_spec(spec, torch_ref_reference(cfg_path), what=str(cfg_path), windows=windows)

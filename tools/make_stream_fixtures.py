#!/usr/bin/env python3
"""PyTorch reference outputs for streaming inference: overlapping windows of one signal.

    python tools/make_stream_fixtures.py     # (re)writes <dir>/stream.safetensors

Reflex's streaming inference reuses the overlap of consecutive windows (length L, hop h < L)
in every layer. Its tests check the streamed results against this independent PyTorch
reference, computed window by window from whole windows cut out of one continuous signal.

For every fixture case (crates/reflex-graph/tests/fixtures/<case>/) and every
examples/{bench,models}/<variant>/ directory, `stream.safetensors` holds

  stream        f32 [C, T], T = L + 96: one continuous graph input signal, already normalised
                (the Rust test feeds it to the graph directly);
  output        f32 [T - L + 1, F]: row s = the model's output on the window stream[:, s : s + L]
                (F and the row layout as io.safetensors `output`). At hop h the windows are
                rows 0, h, 2h, … (the test uses h in 1, 2, 3, 4, 16, 64 with h < L); one table
                for every hop keeps the files small.

The signal:
  - examples/bench/* and examples/models/*: data rows [2104, 2104 + T) (0-based, header not
    counted; t = 10.2734 s) of examples/data/gaitmap/healthy_2x20m_left.csv, steady walking in
    the middle of the first 20 m: row 2104 starts the hand-labelled left stride 8 of
    healthy_2x20m_strides_manual.csv and T = 224 covers that whole stride. Normalised as the
    dir's reflex.toml says, x' = (x - mean) / std per channel from [window] mean/std (default 0
    and 1, so the bench models see the raw values), in float64, then cast to f32.
  - fixture cases (any C): a seeded smooth signal, per channel a sum of three sines (periods
    6..60 samples, amplitudes 0.3..0.7), an offset and a little white noise (sd 0.05), values
    of order 1; the seed is crc32("stream/" + case name).

Outputs are computed as for io.safetensors: eval mode, float64 forward of the stored weights
and the f32 windows, cast to f32 (rt.reference_output); the f32 no_grad forward is asserted to
agree within the tolerance of docs/layers.md, and so is a forward of the windows cut one by one per hop.
Before use, every model is checked to reproduce its dir's io.safetensors `output`
(max|diff| <= 1e-4 * max|output| + 1e-5); any mismatch stops the script.

Deterministic: one thread, deterministic algorithms, a single `__metadata__` key (safetensors
writes several keys in random order); reruns are byte-identical with the pinned versions.
Rerun this script after make_fixtures.py, make_bench_models.py or train_models.py: they
recreate their directories and so delete stream.safetensors.
"""

from __future__ import annotations

import argparse
import math
import zlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from reflex import torch_ref as rt  # pip install -e ./python

ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = ROOT / "crates" / "reflex-graph" / "tests" / "fixtures"
EXAMPLE_SETS = ("bench", "models")
VARIANTS = ("standard", "dilated", "depthwise", "grouped", "residual")

HOPS = (1, 2, 3, 4, 16, 64)
EXTRA = 96                       # T = L + EXTRA
RECORDING = ROOT / "examples" / "data" / "gaitmap" / "healthy_2x20m_left.csv"
RECORDING_START = 2104           # 0-based data row (header not counted): left stride 8 starts
OUT_NAME = "stream.safetensors"


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


# ---------------------------------------------------------------------------------------------
# the signals


def recording_rows(start: int, count: int) -> torch.Tensor:
    """Data rows [start, start + count) of RECORDING as float64 [count, channels] (time column
    dropped), parsed from the text as train_models.py does."""
    lines = [ln for ln in RECORDING.read_text().splitlines()[1:] if ln.strip()]
    if start + count > len(lines):
        raise SystemExit(f"{rel(RECORDING)}: needs rows up to {start + count}, has {len(lines)}")
    rows = [[float(v) for v in ln.split(",")[1:]] for ln in lines[start:start + count]]
    return torch.tensor(rows, dtype=torch.float64)


def per_channel(cfg: dict, key: str, default: float, channels: int) -> torch.Tensor:
    v = cfg.get("window", {}).get(key, default)
    if not isinstance(v, list):
        v = [v] * channels
    if len(v) != channels:
        raise SystemExit(f"[window] {key} has {len(v)} entries for {channels} channels")
    return torch.tensor([float(x) for x in v], dtype=torch.float64)


def recording_signal(cfg: dict, channels: int, t: int) -> tuple[torch.Tensor, str]:
    raw = recording_rows(RECORDING_START, t).T          # [C, T]
    if raw.shape[0] != channels:
        raise SystemExit(f"{rel(RECORDING)} has {raw.shape[0]} channels, the model {channels}")
    mean = per_channel(cfg, "mean", 0.0, channels)
    std = per_channel(cfg, "std", 1.0, channels)
    x = ((raw - mean[:, None]) / std[:, None]).float()
    norm = "[window] mean/std" if "mean" in cfg["window"] or "std" in cfg["window"] else \
        "no [window] mean/std (raw values)"
    src = (f"{rel(RECORDING)} data rows [{RECORDING_START}, {RECORDING_START + t}) "
           f"(0-based, header not counted), normalised with {norm}")
    return x.contiguous(), src


def synthetic_signal(name: str, channels: int, t: int) -> tuple[torch.Tensor, str]:
    seed = zlib.crc32(f"stream/{name}".encode())
    gen = torch.Generator().manual_seed(seed)
    f64 = dict(generator=gen, dtype=torch.float64)
    j = torch.arange(t, dtype=torch.float64)
    x = 0.3 * torch.randn(channels, 1, **f64)                        # offset
    for _ in range(3):
        amp = 0.3 + 0.4 * torch.rand(channels, 1, **f64)
        period = 6.0 + 54.0 * torch.rand(channels, 1, **f64)
        phase = 2 * math.pi * torch.rand(channels, 1, **f64)
        x = x + amp * torch.sin(2 * math.pi * j / period + phase)
    x = x + 0.05 * torch.randn(channels, t, **f64)
    src = f"sum of 3 sines + offset + noise, torch.Generator seed crc32('stream/{name}') = {seed}"
    return x.float().contiguous(), src


# ---------------------------------------------------------------------------------------------


def check_io(model: rt.ReflexModel, d: Path):
    """The model must reproduce the dir's io.safetensors before its outputs are trusted."""
    io = load_file(str(d / "io.safetensors"))
    x, want = io["input"], io["output"]
    if tuple(x.shape[1:]) != (model.channels, model.length):
        raise SystemExit(f"{rel(d)}: io input {tuple(x.shape)} vs model "
                         f"[{model.channels}, {model.length}]")
    if tuple(want.shape) != (x.shape[0], model.out_features):
        raise SystemExit(f"{rel(d)}: io output {tuple(want.shape)} vs model "
                         f"[{x.shape[0]}, {model.out_features}]")
    with torch.no_grad():
        got32 = model(x)
    got64 = rt.reference_output(model, x)
    tol = 1e-4 * want.abs().max().item() + 1e-5
    for what, got in (("f32", got32), ("f64", got64)):
        err = (got - want).abs().max().item()
        if not err <= tol:
            raise SystemExit(f"{rel(d)}: reflex.torch_ref ({what}) does not reproduce io.safetensors:"
                             f" max|diff| {err:.3e} > {tol:.3e}")


def generate(d: Path, kind: str) -> str:
    cfg = rt.load_config(d / "reflex.toml")
    model = rt.load_model(d / "reflex.toml")
    check_io(model, d)
    c, length = model.channels, model.length
    t = length + EXTRA
    if kind == "recording":
        stream, src = recording_signal(cfg, c, t)
    else:
        stream, src = synthetic_signal(d.name, c, t)
    assert stream.shape == (c, t) and stream.dtype == torch.float32

    # every window start 0..T-L (hop 1); hop h takes starts 0, h, 2h, ...
    wins = stream.unfold(1, length, 1).permute(1, 0, 2).contiguous()     # [T-L+1, C, L]
    ref = rt.reference_output(model, wins)
    with torch.no_grad():
        rt.check_close(model(wins), ref, f"{rel(d)}: f32 vs f64 forward")
    assert ref.shape == (t - length + 1, model.out_features)

    tensors = {"stream": stream, "output": ref.contiguous()}
    hops = [h for h in HOPS if h < length]
    for h in hops:
        n = (t - length) // h + 1
        out = ref[::h][:n].contiguous()
        assert out.shape[0] == n
        # the windows as the spec states them, cut independently of `unfold`
        w = torch.stack([stream[:, i * h:i * h + length] for i in range(n)])
        with torch.no_grad():
            rt.check_close(model(w), out, f"{rel(d)}: hop {h}")
    meta = (f"tools/make_stream_fixtures.py: stream [{c}, {t}] = {src}; output row s: "
            f"eval-mode PyTorch output on stream[:, s : s + {length}]"
            f" (float64 forward of the stored weights, cast to f32)")
    save_file(tensors, str(d / OUT_NAME), metadata={"source": meta})
    size = (d / OUT_NAME).stat().st_size
    print(f"{rel(d):62s} C {c:2d} L {length:3d} T {t:3d} F {model.out_features:3d} "
          f"hops {','.join(map(str, hops)):14s} max|out| {ref.abs().max():9.4f} {size:7d} B")
    return size


def targets():
    """(dir, signal kind) in a fixed order: fixture cases, then bench and trained models."""
    out = [(p, "synthetic") for p in sorted(FIXTURES_DIR.iterdir())
           if (p / "reflex.toml").exists()]
    for s in EXAMPLE_SETS:
        for v in VARIANTS:
            p = ROOT / "examples" / s / v
            if not (p / "reflex.toml").exists():
                raise SystemExit(f"{rel(p)}: no reflex.toml")
            out.append((p, "recording"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", nargs="*", help="only these dirs (case name or e.g. models/standard)")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    total = count = 0
    for d, kind in targets():
        if args.only and d.name not in args.only and \
                f"{d.parent.name}/{d.name}" not in args.only:
            continue
        total += generate(d, kind)
        count += 1
    print(f"{count} dirs, {OUT_NAME} total {total} B ({total / 2**20:.2f} MiB), "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()

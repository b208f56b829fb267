#!/usr/bin/env python3
"""Time the five benchmark models (examples/bench/<variant>/) in eager PyTorch.

    python tools/bench_torch.py [--iters 3000] [--warmup 200] [--json] [variant ...]

One thread, eval mode, no_grad, batch 1, input [1, 6, 128]. Each model is built from its
reflex.toml with the same code that generated it (reflex.torch_ref) and its output is first
checked against the committed io.safetensors. Per call latency is measured with
time.perf_counter_ns; median and p99 are printed in microseconds, with parameters and MACs
counted as `reflexd inspect` counts them. `--json` prints one JSON object per variant.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from reflex import torch_ref as rt  # pip install -e ./python

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "examples" / "bench"
VARIANTS = ("standard", "dilated", "depthwise", "grouped", "residual")


def percentile(sorted_vals, q):
    # nearest-rank percentile
    idx = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[idx]


def bench(variant: str, iters: int, warmup: int) -> dict:
    d = BENCH_DIR / variant
    model = rt.load_model(d / "reflex.toml")
    io = load_file(str(d / "io.safetensors"))
    with torch.no_grad():
        got = model(io["input"])
    max_err = rt.check_close(got, io["output"], f"{variant}: output vs io.safetensors")

    x = io["input"][:1].contiguous()  # [1, 6, 128]
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        for _ in range(iters):
            t0 = time.perf_counter_ns()
            model(x)
            times.append(time.perf_counter_ns() - t0)
    times.sort()
    return {
        "variant": variant,
        "median_us": round(percentile(times, 50) / 1000.0, 2),
        "p99_us": round(percentile(times, 99) / 1000.0, 2),
        "iters": iters,
        "params": rt.param_count(model),
        "macs": rt.mac_count(model),
        "max_abs_err_vs_io": max_err,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--json", action="store_true", help="one JSON object per variant")
    args = ap.parse_args()
    if args.iters < 2000:
        ap.error("--iters must be at least 2000")
    torch.set_num_threads(1)
    if not args.json:
        print(f"torch {torch.__version__}, {platform.machine()}, 1 thread, eager, batch 1, "
              f"{args.iters} iterations")
        print(f"{'variant':10s} {'median_us':>10s} {'p99_us':>10s} {'params':>8s} {'MACs':>10s}")
    for v in args.variants:
        r = bench(v, args.iters, args.warmup)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{v:10s} {r['median_us']:10.1f} {r['p99_us']:10.1f} {r['params']:8d} "
                  f"{r['macs']:10d}", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reflex against eager PyTorch on the five benchmark models, in one run.

    cargo build --release --workspace
    python tools/compare_bench.py [--reflexd target/release/reflexd] [--rounds 2]

For each variant, alternately: `reflexd bench --json` (one thread, ~2 s of windows) and
PyTorch eager with torch.set_num_threads(1) (bench_torch.bench, after checking the model's
output against io.safetensors). Alternating in the same run keeps a shared, noisy machine
from favouring either side; the ratio is what to compare, not the absolute numbers.
Prints a Markdown table: medians and p99 in microseconds per window, and PyTorch / Reflex.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess

import torch

import bench_torch as bt  # tools/ is on sys.path as the script's own folder


def reflexd_bench(exe: str, variant: str) -> dict:
    cfg = bt.BENCH_DIR / variant / "reflex.toml"
    out = subprocess.run([exe, "bench", "--json", "--config", str(cfg)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reflexd", default=str(bt.ROOT / "target" / "release" / "reflexd"))
    ap.add_argument("--rounds", type=int, default=2, help="alternations per variant; the best median of each side is kept")
    ap.add_argument("variants", nargs="*", default=list(bt.VARIANTS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print(f"CPU: {cpu}; torch {torch.__version__}, 1 thread, eager; reflexd bench, 1 thread\n")
    print("| variant | params | MACs | Reflex median µs | Reflex p99 µs | PyTorch median µs | PyTorch p99 µs | PyTorch / Reflex |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for v in args.variants:
        rx, pt = [], []
        for _ in range(args.rounds):
            rx.append(reflexd_bench(args.reflexd, v)["total"])
            pt.append(bt.bench(v, 3000, 200))
        r = min(rx, key=lambda s: s["median_us"])
        p = min(pt, key=lambda s: s["median_us"])
        print(f"| {v} | {p['params']:,} | {p['macs']:,} | {r['median_us']:.1f} | {r['p99_us']:.1f} | "
              f"{p['median_us']:.1f} | {p['p99_us']:.1f} | {p['median_us'] / r['median_us']:.1f}× |", flush=True)


if __name__ == "__main__":
    main()

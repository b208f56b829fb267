#!/usr/bin/env python3
"""Measure the five bundled example models (examples/models/<variant>/) with Reflex itself.

    cargo build --release --workspace && pip install './python[compare]'
    python tools/evaluate_models.py [--json] [--bench-repeats N]

A thin caller of the `reflex` package (`reflex.compare.evaluate_dirs`): the held-out part of the
gaitmap dataset (examples/datasets/gaitmap: per recording the last 30 % after a one-window gap,
the time split of examples/models/SPLIT.md) is replayed through each model with
`reflexd replay --speed max` at the config's hop and the pure windows scored; `reflexd inspect`
gives parameters and MACs, `reflexd bench --json` (whole windows and `--hop`) the latency on this
machine. To train and compare the variants from scratch, use `reflex compare` (tools/train_models.py
shows the gaitmap call; docs/compare.md has the results).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reflex.compare import evaluate_dirs

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("standard", "dilated", "depthwise", "grouped", "residual")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--bench-repeats", type=int, default=3)
    args = ap.parse_args()
    dirs = [ROOT / "examples" / "models" / v for v in VARIANTS]
    res = evaluate_dirs(ROOT / "examples" / "datasets" / "gaitmap", dirs, bench_repeats=args.bench_repeats)
    if args.json:
        print(json.dumps({Path(k).name: v for k, v in res.items()}, indent=1))
        return
    print("| variant | params | MACs | accuracy | macro-F1 | test windows | whole median / p99 µs | "
          "streaming median / p99 µs |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for d, r in res.items():
        w, s = r["latency_whole"], r["latency_stream"]
        print(f"| {Path(d).name} | {r['params']:,} | {r['macs']:,} | {r['metrics']['accuracy']:.4f} | "
              f"{r['metrics']['macro_f1']:.4f} | {r['metrics']['windows']} | {w['median_us']:.1f} / "
              f"{w['p99_us']:.0f} | {s['median_us']:.1f} / {s['p99_us']:.0f} (hop {r['hop']}) |")
    print("\nWithin-subject time split (two people, one class per file): see examples/models/SPLIT.md.")


if __name__ == "__main__":
    main()

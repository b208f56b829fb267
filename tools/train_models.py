#!/usr/bin/env python3
"""Train and compare the five convolution variants on the bundled gaitmap recordings.

    cargo build --release --workspace && pip install './python[compare]'
    python tools/train_models.py [--out runs/gaitmap] [--epochs 15] [--seeds 3]

A thin caller of `reflex compare` (the `reflex` package's training, export and reflexd-replay
evaluation; docs/compare.md):

    reflex compare examples/datasets/gaitmap --out runs/gaitmap --window 128 --hop 16 --epochs 15 --seeds 3

examples/datasets/gaitmap is the time split of examples/models/SPLIT.md (per recording: first 70 %
train, a 128-sample gap, the rest test), written as a dataset (recordings.csv + dataset.toml).
The trained models land in OUT/<variant>/ with report.md, report.json and plots; nothing is
written to examples/models/.

The five models in examples/models/<variant>/ (with the io.safetensors/stream.safetensors
fixtures the Rust tests read) were trained by the earlier, hand-wired version of this script
(git history) on the same split; they are kept as they are. tools/evaluate_models.py measures
them through the package.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reflex.cli import main as reflex_main

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "gaitmap"))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    return reflex_main(["compare", str(ROOT / "examples" / "datasets" / "gaitmap"), "--out", args.out,
                        "--window", "128", "--hop", "16", "--epochs", str(args.epochs),
                        "--seeds", str(args.seeds), "--threads", str(args.threads)])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Compare the five trained example models (examples/models/<variant>/), measured with Reflex.

    cargo build --release --workspace
    python tools/train_models.py          # only when examples/models/ should be regenerated
    python tools/evaluate_models.py [--json] [--bench-repeats N] [--no-torch-check]

For each variant, everything comes from target/release/reflexd itself:
  accuracy  the test part of every recording (split.json, written by train_models.py: the
            last 30 % after a one-window gap) is copied, original text lines and header
            `t,ch0,...,ch5`, into a temporary csv and replayed with
            `reflexd replay --config examples/models/<variant>/reflex.toml --speed max --out X`;
            every record's `label` is scored against the recording's class (one class per
            file): accuracy over all test windows, per class, confusion matrix;
  size      `reflexd inspect` -> parameters and MACs per window (the `total` row);
  speed     `reflexd bench --json` -> median and p99 microseconds per window (the run with the
            lowest median of --bench-repeats runs, to damp noise from other processes).

Also reported (not from Reflex): accuracy on the windows where the foot moves (gyroscope RMS over
the window >= 20 deg/s, from the raw csv values; the recordings begin and end standing and a
standing window cannot tell stairs_up from stairs_down), a no-CNN baseline (nearest class
centroid of each window's per-channel mean, fitted on the train windows), and, unless
--no-torch-check, a check that Reflex's `values` match the PyTorch reference (tools/
reflex.torch_ref) on every test window within the SPEC tolerance.

Prints a Markdown table (or one JSON object with --json).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"
REFLEXD = ROOT / "target" / "release" / "reflexd"
VARIANTS = ("standard", "dilated", "depthwise", "grouped", "residual")
MOVING_DPS = 20.0   # gyroscope RMS (deg/s) over a window from which the foot counts as moving


def die(msg: str):
    print(f"evaluate_models.py: {msg}", file=sys.stderr)
    sys.exit(1)


def run(args) -> str:
    p = subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        die(f"{' '.join(str(a) for a in args)} failed ({p.returncode}):\n{p.stderr.strip()}")
    return p.stdout


def load_split():
    path = MODELS / "split.json"
    if not path.exists():
        die(f"{path} is missing: run python tools/train_models.py first")
    return json.loads(path.read_text())


def cut_test_csvs(split, tmp: Path):
    """One csv per recording holding its header and its test rows, copied as text.
    -> {stem: (csv path, class index, raw test samples float64 [n, 6])}"""
    out = {}
    labels = split["labels"]
    for stem, e in split["recordings"].items():
        lines = (ROOT / e["path"]).read_text().splitlines()
        header, rows = lines[0], [ln for ln in lines[1:] if ln.strip()]
        if len(rows) != e["samples"]:
            die(f"{e['path']}: {len(rows)} data rows, split.json says {e['samples']}")
        first, last = e["test"]["first"], e["test"]["last"]
        test_rows = rows[first:last + 1]
        path = tmp / f"{stem}_test.csv"
        path.write_text(header + "\n" + "\n".join(test_rows) + "\n")
        raw = np.array([[float(v) for v in ln.split(",")[1:]] for ln in test_rows])
        out[stem] = (path, labels.index(e["class"]), raw)
    return out


def window_raw(raw: np.ndarray, window: int, hop: int) -> np.ndarray:
    count = (len(raw) - window) // hop + 1
    idx = np.arange(count)[:, None] * hop + np.arange(window)[None, :]
    return raw[idx].transpose(0, 2, 1)        # [count, 6, window]


def moving_mask(wins: np.ndarray) -> np.ndarray:
    return np.sqrt((wins[:, 3:6] ** 2).sum(axis=1).mean(axis=1)) >= MOVING_DPS


def replay(config: Path, csv: Path, out: Path):
    run([REFLEXD, "replay", "--config", config, "--speed", "max", "--out", out, csv])
    recs = [json.loads(ln) for ln in out.read_text().splitlines() if ln.strip()]
    if [r["window"] for r in recs] != list(range(len(recs))):
        die(f"replay of {csv.name} with {config}: windows not numbered 0..{len(recs) - 1}")
    return recs


def inspect(config: Path):
    text = run([REFLEXD, "inspect", "--config", config])
    for line in text.splitlines():
        if line.startswith("total"):
            nums = re.findall(r"\d[\d,]*", line)
            return int(nums[0].replace(",", "")), int(nums[1].replace(",", ""))
    die(f"reflexd inspect --config {config}: no total row")


def bench(config: Path, repeats: int):
    best = None
    for _ in range(max(1, repeats)):
        b = json.loads(run([REFLEXD, "bench", "--json", "--config", config]))
        if best is None or b["total"]["median_us"] < best["total"]["median_us"]:
            best = b
    return best["total"]["median_us"], best["total"]["p99_us"]


def baseline(split, tests, window, hop):
    """Nearest class centroid of each window's per-channel mean (normalised), fitted on the
    train windows (train hop) and scored on the same test windows as the models."""
    mean, std = np.array(split["mean"]), np.array(split["std"])
    labels = split["labels"]
    feats, ys = [], []
    for stem, e in split["recordings"].items():
        rows = (ROOT / e["path"]).read_text().splitlines()[1:]
        a, b = e["train"]["first"], e["train"]["last"] + 1
        raw = np.array([[float(v) for v in ln.split(",")[1:]] for ln in rows[a:b]])
        w = window_raw(raw, window, split["train_hop"])
        feats.append((w.mean(axis=2) - mean) / std)
        ys += [labels.index(e["class"])] * len(w)
    feats, ys = np.concatenate(feats), np.array(ys)
    cent = np.stack([feats[ys == c].mean(axis=0) for c in range(len(labels))])
    correct = total = 0
    for stem, (_, cls, raw) in tests.items():
        f = (window_raw(raw, window, hop).mean(axis=2) - mean) / std
        pred = ((f[:, None, :] - cent[None]) ** 2).sum(axis=2).argmin(axis=1)
        correct += int((pred == cls).sum())
        total += len(pred)
    return correct / total


def torch_check(config: Path, wins: np.ndarray, values: np.ndarray):
    """Reflex values vs the PyTorch reference on the same (raw) windows. -> (labels agreeing,
    worst error as a fraction of the SPEC tolerance)."""
    import torch

    from reflex import torch_ref as rt

    torch.set_num_threads(2)
    cfg = rt.load_config(config)
    model = rt.load_model(config)
    m = np.array(cfg["window"]["mean"])[None, :, None]
    s = np.array(cfg["window"]["std"])[None, :, None]
    x = torch.from_numpy((wins - m) / s).float()
    ref = rt.reference_output(model, x)
    got = torch.from_numpy(values).float()
    ratio = float(((got - ref).abs() / rt.tolerance(ref)).max())
    agree = int((got.argmax(dim=1) == ref.argmax(dim=1)).sum())
    return agree, ratio


def evaluate(variant, split, tests, tmp, repeats, check):
    config = MODELS / variant / "reflex.toml"
    cfg = tomllib.loads(config.read_text())
    labels = cfg["output"]["labels"]
    if labels != split["labels"]:
        die(f"{config}: labels {labels} differ from split.json {split['labels']}")
    window, hop = cfg["window"]["length"], cfg["window"]["hop"]
    k = len(labels)
    confusion = np.zeros((k, k), dtype=int)
    moving_ok = moving_n = 0
    all_wins, all_values = [], []
    for stem, (csv, cls, raw) in tests.items():
        recs = replay(config, csv, tmp / f"{variant}_{stem}.jsonl")
        wins = window_raw(raw, window, hop)
        if len(recs) != len(wins):
            die(f"{variant}/{stem}: {len(recs)} records, expected {len(wins)} windows")
        pred = np.array([labels.index(r["label"]) for r in recs])
        np.add.at(confusion, (np.full(len(pred), cls), pred), 1)
        mov = moving_mask(wins)
        moving_ok += int((pred[mov] == cls).sum())
        moving_n += int(mov.sum())
        all_wins.append(wins)
        all_values.append(np.array([r["values"] for r in recs], dtype=np.float64))
    params, macs = inspect(config)
    median_us, p99_us = bench(config, repeats)
    res = {
        "variant": variant,
        "params": params,
        "macs": macs,
        "windows": int(confusion.sum()),
        "accuracy": float(np.trace(confusion) / confusion.sum()),
        "per_class": {lab: float(confusion[i, i] / confusion[i].sum()) for i, lab in enumerate(labels)},
        "confusion": confusion.tolist(),
        "moving_windows": moving_n,
        "accuracy_moving": moving_ok / moving_n,
        "median_us": median_us,
        "p99_us": p99_us,
    }
    if check:
        agree, ratio = torch_check(config, np.concatenate(all_wins), np.concatenate(all_values))
        res["torch_label_agreement"] = agree
        res["torch_max_error_over_tolerance"] = ratio
    return res


def split_statement(split) -> str:
    recs = split["recordings"]
    parts = ", ".join(f"{stem} {e['test']['first']}..{e['test']['last']}" for stem, e in recs.items())
    return (f"Split by time, per recording, never overlapping: the first 70 % of each recording's "
            f"samples are train, the next {split['gap']} samples (one window) are a gap used by "
            f"nobody, the rest (the last 30 % minus the gap) is test; normalisation mean/std come "
            f"from the train samples only. Test samples (0-based data rows): {parts}. Test windows: "
            f"{split['window']} samples, hop {split['eval_hop']}, numbered from the first test "
            f"sample of each recording (examples/models/SPLIT.md).")


def markdown(results, split, base) -> str:
    labels = split["labels"]
    out = ["| variant | params | MACs | accuracy (test windows) | per-class accuracy | "
           "Reflex median µs | p99 µs |", "|---|---:|---:|---:|---|---:|---:|"]
    for r in results:
        pc = ", ".join(f"{lab} {r['per_class'][lab]:.3f}" for lab in labels)
        out.append(f"| {r['variant']} | {r['params']:,} | {r['macs']:,} | {r['accuracy']:.3f} "
                   f"({int(np.trace(np.array(r['confusion'])))}/{r['windows']}) | "
                   f"{pc} | {r['median_us']:.1f} | {r['p99_us']:.1f} |")
    out += ["", split_statement(split), "",
            "**Warning:** these recordings are tiny — one subject per activity, under a minute "
            "each, the walk recordings from another gaitmap example (and sensor mounting) than "
            "the stair recordings, so gravity direction alone separates walk from stairs. The "
            "accuracies say little beyond this data: not about other people, sensors or "
            "placements, and differences of a few points between variants are within noise.", "",
            "Confusion matrices (rows: true class, columns: Reflex label; order "
            + ", ".join(labels) + "):", ""]
    for r in results:
        out.append(f"- {r['variant']}: " + " / ".join(
            "[" + " ".join(f"{v:3d}" for v in row) + "]" for row in r["confusion"]))
    n_mov = results[0]["moving_windows"] if results else 0
    out += ["", f"Accuracy on the {n_mov} of {results[0]['windows'] if results else 0} test "
            f"windows where the foot moves (gyroscope RMS >= {MOVING_DPS:g} deg/s; the rest is "
            "mostly standing at the end of each recording, where stairs_up and stairs_down "
            "cannot be told apart): "
            + ", ".join(f"{r['variant']} {r['accuracy_moving']:.3f}" for r in results) + ".",
            "", f"No-CNN baseline (nearest class centroid of each window's per-channel mean, "
            f"fitted on the train windows): {base:.3f} on the same test windows."]
    if results and "torch_label_agreement" in results[0]:
        out += ["", "Reflex vs PyTorch reference on every test window: " + ", ".join(
            f"{r['variant']} labels {r['torch_label_agreement']}/{r['windows']}, max error "
            f"{r['torch_max_error_over_tolerance']:.3f}× tolerance" for r in results) + "."]
    out += ["", "Timing: `reflexd bench` on this machine (one window, best median of "
            "the repeats); other load on the machine inflates it."]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--bench-repeats", type=int, default=3, metavar="N",
                    help="reflexd bench runs per variant; the lowest median is kept (default 3)")
    ap.add_argument("--no-torch-check", action="store_true",
                    help="skip comparing Reflex's values with the PyTorch reference")
    ap.add_argument("--only", nargs="+", choices=VARIANTS)
    args = ap.parse_args()
    if not REFLEXD.exists():
        die(f"{REFLEXD} is missing: run cargo build --release --workspace first")
    split = load_split()
    with tempfile.TemporaryDirectory(prefix="reflex-eval-") as d:
        tmp = Path(d)
        tests = cut_test_csvs(split, tmp)
        results = []
        for v in args.only or VARIANTS:
            if not args.json:
                print(f"evaluating {v} ...", file=sys.stderr, flush=True)
            results.append(evaluate(v, split, tests, tmp, args.bench_repeats,
                                    not args.no_torch_check))
        cfg = tomllib.loads((MODELS / VARIANTS[0] / "reflex.toml").read_text())
        base = baseline(split, tests, cfg["window"]["length"], cfg["window"]["hop"])
    if args.json:
        print(json.dumps({"split": split_statement(split), "labels": split["labels"],
                          "baseline_centroid_accuracy": base, "moving_gyro_rms_dps": MOVING_DPS,
                          "results": results}, indent=2))
    else:
        print(markdown(results, split, base))


if __name__ == "__main__":
    main()

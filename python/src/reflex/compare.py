"""`reflex compare`: which convolution pays off, on a labelled dataset, in one command (docs/compare.md).

For every variant (`reflex.train.VARIANTS`) and seed, and every held-out split:

1. train the six-layer network of `reflex.train` on the pure windows of the training recordings
   (windows wholly inside one labelled segment, at `--hop`);
2. export it with `reflex.export` (torch.fx → reflex.toml + weights, verified against reflexd);
3. replay every held-out recording through the real engine:
   `reflexd replay --config MODEL/reflex.toml --speed max --out RECORDS.jsonl HELD_OUT.csv`,
   and score the records of the pure windows (window w covers samples [w*hop, w*hop + length)).

Then per variant `reflexd inspect` (parameters, MACs) and `reflexd bench --json` (whole windows)
and `reflexd bench --json --hop HOP` (streaming) on the first seed's model, and the report:

    OUT/report.json, OUT/report.md, OUT/accuracy_vs_latency.png, OUT/confusion_<variant>.png
    OUT/<variant>/reflex.toml + weights.safetensors     (first split, first seed: ready to run)
    OUT/<variant>/<split>-seed<k>/...                    (every model, its replayed records, result.json)
    OUT/heldout/<split>/<recording>.csv                  (what was replayed: t + channels)

Nothing is written outside OUT. Work in progress lives in OUT/.work and moves into place only
when complete; an interrupt (Ctrl-C, SIGTERM) removes OUT/.work, so OUT holds only whole
models, and the same command resumes from them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import dataset as dsm
from ._errors import ReflexdError
from .dataset import Dataset, DatasetError, Split

__all__ = ["run_compare", "score_records", "CompareError", "SCHEMA"]

SCHEMA = "reflex-compare/1"


class CompareError(ValueError):
    """A problem with the command's arguments or its output folder."""


# ---------------------------------------------------------------------------------------------
# small helpers


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _round_sig(v: float, digits: int = 6) -> float:
    return float(f"{v:.{digits}g}")


def _reflexd() -> str:
    from ._verify import find_reflexd

    return find_reflexd()


def _run(cmd: list[str], what: str, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ReflexdError(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc.stdout


def write_heldout_csv(path: Path, rec: dsm.Recording) -> None:
    """A Reflex csv log (`time_column = true`): header `t,<channels>`, the recording's values."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write("t," + ",".join(f"ch{i}" for i in range(rec.x.shape[1])) + "\n")
        for t, row in zip(rec.t.tolist(), rec.x.tolist()):
            f.write(repr(t) + "," + ",".join(repr(v) for v in row) + "\n")
    os.replace(tmp, path)


def windows_of(rec: dsm.Recording, length: int, hop: int, mean: np.ndarray,
               std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pure windows of a recording, normalised as Reflex does in f32: x [k, C, L], y [k]."""
    starts, y = dsm.pure_windows(rec, length, hop)
    if len(starts) == 0:
        return np.zeros((0, rec.x.shape[1], length), np.float32), y
    xs = rec.x.astype(np.float32)
    z = ((xs - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32)
    idx = starts[:, None] + np.arange(length)[None, :]
    return z[idx].transpose(0, 2, 1).copy(), y


# ---------------------------------------------------------------------------------------------
# scoring


def score_records(records: Sequence[dict], y: np.ndarray, length: int, hop: int,
                  n_classes: int) -> np.ndarray:
    """Confusion matrix [true, predicted] over the pure windows of one replayed recording.

    `records` are reflexd's prediction records (`window`, `index`), `y` the recording's
    per-sample class (-1 unlabelled). Windows that are not pure are not scored.
    """
    truth = dsm.window_truth(y, length, hop)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    if len(records) != len(truth):
        raise ReflexdError(f"reflexd replay gave {len(records)} records for {len(truth)} windows")
    for r in records:
        w = int(r["window"])
        c = truth[w]
        if c >= 0:
            cm[c, int(r["index"])] += 1
    return cm


def metrics(cm: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 (over classes present in the test windows) and per-class recall."""
    total = cm.sum()
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    recall = np.divide(tp, support, out=np.full(len(tp), np.nan), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)
    f1 = np.divide(2 * precision * np.nan_to_num(recall), precision + np.nan_to_num(recall),
                   out=np.zeros(len(tp)), where=(precision + np.nan_to_num(recall)) > 0)
    present = support > 0
    return {"accuracy": float(tp.sum() / total) if total else float("nan"),
            "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
            "recall": [None if math.isnan(v) else float(v) for v in recall],
            "windows": int(total)}


def _mean_sd(xs: list[float]) -> dict[str, Any]:
    a = np.asarray(xs, float)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "per_seed": [float(v) for v in a]}


# ---------------------------------------------------------------------------------------------
# reflexd measurements


def inspect_model(config: Path) -> dict[str, int]:
    out = _run([_reflexd(), "inspect", "--config", str(config)], "reflexd inspect")
    for line in out.splitlines():
        if line.startswith("total"):
            nums = [int(v.replace(",", "")) for v in re.findall(r"\d[\d,]*", line)]
            if len(nums) >= 2:
                return {"params": nums[0], "macs": nums[1]}
    raise ReflexdError(f"reflexd inspect --config {config}: no total row in\n{out}")


def bench_model(config: Path, hop: int | None = None, repeats: int = 3) -> dict[str, float]:
    """The run with the lowest median of `repeats` `reflexd bench --json` runs (damps noise)."""
    best = None
    for _ in range(repeats):
        cmd = [_reflexd(), "bench", "--json", "--config", str(config)]
        if hop is not None:
            cmd += ["--hop", str(hop)]
        res = json.loads(_run(cmd, "reflexd bench"))
        tot = res["total"]
        if best is None or tot["median_us"] < best["median_us"]:
            best = {"median_us": float(tot["median_us"]), "p99_us": float(tot["p99_us"]),
                    "windows_per_s": float(res.get("windows_per_s", float("nan")))}
    assert best is not None
    return best


def replay_records(config: Path, log: Path, out: Path, expected: int | None = None) -> list[dict]:
    """`reflexd replay --speed max --out OUT LOG`; the records.

    A replay is lossless (reflexd exits 1 if it could not write every record); with `expected`,
    a records file that holds another number of records is an error all the same, never scored.
    """
    cmd = [_reflexd(), "replay", "--config", str(config), "--speed", "max", "--out", str(out), str(log)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ReflexdError(f"reflexd replay failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    with open(out) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if expected is not None and len(records) != expected:
        raise ReflexdError(f"reflexd replay of {log} with {config}: {len(records)} records for {expected} windows")
    return records


# ---------------------------------------------------------------------------------------------
# the command


@dataclass
class Options:
    dataset: Path
    out: Path
    window: int = 128
    hop: int = 64
    variants: list[str] = field(default_factory=list)
    epochs: int = 15
    seeds: int = 3
    test_subjects: list[str] | None = None
    folds: int | None = None
    threads: int = 1
    width: int = 32
    kernel: int = 5
    bench_repeats: int = 3
    progress: bool = True
    bench: bool = True          # False: no latency figures (tests)


class _Progress:
    """tqdm when available and wanted, else one line per step on stderr."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="epoch", dynamic_ncols=True,
                                file=sys.stderr)
            except ImportError:
                pass

    def step(self, n: int = 1, note: str = "") -> None:
        if self.bar is not None:
            self.bar.update(n)
            if note:
                self.bar.set_postfix_str(note, refresh=False)

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        elif self.enabled:
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _signature(opts: Options, ds: Dataset, protocol: dict, split: Split) -> dict:
    return {"schema": SCHEMA, "protocol": protocol, "classes": ds.classes, "channels": ds.channels,
            "split": split.name, "train": sorted(r.name for r in split.train),
            "test": sorted(r.name for r in split.test)}


def run_compare(opts: Options) -> dict:
    """Run the comparison; returns the report dict (also written to OUT/report.json)."""
    import torch

    from . import train as tr

    variants = opts.variants or list(tr.VARIANTS)
    bad = [v for v in variants if v not in tr.VARIANTS]
    if bad:
        raise CompareError(f"--variants: unknown {', '.join(bad)} (one of {', '.join(tr.VARIANTS)})")
    if opts.seeds < 1 or opts.epochs < 1 or opts.window < 2 or opts.hop < 1:
        raise CompareError("--seeds, --epochs and --hop must be >= 1, --window >= 2")
    _reflexd()  # fail early without it
    ds = dsm.read_dataset(opts.dataset)
    splits = dsm.make_splits(ds, test_subjects=opts.test_subjects, folds=opts.folds)
    protocol = tr.Protocol(window=opts.window, hop=opts.hop, epochs=opts.epochs, width=opts.width,
                           kernel=opts.kernel)
    L, K = opts.window, len(ds.classes)

    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    if work.exists():
        shutil.rmtree(work)
    torch.set_num_threads(max(1, opts.threads))

    def on_term(signum, frame):  # SIGTERM cleans up like Ctrl-C
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    units_total = len(variants) * opts.seeds * len(splits)
    bar = _Progress(units_total * opts.epochs, opts.progress, "reflex compare")
    try:
        work.mkdir()
        # per split: normalisation, training windows, held-out csvs
        prepared = []
        for split in splits:
            xs = np.concatenate([r.x for r in split.train])
            mean = np.array([_round_sig(v) for v in xs.mean(axis=0)])
            std = np.array([_round_sig(max(v, 1e-6)) for v in xs.std(axis=0)])
            parts = [windows_of(r, L, opts.hop, mean, std) for r in split.train]
            xtr = np.concatenate([p[0] for p in parts])
            ytr = np.concatenate([p[1] for p in parts])
            if len(xtr) == 0:
                raise DatasetError(f"{ds.root}: split {split.name}: no pure training windows of "
                                   f"{L} samples")
            missing = [ds.classes[c] for c in range(K) if not (ytr == c).any()]
            if missing:
                bar.write(f"warning: split {split.name}: no training windows of {', '.join(missing)}")
            held = out / "heldout" / split.name
            held.mkdir(parents=True, exist_ok=True)
            for r in split.test:
                p = held / f"{r.name}.csv"
                if not p.exists():
                    write_heldout_csv(p, r)
            prepared.append((split, mean, std, xtr, ytr, held))
            bar.write(f"{split.name}: {len(split.train)} train recordings ({len(split.train_subjects)} "
                      f"subjects, {len(xtr)} windows {np.bincount(ytr, minlength=K).tolist()}), "
                      f"{len(split.test)} test recordings ({len(split.test_subjects)} subjects)")

        units: dict[tuple[str, int, str], dict] = {}
        for seed in range(opts.seeds):      # seed-major: every variant has a result early
            for variant in variants:
                for split, mean, std, xtr, ytr, held in prepared:
                    key = (variant, seed, split.name)
                    final = out / variant / f"{split.name}-seed{seed}"
                    sig = _signature(opts, ds, protocol.as_dict(), split)
                    done = final / "result.json"
                    if done.exists():
                        res = json.loads(done.read_text())
                        if res.get("signature") != sig:
                            raise CompareError(f"{final} holds a model of another protocol or dataset: "
                                               "use another --out or remove it")
                        units[key] = res
                        bar.step(opts.epochs, f"{variant} seed {seed}: done before")
                        continue
                    units[key] = _train_unit(variant, seed, split, ds, protocol, mean, std, xtr,
                                             ytr, held, work, final, sig, bar)
        # the shipped model of each variant: first split, first seed
        measures = {}
        for variant in variants:
            src = out / variant / f"{splits[0].name}-seed0"
            for name in ("reflex.toml", "weights.safetensors"):
                tmp = out / variant / f".{name}.tmp{os.getpid()}"
                shutil.copyfile(src / name, tmp)
                os.replace(tmp, out / variant / name)
            cfg = out / variant / "reflex.toml"
            bar.write(f"{variant}: reflexd inspect and bench")
            m: dict[str, Any] = dict(inspect_model(cfg))
            m["latency_whole"] = m["latency_stream"] = None
            if opts.bench:
                m["latency_whole"] = bench_model(cfg, None, opts.bench_repeats)
                m["latency_stream"] = bench_model(cfg, opts.hop, opts.bench_repeats)
                m["latency_stream"]["hop"] = opts.hop
            measures[variant] = m
        bar.close()
        report = _report(opts, ds, splits, protocol, variants, units, measures)
        _write_report(out, report, ds)
        return report
    except KeyboardInterrupt:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
        for p in out.rglob(f".*.tmp{os.getpid()}*"):
            p.unlink(missing_ok=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
        shutil.rmtree(work, ignore_errors=True)


def _train_unit(variant: str, seed: int, split: Split, ds: Dataset, protocol, mean, std, xtr, ytr,
                held: Path, work: Path, final: Path, sig: dict, bar: _Progress) -> dict:
    import torch

    from . import train as tr
    from ._export import export

    C, L, K = len(ds.channels), protocol.window, len(ds.classes)
    stage = work / f"{variant}-{split.name}-seed{seed}"
    stage.mkdir(parents=True)
    torch.manual_seed(1000 + seed)
    model = tr.build_model(variant, C, K, protocol)
    log = tr.train_model(model, xtr, ytr, protocol, seed=1000 + seed,
                         progress=lambda e, loss: bar.step(1, f"{variant} seed {seed} loss {loss:.3f}"))
    exp = export(model, stage, channels=C, length=L, hop=protocol.hop, labels=ds.classes,
                 mean=mean.tolist(), std=std.tolist(), verify=True)
    cfg = stage / "reflex.toml"
    text = cfg.read_text()
    if "time_column = false" not in text:
        raise CompareError(f"{cfg}: unexpected [source] section from reflex.export")
    header = (f"# reflex compare: variant {variant!r}, seed {seed}, split {split.name} ({split.kind});\n"
              f"# dataset {ds.root.name}: {C} channels ({', '.join(ds.channels)}) at {ds.rate_hz:g} Hz,\n"
              f"# classes {', '.join(ds.classes)}. Replay a recording (csv: t, channels):\n"
              f"#   reflexd replay --config reflex.toml --speed max --out records.jsonl LOG.csv\n")
    cfg.write_text(header + text.replace("time_column = false", "time_column = true"))
    # evaluation: Reflex's own outputs on the held-out recordings
    rec_dir = stage / "replay"
    rec_dir.mkdir()
    cm = np.zeros((K, K), np.int64)
    per_rec = {}
    agree = total = 0
    for r in split.test:
        csv = held / f"{r.name}.csv"
        n_windows = len(dsm.window_truth(r.y, L, protocol.hop))
        records = replay_records(cfg, csv, rec_dir / f"{r.name}.jsonl", expected=n_windows)
        c = score_records(records, r.y, L, protocol.hop, K)
        cm += c
        per_rec[r.name] = {"subject": r.subject, "confusion": c.tolist()}
        # PyTorch on the same pure windows: how often it agrees with reflexd (a sanity figure)
        xw, yw = windows_of(r, L, protocol.hop, mean, std)
        if len(xw):
            pt = tr.predict(model, xw).argmax(axis=1)
            starts, _ = dsm.pure_windows(r, L, protocol.hop)
            rx = np.array([records[s // protocol.hop]["index"] for s in starts])
            agree += int((pt == rx).sum())
            total += len(rx)
    result = {"signature": sig, "variant": variant, "seed": seed, "split": split.name,
              "train_seconds": log["seconds"], "loss": log["loss"], "confusion": cm.tolist(),
              "recordings": per_rec, "metrics": metrics(cm),
              "torch_reflexd_agreement": agree / total if total else None,
              "verify_max_error": exp.max_error}
    _atomic_write(stage / "result.json", json.dumps(result, indent=1) + "\n")
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        shutil.rmtree(final)
    os.replace(stage, final)
    bar.write(f"{variant} seed {seed} {split.name}: accuracy {result['metrics']['accuracy']:.4f}, "
              f"macro-F1 {result['metrics']['macro_f1']:.4f} (reflexd replay; {log['seconds']:.0f} s training)")
    return result


# ---------------------------------------------------------------------------------------------
# the report


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _report(opts: Options, ds: Dataset, splits: list[Split], protocol, variants, units, measures) -> dict:
    import torch

    K = len(ds.classes)
    var = {}
    for v in variants:
        accs, f1s, recalls = [], [], []
        cm_all = np.zeros((K, K), np.int64)
        per_subject: dict[str, list[float]] = {}
        for seed in range(opts.seeds):
            cm = np.zeros((K, K), np.int64)
            sub_cm: dict[str, np.ndarray] = {}
            for s in splits:
                u = units[(v, seed, s.name)]
                cm += np.asarray(u["confusion"])
                for rec in u["recordings"].values():
                    sub_cm.setdefault(rec["subject"], np.zeros((K, K), np.int64))
                    sub_cm[rec["subject"]] += np.asarray(rec["confusion"])
            m = metrics(cm)
            accs.append(m["accuracy"])
            f1s.append(m["macro_f1"])
            recalls.append(m["recall"])
            cm_all += cm
            for sub, c in sub_cm.items():
                if c.sum():
                    per_subject.setdefault(sub, []).append(float(np.trace(c) / c.sum()))
        rec_mean = {}
        for k, name in enumerate(ds.classes):
            vals = [r[k] for r in recalls if r[k] is not None]
            rec_mean[name] = float(np.mean(vals)) if vals else None
        agreements = [units[(v, seed, s.name)]["torch_reflexd_agreement"]
                      for seed in range(opts.seeds) for s in splits]
        agreements = [a for a in agreements if a is not None]
        var[v] = {
            "params": measures[v]["params"], "macs": measures[v]["macs"],
            "accuracy": _mean_sd(accs), "macro_f1": _mean_sd(f1s), "per_class_recall": rec_mean,
            "latency_whole": measures[v]["latency_whole"],
            "latency_stream": measures[v]["latency_stream"],
            "confusion": cm_all.tolist(),
            "per_subject_accuracy": {s: _mean_sd(a) for s, a in sorted(per_subject.items(),
                                                                       key=lambda kv: dsm._natural(kv[0]))},
            "windows_scored": int(cm_all.sum() // opts.seeds),
            "train_seconds": float(sum(units[(v, seed, s.name)]["train_seconds"]
                                       for seed in range(opts.seeds) for s in splits)),
            "torch_reflexd_agreement": float(min(agreements)) if agreements else None,
            "model_dir": v,
        }
    try:
        ver = _run([_reflexd(), "--version"], "reflexd --version").strip()
    except ReflexdError:
        ver = "unknown"
    return {
        "schema": SCHEMA,
        "dataset": {"path": str(ds.root), "name": ds.root.name, "rate_hz": ds.rate_hz,
                    "channels": ds.channels, "classes": ds.classes,
                    "recordings": len(ds.recordings), "subjects": len(ds.subjects)},
        "protocol": protocol.as_dict() | {"seeds": opts.seeds, "threads": opts.threads,
                                           "scoring": "pure windows (wholly inside one labelled segment) "
                                                      "of the held-out recordings, at the config's hop, "
                                                      "from reflexd replay records"},
        "splits": [{"name": s.name, "kind": s.kind, "train_subjects": s.train_subjects,
                    "test_subjects": s.test_subjects, "train_recordings": len(s.train),
                    "test_recordings": len(s.test)} for s in splits],
        "host": {"cpu": _cpu(), "cores": os.cpu_count(), "reflexd": ver, "platform": platform.platform(),
                 "torch": torch.__version__, "python": platform.python_version(),
                 "loadavg_at_bench": list(os.getloadavg())},
        "variants": var,
    }


def _fmt(x: dict, digits: int = 3) -> str:
    return f"{x['mean']:.{digits}f} ± {x['sd']:.{digits}f}"


def report_markdown(rep: dict) -> str:
    d, p = rep["dataset"], rep["protocol"]
    lines = [f"# reflex compare — {d['name']}", "",
             f"Dataset `{d['path']}`: {d['recordings']} recordings, {d['subjects']} subjects, "
             f"{len(d['channels'])} channels ({', '.join(d['channels'])}) at {d['rate_hz']:g} Hz; "
             f"classes {', '.join(d['classes'])}.", ""]
    def subjects(xs: list[str]) -> str:
        return ", ".join(xs) if len(xs) <= 12 else f"{len(xs)} ({xs[0]} … {xs[-1]})"

    for s in rep["splits"]:
        lines.append(f"Split `{s['name']}` ({s['kind']}): train subjects {subjects(s['train_subjects'])}; "
                     f"test subjects {subjects(s['test_subjects'])}.")
    lines += ["", f"Protocol: {p['layers']} convolution layers, width {p['width']}, kernel {p['kernel']}, "
              f"BatchNorm + ReLU, global average pool, dropout {p['dropout']}, linear; window {p['window']}, "
              f"hop {p['hop']}; {p['epochs']} epochs, batch {p['batch']}, {p['optimiser']}, lr {p['lr']}; "
              f"{p['seeds']} seeds. Scoring: {p['scoring']}.", "",
              f"Host: {rep['host']['cpu']} ({rep['host']['cores']} cores), {rep['host']['reflexd']}; "
              f"load average at the end {', '.join(f'{x:.1f}' for x in rep['host']['loadavg_at_bench'])}.", "",
              "| variant | params | MACs | accuracy (mean ± sd) | macro-F1 | whole window median / p99 µs | "
              f"streaming (hop {p['hop']}) median / p99 µs | test windows |",
              "|---|---:|---:|---|---|---|---|---:|"]
    for v, r in rep["variants"].items():
        lat = [f"{x['median_us']:.1f} / {x['p99_us']:.0f}" if x else "–"
               for x in (r["latency_whole"], r["latency_stream"])]
        lines.append(f"| {v} | {r['params']:,} | {r['macs']:,} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} | "
                     f"{lat[0]} | {lat[1]} | {r['windows_scored']} |")
    classes = d["classes"]
    lines += ["", "Per-class recall (mean over seeds):", "",
              "| variant | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for v, r in rep["variants"].items():
        lines.append(f"| {v} | " + " | ".join("–" if r["per_class_recall"][c] is None
                                               else f"{r['per_class_recall'][c]:.3f}" for c in classes) + " |")
    subs = sorted({s for r in rep["variants"].values() for s in r["per_subject_accuracy"]},
                  key=dsm._natural)
    if 0 < len(subs) <= 30:
        lines += ["", "Accuracy per held-out subject (mean over seeds):", "",
                  "| variant | " + " | ".join(subs) + " |", "|---|" + "---|" * len(subs)]
        for v, r in rep["variants"].items():
            lines.append(f"| {v} | " + " | ".join(
                f"{r['per_subject_accuracy'][s]['mean']:.3f}" if s in r["per_subject_accuracy"] else "–"
                for s in subs) + " |")
    lines += ["", "Accuracy per seed: " + "; ".join(
        f"{v} " + ", ".join(f"{a:.3f}" for a in r["accuracy"]["per_seed"]) for v, r in rep["variants"].items()),
        "", "Models: `<variant>/reflex.toml` + `weights.safetensors` (first split, first seed). "
        "PyTorch and reflexd give the same label on at least "
        + ", ".join(f"{v} {r['torch_reflexd_agreement']:.4f}" for v, r in rep["variants"].items()
                    if r["torch_reflexd_agreement"] is not None) + " of the scored windows.", "",
        "![accuracy vs latency](accuracy_vs_latency.png)", ""]
    return "\n".join(lines)


def _write_report(out: Path, rep: dict, ds: Dataset) -> None:
    _atomic_write(out / "report.json", json.dumps(rep, indent=1) + "\n")
    _atomic_write(out / "report.md", report_markdown(rep))
    try:
        _plots(out, rep)
    except ImportError:
        print("reflex compare: matplotlib missing: no plots (pip install 'reflex-imu[compare]')",
              file=sys.stderr)


def _plots(out: Path, rep: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if all(r["latency_whole"] for r in rep["variants"].values()):
        _latency_plot(out, rep, plt)
    _confusion_plots(out, rep, plt)


def _latency_plot(out: Path, rep: dict, plt) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, key, title in ((axes[0], "latency_whole", "whole window"),
                           (axes[1], "latency_stream", f"streaming, hop {rep['protocol']['hop']}")):
        for i, (v, r) in enumerate(rep["variants"].items()):
            x = r[key]["median_us"]
            ax.errorbar([x], [r["accuracy"]["mean"]], yerr=[r["accuracy"]["sd"]], fmt="o", capsize=4,
                        label=f"{v} ({r['params']:,} params, {r['macs'] / 1e6:.2f} M MACs)")
            ax.annotate(v, (x, r["accuracy"]["mean"]), textcoords="offset points", xytext=(6, 4 - 12 * (i % 2)),
                        fontsize=8)
        ax.set_xlabel(f"reflexd bench median latency, {title} (µs)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test accuracy (mean ± sd, {rep['protocol']['seeds']} seeds)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{rep['dataset']['name']}: accuracy (reflexd replay, held-out) vs latency")
    fig.tight_layout()
    tmp = out / f".accuracy_vs_latency.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out / "accuracy_vs_latency.png")


def _confusion_plots(out: Path, rep: dict, plt) -> None:
    classes = rep["dataset"]["classes"]
    for v, r in rep["variants"].items():
        cm = np.asarray(r["confusion"], float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(classes), 1.0 + 0.6 * len(classes)))
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("predicted (reflexd)")
        ax.set_ylabel("true")
        ax.set_title(f"{v}: row-normalised, all seeds", fontsize=9)
        fig.tight_layout()
        tmp = out / f".confusion_{v}.tmp{os.getpid()}.png"
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, out / f"confusion_{v}.png")


# ---------------------------------------------------------------------------------------------
# existing model folders on a dataset's held-out recordings


def evaluate_dirs(dataset: str | Path, model_dirs: Sequence[str | Path], *,
                  test_subjects: Sequence[str] | None = None, bench_repeats: int = 3,
                  bench: bool = True) -> dict[str, dict]:
    """Score already-trained model folders (each with reflex.toml) on a dataset's held-out part.

    The same path as `reflex compare` without training: the held-out recordings (the `split`
    column, else `test_subjects`) are replayed through each model with `reflexd replay` at the
    config's own window and hop, the pure windows scored; `reflexd inspect` and `bench` measure
    it. The model's `output.labels` must name the dataset's classes. Returns
    `{dir: {"params", "macs", "metrics", "confusion", "latency_whole", "latency_stream"}}`.
    """
    import tempfile

    ds = dsm.read_dataset(dataset)
    split = dsm.make_splits(ds, test_subjects=test_subjects)[0]
    results = {}
    with tempfile.TemporaryDirectory(prefix="reflex-evaluate-") as d:
        tmp = Path(d)
        for r in split.test:
            write_heldout_csv(tmp / f"{r.name}.csv", r)
        for md in model_dirs:
            cfg_path = Path(md) / "reflex.toml" if Path(md).is_dir() else Path(md)
            cfg = dsm.tomllib.loads(cfg_path.read_text())
            labels = cfg["output"]["labels"]
            length, hop = cfg["window"]["length"], cfg["window"].get("hop", 1)
            unknown = [c for c in ds.classes if c not in labels]
            if unknown:
                raise CompareError(f"{cfg_path}: output.labels {labels} lack the dataset's {unknown}")
            K = len(labels)
            cm = np.zeros((K, K), np.int64)
            for r in split.test:
                y = np.where(r.y >= 0, np.array([labels.index(c) for c in ds.classes])[r.y], -1)
                records = replay_records(cfg_path, tmp / f"{r.name}.csv", tmp / "records.jsonl",
                                         expected=len(dsm.window_truth(y, length, hop)))
                cm += score_records(records, y, length, hop, K)
            res: dict[str, Any] = dict(inspect_model(cfg_path))
            res.update(metrics=metrics(cm), confusion=cm.tolist(), labels=labels, hop=hop,
                       latency_whole=bench_model(cfg_path, None, bench_repeats) if bench else None,
                       latency_stream=bench_model(cfg_path, hop, bench_repeats) if bench else None)
            results[str(md)] = res
    return results

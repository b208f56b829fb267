"""From a labelled recording on the robot to a dataset: `reflex dataset add LOG.mcap DATASET --subject S`.

While `reflexd run --record LOG.mcap` records, `reflexd label NAME` marks the wearer's activity
(docs/recording.md, `/reflex/labels`): each mark applies from its `sample` on, until the next
mark; the mark `-` (a null label) ends the labelled span. `add_recording` turns the recording
into one csv of the dataset layout (docs/compare.md) —

- a header, `t` (seconds), one column per channel under its recorded name, and `label`: each
  sample gets the label of the last mark at or before its number (marks on the same sample: the
  last received wins); before the first mark and after an end mark, empty (unlabelled);

— and appends its row to `recordings.csv` (`file`, `subject`, `split` when given, and
`recording_sha256`, the MCAP file's SHA-256, by which a recording added before is recognised
under any name). The dataset folder and `recordings.csv` are created when missing; the dataset
reader (`reflex.read_dataset`, `reflex compare`) ignores the extra column.

Refused, with one `DatasetError` naming the file: a file that is not a readable recording, one
without samples or without a single mark, a recording already added (same csv name or same
SHA-256), channels other than the dataset's, a `--split` the dataset cannot take (a dataset with
a split column needs one; one without cannot get one for a single recording), and samples whose
`t` does not increase (a csv without time column, or receive times shared by several samples)
unless `rate_hz` is given, which then sets `t = (sample - first sample) / rate_hz`.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dataset import DatasetError

__all__ = ["Added", "add_recording", "sample_labels"]

INDEX = "recordings.csv"
SHA_COLUMN = "recording_sha256"


@dataclass
class Added:
    """What `add_recording` wrote."""

    csv: Path                       # the recording's csv in the dataset
    samples: int
    marks: int
    per_label: dict[str, int]       # samples per label ("" = unlabelled)
    missing: int = 0                # sample numbers absent from the recording (the disk fell behind)
    notes: list[str] = field(default_factory=list)


def sample_labels(samples: np.ndarray, mark_samples: np.ndarray, mark_labels: list[str | None]) -> np.ndarray:
    """The label of each sample number: that of the last mark at or before it; "" before the first
    mark and after an end mark (`None`). Marks are in the order received."""
    order = np.argsort(mark_samples, kind="stable")          # equal samples: the later mark last
    starts = np.asarray(mark_samples, np.int64)[order]
    names = np.asarray([mark_labels[i] or "" for i in order] + [""], dtype=object)
    at = np.searchsorted(starts, samples, side="right") - 1  # -1: before the first mark
    return names[at]                                         # names[-1] is the ""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read(log: Path):
    from ._records import read_mcap

    if not log.is_file():
        raise DatasetError(f"{log}: no such file")
    try:
        frames = read_mcap(log)
    except Exception as e:  # the mcap reader's own exceptions: not a recording
        raise DatasetError(f"{log}: not a readable reflexd recording ({e})") from None
    samples, marks = frames["samples"], frames["labels"]
    if samples.empty:
        raise DatasetError(f"{log}: holds no samples (/imu/samples is empty)")
    if marks.empty:
        raise DatasetError(f"{log}: holds no label marks (/reflex/labels is empty): mark activities with "
                           "`reflexd label NAME` while recording")
    return samples, marks


def _times(samples, log: Path, rate_hz: float | None) -> np.ndarray:
    n = samples["sample"].to_numpy(np.int64)
    if rate_hz is not None:
        if not rate_hz > 0:
            raise DatasetError(f"--rate-hz {rate_hz}: must be positive")
        return (n - n[0]) / float(rate_hz)
    t = samples["t"].to_numpy(np.float64)
    if np.isnan(t).any():
        raise DatasetError(f"{log}: the samples have no time (a csv without time column): give --rate-hz")
    steps = np.diff(t)
    if (steps <= 0).any():
        j = int(np.flatnonzero(steps <= 0)[0])
        raise DatasetError(f"{log}: the samples' t does not increase at sample {n[j + 1]} ({t[j]} then "
                           f"{t[j + 1]}; receive times shared by several samples?): give --rate-hz")
    return t


def _index(root: Path) -> tuple[list[str], list[dict[str, str]]]:
    """recordings.csv's columns and rows (none when it does not exist yet)."""
    path = root / INDEX
    if not path.exists():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        cols = [c.strip() for c in reader.fieldnames or []]
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    for col in ("file", "subject"):
        if col not in cols:
            raise DatasetError(f"{path}: column {col!r} missing (has {', '.join(cols)})")
    return cols, rows


def _dataset_channels(root: Path, rows: list[dict[str, str]]) -> tuple[list[str], Path] | None:
    """The channels the dataset's recordings have, and the file that says so."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    meta = root / "dataset.toml"
    if meta.exists():
        try:
            chans = tomllib.loads(meta.read_text()).get("channels")
        except tomllib.TOMLDecodeError as e:
            raise DatasetError(f"{meta}: {e}") from None
        if chans:
            return [str(c) for c in chans], meta
    if rows:
        first = root / rows[0]["file"]
        try:
            with open(first, newline="") as f:
                header = [c.strip() for c in next(csv.reader(f), [])]
        except FileNotFoundError:
            raise DatasetError(f"{first}: no such file (listed in {root / INDEX})") from None
        return [c for c in header if c not in ("t", "label")], first
    return None


def _check_fits(root: Path, log: Path, channels: list[str], sha: str, name: str, split: str | None,
                cols: list[str], rows: list[dict[str, str]]) -> None:
    index = root / INDEX
    for i, r in enumerate(rows, start=2):
        if r["file"] == name or (root / r["file"]).resolve() == (root / name).resolve():
            raise DatasetError(f"{index}: line {i}: {name} is there already (added before?)")
        if r.get(SHA_COLUMN) == sha:
            raise DatasetError(f"{index}: line {i}: {log.name} was added before, as {r['file']}")
    if (root / name).exists():
        raise DatasetError(f"{root / name}: exists already; refusing to replace it")
    known = _dataset_channels(root, rows)
    if known is not None:
        want, source = known
        if set(want) - set(channels) or (source.name != "dataset.toml" and set(channels) != set(want)):
            raise DatasetError(f"{log}: channels {', '.join(channels)} differ from the dataset's "
                               f"({', '.join(want)}, in {source})")
    has_split = "split" in cols and any(r.get("split") for r in rows)
    if has_split and split is None:
        raise DatasetError(f"{index}: has a split column: give --split train or test")
    if split is not None and rows and not has_split:
        raise DatasetError(f"{index}: has no split column; --split would leave its {len(rows)} "
                           "recording(s) without one (add the column first, or leave out --split)")


def _write_index(root: Path, cols: list[str], rows: list[dict[str, str]], row: dict[str, str]) -> None:
    """Appends `row`; rewrites the file (atomically) when it needs a column it lacks."""
    path = root / INDEX
    new_cols = [c for c in row if c not in cols]
    if cols and not new_cols:
        ends_line = path.read_bytes().endswith(b"\n")
        with open(path, "a", newline="") as f:
            if not ends_line:
                f.write("\n")
            csv.DictWriter(f, fieldnames=cols, restval="", lineterminator="\n").writerow(row)
        return
    cols = (cols or ["file", "subject"]) + [c for c in new_cols if c not in (cols or ["file", "subject"])]
    tmp = path.with_name(f".{INDEX}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(rows + [row])
    os.replace(tmp, path)


def add_recording(log: str | Path, dataset: str | Path, *, subject: str, split: str | None = None,
                  rate_hz: float | None = None) -> Added:
    """Append the labelled recording `log` to `dataset` (see the module docstring). Raises `DatasetError`."""
    import pandas as pd

    log, root = Path(log), Path(dataset)
    subject = str(subject).strip()
    if not subject or any(c in subject for c in "\n\r"):
        raise DatasetError(f"--subject {subject!r}: must be non-empty, on one line")
    if split not in (None, "train", "test"):
        raise DatasetError(f"--split {split!r}: must be train or test")
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    samples, marks = _read(log)
    channels = [c for c in samples.columns if c not in ("sample", "t", "log_time")]
    n = samples["sample"].to_numpy(np.int64)
    t = _times(samples, log, rate_hz)
    values = samples[channels].to_numpy(np.float64)
    if np.isnan(values).any():
        i, j = map(int, np.argwhere(np.isnan(values))[0])
        raise DatasetError(f"{log}: sample {n[i]} has no finite {channels[j]}")
    labels = sample_labels(n, marks["sample"].to_numpy(np.int64),
                           [None if pd.isna(v) else str(v) for v in marks["label"]])

    sha, name = _sha256(log), f"{log.stem}.csv"
    cols, rows = _index(root)
    _check_fits(root, log, channels, sha, name, split, cols, rows)
    root.mkdir(parents=True, exist_ok=True)
    out = pd.DataFrame({"t": t, **{c: values[:, k] for k, c in enumerate(channels)}, "label": labels})
    tmp = root / f".{name}.tmp"
    out.to_csv(tmp, index=False, lineterminator="\n")
    os.replace(tmp, root / name)
    row = {"file": name, "subject": subject, **({"split": split} if split else {}), SHA_COLUMN: sha}
    try:
        _write_index(root, cols, rows, row)
    except BaseException:
        (root / name).unlink(missing_ok=True)
        raise
    missing = int(n[-1] - n[0] + 1 - len(n))
    per_label = {str(k): int(v) for k, v in zip(*np.unique(labels.astype(str), return_counts=True))}
    notes = [f"{missing} sample(s) missing from the recording (the disk fell behind): windows across the gap "
             "mix distant samples"] if missing else []
    return Added(root / name, len(n), len(marks), per_label, missing, notes)

"""The dataset reader, the held-out splits and pure windows (docs/compare.md), on a miniature of UCI HAPT.

tests/data/mini_hapt: four subjects, two 8 s excerpts each, copied line for line from the real
recordings (standing -> stand-to-sit transition -> sitting; unlabelled gap -> walking).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reflex import dataset as dsm
from reflex.dataset import DatasetError

MINI = Path(__file__).parent / "data" / "mini_hapt"


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    d = tmp_path / "mini"
    shutil.copytree(MINI, d)
    return d


def _raw_labels(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=7).astype(int)


def test_reads_layout_label_map_and_unlabelled_spans():
    ds = dsm.read_dataset(MINI)
    assert ds.classes == ["walking", "sitting", "standing"]          # the order of [labels] names
    assert ds.channels == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert ds.rate_hz == 50.0
    assert ds.subjects == ["1", "3", "5", "6"]
    assert len(ds.recordings) == 8
    for r in ds.recordings:
        raw = _raw_labels(r.path)
        assert r.x.shape == (len(raw), 6) and r.y.shape == (len(raw),)
        # -1 and the transition 7 are unlabelled, 1/4/5 map to their class
        want = np.select([raw == 1, raw == 4, raw == 5], [0, 1, 2], default=-1)
        np.testing.assert_array_equal(r.y, want)
        assert (r.y == -1).any()
    # the values are the csv's own
    first = np.loadtxt(ds.recordings[0].path, delimiter=",", skiprows=1, max_rows=3)
    np.testing.assert_array_equal(ds.recordings[0].x[:3], first[:, 1:7])
    np.testing.assert_array_equal(ds.recordings[0].t[:3], first[:, 0])


def test_label_names_in_csv_without_a_map(mini: Path):
    """Labels as names; no dataset.toml: classes are the sorted names, empty = unlabelled."""
    names = {"1": "walking", "4": "sitting", "5": "standing", "7": "", "-1": ""}
    for p in mini.glob("s*.csv"):
        lines = p.read_text().splitlines()
        out = [lines[0]] + [ln.rsplit(",", 1)[0] + "," + names[ln.rsplit(",", 1)[1]] for ln in lines[1:]]
        p.write_text("\n".join(out) + "\n")
    (mini / "dataset.toml").unlink()
    ds = dsm.read_dataset(mini)
    assert ds.classes == ["sitting", "standing", "walking"]
    assert ds.channels == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert abs(ds.rate_hz - 50.0) < 1e-6                             # estimated from t
    r = ds.recordings[0]
    raw = _raw_labels(MINI / r.path.name)
    np.testing.assert_array_equal(r.y, np.select([raw == 4, raw == 5, raw == 1], [0, 1, 2], default=-1))


def test_integer_labels_without_a_map_are_sorted_numerically(mini: Path):
    (mini / "dataset.toml").write_text("rate_hz = 50.0\n[labels]\nignore = [-1]\n")
    ds = dsm.read_dataset(mini)
    assert ds.classes == ["1", "4", "5", "7"]


def test_channels_select_and_order(mini: Path):
    text = (mini / "dataset.toml").read_text().replace(
        'channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]', 'channels = ["gyro_z", "acc_x"]')
    (mini / "dataset.toml").write_text(text)
    ds = dsm.read_dataset(mini)
    raw = np.loadtxt(ds.recordings[0].path, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(ds.recordings[0].x, raw[:, [6, 1]])


def _one_line_error(root: Path) -> str:
    with pytest.raises(DatasetError) as e:
        dsm.read_dataset(root)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_value_names_file_column_and_line(mini: Path):
    p = mini / "s03_walk.csv"
    lines = p.read_text().splitlines()
    cells = lines[10].split(",")
    cells[2] = "1.0.3"                                               # acc_y of data row 9
    lines[10] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    msg = _one_line_error(mini)
    assert "s03_walk.csv" in msg and "'acc_y'" in msg and "line 11" in msg


def test_empty_value_names_file_and_column(mini: Path):
    p = mini / "s05_static.csv"
    lines = p.read_text().splitlines()
    cells = lines[4].split(",")
    cells[5] = ""
    lines[4] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    msg = _one_line_error(mini)
    assert "s05_static.csv" in msg and "'gyro_y'" in msg and "line 5" in msg and "empty" in msg


def test_missing_channel_column(mini: Path):
    p = mini / "s06_walk.csv"
    lines = p.read_text().splitlines()
    lines[0] = lines[0].replace("gyro_x", "gyrox")
    p.write_text("\n".join(lines) + "\n")
    msg = _one_line_error(mini)
    assert "s06_walk.csv" in msg and "'gyro_x'" in msg


def test_unknown_label_value(mini: Path):
    (mini / "dataset.toml").write_text((mini / "dataset.toml").read_text().replace("ignore = [-1, 7]",
                                                                                   "ignore = [-1]"))
    msg = _one_line_error(mini)
    assert "s01_static.csv" in msg and "'label'" in msg and "'7'" in msg and "line " in msg


def test_missing_file_and_index_columns(mini: Path):
    (mini / "s01_walk.csv").unlink()
    assert "s01_walk.csv" in _one_line_error(mini)
    (mini / "recordings.csv").write_text("file,person\ns01_static.csv,1\n")
    msg = _one_line_error(mini)
    assert "recordings.csv" in msg and "'subject'" in msg


def test_time_must_increase(mini: Path):
    p = mini / "s01_static.csv"
    lines = p.read_text().splitlines()
    lines[20], lines[21] = lines[21], lines[20]
    p.write_text("\n".join(lines) + "\n")
    msg = _one_line_error(mini)
    assert "s01_static.csv" in msg and "'t'" in msg


def test_whole_file_label_and_time_parts(mini: Path):
    """recordings.csv `label` labels a csv without a label column; start/stop cut parts of a file."""
    p = mini / "s01_walk.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(ln.rsplit(",", 1)[0] for ln in lines) + "\n")
    t0 = float(lines[1].split(",")[0])
    (mini / "recordings.csv").write_text(
        "file,subject,split,label,start,stop\n"
        f"s01_walk.csv,1,train,1,,{t0 + 4}\n"
        f"s01_walk.csv,1,test,1,{t0 + 5},\n"
        "s03_walk.csv,3,train,,,\n")
    toml = mini / "dataset.toml"
    toml.write_text("within_subject_split = true\n" + toml.read_text())
    ds = dsm.read_dataset(mini)
    a, b, c = ds.recordings
    assert len(a) == 200 and len(b) == 150 and (a.y == 0).all() and (b.y == 0).all()
    assert b.first_row == 250
    split = dsm.make_splits(ds)[0]
    assert "WITHIN" in split.kind


def test_split_column_never_puts_a_subject_on_both_sides(mini: Path):
    (mini / "recordings.csv").write_text(
        "file,subject,split\n" + "".join(f"s{s:02d}_{k}.csv,{s},{'test' if s == 5 else 'train'}\n"
                                         for s in (1, 3, 5, 6) for k in ("static", "walk")))
    split = dsm.make_splits(dsm.read_dataset(mini))[0]
    assert split.test_subjects == ["5"] and split.train_subjects == ["1", "3", "6"]
    (mini / "recordings.csv").write_text(
        "file,subject,split\n" + "".join(f"s{s:02d}_{k}.csv,{s},{'test' if k == 'walk' else 'train'}\n"
                                         for s in (1, 3, 5, 6) for k in ("static", "walk")))
    with pytest.raises(DatasetError, match="on both sides"):
        dsm.make_splits(dsm.read_dataset(mini))
    with pytest.raises(DatasetError, match="--folds would contradict"):
        dsm.make_splits(dsm.read_dataset(mini), folds=2)


def test_test_subjects_and_folds():
    ds = dsm.read_dataset(MINI)
    (s,) = dsm.make_splits(ds, test_subjects=["3", "6"])
    assert s.test_subjects == ["3", "6"] and s.train_subjects == ["1", "5"]
    assert len(s.train) + len(s.test) == 8
    folds = dsm.make_splits(ds, folds=2)
    assert len(folds) == 2
    held = [x for f in folds for x in f.test_subjects]
    assert sorted(held) == ["1", "3", "5", "6"]                       # each subject held out once
    for f in folds:
        assert not set(f.train_subjects) & set(f.test_subjects)
    with pytest.raises(DatasetError, match="no subject 99"):
        dsm.make_splits(ds, test_subjects=["99"])
    with pytest.raises(DatasetError, match="no split"):
        dsm.make_splits(ds)


def test_window_truth_scores_only_pure_windows():
    y = np.array([-1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 1, -1, 2, 2])
    # windows of 4 at hop 2: [0,4) [2,6) [4,8) [6,10) [8,12) [10,14)
    np.testing.assert_array_equal(dsm.window_truth(y, 4, 2), [-1, 0, -1, 1, -1, -1])
    np.testing.assert_array_equal(dsm.window_truth(y, 3, 3), [-1, 0, 1, -1])
    assert len(dsm.window_truth(y[:3], 4, 2)) == 0
    # a segment that returns to the same class after an unlabelled gap is not one segment
    np.testing.assert_array_equal(dsm.window_truth(np.array([0, 0, -1, 0, 0]), 5, 1), [-1])
    starts, cls = dsm.pure_windows(dsm.Recording("r", Path("r"), "1", None, np.arange(14.0),
                                                 np.zeros((14, 1)), y), 4, 2)
    np.testing.assert_array_equal(starts, [2, 6])
    np.testing.assert_array_equal(cls, [0, 1])


def test_cli_bad_dataset_is_one_line(mini: Path, tmp_path: Path, reflexd: str):
    p = mini / "s03_walk.csv"
    lines = p.read_text().splitlines()
    lines[5] = lines[5].replace(",", ",x", 1)
    p.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "reflex", "compare", str(mini), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "s03_walk.csv" in err[0] and "'acc_x'" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr

"""`reflex dataset add` on a recording the real reflexd made and `reflexd label` labelled (issue 13, point 5).

A pseudo-terminal streams the bundled gaitmap walk into `reflexd run --record`; `reflexd label`
marks samples 400 (walk), 1000 (stairs up), 1600 (end) and 2000 (walk); the dataset csv's label
column changes on exactly those samples, and the dataset reader of `reflex compare` loads it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tty
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import reflex
from conftest import ROOT
from reflex import dataset as dsm
from reflex.collect import add_recording, sample_labels
from reflex.dataset import DatasetError

WALK = ROOT / "examples" / "data" / "gaitmap" / "healthy_2x20m_left.csv"
NAMES = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]
LENGTH, HOP = 32, 8
MARKS = [(400, "walk"), (1000, "stairs up"), (1600, "-"), (2000, "walk")]
SAMPLES = 2400


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_log(log: Path, needle: str) -> None:
    deadline = time.monotonic() + 20
    while needle not in log.read_text():
        assert time.monotonic() < deadline, f"no {needle!r}: {log.read_text()}"
        time.sleep(0.01)


def _decoded(sock: socket.socket, n: int) -> None:
    """Waits for the record of the window ending on sample n - 1: n samples decoded, no more written."""
    assert (n - LENGTH) % HOP == 0
    while json.loads(sock.recv(65536))["last_sample"] < n - 1:
        pass


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, reflexd) -> Path:
    """`reflexd run --record` on a pty streaming the gaitmap walk, with MARKS sent by `reflexd label`."""
    d = tmp_path_factory.mktemp("labelled")
    master, slave = os.openpty()
    tty.setraw(slave)
    actuator = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    actuator.bind(("127.0.0.1", 0))
    actuator.settimeout(10)
    cfg = d / "reflex.toml"
    cfg.write_text(
        f'[source]\npath = "{os.ttyname(slave)}"\nformat = "csv"\nchannels = 6\ntime_column = true\n'
        f"channel_names = {json.dumps(NAMES)}\n"
        f"[window]\nlength = {LENGTH}\nhop = {HOP}\n"
        f'[model]\n[[model.layers]]\nname = "pool"\nplugin = "global_avg_pool"\n'
        f'[[sinks]]\nkind = "udp"\ntarget = "127.0.0.1:{actuator.getsockname()[1]}"\n'
        f'[labels]\nlisten = "127.0.0.1:{_free_port()}"\n')
    rec, log = d / "s07_session.mcap", d / "err.log"
    with open(log, "w") as err:
        daemon = subprocess.Popen([reflexd, "run", "--config", str(cfg), "--record", str(rec)],
                                  stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ, RUST_LOG="info"))
    try:
        _wait_log(log, "serial device open")
        _wait_log(log, "labels: taking activity marks")
        lines = WALK.read_bytes().splitlines(keepends=True)
        os.write(master, lines[0])                          # the header: no sample
        written = 0
        for at, name in MARKS:
            os.write(master, b"".join(lines[1 + written:1 + at]))
            written = at
            _decoded(actuator, at)
            out = subprocess.run([reflexd, "label", "--config", str(cfg), name], capture_output=True, text=True,
                                 timeout=30)
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip().endswith(f"from sample {at}"), out.stdout
        os.write(master, b"".join(lines[1 + written:1 + SAMPLES]))
        _decoded(actuator, SAMPLES)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        os.close(master)
        os.close(slave)
        actuator.close()
    return rec


def _want_labels() -> list[str]:
    want = [""] * SAMPLES
    for (at, name), nxt in zip(MARKS, [m[0] for m in MARKS[1:]] + [SAMPLES]):
        want[at:nxt] = [name if name != "-" else ""] * (nxt - at)
    return want


def test_read_mcap_returns_the_marks(labelled):
    marks = reflex.read_mcap(labelled)["labels"]
    assert list(marks["sample"]) == [400, 1000, 1600, 2000]
    assert marks["label"].tolist() == ["walk", "stairs up", pd.NA, "walk"]
    assert marks["label"].dtype == "string" and marks["received"].is_monotonic_increasing


def test_dataset_add_labels_exactly_the_marked_samples(labelled, tmp_path):
    ds = tmp_path / "robot"                                   # created by `dataset add`
    proc = subprocess.run([sys.executable, "-m", "reflex", "dataset", "add", str(labelled), str(ds),
                           "--subject", "7", "--split", "train"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2400 samples, 4 marks" in proc.stdout and "stairs up 600" in proc.stdout, proc.stdout
    index = pd.read_csv(ds / "recordings.csv", dtype=str)
    assert list(index.columns) == ["file", "subject", "split", "recording_sha256"]
    assert index.iloc[0][["file", "subject", "split"]].tolist() == ["s07_session.csv", "7", "train"]

    csv = pd.read_csv(ds / "s07_session.csv", dtype={"label": str}, keep_default_na=False)
    assert list(csv.columns) == ["t", *NAMES, "label"]
    assert csv["label"].tolist() == _want_labels()
    changes = np.flatnonzero(csv["label"].to_numpy()[1:] != csv["label"].to_numpy()[:-1]) + 1
    assert changes.tolist() == [400, 1000, 1600, 2000]
    # Row n is sample n: the walk's data line n, value for value.
    raw = np.loadtxt(WALK, delimiter=",", skiprows=1, max_rows=SAMPLES)
    np.testing.assert_array_equal(csv["t"].to_numpy(), raw[:, 0])
    np.testing.assert_array_equal(csv[NAMES].to_numpy(np.float32), raw[:, 1:].astype(np.float32))

    loaded = dsm.read_dataset(ds)                            # as `reflex compare` reads it
    assert loaded.classes == ["stairs up", "walk"] and loaded.channels == NAMES
    assert abs(loaded.rate_hz - 204.8) < 1e-6
    (r,) = loaded.recordings
    assert (r.subject, r.split) == ("7", "train")
    want = np.array([{"": -1, "stairs up": 0, "walk": 1}[x] for x in _want_labels()])
    np.testing.assert_array_equal(r.y, want)


def test_a_recording_is_added_once_under_any_name(labelled, tmp_path):
    ds = tmp_path / "robot"
    add_recording(labelled, ds, subject="7")
    with pytest.raises(DatasetError, match="s07_session.csv is there already"):
        add_recording(labelled, ds, subject="7")
    copy = tmp_path / "renamed.mcap"
    shutil.copy(labelled, copy)
    with pytest.raises(DatasetError, match=r"recordings.csv: line 2: renamed.mcap was added before, as s07_session"):
        add_recording(copy, ds, subject="8")
    assert len(pd.read_csv(ds / "recordings.csv")) == 1 and not (ds / "renamed.csv").exists()


def test_channels_must_be_the_datasets(labelled, tmp_path):
    hapt = tmp_path / "hapt"                                 # acc_x … gyro_z: not the walk's gyr_x … gyr_z
    shutil.copytree(Path(__file__).parent / "data" / "mini_hapt", hapt)
    with pytest.raises(DatasetError) as e:
        add_recording(labelled, hapt, subject="7")
    msg = str(e.value)
    assert "s07_session.mcap" in msg and "differ from the dataset's" in msg and "dataset.toml" in msg
    (hapt / "dataset.toml").unlink()                         # then the first listed recording's columns
    with pytest.raises(DatasetError, match=r"differ from the dataset's .*s01_static.csv"):
        add_recording(labelled, hapt, subject="7")
    assert not (hapt / "s07_session.csv").exists()


def _dataset_of_one(root: Path, index: str) -> Path:
    root.mkdir()
    (root / "recordings.csv").write_text(index)
    (root / "other.csv").write_text("t," + ",".join(NAMES) + ",label\n0.0,1,2,3,4,5,6,walk\n")
    return root


def test_split_must_fit_the_dataset(labelled, tmp_path):
    ds = _dataset_of_one(tmp_path / "split", "file,subject,split\nother.csv,1,train\n")
    with pytest.raises(DatasetError, match="recordings.csv: has a split column: give --split"):
        add_recording(labelled, ds, subject="7")
    add_recording(labelled, ds, subject="7", split="test")
    assert pd.read_csv(ds / "recordings.csv")["split"].tolist() == ["train", "test"]
    ds = _dataset_of_one(tmp_path / "nosplit", "file,subject\nother.csv,1\n")
    with pytest.raises(DatasetError, match="has no split column; --split would leave its 1 recording"):
        add_recording(labelled, ds, subject="7", split="train")
    add_recording(labelled, ds, subject="7")
    index = pd.read_csv(ds / "recordings.csv", dtype=str, keep_default_na=False)
    assert list(index.columns) == ["file", "subject", "recording_sha256"]  # the column joins the old file
    assert index["recording_sha256"].tolist()[0] == "" and len(index["recording_sha256"][1]) == 64


def test_bad_recordings_are_one_line_naming_the_file(tmp_path, reflexd):
    bad = tmp_path / "notes.mcap"
    bad.write_text("not an mcap file\n")
    proc = subprocess.run([sys.executable, "-m", "reflex", "dataset", "add", str(bad), str(tmp_path / "ds"),
                           "--subject", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "notes.mcap" in err[0] and "not a readable reflexd recording" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "ds").exists()
    with pytest.raises(DatasetError, match="missing.mcap: no such file"):
        add_recording(tmp_path / "missing.mcap", tmp_path / "ds", subject="1")


def test_a_recording_without_marks_is_refused(tmp_path, reflexd):
    """The demo (a replay source, recorded at full speed): samples, but no `reflexd label`."""
    rec = tmp_path / "demo.mcap"
    out = subprocess.run([reflexd, "run", "--config", str(ROOT / "config" / "demo.toml"), "--record", str(rec)],
                         capture_output=True, text=True, env=dict(os.environ, REFLEX__SOURCE__SPEED="max"),
                         timeout=120)
    assert out.returncode == 0, out.stderr
    with pytest.raises(DatasetError, match=r"demo.mcap: holds no label marks"):
        add_recording(rec, tmp_path / "ds", subject="1")


def test_sample_labels_rule():
    n = np.arange(10)
    # the last mark at or before each sample; two marks on one sample: the later received wins
    got = sample_labels(n, np.array([2, 5, 5, 8]), ["a", "b", "c", None])
    assert got.tolist() == ["", "", "a", "a", "a", "c", "c", "c", "", ""]
    # marks received out of sample order still apply by sample number
    assert sample_labels(n[:4], np.array([3, 1]), ["y", "x"]).tolist() == ["", "x", "x", "y"]

"""reflex.read_records / reflex.read_mcap on files the real reflexd wrote."""

from __future__ import annotations

import os
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import reflex
from conftest import ROOT
from reflex import _graph
from reflex._export import to_model_spec

DEMO = ROOT / "config" / "demo.toml"
STAIRS = ROOT / "examples" / "data" / "gaitmap" / "stair_up_left.csv"


@pytest.fixture(scope="module")
def recording(tmp_path_factory, reflexd) -> Path:
    """`reflexd run --record` of the demo (a replay source), at full speed."""
    log = tmp_path_factory.mktemp("rec") / "demo.mcap"
    env = dict(os.environ, REFLEX__SOURCE__SPEED="max")
    out = subprocess.run([reflexd, "run", "--config", str(DEMO), "--record", str(log)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return log


def test_read_mcap_samples_are_the_recorded_csv(recording):
    frames = reflex.read_mcap(recording)
    assert set(frames) == {"samples", "predictions", "events", "labels"}
    assert frames["labels"].empty and list(frames["labels"].columns) == ["log_time", "sample", "label", "received"]
    s = frames["samples"]
    raw = np.loadtxt(STAIRS, delimiter=",", skiprows=1)
    assert len(s) == len(raw)
    assert s["sample"].dtype == np.int64 and s["t"].dtype == np.float64
    assert isinstance(s["log_time"].dtype, pd.DatetimeTZDtype)
    chans = [c for c in s.columns if c not in ("sample", "t", "log_time")]
    assert chans == ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]  # the config's channel_names
    np.testing.assert_array_equal(s[chans].to_numpy(np.float32), raw[:, 1:].astype(np.float32))
    np.testing.assert_allclose(s["t"].to_numpy(), raw[:, 0])
    assert "config" in s.attrs["metadata"]["reflex"]


def test_read_mcap_predictions_match_a_replay(recording, tmp_path, reflexd):
    p = reflex.read_mcap(recording)["predictions"]
    assert len(p) == 157 and list(p["window"]) == list(range(157))
    assert p["label"].dtype == "string" and str(p["index"].dtype) == "Int64"
    assert [c for c in p.columns if c.startswith("value_")] == ["value_0", "value_1", "value_2"]
    assert set(p["label"]) <= {"walk", "stairs_up", "stairs_down"}
    # docs/recording.md: replaying the recording reproduces the live values exactly
    out = tmp_path / "replay.jsonl"
    run = subprocess.run([reflexd, "replay", "--config", str(DEMO), "--out", str(out), str(recording)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    r = reflex.read_records(out)
    cols = ["window", "last_sample", "t", "label", "index", "generation", "health", "value_0", "value_1", "value_2"]
    pd.testing.assert_frame_equal(r[cols], p[cols])


def test_read_records_csv_and_json_agree(tmp_path, reflexd):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv1d(6, 4, 5, padding="same"), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                      nn.Linear(4, 2)).eval()
    spec, _ = to_model_spec(m, channels=6, length=32, hop=16)
    from safetensors.numpy import save_file

    save_file(spec.state_dict(), str(tmp_path / "w.safetensors"))
    with resources.as_file(resources.files("reflex") / "data" / "walking_left.csv") as log:
        # `run` with a replay source: sinks are the config's (replay writes only --out)
        source = {"kind": "replay", "path": str(log), "format": "csv", "channels": 6, "time_column": True,
                  "speed": "max"}
        text = _graph.config_text(spec, weights=str(tmp_path / "w.safetensors"), source=source, sinks=False)
        for fmt, name in (("csv", "records.csv"), ("json", "records.jsonl")):
            text += f'\n[[sinks]]\nkind = "file"\npath = "{tmp_path / name}"\nformat = "{fmt}"\n'
        (tmp_path / "c.toml").write_text(text)
        run = subprocess.run([reflexd, "run", "--config", str(tmp_path / "c.toml")], capture_output=True,
                             text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    j = reflex.read_records(tmp_path / "records.jsonl")
    c = reflex.read_records(tmp_path / "records.csv")
    assert len(j) == (1024 - 32) // 16 + 1
    assert j["label"].isna().all() and j["index"].isna().all()  # a regression model
    assert list(j.dtypes.astype(str)) == ["int64", "int64", "float64", "string", "Int64", "float64", "int64",
                                          "string", "float64", "float64"]
    assert (j["health"] == "ok").all() and (c["health"] == "ok").all()
    cols = [x for x in j.columns if x != "latency_us"]
    pd.testing.assert_frame_equal(j[cols], c[cols])


def test_read_records_names_a_bad_csv_line(tmp_path):
    (tmp_path / "bad.csv").write_text("0,127,0.6,,,12.0,1,ok,0.5\n1,135,0.7\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        reflex.read_records(tmp_path / "bad.csv")


def test_read_mcap_of_a_recording_cut_short(recording, tmp_path):
    """Power loss mid-recording: no summary; the reader returns what the complete chunks hold."""
    data = recording.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) * 6 // 10])
    frames = reflex.read_mcap(cut)
    full = reflex.read_mcap(recording)
    assert 0 < len(frames["samples"]) < len(full["samples"])
    n = len(frames["samples"])
    pd.testing.assert_frame_equal(frames["samples"], full["samples"].iloc[:n], check_like=True)

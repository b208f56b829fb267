"""Prediction records and MCAP recordings as pandas DataFrames (docs/records.md, docs/recording.md).

Column types are fixed so a notebook can rely on them: `window`, `last_sample`, `generation`
int64; `t`, `latency_us` float64 (`t` NaN where a csv log had no time column); `label` string;
`index` nullable Int64 (absent for regression models); one float64 column per output,
`value_0`, `value_1`, ….
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import pandas as pd

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["read_records", "read_mcap"]

_CSV_FIELDS = ["window", "last_sample", "t", "label", "index", "latency_us", "generation", "health"]


def read_records(path: str | Path) -> "pd.DataFrame":
    """Read prediction records — `reflexd replay --out` JSON lines, or a `csv` sink's lines — into a DataFrame.

    One row per window, columns `window, last_sample, t, label, index, latency_us, generation,
    health, value_0 … value_{F-1}` (see the module docstring for their types; `health` is `ok`
    for the graph's prediction, else the reason of a fallback record: docs/records.md). The format is taken from
    the first line: `{` means JSON.
    """
    path = Path(path)
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    if lines and lines[0].lstrip().startswith("{"):
        rows = [json.loads(line) for line in lines]
    else:
        rows = list(_csv_rows(lines, path))
    return _predictions_frame(rows)


def _csv_rows(lines: list[str], path: Path) -> Iterator[dict[str, Any]]:
    """`window,last_sample,t,label,index,latency_us,generation,health,v0,v1,…` (an optional header is skipped)."""
    for n, line in enumerate(lines, start=1):
        f = line.rstrip("\n").split(",")
        if n == 1 and not f[0].strip().isdigit():
            continue  # a header
        if len(f) < 9:
            raise ValueError(f"{path}:{n}: a csv record has at least 9 fields, this line has {len(f)}")
        yield {"window": int(f[0]), "last_sample": int(f[1]), "t": float(f[2]) if f[2] else None,
               "label": f[3] or None, "index": int(f[4]) if f[4] else None, "latency_us": float(f[5]),
               "generation": int(f[6]), "health": f[7], "values": [float(v) for v in f[8:]]}


def _predictions_frame(rows: list[dict[str, Any]], extra: dict[str, list[Any]] | None = None) -> "pd.DataFrame":
    import numpy as np
    import pandas as pd

    width = max((len(r["values"]) for r in rows), default=0)
    values = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        values[i, :len(r["values"])] = r["values"]
    cols: dict[str, Any] = dict(extra or {})
    cols.update({
        "window": pd.array([r["window"] for r in rows], dtype="int64"),
        "last_sample": pd.array([r.get("last_sample", -1) for r in rows], dtype="int64"),
        "t": pd.array([np.nan if r.get("t") is None else r["t"] for r in rows], dtype="float64"),
        "label": pd.array([r.get("label") for r in rows], dtype="string"),
        "index": pd.array([r.get("index") for r in rows], dtype="Int64"),
        "latency_us": pd.array([r.get("latency_us", np.nan) for r in rows], dtype="float64"),
        "generation": pd.array([r.get("generation", 1) for r in rows], dtype="int64"),
        # Recordings made before `health` existed hold only predictions of the graph.
        "health": pd.array([r.get("health", "ok") for r in rows], dtype="string"),
    })
    for j in range(width):
        cols[f"value_{j}"] = values[:, j]
    return pd.DataFrame(cols)


def _messages(path: Path) -> tuple[list[tuple[str, int, bytes]], dict[str, dict[str, str]]]:
    """(topic, log_time ns, data) of every message, and the metadata; a cut recording is read to its last chunk."""
    from mcap.reader import make_reader
    from mcap.records import Channel, Message, Metadata
    from mcap.stream_reader import StreamReader

    out: list[tuple[str, int, bytes]] = []
    meta: dict[str, dict[str, str]] = {}
    first_error: Exception | None = None
    with open(path, "rb") as f:
        try:
            reader = make_reader(f)
            for _, ch, msg in reader.iter_messages(log_time_order=False):
                out.append((ch.topic, msg.log_time, msg.data))
            meta = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
            return out, meta
        except Exception as e:  # no summary (power loss, kill -9): stream up to the last complete record
            out, first_error = [], e
    with open(path, "rb") as f:
        topics: dict[int, str] = {}
        try:  # record by record: every message of every complete chunk, in file order
            for rec in StreamReader(f, skip_magic=False).records:
                if isinstance(rec, Channel):
                    topics[rec.id] = rec.topic
                elif isinstance(rec, Message) and rec.channel_id in topics:
                    out.append((topics[rec.channel_id], rec.log_time, rec.data))
                elif isinstance(rec, Metadata):
                    meta[rec.name] = dict(rec.metadata)
        except Exception:  # the cut: a partial record
            pass
    if not out:  # not a cut recording: unreadable (say, a compression whose package is missing)
        raise ValueError(f"{path}: cannot read the recording: {first_error}") from first_error
    return out, meta


def _channel_names(meta: dict[str, dict[str, str]], width: int) -> list[str]:
    """`source.channel_names` of the recorded config, else ch0…"""
    try:
        names = tomllib.loads(meta["reflex"]["config"])["source"].get("channel_names")
    except (KeyError, tomllib.TOMLDecodeError):
        names = None
    if isinstance(names, list) and len(names) == width:
        return [str(n) for n in names]
    return [f"ch{i}" for i in range(width)]


def read_mcap(path: str | Path) -> dict[str, "pd.DataFrame"]:
    """Read a `reflexd run --record` MCAP file into `{"samples", "predictions", "events", "labels"}` DataFrames.

    - `samples`: `sample` (int64), `t` (float64), `log_time` (UTC datetime), then one float64
      column per channel, named by the recording's `channel_names` (else `ch0`, `ch1`, …).
    - `predictions`: `log_time`, then the columns of `read_records`.
    - `events`: `log_time`, `event` (`device_open`, `decode_error`, `swap`), and the event's other
      fields (a swap: `generation`, `config`, `weights_sha256`, `plugin_sha256`).
    - `labels`: the activity marks of `reflexd label` (`/reflex/labels`), in the order received:
      `log_time`, `sample` (int64: the first sample the mark applies to), `label` (string; NA
      for a mark that ends the labelled span), `received` (float64 Unix seconds). Empty when the
      recording has none.

    The recording's metadata (config text, SHA-256 of weights and plugins) is in
    `frames["samples"].attrs["metadata"]`. A recording cut short is read up to its last complete chunk.
    """
    import numpy as np
    import pandas as pd

    messages, meta = _messages(Path(path))
    samples, s_times, preds, p_times, events, marks = [], [], [], [], [], []
    for topic, log_time, data in messages:
        if topic == "/imu/samples":
            samples.append(json.loads(data))
            s_times.append(log_time)
        elif topic == "/reflex/predictions":
            preds.append(json.loads(data))
            p_times.append(log_time)
        elif topic == "/reflex/events":
            events.append({"log_time": log_time, **json.loads(data)})
        elif topic == "/reflex/labels":
            marks.append({"log_time": log_time, **json.loads(data)})
    samples_df = _samples_frame(samples, s_times, meta)
    predictions = _predictions_frame(preds, {"log_time": pd.to_datetime(np.asarray(p_times, np.int64), utc=True)})
    ev = pd.DataFrame(events) if events else pd.DataFrame({"log_time": pd.Series([], dtype="int64"),
                                                            "event": pd.Series([], dtype="string")})
    ev["log_time"] = pd.to_datetime(ev["log_time"].astype("int64"), utc=True)
    frames = {"samples": samples_df, "predictions": predictions, "events": ev, "labels": _labels_frame(marks)}
    for df in frames.values():
        df.attrs["metadata"] = meta
    return frames


def _labels_frame(marks: list[dict[str, Any]]) -> "pd.DataFrame":
    import numpy as np
    import pandas as pd

    return pd.DataFrame({
        "log_time": pd.to_datetime(np.asarray([m["log_time"] for m in marks], np.int64), utc=True),
        "sample": pd.array([m["sample"] for m in marks], dtype="int64"),
        "label": pd.array([m.get("label") for m in marks], dtype="string"),
        "received": pd.array([m.get("received", np.nan) for m in marks], dtype="float64"),
    })


def _samples_frame(samples: list[dict[str, Any]], times: list[int], meta: dict[str, dict[str, str]]) -> "pd.DataFrame":
    import numpy as np
    import pandas as pd

    cols: dict[str, Any] = {
        "sample": pd.array([s["sample"] for s in samples], dtype="int64"),
        "t": pd.array([np.nan if s.get("t") is None else s["t"] for s in samples], dtype="float64"),
        "log_time": pd.to_datetime(np.asarray(times, np.int64), utc=True),
    }
    if samples and "values" in samples[0]:  # values as an array
        width = len(samples[0]["values"])
        names = _channel_names(meta, width)
        arr = np.asarray([s["values"] for s in samples], np.float64).reshape(len(samples), width)
        cols.update({n: arr[:, i] for i, n in enumerate(names)})
    elif samples:  # each value under its channel name (docs/recording.md)
        for name in [k for k in samples[0] if k not in ("sample", "t")]:
            cols[name] = np.asarray([s.get(name, np.nan) for s in samples], np.float64)
    return pd.DataFrame(cols)

#!/usr/bin/env python3
"""The Python contender of the loop latency harness: a serial → ONNX → UDP loop of the kind a
researcher writes, written correctly.

    python tools/loop_python.py --port /dev/ttyUSB0 --config reflex.toml --onnx model.onnx \
        --target 127.0.0.1:9000 [--hop 1] [--cpu 1]

- pyserial on the port, reading what is there (`ser.read(ser.in_waiting or 1)`);
- the binary frames of docs/wire-formats.md (`A5 5A | n | counter u32 | n × f32 | crc u16`,
  CRC-16/CCITT-FALSE = `binascii.crc_hqx(..., 0xFFFF)`): a wrong `n`, a bad CRC or a NaN/inf
  value is counted and skipped, and decoding resynchronises on the next `A5 5A`;
- each sample normalised as the config's `[window] mean`/`std` say (none: as is) into a numpy
  ring buffer of the window length (written twice, so a window is one slice, no copy of the
  ring per sample);
- every `hop` samples one onnxruntime call (1 intra-op and 1 inter-op thread, sequential) on
  the last `length` samples;
- one JSON datagram per window with the daemon's fields (docs/records.md): `window`,
  `last_sample`, `t` (receive time, Unix seconds), `values`, `label`/`index` for `classify`,
  `latency_us` (the read that completed the window → the send).

It pins itself to `--cpu` first thing, prints `ready` on stderr once the model is loaded, warmed
up and the port is open (start-up is not part of any timing), and on SIGTERM or SIGINT prints
one `stopped` line of counters in the daemon's key=value style and exits 0. It never drops a
window: when it falls behind, the port's buffer fills. Only onnxruntime, numpy and pyserial are
imported (no torch). The harness is `cargo bench -p reflexd --bench loop_latency`
(tools/README.md).
"""

from __future__ import annotations

import argparse
import binascii
import json
import math
import os
import signal
import socket
import struct
import sys
import time
import tomllib

import numpy as np
import onnxruntime as ort
import serial

SYNC = b"\xa5\x5a"


class Stop(Exception):
    """Raised by the signal handler: leave the read loop and report."""


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", required=True, help="serial device (a pty path works)")
    ap.add_argument("--config", required=True, help="reflex.toml: [source] channels, [window], [output]")
    ap.add_argument("--onnx", required=True, help="the model exported to ONNX (input [1, channels, length])")
    ap.add_argument("--target", required=True, help="HOST:PORT to send the JSON datagrams to")
    ap.add_argument("--hop", type=int, help="samples between windows (default: the config's)")
    ap.add_argument("--cpu", type=int, help="pin this process to that CPU")
    return ap.parse_args()


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


class Loop:
    """Decoder, ring buffer, model and socket: everything the read loop touches."""

    def __init__(self, args: argparse.Namespace):
        with open(args.config, "rb") as f:
            cfg = tomllib.load(f)
        win = cfg["window"]
        self.channels = cfg["source"]["channels"]
        self.length = win["length"]
        self.hop = args.hop or win["hop"]
        self.mean = np.asarray(win.get("mean", [0.0] * self.channels), np.float32)
        self.std = np.asarray(win.get("std", [1.0] * self.channels), np.float32)
        output = cfg.get("output", {})
        self.labels = output.get("labels") if output.get("kind") == "classify" else None

        self.sess = session(args.onnx)
        self.input = self.sess.get_inputs()[0].name
        self.sess.run(None, {self.input: np.zeros((1, self.channels, self.length), np.float32)})

        host, port = args.target.rsplit(":", 1)
        self.target = (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        self.frame_len = 9 + 4 * self.channels
        self.values = struct.Struct(f"<I{self.channels}f")
        self.ring = np.zeros((self.channels, 2 * self.length), np.float32)
        self.buf = bytearray()
        self.samples = self.windows = self.decode_errors = self.lost = 0
        self.counter: int | None = None

    def feed(self, data: bytes, arrived: float) -> None:
        """Decode every whole frame in the buffer; resynchronise on garbage."""
        buf = self.buf
        buf += data
        while True:
            i = buf.find(SYNC)
            if i < 0:
                # Keep a trailing A5: it may be the first half of the next sync.
                keep = 1 if buf[-1:] == SYNC[:1] else 0
                if len(buf) > keep:
                    self.decode_errors += 1
                del buf[:len(buf) - keep]
                return
            if i > 0:
                self.decode_errors += 1
                del buf[:i]
            if len(buf) < 3:
                return
            if buf[2] != self.channels:
                self.decode_errors += 1
                del buf[:2]
                continue
            if len(buf) < self.frame_len:
                return
            body = bytes(buf[2:self.frame_len - 2])
            (crc,) = struct.unpack_from("<H", buf, self.frame_len - 2)
            if binascii.crc_hqx(body, 0xFFFF) != crc:
                self.decode_errors += 1
                del buf[:2]
                continue
            counter, *values = self.values.unpack_from(body, 1)
            del buf[:self.frame_len]
            if not all(map(math.isfinite, values)):
                self.decode_errors += 1
                continue
            if self.counter is not None:
                self.lost += (counter - self.counter - 1) & 0xFFFFFFFF
            self.counter = counter
            self.sample(values, arrived)

    def sample(self, values: list[float], arrived: float) -> None:
        x = (np.asarray(values, np.float32) - self.mean) / self.std
        pos = self.samples % self.length
        self.ring[:, pos] = x
        self.ring[:, pos + self.length] = x
        self.samples += 1
        if self.samples >= self.length and (self.samples - self.length) % self.hop == 0:
            # Positions pos+1 .. pos+length of the doubled ring are the last `length` samples.
            window = np.ascontiguousarray(self.ring[:, pos + 1:pos + 1 + self.length])
            self.predict(window, arrived)

    def predict(self, window: np.ndarray, arrived: float) -> None:
        out = self.sess.run(None, {self.input: window[None]})[0][0]
        rec = {"window": self.windows, "last_sample": self.samples - 1, "t": time.time(),
               "values": out.tolist()}
        if self.labels is not None:
            index = int(np.argmax(out))  # ties to the lowest index, as the daemon
            rec["label"] = self.labels[index]
            rec["index"] = index
        rec["latency_us"] = (time.perf_counter() - arrived) * 1e6
        self.sock.sendto(json.dumps(rec).encode(), self.target)
        self.windows += 1

    def stopped(self) -> str:
        return (f"stopped samples={self.samples} windows={self.windows} predictions={self.windows} "
                f"decode_errors={self.decode_errors} lost_samples={self.lost} dropped_windows=0")


def stop(signum, frame):
    raise Stop()


def main() -> None:
    args = parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    loop = Loop(args)
    ser = serial.Serial(args.port, timeout=None)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready port={args.port} cpu={args.cpu} onnxruntime={ort.__version__}", file=sys.stderr, flush=True)
    try:
        while True:
            data = ser.read(ser.in_waiting or 1)
            loop.feed(data, time.perf_counter())
    except Stop:
        pass
    except serial.SerialException as e:  # the other end of the port went away
        print(f"port closed: {e}", file=sys.stderr)
    print(loop.stopped(), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

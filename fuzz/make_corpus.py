#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpus (fuzz/corpus/TARGET/seed-*) from the repository's
real files: the bundled IMU recordings encoded in the three wire formats, the example configs,
the trained depthwise model's weights (also as F16 and BF16), and small MCAP recordings made by
the release `reflexd` itself (a replayed log in each compression, and a live session on a
pseudo-terminal with a device unplugged and a hot swap, so that events are recorded).

    cargo build --release --workspace && python3 fuzz/make_corpus.py

Inputs that once failed (`crash-*`, `regression-*`) are kept; seeds are rewritten. Python 3
standard library only; run from anywhere.
"""

import json
import os
import pty
import signal
import struct
import subprocess
import sys
import tempfile
import time
import tty

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "examples", "firmware"))
import stream_recording as wire  # noqa: E402  (the encoders of docs/wire-formats.md)

CORPUS = os.path.join(ROOT, "fuzz", "corpus")
DATA = os.path.join(ROOT, "examples", "data", "gaitmap")
REFLEXD = os.path.join(ROOT, "target", "release", "reflexd")


def rows(name, start, count):
    """`count` samples (t, [6 values]) of a bundled recording from row `start`."""
    with open(os.path.join(DATA, name)) as f:
        lines = f.read().splitlines()[1 + start:1 + start + count]
    out = []
    for line in lines:
        fields = [float(x) for x in line.split(",")]
        out.append((fields[0], fields[1:]))
    return out


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear_seeds():
    for target in os.listdir(CORPUS) if os.path.isdir(CORPUS) else []:
        for f in os.listdir(os.path.join(CORPUS, target)):
            if f.startswith("seed-"):
                os.remove(os.path.join(CORPUS, target, f))


def decoders():
    """binary, csv, witmotion: the first byte picks the chunk size the target feeds."""
    walk = rows("healthy_2x20m_left.csv", 2000, 40)
    stairs = rows("stair_up_left.csv", 1500, 40)
    binary = b"".join(wire.encode_binary(i, v) for i, (_, v) in enumerate(walk))
    write("binary", "walk-6ch", b"\x07" + binary)
    two = b"".join(wire.encode_binary(i, v[:2]) for i, (_, v) in enumerate(stairs))
    write("binary", "stairs-2ch", b"\x03" + two)
    # A counter gap, a firmware restart and garbage between frames.
    gaps = [wire.encode_binary(c, v[:2]) for c, (_, v) in zip([0, 1, 5, 6, 0, 1], stairs)]
    write("binary", "gaps-garbage-2ch", b"\x11" + gaps[0] + gaps[1] + b"\xa5\x00junk" + b"".join(gaps[2:]))

    write("csv", "walk-time-3ch", b"\x05" + b"t,ax,ay,az\n" + b"".join(wire.encode_csv(v[:3], t) for t, v in walk))
    write("csv", "stairs-1ch", b"\x0d" + b"# gyr_z\n" + b"".join(wire.encode_csv(v[5:6]) for _, v in stairs))
    text = open(os.path.join(DATA, "stair_up_left.csv"), "rb").read().splitlines(keepends=True)
    write("csv", "recording-head", b"\x1f" + b"".join(text[:30]))
    write("csv", "crlf-blank-comment", b"\x00" + b"0,1,2,3\r\n\r\n# note\n0.5,nan,2,3\n1.0,4,5\n")

    g = wire.STANDARD_GRAVITY
    wit = b"".join(wire.encode_witmotion([a / g for a in v[:3]], v[3:6]) for _, v in walk)
    write("witmotion", "walk", b"\x0b" + wit)
    other = wire.witmotion_packet(0x53, [100, -200, 300, 2500])
    write("witmotion", "angles-between", b"\x02" + wit[:22] + other + wit[22:66] + b"\x55\x51" + wit[66:110])


def configs():
    sources = ["config/demo.toml", "config/reflex.toml", "config/serial-imu.toml", "crates/reflexd/debian/reflex.toml"]
    for variant in ["standard", "dilated", "depthwise", "grouped", "residual"]:
        sources.append("examples/models/%s/reflex.toml" % variant)
    fixtures = os.path.join(ROOT, "crates", "reflex-graph", "tests", "fixtures")
    for case in ["builtin_add_skip", "conv_grouped_g4_bn_shuffle_relu", "residual_projection_causal_dil2",
                 "conv_dilated_d3_k4_stride2_pad3", "builtin_softmax", "builtin_max_pool_k3"]:
        sources.append(os.path.relpath(os.path.join(fixtures, case, "reflex.toml"), ROOT))
    for s in sources:
        name = s.replace("/", "-").replace("examples-models-", "").replace("crates-reflex-graph-tests-fixtures-", "")
        write("config", name, open(os.path.join(ROOT, s), "rb").read())
    # The environment's overrides ride along as `#env` lines (see crates/reflex-fuzz/src/config.rs),
    # with [safety] and every sink kind.
    demo = open(os.path.join(ROOT, "config", "demo.toml"), "rb").read()
    extra = (b"#env REFLEX__WINDOW__HOP=4\n#env REFLEX__SOURCE__SPEED=max\n" + demo +
             b'\n[safety]\nstale_after_ms = 50\nfallback = "neutral"\nneutral = [0.0, 0.0, 0.0]\ndeadline_ms = 20\n'
             b'[[sinks]]\nkind = "udp"\ntarget = "127.0.0.1:9000"\n'
             b'[[sinks]]\nkind = "serial"\npath = "/dev/ttyUSB0"\nbaud_rate = 115200\nformat = "csv"\n'
             b'[[sinks]]\nkind = "file"\npath = "out.jsonl"\nformat = "template"\ntemplate = "{index} {values[0]:.3}\\n"\n')
    write("config", "demo-env-safety-sinks", extra)


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        tensors[name] = (t["dtype"], t["shape"], data[a:b])
    return tensors


def write_safetensors(tensors):
    header, blobs, at = {}, [], 0
    for name, (dtype, shape, blob) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def weights():
    model = os.path.join(ROOT, "examples", "models", "depthwise", "weights.safetensors")
    write("weights", "depthwise-f32", open(model, "rb").read())
    tensors = read_safetensors(model)
    f16, bf16 = {}, {}
    for name, (dtype, shape, blob) in tensors.items():
        values = struct.unpack("<%df" % (len(blob) // 4), blob)
        f16[name] = ("F16", shape, struct.pack("<%de" % len(values), *values))
        bf16[name] = ("BF16", shape, b"".join(struct.pack("<f", v)[2:] for v in values))
    write("weights", "depthwise-f16", write_safetensors(f16))
    write("weights", "depthwise-bf16", write_safetensors(bf16))
    # A bare nn.Sequential state_dict, and one tensor of an unread dtype.
    seq = {"%d.%s" % (i, n.split(".", 1)[1]): t for i, (n, t) in enumerate(list(tensors.items())[:4])}
    write("weights", "sequential-names", write_safetensors(seq))
    write("weights", "i64-tensor", write_safetensors({"fc.bias": ("I64", [3], struct.pack("<3q", 1, 2, 3))}))


def config_text(source, fmt, extra=""):
    return ("[source]\n%s\nformat = \"%s\"\nchannels = 6\n[window]\nlength = 16\nhop = 8\n[model]\n"
            "[[model.layers]]\nname = \"pool\"\nplugin = \"global_avg_pool\"\n"
            "[[sinks]]\nkind = \"file\"\npath = \"out.jsonl\"\n%s" % (source, fmt, extra))


def recordings():
    """Small recordings made by reflexd itself."""
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "imu.csv")
        with open(log, "wb") as f:
            f.write(b"".join(wire.encode_csv(v, t) for t, v in rows("stair_up_left.csv", 1000, 60)))
        cfg = os.path.join(d, "r.toml")
        with open(cfg, "w") as f:
            f.write(config_text('kind = "replay"\npath = "imu.csv"\ntime_column = true\nspeed = "max"', "csv"))
        for compression in ["none", "zstd", "lz4"]:
            rec = os.path.join(d, compression + ".mcap")
            subprocess.run([REFLEXD, "run", "--config", cfg, "--record", rec, "--compression", compression],
                           check=True, stderr=subprocess.DEVNULL)
            write("mcap", "replayed-csv-" + compression, open(rec, "rb").read())
        write("mcap", "live-binary-unplug-swap-none", live_recording(d))


def live_recording(d):
    """binary frames over a pty: a hot swap (SIGHUP), the device unplugged and back."""
    link = os.path.join(d, "ttyIMU")
    cfg = os.path.join(d, "live.toml")
    with open(cfg, "w") as f:
        f.write(config_text('path = "%s"' % link, "binary"))
    rec = os.path.join(d, "live.mcap")
    walk = rows("healthy_2x20m_left.csv", 3000, 60)
    frames = [wire.encode_binary(i, v) for i, (_, v) in enumerate(walk)]
    master, slave = open_pty(link)
    daemon = subprocess.Popen([REFLEXD, "run", "--config", cfg, "--record", rec, "--compression", "none"],
                              stderr=subprocess.PIPE, text=True)
    log = []
    wait_for(daemon, log, "serial device open", 1)
    for f in frames[:20]:
        os.write(master, f)
        time.sleep(0.002)
    daemon.send_signal(signal.SIGHUP)
    wait_for(daemon, log, "graph swapped", 1)
    for f in frames[20:40]:
        os.write(master, f)
        time.sleep(0.002)
    time.sleep(0.2)
    os.close(master)
    os.close(slave)
    os.remove(link)
    wait_for(daemon, log, "serial device gone", 1)
    master, slave = open_pty(link)
    wait_for(daemon, log, "serial device open", 2)
    for f in frames[40:]:
        os.write(master, f)
        time.sleep(0.002)
    time.sleep(0.3)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(10)
    os.close(master)
    os.close(slave)
    return open(rec, "rb").read()


def open_pty(link):
    master, slave = pty.openpty()
    tty.setraw(slave)
    os.symlink(os.ttyname(slave), link)
    return master, slave


def wait_for(daemon, log, needle, times):
    """Reads the daemon's stderr until `needle` has been logged `times` times."""
    deadline = time.time() + 20
    while sum(needle in line for line in log) < times:
        if time.time() > deadline or daemon.poll() is not None:
            raise SystemExit("reflexd: no %r:\n%s" % (needle, "".join(log)))
        log.append(daemon.stderr.readline())


def main():
    if not os.access(REFLEXD, os.X_OK):
        raise SystemExit("%s is missing: cargo build --release --workspace" % REFLEXD)
    clear_seeds()
    decoders()
    configs()
    weights()
    recordings()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        print("%-10s %d inputs" % (target, len(files)))


if __name__ == "__main__":
    main()

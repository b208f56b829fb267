#!/usr/bin/env python3
"""Soak test of the release `reflexd run`: N minutes (default 30) of a real IMU recording
streamed at 2 kHz into a pseudo-terminal, hop 1, a UDP actuator this script reads and a stuck
serial actuator nobody reads, a hot swap every minute (the config and the weights file
rewritten in turn), and the IMU unplugged and plugged back once in the middle.

    cargo build --release --workspace && python3 tools/soak.py               # 30 minutes
    python3 tools/soak.py --minutes 2 --keep /tmp/soak                       # a quick run, files kept

Every few seconds it samples the daemon's resident memory and open file descriptors; at the
end (SIGTERM) it reads the daemon's `stopped` line and reports:

- the RSS slope after warm-up (KiB/min, least squares) and the fd count;
- windows dropped, records lost by the sinks, allocations per window in the steady state;
- counted against received: frames written == samples + lost_samples; windows == samples -
  length + 1; windows == predictions + fallback_records + dropped_windows; and what the two
  actuators got (datagrams read here + datagrams the kernel dropped at this socket + lines in
  the stuck actuator's buffer) == 2 x records - sink_lost;
- swaps asked for, swaps done (the log's `graph swapped` lines and the records' generations).

It exits 1 when the RSS slope or the fd count grows, a count does not reconcile, a swap did
not happen, or the daemon did not stop cleanly; 2 when it cannot start. Python 3 standard
library only (the wire encoders of examples/firmware/stream_recording.py).
"""

import argparse
import fcntl
import json
import os
import pty
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "examples", "firmware"))
import stream_recording as wire  # noqa: E402

LENGTH = 128
HOP = 1
MODELS = ("depthwise", "standard")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    p.add_argument("--rate", type=float, default=2000.0, help="IMU samples per second (default 2000)")
    p.add_argument("--swap-every", type=float, default=60.0, help="seconds between hot swaps (default 60)")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS/fd samples (default 5)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds left out of the RSS slope (default: 3 min, or a quarter of a shorter run)")
    p.add_argument("--max-rss-slope", type=float, default=64.0,
                   help="KiB/min of RSS growth after warm-up that fails the run (default 64)")
    p.add_argument("--recording", default=os.path.join(ROOT, "examples", "data", "gaitmap", "healthy_2x20m_left.csv"),
                   help="the IMU recording streamed, looped (t,ch0..ch5)")
    p.add_argument("--reflexd", default=os.path.join(ROOT, "target", "release", "reflexd"))
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep the config, weights and log")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    return p.parse_args()


# ------------------------------------------------------------------------------------------
# The IMU: binary frames at a fixed rate into a pseudo-terminal that can be unplugged.
# ------------------------------------------------------------------------------------------

def crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


class Frames:
    """Binary frames of a looped recording, counter counting up: wire.encode_binary, with a
    table CRC (the script writes 2000 a second)."""

    def __init__(self, path):
        with open(path) as f:
            lines = f.read().splitlines()[1:]
        self.payloads = [struct.pack("<6f", *[wire.f32(float(x)) for x in l.split(",")[1:7]]) for l in lines]
        self.table = crc_table()
        self.counter = 0
        if self.frame(0) != wire.encode_binary(0, struct.unpack("<6f", self.payloads[0])):
            raise SystemExit("soak: the table CRC disagrees with stream_recording.encode_binary")

    def frame(self, counter):
        body = bytes([6]) + struct.pack("<I", counter & 0xFFFFFFFF) + self.payloads[counter % len(self.payloads)]
        crc = 0xFFFF
        for b in body:
            crc = ((crc << 8) & 0xFFFF) ^ self.table[(crc >> 8) ^ b]
        return b"\xA5\x5A" + body + struct.pack("<H", crc)

    def take(self, n):
        out = b"".join(self.frame(c) for c in range(self.counter, self.counter + n))
        self.counter += n
        return out


class Imu:
    """A pseudo-terminal behind a symlink (the daemon's source.path): unplug closes it and
    removes the link; plug makes a new one."""

    def __init__(self, link):
        self.link = link
        self.master = self.slave = None
        self.plug()

    def plug(self):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        os.symlink(os.ttyname(self.slave), self.link)

    def unplug(self):
        os.remove(self.link)
        os.close(self.master)
        os.close(self.slave)
        self.master = None


def drain(imu, limit):
    """Waits until the daemon has read every byte written (at most `limit` seconds)."""
    deadline = time.monotonic() + limit
    while unread(imu.slave) and time.monotonic() < deadline:
        time.sleep(0.01)


def unread(fd):
    """Bytes waiting in a terminal's input queue."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


class Writer(threading.Thread):
    """Writes frames at `rate` per second while plugged in; counts the frames written."""

    def __init__(self, imu, frames, rate):
        super().__init__(daemon=True)
        self.imu, self.frames, self.rate = imu, frames, rate
        self.lock = threading.Lock()
        self.written = 0
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.error = None

    def run(self):
        start = time.monotonic()
        due_base = 0
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(0.005)
                # The frames not written meanwhile are not owed: the sensor was away.
                start, due_base = time.monotonic(), self.written
                continue
            due = due_base + int((time.monotonic() - start) * self.rate) - self.written
            if due <= 0:
                time.sleep(0.002)
                continue
            n = min(due, 400)
            data = self.frames.take(n)
            with self.lock:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(self.imu.master, view):]
                except OSError as e:
                    self.error = e
                    return
                self.written += n

    def unplug(self):
        """Once the daemon has read every byte written: a reopened device starts a fresh
        decoder, which cannot count frames lost in the old one (the counts must reconcile)."""
        self.paused.set()
        with self.lock:
            drain(self.imu, 5.0)
            self.imu.unplug()

    def plug(self):
        with self.lock:
            self.imu.plug()
        self.paused.clear()


# ------------------------------------------------------------------------------------------
# The actuators: a UDP socket read here, and a serial line nobody reads.
# ------------------------------------------------------------------------------------------

class Actuator(threading.Thread):
    """Reads the UDP sink's datagrams: counts them and the records' generations and health."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.generation = 0
        self.health = {}
        self.out_of_order = 0
        self.last_window = -1
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.received += 1
            r = json.loads(data)
            self.generation = max(self.generation, r["generation"])
            self.health[r["health"]] = self.health.get(r["health"], 0) + 1
            if r["health"] == "ok":
                if r["window"] <= self.last_window:
                    self.out_of_order += 1
                self.last_window = r["window"]

    def kernel_drops(self):
        """Datagrams the kernel dropped at this socket (its receive buffer was full)."""
        local = "0100007F:%04X" % self.port
        with open("/proc/net/udp") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[1] == local:
                    return int(fields[-1])
        return 0


def stuck_actuator():
    """A pseudo-terminal whose master is never read: its buffer fills, then every write blocks."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    return master, slave


def lines_in(master):
    """Complete records the stuck actuator holds."""
    os.set_blocking(master, False)
    got = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        got += chunk
    return got.count(b"\n")


# ------------------------------------------------------------------------------------------
# The daemon: config, weights, swaps, and its numbers.
# ------------------------------------------------------------------------------------------

def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    return raw[:8 + n], json.loads(raw[8:8 + n]), bytearray(raw[8 + n:])


def other_weights(path):
    """The same tensors with the final layer negated: another valid weights file."""
    head, header, data = read_safetensors(path)
    a, b = header["fc.weight"]["data_offsets"]
    values = struct.unpack("<%df" % ((b - a) // 4), data[a:b])
    data[a:b] = struct.pack("<%df" % len(values), *[-v for v in values])
    return head + bytes(data)


def config_text(model, device, udp_port, actuator):
    """The example model's config with the soak's source, window and sinks."""
    text = open(os.path.join(ROOT, "examples", "models", model, "reflex.toml")).read()
    model_part = text[text.index("[model]"):text.index("[output]")]
    output = text[text.index("[output]"):text.index("[[sinks]]")]
    model_part = model_part.replace('weights = "weights.safetensors"', 'weights = "%s.safetensors"' % model)
    return ("# tools/soak.py: %s\n[source]\npath = \"%s\"\nformat = \"binary\"\nchannels = 6\n"
            "[window]\nlength = %d\nhop = %d\nqueue = 64\n%s%s"
            "[[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:%d\"\n"
            "[[sinks]]\nkind = \"serial\"\npath = \"%s\"\nformat = \"csv\"\n"
            % (model, device, LENGTH, HOP, model_part, output, udp_port, actuator))


def replace_file(path, data):
    """Write-new-then-rename, as editors and deploy tools do."""
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Swaps:
    """Every `swap_every` seconds: the config switches model, or the running model's weights
    file is replaced by its other version, in turn."""

    def __init__(self, work, texts, weights):
        self.work, self.texts, self.weights = work, texts, weights
        self.model = 0
        self.variant = {m: 0 for m in MODELS}
        self.done = 0

    def next(self):
        if self.done % 2 == 0:
            self.model = 1 - self.model
            replace_file(os.path.join(self.work, "reflex.toml"), self.texts[MODELS[self.model]].encode())
        else:
            m = MODELS[self.model]
            self.variant[m] = 1 - self.variant[m]
            replace_file(os.path.join(self.work, m + ".safetensors"), self.weights[m][self.variant[m]])
        self.done += 1


def footprint(pid):
    """(RSS in KiB, open fds) of a process."""
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def count_lines(log_path, needle):
    with open(log_path, errors="replace") as f:
        return sum(needle in l for l in f)


def wait_log(log_path, needle, times, daemon, limit=30.0):
    deadline = time.monotonic() + limit
    while count_lines(log_path, needle) < times:
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("soak: no %r in the log (%s)" % (needle, log_path))
        time.sleep(0.05)


def stopped_line(log_path):
    """The totals of the daemon's `stopped` line, as numbers."""
    with open(log_path, errors="replace") as f:
        line = [l for l in f if " stopped " in l or l.rstrip().endswith("stopped")]
    if not line:
        return None
    out = {}
    for field in line[-1].split():
        key, _, value = field.partition("=")
        if value:
            try:
                out[key] = float(value) if "." in value or "e" in value else int(value)
            except ValueError:
                out[key] = value
    return out


def slope(points):
    """Least-squares slope of (x, y) points, per unit of x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


# ------------------------------------------------------------------------------------------
# The run.
# ------------------------------------------------------------------------------------------

def setup(work, args):
    """Weights, the two configs and the actuators in `work`; the IMU and the actuators."""
    weights = {}
    for m in MODELS:
        original = os.path.join(ROOT, "examples", "models", m, "weights.safetensors")
        weights[m] = (open(original, "rb").read(), other_weights(original))
        replace_file(os.path.join(work, m + ".safetensors"), weights[m][0])
    imu = Imu(os.path.join(work, "ttyIMU"))
    udp = Actuator()
    stuck = stuck_actuator()
    texts = {m: config_text(m, imu.link, udp.port, os.ttyname(stuck[1])) for m in MODELS}
    replace_file(os.path.join(work, "reflex.toml"), texts[MODELS[0]].encode())
    return imu, udp, stuck, Swaps(work, texts, weights)


def run(args, work):
    duration = args.minutes * 60.0
    warmup = args.warmup if args.warmup is not None else min(180.0, duration / 4)
    imu, udp, stuck, swaps = setup(work, args)
    log_path = os.path.join(work, "reflexd.log")
    env = dict(os.environ, RUST_LOG="info")
    daemon = subprocess.Popen([args.reflexd, "run", "--config", os.path.join(work, "reflex.toml")],
                              stdout=subprocess.DEVNULL, stderr=open(log_path, "w"), env=env)
    try:
        wait_log(log_path, "serial device open", 1, daemon)
        udp.start()
        writer = Writer(imu, Frames(args.recording), args.rate)
        writer.start()
        samples = drive(args, daemon, writer, swaps, udp, log_path, duration)
        writer.stop.set()
        writer.join()
        drain(imu, 10.0)
        time.sleep(1.0)  # the last windows predicted and sent
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    time.sleep(0.5)  # the last datagrams read
    udp.stop.set()
    udp.join()
    seen = {"samples": samples, "udp": udp, "writer": writer, "swaps": swaps, "status": status,
            "log_path": log_path, "kernel_drops": udp.kernel_drops(), "stuck_lines": lines_in(stuck[0])}
    return report(args, seen, warmup)


def drive(args, daemon, writer, swaps, udp, log_path, duration):
    """Samples the footprint, swaps, unplugs once; returns the samples (t, rss, fds)."""
    start = time.monotonic()
    unplug_at = duration / 2 + args.swap_every / 2
    next_swap, next_sample, unplugged = args.swap_every, 0.0, False
    samples = []
    while True:
        t = time.monotonic() - start
        if t >= duration or daemon.poll() is not None or writer.error:
            return samples
        if t >= next_sample:
            rss, fds = footprint(daemon.pid)
            samples.append((t, rss, fds))
            next_sample += args.sample_every
            print("soak: %6.0f s  rss %6d KiB  fds %3d  frames %9d  udp %9d  swaps %d"
                  % (t, rss, fds, writer.written, udp.received, swaps.done), file=sys.stderr)
        if t >= next_swap:
            swaps.next()
            wait_log(log_path, "graph swapped", swaps.done, daemon)
            next_swap += args.swap_every
        if not unplugged and t >= unplug_at:
            unplugged = True
            writer.unplug()
            wait_log(log_path, "serial device gone", 1, daemon)
            time.sleep(3.0)
            writer.plug()
            wait_log(log_path, "serial device open", 2, daemon)
        time.sleep(0.05)


def report(args, r, warmup):
    samples, udp, writer, swaps, status = r["samples"], r["udp"], r["writer"], r["swaps"], r["status"]
    totals = stopped_line(r["log_path"]) or {}
    after = [(t / 60.0, rss) for t, rss, _ in samples if t >= warmup]
    fds_after = [fds for t, _, fds in samples if t >= warmup]
    rss_slope = slope(after)
    fd_growth = (sorted(fds_after[-5:])[len(fds_after[-5:]) // 2] - sorted(fds_after[:5])[len(fds_after[:5]) // 2]
                 if fds_after else 0)
    get = lambda k: totals.get(k, -1)
    records = get("predictions") + get("fallback_records")
    drops = r["kernel_drops"]
    out = {
        "minutes": args.minutes,
        "rate_hz": args.rate,
        "exit_status": status,
        "rss_kib": {"first": samples[0][1] if samples else None, "last": samples[-1][1] if samples else None,
                    "slope_kib_per_min_after_warmup": round(rss_slope, 2), "warmup_s": warmup},
        "fds": {"min": min(s[2] for s in samples), "max": max(s[2] for s in samples), "growth_after_warmup": fd_growth},
        "frames_written": writer.written,
        "daemon": totals,
        "udp_received": udp.received,
        "udp_kernel_drops": drops,
        "stuck_actuator_lines": r["stuck_lines"],
        "health": udp.health,
        "swaps_asked": swaps.done,
        "swaps_logged": count_lines(r["log_path"], "graph swapped"),
        "last_generation_received": udp.generation,
        "ok_windows_out_of_order": udp.out_of_order,
    }
    checks = [
        ("daemon stopped cleanly (exit 0, a stopped line)", status == 0 and bool(totals)),
        ("RSS slope after warm-up <= %g KiB/min" % args.max_rss_slope, rss_slope <= args.max_rss_slope),
        ("open fds do not grow after warm-up", fd_growth <= 0),
        ("frames written == samples + lost_samples", writer.written == get("samples") + get("lost_samples")),
        ("windows == samples - %d" % (LENGTH - 1), get("windows") == get("samples") - (LENGTH - 1)),
        ("windows == predictions + fallback_records + dropped_windows",
         get("windows") == get("predictions") + get("fallback_records") + get("dropped_windows")),
        ("udp received + kernel drops + stuck actuator lines == 2 x records - sink_lost",
         udp.received + drops + r["stuck_lines"] == 2 * records - get("sink_lost")),
        ("every swap done (log and records)",
         out["swaps_logged"] == swaps.done and udp.generation == swaps.done + 1),
        ("windows in order at the actuator", udp.out_of_order == 0),
    ]
    out["checks"] = {name: ok for name, ok in checks}
    return out, checks


def main():
    args = parse_args()
    if not os.access(args.reflexd, os.X_OK):
        print("soak: %s is missing: cargo build --release --workspace" % args.reflexd, file=sys.stderr)
        return 2
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        out, checks = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="reflex-soak-") as work:
            out, checks = run(args, work)
    print(json.dumps(out, indent=2))
    for name, ok in checks:
        print("%s  %s" % ("ok  " if ok else "FAIL", name))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Stream a bundled IMU recording to a serial device, a pseudo-terminal or a file, in one of
Reflex's wire formats (docs/wire-formats.md), so that `reflexd run` can be tried without hardware.

    # a pseudo-terminal pair: the first line printed is the path to use as source.path
    python3 examples/firmware/stream_recording.py --format binary --pty

    # a real serial line (e.g. a USB-UART looped to the robot host), 4x faster than recorded
    python3 examples/firmware/stream_recording.py --format witmotion --speed 4 /dev/ttyUSB1

    # a plain file (written as fast as possible), e.g. for `reflexd replay` with format = binary
    python3 examples/firmware/stream_recording.py --format binary /tmp/walk.bin

    # check the encoders against byte strings worked out by hand from docs/wire-formats.md
    python3 examples/firmware/stream_recording.py --self-test

Input: a recording with the header `t,ch0,...,chN` (`t` in seconds, as in
examples/data/gaitmap/*.csv: ch0..ch2 acceleration in m/s², ch3..ch5 angular rate in deg/s).
It is sent at its own rate (the spacing of `t`), or at `--rate HZ`, scaled by `--speed FACTOR`.

Formats, and the Reflex `[source]` settings that read them:

  csv        one line per sample, values as the shortest decimal that reads back as the same
             f32 (what reflex_codecs::encode::csv writes), in the recording's units.
             format = "csv", channels = 6, time_column = false
             (with --csv-time each line starts with the recording's time: time_column = true)
  binary     A5 5A | n: u8 | counter: u32 LE | n x f32 LE | crc: u16 LE, CRC-16/CCITT-FALSE
             over n..last data byte; the counter counts samples from 0.
             format = "binary", channels = 6
  witmotion  per sample a 0x51 packet (acceleration, in g: m/s² / 9.80665, ±16 g full scale)
             then a 0x52 packet (angular rate, ±2000 deg/s full scale); 4th word = 2500
             (25.00 °C); checksum = sum of the 10 preceding bytes mod 256.
             format = "witmotion", channels = 6 (note: acceleration arrives in g, not m/s²)

Only the Python 3 standard library is needed. If `pyserial` is installed it is used to open
real serial devices; without it the device is configured with termios (raw, --baud).
Pseudo-terminals (--pty, or an existing /dev/pts/N) and plain files need neither.

With --pty the script keeps the master side and waits until a reader (reflexd) opens the slave
before it starts; when the reader goes away it pauses and waits for the next one, so the daemon
can be restarted against the same path. Stop with Ctrl-C.
"""

import argparse
import decimal
import math
import os
import select
import signal
import stat
import struct
import sys
import time

try:  # termios/tty exist on every Unix; the script is meant for Linux hosts
    import termios
    import tty
except ImportError:  # pragma: no cover - non-Unix
    termios = tty = None

try:
    import serial  # pyserial, optional
except ImportError:
    serial = None

STANDARD_GRAVITY = 9.80665  # m/s² per g
BINARY_SYNC = b"\xA5\x5A"
WIT_HEADER = 0x55
WIT_ACCEL = 0x51
WIT_GYRO = 0x52
WIT_TEMPERATURE_RAW = 2500  # 25.00 °C in the sensor's 0.01 °C, as the Rust encoder writes
I16_MIN, I16_MAX = -32768, 32767

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RECORDING = os.path.normpath(
    os.path.join(HERE, "..", "data", "gaitmap", "healthy_2x20m_left.csv"))


# --------------------------------------------------------------------------------------------
# Encoders: byte for byte what crates/reflex-codecs/src/encode.rs produces.
# --------------------------------------------------------------------------------------------

def crc16_ccitt_false(data):
    """CRC-16/CCITT-FALSE (a.k.a. CRC-16/IBM-3740): poly 0x1021, init 0xFFFF, MSB first,
    no reflection, no final xor. Check value: crc16_ccitt_false(b"123456789") == 0x29B1."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def f32(x):
    """`x` rounded to the nearest IEEE binary32 value (as Rust's `x as f32`), back as a float.
    Too large in magnitude becomes ±inf, as in Rust (struct.pack would raise instead)."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def f32_bytes(x):
    """The 4 little-endian bytes of `x` as an f32."""
    return struct.pack("<f", f32(x))


def encode_binary(counter, values):
    """One `binary` frame: A5 5A | n | counter u32 LE | n x f32 LE | crc16 LE (over n..data)."""
    if len(values) > 255:
        raise ValueError("a binary frame holds at most 255 values")
    body = bytes([len(values)]) + struct.pack("<I", counter & 0xFFFFFFFF)
    body += b"".join(f32_bytes(v) for v in values)
    return BINARY_SYNC + body + struct.pack("<H", crc16_ccitt_false(body))


def quantise(x, full_scale):
    """Like the Rust encoder's `(x / full_scale * 32768.0).round() as i16` in f32 arithmetic:
    rounds half AWAY from zero (Python's round() would round half to even), saturates at the
    i16 limits, and turns NaN into 0."""
    x = f32(x)
    if math.isnan(x):
        return 0
    scaled = f32(x / full_scale) * 32768.0  # f32 division; x 2^15 is exact
    if math.isinf(scaled):
        return I16_MAX if scaled > 0 else I16_MIN
    r = math.copysign(math.floor(abs(scaled) + 0.5), scaled)
    return int(max(I16_MIN, min(I16_MAX, r)))


def witmotion_packet(kind, words):
    """One WitMotion packet: 55 | kind | 4 x i16 LE | sum of the 10 preceding bytes mod 256."""
    body = bytes([WIT_HEADER, kind]) + struct.pack("<4h", *words)
    return body + bytes([sum(body) & 0xFF])


def encode_witmotion(acc_g, gyro_dps):
    """The 0x51 + 0x52 pair (22 bytes) for one sample: acceleration in g (±16 g full scale) and
    angular rate in deg/s (±2000 deg/s full scale), quantised like the sensor."""
    acc = [quantise(a, 16.0) for a in acc_g]
    gyro = [quantise(w, 2000.0) for w in gyro_dps]
    return (witmotion_packet(WIT_ACCEL, acc + [WIT_TEMPERATURE_RAW])
            + witmotion_packet(WIT_GYRO, gyro + [WIT_TEMPERATURE_RAW]))


def f32_text(x):
    """The shortest decimal that reads back as the same f32, without an exponent: what Rust's
    `format!("{}", x as f32)` prints ("1", "-0.5", "9.40865", "0.0000001"). Among equally short
    candidates the nearest wins, and an exact tie goes away from zero, as in Rust."""
    x = f32(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    exact = decimal.Decimal(x)  # the f32's exact binary value, as a decimal
    for digits in range(1, 10):  # 9 significant digits always round-trip a binary32
        step = decimal.Decimal(1).scaleb(exact.adjusted() - digits + 1)
        candidate = exact.quantize(step, rounding=decimal.ROUND_HALF_UP)
        if f32(float(candidate)) == x:
            break
    text = format(candidate, "f")  # positional notation, no exponent
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def encode_csv(values, t=None):
    """One `csv` line: optional time (shortest f64 text), then the values as f32 text."""
    fields = [] if t is None else [repr(float(t))]
    fields += [f32_text(v) for v in values]
    return (",".join(fields) + "\n").encode("ascii")


class Encoder:
    """Turns one recorded sample (recording units) into the bytes of the chosen format."""

    def __init__(self, fmt, csv_time=False):
        self.fmt = fmt
        self.csv_time = csv_time
        self.counter = 0  # binary frame counter: one per sample, wrapping at 2^32

    def encode(self, t, values):
        if self.fmt == "csv":
            return encode_csv(values, t if self.csv_time else None)
        if self.fmt == "binary":
            frame = encode_binary(self.counter, values)
            self.counter = (self.counter + 1) & 0xFFFFFFFF
            return frame
        # witmotion: ch0..ch2 are m/s² in the recordings, the sensor speaks g
        acc_g = [a / STANDARD_GRAVITY for a in values[0:3]]
        return encode_witmotion(acc_g, values[3:6])


# --------------------------------------------------------------------------------------------
# Self-test: hex strings worked out by hand from docs/wire-formats.md (and confirmed against the Rust
# encoders in crates/reflex-codecs/src/encode.rs).
# --------------------------------------------------------------------------------------------

def self_test():
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append("%s:\n  got  %s\n  want %s" % (what, got, want))

    # The catalogue check value of CRC-16/CCITT-FALSE.
    check("crc16(b'123456789')", "%04X" % crc16_ccitt_false(b"123456789"), "29B1")

    # binary: counter 0x04030201 (LE 01 02 03 04), n = 6, values whose f32 bits are easy:
    #   1.0 = 3F800000, -2.0 = C0000000, 0.5 = 3F000000, 0.0 = 00000000,
    #   100.0 = 42C80000, -0.25 = BE800000 (each written little-endian);
    #   CRC-16/CCITT-FALSE over 06 .. BE = 0x33D8, written LE as D8 33 (the one value here not
    #   worked out by hand: it comes from encode::binary, i.e. the `crc` crate's IBM-3740).
    check("binary frame",
          encode_binary(0x04030201, [1.0, -2.0, 0.5, 0.0, 100.0, -0.25]).hex(" ").upper(),
          "A5 5A 06 01 02 03 04 00 00 80 3F 00 00 00 C0 00 00 00 3F 00 00 00 00 "
          "00 00 C8 42 00 00 80 BE D8 33")

    # The layout test of encode.rs: binary(0x04030201, [1.0]).
    check("binary frame, n = 1", encode_binary(0x04030201, [1.0])[:11].hex(" ").upper(),
          "A5 5A 01 01 02 03 04 00 00 80 3F")

    # witmotion: acc (g) [0.5, -1.0, 16.0] -> raw 1024 (00 04), -2048 (00 F8), 32768
    # saturating to 32767 (FF 7F); temperature 2500 (C4 09); sum 0x3ED -> ED.
    # gyro (deg/s) [250, -2000, 0.1] -> 4096 (00 10), -32768 (00 80), 1.6384 -> 2 (02 00);
    # sum 0x206 -> 06.
    check("witmotion pair", encode_witmotion([0.5, -1.0, 16.0], [250.0, -2000.0, 0.1]).hex(" ").upper(),
          "55 51 00 04 00 F8 FF 7F C4 09 ED 55 52 00 10 00 80 02 00 C4 09 06")

    # The layout test of encode.rs: witmotion(0x51, [1, -1, 0x0100, 0]), checksum 0x2A6 -> A6.
    check("witmotion packet", witmotion_packet(0x51, [1, -1, 0x0100, 0]).hex(" ").upper(),
          "55 51 01 00 FF FF 00 01 00 00 A6")

    # Quantisation: halves round away from zero, like Rust's f32::round; saturation; NaN -> 0.
    check("quantise", [quantise(1 / 4096, 16.0), quantise(-1 / 4096, 16.0),
                       quantise(1.0, 16.0), quantise(100.0, 16.0), quantise(-100.0, 16.0),
                       quantise(float("nan"), 16.0), quantise(1e300, 2000.0)],
          [1, -1, 2048, 32767, -32768, 0, 32767])

    # csv: Rust's shortest round-trip f32 text.
    check("csv", encode_csv([1.0, -0.5, 9.408650477990726, 1e-7, -0.0, 123456789.0]),
          b"1,-0.5,9.40865,0.0000001,-0,123456790\n")
    check("csv with time", encode_csv([2.0], 0.01), b"0.01,2\n")
    # -272.328125 is an f32 whose two 8-digit neighbours are equally near: Rust picks the one
    # away from zero (Python's "%.8g" would round half to even and print -272.32812).
    check("csv tie", encode_csv([-272.328125, 4.25390625]), b"-272.32813,4.2539063\n")

    # A recorded sample through the Encoder (binary counter starts at 0 and increments).
    enc = Encoder("binary")
    first, second = enc.encode(0.0, [0.0] * 6), enc.encode(0.0, [0.0] * 6)
    check("binary counter", (first[3:7].hex(), second[3:7].hex()), ("00000000", "01000000"))

    if failures:
        print("self-test FAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    print("self-test OK: crc16 check 0x29B1, binary, witmotion, quantisation, csv")
    return 0


# --------------------------------------------------------------------------------------------
# Input and output.
# --------------------------------------------------------------------------------------------

def load_recording(path):
    """Reads `t,ch0,...` lines; returns (times, rows). Blank and `#` lines are skipped."""
    times, rows = [], []
    with open(path, encoding="ascii") as f:
        header = None
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(",")
            if header is None:
                header = fields
                if header[0].strip() != "t":
                    sys.exit("%s:%d: expected a header `t,ch0,...`, found %r" % (path, lineno, line))
                continue
            if len(fields) != len(header):
                sys.exit("%s:%d: %d fields, the header has %d" % (path, lineno, len(fields), len(header)))
            try:
                values = [float(x) for x in fields]
            except ValueError:
                sys.exit("%s:%d: not a number: %r" % (path, lineno, line))
            times.append(values[0])
            rows.append(values[1:])
    if not rows:
        sys.exit("%s: no samples" % path)
    return times, rows


def baud_constant(baud):
    name = "B%d" % baud
    if not hasattr(termios, name):
        sys.exit("--baud %d: not a speed termios knows" % baud)
    return getattr(termios, name)


class Output:
    """Where the bytes go: a pseudo-terminal master, a serial device, or a plain file."""

    def __init__(self, args):
        self.pty_master = None
        self.port = None  # pyserial port
        self.fd = None
        self.is_file = False
        self.is_pty = False
        if args.pty:
            self.pty_master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing, no CR/LF translation
            self.path = os.ttyname(slave)
            # Close our end of the slave: the master then reports POLLHUP until a reader
            # opens it, which is how we know when to start (and when to pause).
            os.close(slave)
            self.fd = self.pty_master
            self.is_pty = True
            self.poll = select.poll()
            self.poll.register(self.pty_master, select.POLLOUT)
            return
        self.path = args.target
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISCHR(st.st_mode):
            if serial is not None:
                self.port = serial.Serial(self.path, args.baud, write_timeout=None)
            else:
                # O_NONBLOCK so that open() does not wait for carrier detect; cleared below.
                self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
                if os.isatty(self.fd):
                    tty.setraw(self.fd)
                    attrs = termios.tcgetattr(self.fd)
                    attrs[2] |= termios.CLOCAL | termios.CREAD  # ignore modem lines
                    attrs[4] = attrs[5] = baud_constant(args.baud)  # ispeed, ospeed
                    termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
                os.set_blocking(self.fd, True)
        else:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            self.is_file = st is None or stat.S_ISREG(st.st_mode)

    def reader_present(self):
        """For a pseudo-terminal: whether someone holds the slave open. Always true otherwise."""
        if not self.is_pty:
            return True
        return not any(ev & select.POLLHUP for _, ev in self.poll.poll(0))

    def wait_for_reader(self):
        while not self.reader_present():
            time.sleep(0.05)

    def write(self, data):
        if self.port is not None:
            self.port.write(data)
            return
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def close(self):
        if self.port is not None:
            self.port.close()
        elif self.fd is not None:
            os.close(self.fd)


# --------------------------------------------------------------------------------------------
# Streaming.
# --------------------------------------------------------------------------------------------

def parse_speed(text):
    if text == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive factor or 'max', got %r" % text)
    if not value > 0:
        raise argparse.ArgumentTypeError("the speed factor must be positive")
    return value


def stream(args, out, times, rows):
    encoder = Encoder(args.format, args.csv_time)
    n = len(rows)
    if args.rate:
        times = [i / args.rate for i in range(n)]
        period = 1.0 / args.rate
    else:
        period = (times[-1] - times[0]) / (n - 1) if n > 1 else 0.01
    duration = times[-1] - times[0] + period  # one pass, for --loop time offsets
    paced = math.isfinite(args.speed)

    def say(msg):
        print(msg, file=sys.stderr, flush=True)

    if out.is_pty:
        say("waiting for a reader to open %s ..." % out.path)
        out.wait_for_reader()
        say("reader connected: streaming")

    sent = nbytes = 0
    started = time.monotonic()
    anchor = None  # (wall clock, recording time) pair that pacing is measured from
    passes = 0
    try:
        while True:
            for i in range(n):
                t_rec = times[i] + passes * duration
                if out.is_pty and not out.reader_present():
                    say("reader closed %s: paused after %d samples; waiting for it to reopen" % (out.path, sent))
                    out.wait_for_reader()
                    say("reader connected: streaming")
                    anchor = None
                if paced:
                    now = time.monotonic()
                    if anchor is None:
                        anchor = (now, t_rec)
                    due = anchor[0] + (t_rec - anchor[1]) / args.speed
                    if due > now:
                        time.sleep(due - now)
                    elif now - due > 0.5:
                        # The line could not keep up (or the reader stopped reading): start
                        # pacing afresh instead of bursting to catch up.
                        anchor = (now, t_rec)
                data = encoder.encode(t_rec, rows[i])
                out.write(data)
                sent += 1
                nbytes += len(data)
                if sent == 200 and paced and not out.is_pty and not out.is_file:
                    line_bytes_per_s = args.baud / 10.0  # 8N1: 10 bits a byte
                    need = nbytes / sent / period * args.speed
                    if need > 0.9 * line_bytes_per_s:
                        say("warning: %.0f bytes/s needed, a %d baud line carries at most %.0f: "
                            "samples will back up (raise --baud or use binary)"
                            % (need, args.baud, line_bytes_per_s))
            passes += 1
            if not args.loop:
                break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        say("the other end closed")
    elapsed = time.monotonic() - started
    say("sent %d samples (%d bytes) in %.1f s" % (sent, nbytes, elapsed))


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Stream an IMU recording to a serial device / pseudo-terminal / file in a "
                    "Reflex wire format (csv, binary, witmotion).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("target", nargs="?", help="serial device, pseudo-terminal or file to write to")
    p.add_argument("--pty", action="store_true",
                   help="create a pseudo-terminal pair; the slave's path is printed first, alone on a line")
    p.add_argument("--format", choices=["csv", "binary", "witmotion"], default="binary")
    p.add_argument("--recording", default=DEFAULT_RECORDING,
                   help="CSV with header t,ch0..chN (default: %(default)s)")
    p.add_argument("--rate", type=float, help="samples per second (default: the recording's own)")
    p.add_argument("--speed", type=parse_speed, default=None,
                   help="time factor (2 = twice as fast) or 'max'; default 1, 'max' for plain files")
    p.add_argument("--baud", type=int, default=115200, help="line speed of a real serial device")
    p.add_argument("--csv-time", action="store_true",
                   help="csv: start each line with the time in seconds (reflex: time_column = true)")
    p.add_argument("--loop", action="store_true", help="repeat the recording until interrupted")
    p.add_argument("--self-test", action="store_true", help="check the encoders and exit")
    args = p.parse_args(argv)

    if args.self_test:
        return self_test()
    if args.pty == bool(args.target):
        p.error("give either a target path or --pty")
    if args.rate is not None and not args.rate > 0:
        p.error("--rate must be positive")

    times, rows = load_recording(args.recording)
    if args.format == "witmotion" and len(rows[0]) != 6:
        p.error("witmotion carries exactly 6 channels (ax ay az wx wy wz); the recording has %d" % len(rows[0]))

    # SIGTERM (kill, systemd, a background job whose SIGINT is ignored) stops like Ctrl-C.
    signal.signal(signal.SIGTERM, interrupt)
    out = Output(args)
    if args.speed is None:
        args.speed = math.inf if out.is_file else 1.0
    if out.is_pty:
        print(out.path, flush=True)  # first line of stdout: the path for source.path
    rate = args.rate or ((len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0)
    print("%s: %d samples, %d channels, %.1f Hz, %s format, speed %s -> %s\n"
          "reflex [source]: kind = \"serial\", path = \"%s\", format = \"%s\", channels = %d%s"
          % (os.path.basename(args.recording), len(rows), len(rows[0]), rate, args.format,
             "max" if math.isinf(args.speed) else "%g" % args.speed, out.path,
             out.path, args.format, len(rows[0]),
             ", time_column = %s" % ("true" if args.csv_time else "false") if args.format == "csv" else ""),
          file=sys.stderr, flush=True)
    try:
        stream(args, out, times, rows)
    finally:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

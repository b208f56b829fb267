//! `reflexd run` end to end: a pseudo-terminal stands in for the IMU (openpty), a UDP socket on
//! 127.0.0.1 for the actuator, and the real plugin libraries are loaded with dlopen. Every
//! value is compared with the same graph run directly on the same windows.

mod support;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::pty::openpty;
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use nix::unistd::Pid;
use reflex_codecs::encode;
use reflex_plugin_sdk::Shape;
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::{exe_dir, noise, write_weights};

const CHANNELS: usize = 6;
const LENGTH: usize = 16;
const HOP: usize = 4;

/// One end of a pseudo-terminal pair for the test (the "IMU"), the other for the daemon.
struct Pty {
    master: File,
    _slave: OwnedFd,
    path: PathBuf,
}

fn pty() -> Pty {
    let p = openpty(None, None).expect("openpty");
    // Tests run in parallel and spawn daemons: without close-on-exec another test's daemon
    // would inherit this master and keep the "device" alive after we unplug it.
    for fd in [&p.master, &p.slave] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
    }
    // Raw: no echo, no line editing, no CR/LF translation — bytes go through as written.
    let mut t = tcgetattr(&p.slave).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(&p.slave, SetArg::TCSANOW, &t).unwrap();
    let path = nix::unistd::ttyname(&p.slave).unwrap();
    Pty {
        master: File::from(p.master),
        _slave: p.slave,
        path,
    }
}

impl Pty {
    fn write(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, dir: &Path) -> Daemon {
        let log = dir.join("reflexd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_reflexd"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` `times` times.
    fn wait_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// SIGTERM, then how it exited and how long it took.
    fn terminate(mut self) -> (ExitStatus, Duration, String) {
        let start = Instant::now();
        kill(self.pid(), Signal::SIGTERM).unwrap();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed(), self.log());
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                panic!(
                    "reflexd did not exit within 5 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// CPU seconds used so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small model (conv → pool → linear, classify into 3) and a config streaming from `device`
/// to `udp`. `extra` goes into `[[model.layers]]` first (e.g. a slow layer).
fn setup(
    dir: &Path,
    device: &Path,
    format: &str,
    udp: u16,
    queue: usize,
    hop: usize,
    extra: &str,
) -> PathBuf {
    let w = |n: usize, seed| noise(n, seed);
    write_weights(
        &dir.join("w.safetensors"),
        &[
            ("conv.weight", vec![8, CHANNELS, 3], w(8 * CHANNELS * 3, 1)),
            ("conv.bias", vec![8], w(8, 2)),
            ("fc.weight", vec![3, 8], w(24, 3)),
            ("fc.bias", vec![3], w(3, 4)),
        ],
    );
    let text = format!(
        "[source]\npath = \"{}\"\nformat = \"{format}\"\nchannels = {CHANNELS}\n\
         [window]\nlength = {LENGTH}\nhop = {hop}\nqueue = {queue}\n\
         [model]\nweights = \"w.safetensors\"\nplugin_dir = \"{}\"\n{extra}\
         [[model.layers]]\nname = \"conv\"\nplugin = \"conv_standard\"\nout_channels = 8\nkernel_size = 3\nactivation = \"relu\"\n\
         [[model.layers]]\nname = \"pool\"\nplugin = \"global_avg_pool\"\n\
         [[model.layers]]\nname = \"fc\"\nplugin = \"linear\"\nout_features = 3\n\
         [output]\nkind = \"classify\"\nlabels = [\"a\", \"b\", \"c\"]\n\
         [[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{udp}\"\n",
        device.display(),
        exe_dir().display()
    );
    let p = dir.join("reflex.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn actuator() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn receive(sock: &UdpSocket, n: usize) -> Vec<Value> {
    let mut buf = [0u8; 65536];
    (0..n)
        .map(|i| {
            let len = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("datagram {i} of {n}: {e}"));
            serde_json::from_slice(&buf[..len]).unwrap()
        })
        .collect()
}

/// The graph of `config`, built in this process from the same plugin libraries, on every
/// window of `samples` — what the daemon must have sent.
fn expected(config: &Path, samples: &[Vec<f32>], hop: usize) -> Vec<Vec<f32>> {
    let c = reflex_config::load(config).unwrap();
    let input = Shape::Seq {
        channels: CHANNELS,
        length: LENGTH,
    };
    let mut g =
        reflex_graph::Graph::build(&c.model, input, &mut reflex_graph::registry(), &exe_dir())
            .unwrap();
    let count = if samples.len() < LENGTH {
        0
    } else {
        (samples.len() - LENGTH) / hop + 1
    };
    (0..count)
        .map(|w| {
            let mut x = Vec::with_capacity(CHANNELS * LENGTH);
            for ch in 0..CHANNELS {
                x.extend((0..LENGTH).map(|k| samples[w * hop + k][ch]));
            }
            g.run(&x).unwrap().to_vec()
        })
        .collect()
}

fn values(r: &Value) -> Vec<f32> {
    r["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn assert_records(records: &[Value], want: &[Vec<f32>], hop: usize) {
    assert_eq!(records.len(), want.len());
    for (w, (r, v)) in records.iter().zip(want).enumerate() {
        assert_eq!(r["window"], w as u64, "{r}");
        assert_eq!(r["last_sample"], (w * hop + LENGTH - 1) as u64, "{r}");
        assert_eq!(r["generation"], 1);
        assert_eq!(&values(r), v, "window {w}: {r}");
        let i = r["index"].as_u64().unwrap() as usize;
        assert_eq!(r["label"], ["a", "b", "c"][i]);
        assert!(r["latency_us"].as_f64().unwrap() > 0.0);
    }
}

/// `key=N` from the daemon's final "stopped" line.
fn total(log: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("stopped"))
        .unwrap_or_else(|| panic!("no summary:\n{log}"));
    let at = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    line[at + key.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn samples(n: usize, seed: u32) -> Vec<Vec<f32>> {
    noise(n * CHANNELS, seed)
        .chunks(CHANNELS)
        .map(|c| c.iter().map(|v| v * 8.0).collect())
        .collect()
}

#[test]
fn csv_over_a_pty_with_garbage_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let cfg = setup(dir.path(), &imu.path, "csv", port, 32, HOP, "");
    let daemon = Daemon::start(&cfg, dir.path());
    daemon.wait_log("serial device open", 1);

    let good = samples(40, 7);
    let mut stream = String::from("# IMU v2 firmware\nax,ay,az,gx,gy,gz\n\n");
    for (i, s) in good.iter().enumerate() {
        stream.push_str(&encode::csv(None, s));
        match i {
            5 => stream.push_str("1,2,3\n"),
            15 => stream.push_str("1,2,x,4,5,6\n"),
            25 => stream.push_str("nan,1,2,3,4,5\r\n"),
            _ => {}
        }
    }
    // Split across writes mid-line: the decoder must reassemble.
    for chunk in stream.as_bytes().chunks(37) {
        imu.write(chunk);
        std::thread::sleep(Duration::from_millis(1));
    }
    let want = expected(&cfg, &good, HOP);
    let records = receive(&sock, want.len());
    assert_records(&records, &want, HOP);
    assert!(
        records.iter().all(|r| r["t"].is_null()),
        "csv without a time column has no t"
    );

    let (status, took, log) = daemon.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(took < Duration::from_secs(1), "took {took:?} to stop");
    assert_eq!(total(&log, "samples"), 40, "{log}");
    assert_eq!(total(&log, "decode_errors"), 3, "{log}");
    assert_eq!(total(&log, "dropped_windows"), 0, "{log}");
}

#[test]
fn binary_frames_with_corruption_and_counter_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let cfg = setup(dir.path(), &imu.path, "binary", port, 32, HOP, "");
    let daemon = Daemon::start(&cfg, dir.path());
    daemon.wait_log("serial device open", 1);

    let all = samples(42, 11);
    let mut good = Vec::new();
    let mut bytes = vec![0x00, 0xA5, 0x5A, 0x13, 0x37]; // noise with a false sync
    for (i, s) in all.iter().enumerate() {
        let mut frame = encode::binary(i as u32, s);
        match i {
            10 => {
                // Bad CRC: the frame is rejected, and its counter is missing afterwards.
                let n = frame.len();
                frame[n - 1] ^= 0xFF;
            }
            20 => continue,          // never sent: a gap in the counter
            30 => frame.truncate(9), // cut short, the next frame follows at once
            _ => good.push(s.clone()),
        }
        bytes.extend(frame);
    }
    for chunk in bytes.chunks(50) {
        imu.write(chunk);
        std::thread::sleep(Duration::from_millis(1));
    }
    let want = expected(&cfg, &good, HOP);
    let records = receive(&sock, want.len());
    assert_records(&records, &want, HOP);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        records
            .iter()
            .all(|r| (now - r["t"].as_f64().unwrap()).abs() < 60.0),
        "t is the receive time"
    );

    let (status, _, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(total(&log, "samples"), good.len() as u64, "{log}");
    assert_eq!(
        total(&log, "lost_samples"),
        3,
        "frames 10, 20 and 30 are missing from the counter:\n{log}"
    );
    assert!(total(&log, "decode_errors") >= 2, "{log}");
}

#[test]
fn witmotion_packets_with_noise() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let cfg = setup(dir.path(), &imu.path, "witmotion", port, 32, HOP, "");
    let daemon = Daemon::start(&cfg, dir.path());
    daemon.wait_log("serial device open", 1);

    let mut good = Vec::new();
    let mut bytes = Vec::new();
    for (i, s) in samples(36, 5).iter().enumerate() {
        let acc = [s[0] / 4.0, s[1] / 4.0, s[2] / 4.0];
        let gyro = [s[3] * 100.0, s[4] * 100.0, s[5] * 100.0];
        let (packets, decoded) = encode::witmotion_sample(acc, gyro);
        bytes.extend_from_slice(&packets);
        good.push(decoded.to_vec());
        match i {
            3 => bytes.extend_from_slice(&encode::witmotion(0x53, [100, -200, 300, 0])), // angle: ignored
            9 => {
                let mut bad = encode::witmotion(0x51, [1, 2, 3, 4]);
                bad[10] ^= 0x01;
                bytes.extend_from_slice(&bad);
            }
            17 => bytes.extend_from_slice(&[0x55, 0x55, 0x01, 0x02]), // noise with sync bytes
            _ => {}
        }
    }
    for chunk in bytes.chunks(23) {
        imu.write(chunk);
    }
    let want = expected(&cfg, &good, HOP);
    let records = receive(&sock, want.len());
    assert_records(&records, &want, HOP);
    let (status, _, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(total(&log, "samples"), 36, "{log}");
    assert!(total(&log, "decode_errors") >= 1, "{log}");
}

/// USB unplug: the device vanishes (EOF/EIO), the daemon logs it, waits without spinning,
/// and reads again once the device is back at the same path.
#[test]
fn the_device_vanishes_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyIMU");
    let mut first = pty();
    std::os::unix::fs::symlink(&first.path, &link).unwrap();
    let (sock, port) = actuator();
    let cfg = setup(dir.path(), &link, "csv", port, 32, HOP, "");
    let daemon = Daemon::start(&cfg, dir.path());
    daemon.wait_log("serial device open", 1);

    let before = samples(20, 3);
    for s in &before {
        first.write(encode::csv(None, s).as_bytes());
    }
    let got = receive(&sock, (20 - LENGTH) / HOP + 1);
    assert_eq!(got.last().unwrap()["window"], 1);

    drop(first); // unplugged
    daemon.wait_log("serial device gone", 1);
    std::fs::remove_file(&link).unwrap();
    let cpu = daemon.cpu_seconds();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        daemon.cpu_seconds() - cpu < 0.2,
        "the daemon spins while the device is away"
    );

    let mut second = pty();
    std::os::unix::fs::symlink(&second.path, &link).unwrap();
    daemon.wait_log("serial device open", 2);
    let after = samples(12, 4);
    for s in &after {
        second.write(encode::csv(None, s).as_bytes());
    }
    // Numbering goes on across the gap: 32 samples in all give windows 0..=4.
    let more = receive(&sock, 3);
    assert_eq!(
        more.iter()
            .map(|r| r["window"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let all: Vec<Vec<f32>> = before.into_iter().chain(after).collect();
    let want = expected(&cfg, &all, HOP);
    for r in &more {
        assert_eq!(values(r), want[r["window"].as_u64().unwrap() as usize]);
    }
    let (status, _, log) = daemon.terminate();
    assert!(status.success(), "{log}");
}

/// A model slower than the samples: the oldest waiting windows are dropped and counted, the
/// reader never waits, and the numbering shows exactly the counted gaps.
#[test]
fn a_slow_model_drops_the_oldest_windows() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let slow = "[[model.layers]]\nname = \"drag\"\nplugin = \"slow\"\nms = 20\n";
    let cfg = setup(dir.path(), &imu.path, "binary", port, 2, 1, slow);
    let daemon = Daemon::start(&cfg, dir.path());
    daemon.wait_log("serial device open", 1);

    let all = samples(200, 9);
    let start = Instant::now();
    for (i, s) in all.iter().enumerate() {
        imu.write(&encode::binary(i as u32, s));
    }
    let written = start.elapsed();
    // 185 windows at 20 ms each would take 3.7 s: the reader took none of that.
    assert!(written < Duration::from_secs(1), "writing took {written:?}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, log) = daemon.terminate();
    assert!(status.success(), "{log}");

    let mut records = Vec::new();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        records.push(serde_json::from_slice::<Value>(&buf[..n]).unwrap());
    }
    let windows: Vec<u64> = records
        .iter()
        .map(|r| r["window"].as_u64().unwrap())
        .collect();
    let total_windows = (200 - LENGTH + 1) as u64;
    assert!(
        windows.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice: {windows:?}"
    );
    assert_eq!(
        *windows.last().unwrap(),
        total_windows - 1,
        "the newest window is never the one dropped"
    );
    let dropped = total(&log, "dropped_windows");
    assert!(dropped > 0, "{log}");
    assert_eq!(
        windows.len() as u64 + dropped,
        total_windows,
        "every window is predicted or counted as dropped"
    );
    let want = expected(&cfg, &all, 1);
    for r in &records {
        assert_eq!(values(r), want[r["window"].as_u64().unwrap() as usize]);
    }
}

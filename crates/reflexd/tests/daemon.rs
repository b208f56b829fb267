//! `reflexd run` end to end: a pseudo-terminal stands in for the IMU (openpty), a UDP socket on
//! 127.0.0.1 for the actuator, and the real plugin libraries are loaded with dlopen. Every
//! value is compared with the same graph run directly on the same windows.

mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reflex_codecs::encode;
use reflex_plugin_sdk::Shape;
use serde_json::Value;
use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};
use support::{exe_dir, noise, pty, write_weights};

const CHANNELS: usize = 6;
const LENGTH: usize = 16;
const HOP: usize = 4;

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, dir: &Path) -> Daemon {
        Self::start_with(config, dir, &[])
    }

    fn start_with(config: &Path, dir: &Path, extra: &[&str]) -> Daemon {
        let log = dir.join("reflexd.log");
        Daemon { child: support::start_run(config, extra, &log), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` `times` times.
    fn wait_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log().matches(needle).count() < times {
            assert!(Instant::now() < deadline, "no `{needle}` in the log:\n{}", self.log());
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
                panic!("reflexd did not exit within 5 s of SIGTERM:\n{}", self.log());
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
fn setup(dir: &Path, device: &Path, format: &str, udp: u16, queue: usize, hop: usize, extra: &str) -> PathBuf {
    let p = dir.join("reflex.toml");
    std::fs::write(&p, config_text(dir, device, format, udp, queue, hop, extra, Model::A)).unwrap();
    p
}

/// Two models for swapping: A is conv_standard, B is conv_depthwise with other weights.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Model {
    A,
    B,
}

#[allow(clippy::too_many_arguments)]
fn config_text(
    dir: &Path,
    device: &Path,
    format: &str,
    udp: u16,
    queue: usize,
    hop: usize,
    extra: &str,
    model: Model,
) -> String {
    let w = |n: usize, seed| noise(n, seed);
    let (weights, layer) = match model {
        Model::A => {
            write_weights(
                &dir.join("a.safetensors"),
                &[
                    ("conv.weight", vec![8, CHANNELS, 3], w(8 * CHANNELS * 3, 1)),
                    ("conv.bias", vec![8], w(8, 2)),
                    ("fc.weight", vec![3, 8], w(24, 3)),
                    ("fc.bias", vec![3], w(3, 4)),
                ],
            );
            ("a.safetensors", "[[model.layers]]\nname = \"conv\"\nplugin = \"conv_standard\"\nout_channels = 8\nkernel_size = 3\nactivation = \"relu\"\n")
        }
        Model::B => {
            write_weights(
                &dir.join("b.safetensors"),
                &[
                    ("conv.depthwise.weight", vec![CHANNELS, 1, 3], w(CHANNELS * 3, 5)),
                    ("conv.depthwise.bias", vec![CHANNELS], w(CHANNELS, 6)),
                    ("conv.pointwise.weight", vec![8, CHANNELS, 1], w(8 * CHANNELS, 7)),
                    ("conv.pointwise.bias", vec![8], w(8, 8)),
                    ("fc.weight", vec![3, 8], w(24, 9)),
                    ("fc.bias", vec![3], w(3, 10)),
                ],
            );
            ("b.safetensors", "[[model.layers]]\nname = \"conv\"\nplugin = \"conv_depthwise\"\nout_channels = 8\nkernel_size = 3\nactivation = \"relu\"\n")
        }
    };
    format!(
        "[source]\npath = \"{}\"\nformat = \"{format}\"\nchannels = {CHANNELS}\n\
         [window]\nlength = {LENGTH}\nhop = {hop}\nqueue = {queue}\n\
         [model]\nweights = \"{weights}\"\nplugin_dir = \"{}\"\n{extra}{layer}\
         [[model.layers]]\nname = \"pool\"\nplugin = \"global_avg_pool\"\n\
         [[model.layers]]\nname = \"fc\"\nplugin = \"linear\"\nout_features = 3\n\
         [output]\nkind = \"classify\"\nlabels = [\"a\", \"b\", \"c\"]\n\
         [[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{udp}\"\n",
        device.display(),
        exe_dir().display()
    )
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
            let len = sock.recv(&mut buf).unwrap_or_else(|e| panic!("datagram {i} of {n}: {e}"));
            serde_json::from_slice(&buf[..len]).unwrap()
        })
        .collect()
}

/// The graph of `config`, built in this process from the same plugin libraries, on every
/// window of `samples` — what the daemon must have sent.
fn expected(config: &Path, samples: &[Vec<f32>], hop: usize) -> Vec<Vec<f32>> {
    let c = reflex_config::load(config).unwrap();
    let input = Shape::Seq { channels: CHANNELS, length: LENGTH };
    let mut g = reflex_graph::Graph::build(&c.model, input, &mut reflex_graph::registry(), &exe_dir()).unwrap();
    let count = if samples.len() < LENGTH { 0 } else { (samples.len() - LENGTH) / hop + 1 };
    (0..count)
        .map(|w| {
            let x: Vec<f32> = (0..CHANNELS).flat_map(|ch| (0..LENGTH).map(move |k| samples[w * hop + k][ch])).collect();
            g.run(&x).unwrap().to_vec()
        })
        .collect()
}

fn values(r: &Value) -> Vec<f32> {
    r["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
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
    let line = log.lines().rev().find(|l| l.contains("stopped")).unwrap_or_else(|| panic!("no summary:\n{log}"));
    let at = line.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {line}"));
    line[at + key.len() + 1..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn samples(n: usize, seed: u32) -> Vec<Vec<f32>> {
    noise(n * CHANNELS, seed).chunks(CHANNELS).map(|c| c.iter().map(|v| v * 8.0).collect()).collect()
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
    assert!(records.iter().all(|r| r["t"].is_null()), "csv without a time column has no t");

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
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(records.iter().all(|r| (now - r["t"].as_f64().unwrap()).abs() < 60.0), "t is the receive time");
    // The samples after the last window give no record to wait for: let the reader take them
    // before the stop (a loaded machine may not have yet).
    std::thread::sleep(Duration::from_millis(300));

    let (status, _, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(total(&log, "samples"), good.len() as u64, "{log}");
    assert_eq!(total(&log, "lost_samples"), 3, "frames 10, 20 and 30 are missing from the counter:\n{log}");
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
    assert!(daemon.cpu_seconds() - cpu < 0.2, "the daemon spins while the device is away");

    let mut second = pty();
    std::os::unix::fs::symlink(&second.path, &link).unwrap();
    daemon.wait_log("serial device open", 2);
    let after = samples(12, 4);
    for s in &after {
        second.write(encode::csv(None, s).as_bytes());
    }
    // Numbering goes on across the gap: 32 samples in all give windows 0..=4.
    let more = receive(&sock, 3);
    assert_eq!(more.iter().map(|r| r["window"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 3, 4]);
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
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        records.push(serde_json::from_slice::<Value>(&buf[..n]).unwrap());
    }
    let windows: Vec<u64> = records.iter().map(|r| r["window"].as_u64().unwrap()).collect();
    let total_windows = (200 - LENGTH + 1) as u64;
    assert!(windows.windows(2).all(|w| w[0] < w[1]), "in order, none twice: {windows:?}");
    assert_eq!(*windows.last().unwrap(), total_windows - 1, "the newest window is never the one dropped");
    let dropped = total(&log, "dropped_windows");
    assert!(dropped > 0, "{log}");
    assert_eq!(windows.len() as u64 + dropped, total_windows, "every window is predicted or counted as dropped");
    let want = expected(&cfg, &all, 1);
    for r in &records {
        assert_eq!(values(r), want[r["window"].as_u64().unwrap() as usize]);
    }
}

/// Records arriving on the actuator socket, collected in the background.
struct Collector {
    records: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Collector {
    fn start(sock: UdpSocket) -> Collector {
        use std::sync::atomic::Ordering;
        let records = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let (r, s) = (records.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => r.lock().unwrap().push(serde_json::from_slice(&buf[..n]).unwrap()),
                    Err(_) if s.load(Ordering::Relaxed) => return,
                    Err(_) => {}
                }
            }
        });
        Collector { records, stop, thread }
    }

    fn generation(&self) -> u64 {
        self.records.lock().unwrap().iter().map(|r| r["generation"].as_u64().unwrap()).max().unwrap_or(0)
    }

    fn wait_generation(&self, g: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.generation() < g {
            assert!(Instant::now() < deadline, "generation {g} never arrived (at {})", self.generation());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(self) -> Vec<Value> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
        std::sync::Arc::try_unwrap(self.records).unwrap().into_inner().unwrap()
    }
}

/// The researcher edits the config of the running daemon: another plugin and other weights,
/// written by rename-over and in place, with broken edits in between. Windows keep flowing.
#[test]
fn hot_swap_between_two_models_without_losing_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let imu = pty();
    let (sock, port) = actuator();
    let text = |m| config_text(dir.path(), &imu.path, "binary", port, 32, HOP, "", m);
    let (a, b) = (text(Model::A), text(Model::B));
    std::fs::write(dir.path().join("a.toml"), &a).unwrap();
    std::fs::write(dir.path().join("b.toml"), &b).unwrap();
    let cfg = dir.path().join("reflex.toml");
    std::fs::write(&cfg, &a).unwrap();
    // Recorded elsewhere: the config's directory is watched.
    let recordings = tempfile::tempdir().unwrap();
    let rec = recordings.path().join("swaps.mcap");
    let daemon = Daemon::start_with(&cfg, dir.path(), &["--record", rec.to_str().unwrap()]);
    daemon.wait_log("serial device open", 1);
    let collector = Collector::start(sock);

    // 400 samples/s for 7 s, written while the config changes under the daemon.
    let all = samples(2800, 21);
    let frames: Vec<Vec<u8>> = all.iter().enumerate().map(|(i, s)| encode::binary(i as u32, s)).collect();
    let mut master = imu.master.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let start = Instant::now();
        for (i, f) in frames.iter().enumerate() {
            if let Some(d) = (start + Duration::from_micros(2500) * i as u32).checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            master.write_all(f).unwrap();
        }
    });
    let rename_over = |text: &str| {
        let tmp = dir.path().join(".reflex.toml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
    };
    let in_place = |text: &str| {
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&cfg).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    collector.wait_generation(1);
    rename_over(&b);
    collector.wait_generation(2);
    in_place(&a);
    collector.wait_generation(3);
    // Broken edits: bad TOML, an unknown plugin, a window change. Nothing may change.
    for (broken, why) in [
        ("[source\n".to_string(), "expected"),
        (a.replace("conv_standard", "conv_nonesuch"), "conv_nonesuch"),
        (a.replace("hop = 4", "hop = 2"), "[window] changed, which needs a restart"),
    ] {
        let refused = daemon.log().matches("config change refused").count();
        in_place(&broken);
        daemon.wait_log("config change refused", refused + 1);
        assert!(daemon.log().lines().rfind(|l| l.contains("config change refused")).unwrap().contains(why));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(collector.generation(), 3, "a broken edit changed the graph");
    }
    rename_over(&b);
    collector.wait_generation(4);
    writer.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    let records = collector.finish();

    // Every window exactly once, in order, across four generations.
    let windows: Vec<u64> = records.iter().map(|r| r["window"].as_u64().unwrap()).collect();
    let count = (all.len() - LENGTH) / HOP + 1;
    assert_eq!(windows, (0..count as u64).collect::<Vec<_>>(), "windows lost or repeated across swaps");
    assert_eq!(total(&log, "dropped_windows"), 0);
    let gens: Vec<u64> = records.iter().map(|r| r["generation"].as_u64().unwrap()).collect();
    assert!(gens.windows(2).all(|g| g[0] <= g[1]) && gens.last() == Some(&4), "{gens:?}");
    // Each record holds the values of the model its generation ran.
    let want_a = expected(&dir.path().join("a.toml"), &all, HOP);
    let want_b = expected(&dir.path().join("b.toml"), &all, HOP);
    for (r, g) in records.iter().zip(&gens) {
        let w = r["window"].as_u64().unwrap() as usize;
        let want = if g % 2 == 1 { &want_a[w] } else { &want_b[w] };
        assert_eq!(&values(r), want, "window {w}, generation {g}");
    }
    assert_eq!(log.matches("graph swapped").count(), 3, "{log}");
    assert!(log.contains("plugin=conv_depthwise") && log.contains("sha256="), "{log}");
    for line in log.lines().filter(|l| l.contains("graph swapped")) {
        println!("{}", &line[line.find("generation").unwrap()..]);
    }

    assert_swaps_recorded(&rec, &[&b, &a, &b]);
    replay_follows_the_recorded_generations(&rec, &records);
}

/// Every swap is in the recording, with its config (`configs`: generation 2, 3, …), read by the
/// official `mcap` crate; `reflexd info` lists the generations.
fn assert_swaps_recorded(rec: &Path, configs: &[&String]) {
    let bytes = std::fs::read(rec).unwrap();
    let swaps: Vec<Value> = mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(|m| m.unwrap())
        .filter(|m| m.channel.topic == "/reflex/events")
        .map(|m| serde_json::from_slice::<Value>(&m.data).unwrap())
        .filter(|e| e["event"] == "swap")
        .collect();
    let generations: Vec<u64> = swaps.iter().map(|e| e["generation"].as_u64().unwrap()).collect();
    assert_eq!(generations, (2..2 + configs.len() as u64).collect::<Vec<_>>());
    for (e, text) in swaps.iter().zip(configs) {
        assert_eq!(e["config"].as_str(), Some(text.as_str()));
        assert_eq!(e["weights_sha256"].as_str().map(str::len), Some(64));
        assert!(e["plugin_sha256"].as_object().is_some_and(|p| !p.is_empty()), "{e}");
    }
    let info = Command::new(env!("CARGO_BIN_EXE_reflexd")).args(["info", rec.to_str().unwrap()]).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    let last = configs.len() + 1;
    assert!(info.contains(&format!("generations: {last}")) && info.contains("swap to generation 3"), "{info}");
}

/// `replay` of a recording without `--config` uses the configs it was recorded with,
/// generation by generation: the live records again, window for window.
fn replay_follows_the_recorded_generations(rec: &Path, live: &[Value]) {
    let out = rec.with_extension("jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_reflexd"))
        .args(["replay", "--out", out.to_str().unwrap(), rec.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert_eq!(err.matches("so does the replay").count(), 3, "{err}");
    let replayed: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(replayed.len(), live.len());
    for (r, l) in replayed.iter().zip(live) {
        assert_eq!(without_latency(r), without_latency(l), "window {}", l["window"]);
    }
}

/// Resident memory (kB) and open files of a process.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    (rss, fds)
}

#[test]
fn five_hundred_swaps_in_a_row_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let imu = pty();
    let (_sock, port) = actuator();
    let cfg = setup(dir.path(), &imu.path, "binary", port, 32, HOP, "");
    // No input flows here, so no live window to run a new graph in shadow on: adopted after
    // the warm-up window alone.
    let text = std::fs::read_to_string(&cfg).unwrap() + "[swap]\nshadow_windows = 0\n";
    std::fs::write(&cfg, text).unwrap();
    let daemon = Daemon::start(&cfg, dir.path());
    daemon.wait_log("serial device open", 1);
    let mut after_warmup = (0, 0);
    for i in 1..=500 {
        kill(daemon.pid(), Signal::SIGHUP).unwrap();
        daemon.wait_log("graph swapped", i);
        if i == 50 {
            after_warmup = footprint(daemon.child.id());
        }
    }
    let (rss, fds) = footprint(daemon.child.id());
    println!("after 50 swaps: {} kB, {} fds; after 500: {rss} kB, {fds} fds", after_warmup.0, after_warmup.1);
    assert_eq!(fds, after_warmup.1, "open files grew");
    assert!(rss < after_warmup.0 + 4096, "memory grew from {} kB to {rss} kB", after_warmup.0);
    let (status, _, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("generation=501"), "{log}");
}

/// `reflexd replay --out` of `log`: the records, and the replay's stderr.
fn replay(config: &Path, log: &Path, out: &Path) -> (Vec<Value>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_reflexd"))
        .args(["replay", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg(log)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    let text = std::fs::read_to_string(out).unwrap();
    (text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(), err)
}

fn without_latency(r: &Value) -> Value {
    let mut r = r.clone();
    r.as_object_mut().unwrap().remove("latency_us");
    r
}

/// A session streamed through a pty and recorded, then replayed with the same config: the same
/// windows with exactly the live values; two replays are identical but for `latency_us`.
#[test]
fn recording_then_replay_reproduces_the_live_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let cfg = setup(dir.path(), &imu.path, "binary", port, 32, HOP, "");
    let rec = dir.path().join("session.mcap");
    let daemon = Daemon::start_with(&cfg, dir.path(), &["--record", rec.to_str().unwrap()]);
    daemon.wait_log("serial device open", 1);
    let all = samples(120, 33);
    let mut bytes = vec![0x13, 0x37];
    for (i, s) in all.iter().enumerate() {
        if i == 50 {
            continue; // a counter gap
        }
        bytes.extend(encode::binary(i as u32, s));
        if i % 17 == 0 {
            bytes.extend([0xA5, 0x00, 0x42]); // garbage
        }
    }
    for chunk in bytes.chunks(64) {
        imu.write(chunk);
        std::thread::sleep(Duration::from_millis(2));
    }
    let live = receive(&sock, (119 - LENGTH) / HOP + 1);
    let (status, _, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("recording complete"), "{log}");

    let (first, err) = replay(&cfg, &rec, &dir.path().join("one.jsonl"));
    assert!(err.contains("end of recording"), "{err}");
    assert_eq!(
        first.iter().map(without_latency).collect::<Vec<_>>(),
        live.iter().map(without_latency).collect::<Vec<_>>()
    );
    let (second, _) = replay(&cfg, &rec, &dir.path().join("two.jsonl"));
    assert_eq!(
        first.iter().map(without_latency).collect::<Vec<_>>(),
        second.iter().map(without_latency).collect::<Vec<_>>()
    );
}

/// Power loss or `kill -9` mid-session: the recording still replays, up to its last complete
/// chunk (at most about a second lost), and replay says it was cut short.
#[test]
fn a_recording_cut_by_kill_9_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let cfg = setup(dir.path(), &imu.path, "binary", port, 32, HOP, "");
    let rec = dir.path().join("cut.mcap");
    let mut daemon = Daemon::start_with(&cfg, dir.path(), &["--record", rec.to_str().unwrap()]);
    daemon.wait_log("serial device open", 1);
    let collector = Collector::start(sock);
    let all = samples(700, 44);
    let start = Instant::now();
    for (i, s) in all.iter().enumerate() {
        if let Some(d) = (start + Duration::from_millis(5) * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        imu.write(&encode::binary(i as u32, s));
    }
    std::thread::sleep(Duration::from_millis(100));
    daemon.child.kill().unwrap(); // SIGKILL: no chance to finish the file
    daemon.child.wait().unwrap();
    let live = collector.finish();
    assert_eq!(live.len(), (700 - LENGTH) / HOP + 1);

    let (replayed, err) = replay(&cfg, &rec, &dir.path().join("cut.jsonl"));
    assert!(err.contains("cut short"), "{err}");
    // 200 samples/s, a window every 4: one second is 50 windows. A chunk is closed every
    // second; allow half a second more for a loaded machine's scheduling.
    assert!(replayed.len() + 75 >= live.len(), "recovered {} of {} windows", replayed.len(), live.len());
    assert!(!replayed.is_empty());
    for (r, l) in replayed.iter().zip(&live) {
        assert_eq!(without_latency(r), without_latency(l));
    }
    println!("kill -9: replay recovered {} of {} windows", replayed.len(), live.len());
}

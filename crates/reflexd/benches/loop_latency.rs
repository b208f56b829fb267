//! The whole loop, measured from outside: the last byte of a sample written into a
//! pseudo-terminal → `reflexd run` (binary decoder, windower, queue, graph) → the UDP datagram
//! of that window received on 127.0.0.1. Not a test: a benchmark, run by hand.
//!
//! ```sh
//! cargo build --release --workspace
//! cargo bench -p reflexd --bench loop_latency -- [--model examples/bench/standard] [--rate 1000] \
//!     [--hop 1] [--seconds 20] [--find-max 60] [--stalled-viewer]
//! ```
//! `--find-max S` then searches the highest sample rate sustained for S seconds with no
//! dropped window and no datagram missing. `--stalled-viewer` serves the live view (`[live]`)
//! to a Foxglove viewer that subscribes to every topic and never reads again.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/support/mod.rs"]
mod support;

struct Args {
    model: PathBuf,
    rate: f64,
    hop: usize,
    seconds: f64,
    find_max: Option<f64>,
    stalled_viewer: bool,
}

fn args() -> Args {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a = Args {
        model: repo.join("examples/bench/standard"),
        rate: 1000.0,
        hop: 1,
        seconds: 20.0,
        find_max: None,
        stalled_viewer: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_default();
        match k.as_str() {
            "--model" => a.model = PathBuf::from(v()),
            "--rate" => a.rate = v().parse().expect("--rate HZ"),
            "--hop" => a.hop = v().parse().expect("--hop N"),
            "--seconds" => a.seconds = v().parse().expect("--seconds S"),
            "--find-max" => a.find_max = Some(v().parse().expect("--find-max S")),
            "--stalled-viewer" => a.stalled_viewer = true,
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

struct Outcome {
    sent: usize,
    received: usize,
    dropped: u64,
    latencies_us: Vec<f64>,
}

fn config(dir: &Path, model: &Path, pty: &Path, port: u16, hop: usize, live: bool) -> PathBuf {
    let text = std::fs::read_to_string(model.join("reflex.toml")).expect("model reflex.toml");
    let weights = model.join("weights.safetensors").canonicalize().unwrap();
    let plugins = Path::new(env!("CARGO_BIN_EXE_reflexd")).parent().unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match key {
            "weights" => {
                out.push_str(&format!("weights = \"{}\"\nplugin_dir = \"{}\"\n", weights.display(), plugins.display()))
            }
            "hop" => out.push_str(&format!("hop = {hop}\nqueue = 64\n")),
            _ if line.trim() == "[source]" => {
                out.push_str(&format!("[source]\npath = \"{}\"\nformat = \"binary\"\n", pty.display()))
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str(&format!("[[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{port}\"\n"));
    if live {
        out.push_str("[live]\nlisten = \"127.0.0.1:0\"\n");
    }
    let p = dir.join("loop.toml");
    std::fs::write(&p, out).unwrap();
    p
}

/// Starts `reflexd run` and waits until it has opened the pty.
fn start(cfg: &Path, log: &Path) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_reflexd"))
        .args(["run", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log).unwrap_or_default().contains("serial device open") {
        assert!(
            Instant::now() < deadline,
            "reflexd did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// Collects `(window, arrival)` of the datagrams until 2 s of silence.
fn receive(sock: UdpSocket, n: usize) -> std::thread::JoinHandle<Vec<(usize, Instant)>> {
    std::thread::spawn(move || {
        let mut got = Vec::with_capacity(n);
        let mut buf = [0u8; 4096];
        let mut idle = 0;
        while idle < 10 {
            match sock.recv(&mut buf) {
                Ok(len) => {
                    idle = 0;
                    let at = Instant::now();
                    let v: serde_json::Value = serde_json::from_slice(&buf[..len]).unwrap();
                    got.push((v["window"].as_u64().unwrap() as usize, at));
                }
                Err(_) => idle += 1,
            }
        }
        got
    })
}

fn run(a: &Args, rate: f64, seconds: f64) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let imu = support::pty();
    let path = imu.path.clone();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let cfg = config(dir.path(), &a.model, &path, port, a.hop, a.stalled_viewer);
    let log = dir.path().join("log");
    let child = start(&cfg, &log);
    // Subscribed to everything, then never read: a 4 KiB receive buffer stalls it quickly.
    let _stalled = a.stalled_viewer.then(|| {
        let mut v = support::viewer::Viewer::connect_small(support::viewer::address(&log), 4096);
        v.subscribe(&support::viewer::TOPICS);
        v
    });
    let length = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("length = ").map(|v| v.split_whitespace().next().unwrap().parse::<usize>().unwrap())
        })
        .unwrap();

    let n = (rate * seconds) as usize;
    let values: Vec<f32> = (0..6).map(|c| c as f32 * 0.1).collect();
    let frames: Vec<Vec<u8>> = (0..n).map(|i| reflex_codecs::encode::binary(i as u32, &values)).collect();
    let mut master = imu.master;
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let receiver = receive(sock, n);
    let mut sent_at = Vec::with_capacity(n);
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    for (i, f) in frames.iter().enumerate() {
        let due = start + period * i as u32;
        // Sleep most of the way, spin the rest: the schedule is the experiment.
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            if d > Duration::from_micros(200) {
                std::thread::sleep(d - Duration::from_micros(150));
            }
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        // Stamped before the write: the daemon's reader, woken by it, may preempt this thread
        // before write_all returns, and a later stamp would hide that time.
        sent_at.push(Instant::now());
        master.write_all(f).unwrap();
    }
    let got = receiver.join().unwrap();
    let mut child = child;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let dropped = text
        .lines()
        .rev()
        .find(|l| l.contains("stopped"))
        .and_then(|l| l.split("dropped_windows=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let mut latencies_us: Vec<f64> = got
        .iter()
        .filter_map(|(w, at)| sent_at.get(w * a.hop + length - 1).map(|s| at.duration_since(*s).as_secs_f64() * 1e6))
        .collect();
    latencies_us.sort_by(f64::total_cmp);
    let windows = if n < length { 0 } else { (n - length) / a.hop + 1 };
    Outcome { sent: windows, received: got.len(), dropped, latencies_us }
}

fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

fn report(rate: f64, o: &Outcome) {
    println!(
        "{rate:>8.0} Hz  windows {:>7}  received {:>7}  dropped {:>5}  latency p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs",
        o.sent,
        o.received,
        o.dropped,
        pct(&o.latencies_us, 0.5),
        pct(&o.latencies_us, 0.99),
        o.latencies_us.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() {
    let a = args();
    let viewer = if a.stalled_viewer { ", a stalled live viewer" } else { "" };
    println!("model {} hop {}{viewer}: pty → reflexd run → UDP", a.model.display(), a.hop);
    let o = run(&a, a.rate, a.seconds);
    report(a.rate, &o);
    if let Some(seconds) = a.find_max {
        let ok = |o: &Outcome| o.dropped == 0 && o.received == o.sent;
        let (mut good, mut bad) = (0.0f64, f64::INFINITY);
        let mut rate = a.rate;
        // Double until a rate fails, then bisect three times.
        for _ in 0..12 {
            let o = run(&a, rate, seconds);
            report(rate, &o);
            if ok(&o) {
                good = rate;
            } else {
                bad = rate;
            }
            if bad.is_infinite() {
                rate *= 2.0;
            } else if bad / good < 1.1 {
                break;
            } else {
                rate = ((good + bad) / 2.0).round();
            }
        }
        println!("highest rate sustained for {seconds} s with no dropped window: {good:.0} Hz");
    }
}

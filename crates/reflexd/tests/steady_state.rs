//! The daemon's steady state allocates nothing per window, measured in the real binary.
//!
//! `reflexd` counts every allocation of the process (it defines `malloc` and friends on
//! glibc: Rust code, the plugin libraries and C code alike, on every thread) and its `stopped`
//! line reports the steady state — from the first stats line (~10 s) that follows the first
//! 1000 windows, to the last window cut — as `steady_windows`, `steady_allocs` and
//! `allocs_per_window`. These tests run the whole pipeline at 500 samples/s with hop 1 (a
//! window per sample) for 14 s: live over a pseudo-terminal and replaying logs, through UDP,
//! file, stdout and serial sinks, recording to MCAP, serving a Foxglove viewer — and read the
//! count. The live view's own threads are counted apart (`live_allocs`): the Foxglove SDK
//! allocates for every message it sends, off the hot path, which only fills a queue.
//!
//! Both `reflexd run` (which also polls its config every 2 s) and `reflexd replay` must
//! allocate nothing at all in the steady state.

mod support;

use reflex_codecs::encode;
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::viewer::{address, Viewer, TOPICS};
use support::{exe_dir, noise, pty, stopped, write_weights};

const CHANNELS: usize = 6;
const LENGTH: usize = 16;
/// Samples per second; with hop 1, windows per second too.
const RATE: usize = 500;
/// Long enough for the ~10 s warm-up and a few thousand windows of steady state after it.
const SECONDS: usize = 14;
const SAMPLES: usize = RATE * SECONDS;
const WINDOWS: usize = SAMPLES - LENGTH + 1;
/// The least steady state a test accepts as one.
const STEADY_WINDOWS: u64 = 1000;

/// A trial's directories: the config and weights alone in theirs (the daemon watches it: a
/// file written there would wake the watcher), the log, and the outputs.
struct Trial {
    _root: tempfile::TempDir,
    cfg: PathBuf,
    data: PathBuf,
    out: PathBuf,
}

fn trial() -> Trial {
    let root = tempfile::tempdir().unwrap();
    let [cfg, data, out] = ["cfg", "data", "out"].map(|d| root.path().join(d));
    for d in [&cfg, &data, &out] {
        std::fs::create_dir(d).unwrap();
    }
    write_weights(
        &cfg.join("model.safetensors"),
        &[
            ("conv.weight", vec![8, CHANNELS, 3], noise(8 * CHANNELS * 3, 1)),
            ("conv.bias", vec![8], noise(8, 2)),
            ("fc.weight", vec![3, 8], noise(24, 3)),
            ("fc.bias", vec![3], noise(3, 4)),
        ],
    );
    Trial { _root: root, cfg, data, out }
}

impl Trial {
    /// A config: conv_standard (a plugin library) → pool → linear, classify, hop 1.
    fn config(&self, source: &str, sinks: &str) -> PathBuf {
        let text = format!(
            "[source]\n{source}channels = {CHANNELS}\n\
             [window]\nlength = {LENGTH}\nhop = 1\nqueue = 256\n\
             [model]\nweights = \"model.safetensors\"\nplugin_dir = \"{}\"\n\
             [[model.layers]]\nname = \"conv\"\nplugin = \"conv_standard\"\nout_channels = 8\nkernel_size = 3\nactivation = \"relu\"\n\
             [[model.layers]]\nname = \"pool\"\nplugin = \"global_avg_pool\"\n\
             [[model.layers]]\nname = \"fc\"\nplugin = \"linear\"\nout_features = 3\n\
             [output]\nkind = \"classify\"\nlabels = [\"a\", \"b\", \"c\"]\n{sinks}",
            exe_dir().display()
        );
        let p = self.cfg.join("reflex.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A csv log with a time column: `SAMPLES` samples at `RATE`.
    fn csv_log(&self) -> PathBuf {
        let p = self.data.join("trial.csv");
        let mut text = String::from("t,ax,ay,az,gx,gy,gz\n");
        for (i, s) in samples().iter().enumerate() {
            text.push_str(&encode::csv(Some(i as f64 / RATE as f64), s));
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn samples() -> Vec<Vec<f32>> {
    noise(SAMPLES * CHANNELS, 77).chunks(CHANNELS).map(|c| c.iter().map(|v| v * 8.0).collect()).collect()
}

/// `reflexd ARGS` with `env` added to its environment, stdout and stderr to files in `out`.
fn start(
    args: &[&std::ffi::OsStr],
    env: &[(&str, &std::ffi::OsStr)],
    out: &Path,
    name: &str,
) -> (Child, PathBuf, PathBuf) {
    let (stdout, log) = (out.join(format!("{name}.stdout")), out.join(format!("{name}.log")));
    let child = Command::new(env!("CARGO_BIN_EXE_reflexd"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, stdout, log)
}

/// Waits for `child` to exit by itself; its log.
fn finish(mut child: Child, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(log).unwrap();
            assert!(status.success(), "{status:?}\n{text}");
            return text;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("reflexd did not finish:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The steady state's windows and allocations, with the lines that report them.
fn steady(log: &str) -> (u64, u64) {
    for line in log.lines().filter(|l| l.contains(" stats ") || l.contains(" stopped ")) {
        println!("{}", &line[line.find("INFO").unwrap_or(0)..]);
    }
    let (windows, allocs) = (stopped(log, "steady_windows"), stopped(log, "steady_allocs"));
    assert!(windows >= STEADY_WINDOWS, "a steady state of {windows} windows only:\n{log}");
    (windows, allocs)
}

/// Datagrams arriving on a socket, counted (and the last one kept) in the background.
struct Actuator {
    port: u16,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Option<Value>>,
}

fn actuator() -> Actuator {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let (count, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let (c, s) = (count.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let mut last = None;
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    c.fetch_add(1, Ordering::Relaxed);
                    last = Some(buf[..n].to_vec());
                }
                Err(_) if s.load(Ordering::Relaxed) => return last.map(|b| serde_json::from_slice(&b).unwrap()),
                Err(_) => {}
            }
        }
    });
    Actuator { port, count, stop, thread }
}

impl Actuator {
    /// Datagrams received, and the last one.
    fn finish(self) -> (usize, Value) {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::Relaxed);
        let last = self.thread.join().unwrap().expect("no datagram at all");
        (self.count.load(Ordering::Relaxed), last)
    }
}

fn lines(path: &Path) -> usize {
    BufReader::new(File::open(path).unwrap()).lines().count()
}

/// A notify socket as systemd binds it: the messages it gets until [`Notified::finish`].
struct Notified {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<String>>,
}

fn notified(dir: &Path) -> Notified {
    let path = dir.join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let (mut buf, mut all) = ([0u8; 4096], Vec::new());
        while !s.load(Ordering::Relaxed) {
            if let Ok(n) = sock.recv(&mut buf) {
                all.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        all
    });
    Notified { path, stop, thread }
}

impl Notified {
    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// One `GET /metrics` from the endpoint the log at `stderr` names.
fn scrape(stderr: &Path) -> String {
    use std::io::Write;
    wait_for(stderr, "metrics: serving");
    let log = std::fs::read_to_string(stderr).unwrap();
    let at = log.find("listen=127.0.0.1:").unwrap() + "listen=127.0.0.1:".len();
    let port: u16 = log[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// `run` replaying a csv log in real time through UDP, file (JSON) and stdout (CSV) sinks,
/// recording to MCAP, serving `[metrics]` and notifying systemd with a watchdog: every window
/// reaches every sink, and none allocates (the metrics endpoint and the notifier included,
/// the endpoint scraped once before the steady state).
#[test]
fn run_replaying_a_log_through_udp_file_and_stdout_while_recording() {
    let t = trial();
    let log = t.csv_log();
    let udp = actuator();
    let systemd = notified(&t.out);
    let records = t.out.join("records.jsonl");
    let cfg = t.config(
        &format!(
            "kind = \"replay\"\npath = \"{}\"\nformat = \"csv\"\ntime_column = true\nspeed = \"realtime\"\n",
            log.display()
        ),
        &format!(
            "[[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{}\"\n\
             [[sinks]]\nkind = \"file\"\npath = \"{}\"\n\
             [[sinks]]\nkind = \"stdout\"\nformat = \"csv\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n",
            udp.port,
            records.display()
        ),
    );
    let rec = t.out.join("trial.mcap");
    // lz4 here; the pty test below records with the default, zstd, and replays it.
    let (child, stdout, stderr) = start(
        &[
            "run".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            "--record".as_ref(),
            rec.as_os_str(),
            "--compression".as_ref(),
            "lz4".as_ref(),
        ],
        &[("NOTIFY_SOCKET", systemd.path.as_os_str()), ("WATCHDOG_USEC", "1000000".as_ref())],
        &t.out,
        "run",
    );
    let metrics = scrape(&stderr);
    assert!(metrics.starts_with("HTTP/1.1 200") && metrics.contains("\nreflex_samples_total "), "{metrics}");
    let text = finish(child, &stderr);
    let notifications = systemd.finish();
    assert!(notifications.first().is_some_and(|m| m.starts_with("READY=1")), "{notifications:?}");
    let pings = notifications.iter().filter(|m| *m == "WATCHDOG=1\n").count();
    assert!(pings >= SECONDS - 1, "{pings} pings in {SECONDS} s: {notifications:?}");
    let (datagrams, last) = udp.finish();
    // A replay loses no window; a sink of a loaded machine may drop a record (counted).
    assert_eq!(stopped(&text, "predictions"), WINDOWS as u64, "{text}");
    assert_eq!(last["window"].as_u64(), Some(WINDOWS as u64 - 1));
    let delivered = datagrams + lines(&records) + lines(&stdout);
    assert_eq!(delivered + stopped(&text, "sink_lost") as usize, 3 * WINDOWS, "{text}");
    assert!(text.contains("recording complete"), "{text}");

    let (windows, allocs) = steady(&text);
    assert_eq!(allocs, 0, "{allocs} allocations in a steady state of {windows} windows:\n{text}");
}

/// Everything read from `line` until it ends.
fn read_all(mut line: File) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = line.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    })
}

/// Waits (20 s at most) until the log at `stderr` says `what`.
fn wait_for(stderr: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(stderr).unwrap_or_default().contains(what) {
        assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(stderr).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `run` on a live device (a pseudo-terminal streaming binary frames at 500 Hz) with UDP (written
/// directly by the inference thread), file, stdout and serial sinks (another pseudo-terminal),
/// recording, its `[labels]` listener waiting for marks, a Foxglove viewer subscribed to every
/// topic of the live view, and `[runtime]` pinning the reader and the spinning inference thread
/// to CPUs of their own, SCHED_FIFO, memory locked; then `replay` of that recording in real
/// time — which allocates nothing at all.
#[test]
fn run_on_a_pty_with_every_sink_kind_then_replay_its_recording() {
    let t = trial();
    let mut imu = pty();
    let actuator_line = pty();
    let udp = actuator();
    let cfg = t.config(
        &format!("kind = \"serial\"\npath = \"{}\"\nformat = \"binary\"\n", imu.path.display()),
        &format!(
            "[[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{}\"\n\
             [[sinks]]\nkind = \"file\"\npath = \"{}\"\nformat = \"csv\"\n\
             [[sinks]]\nkind = \"stdout\"\n\
             [[sinks]]\nkind = \"serial\"\npath = \"{}\"\nformat = \"template\"\ntemplate = \"T {{index}} {{values[0]:.3}}\\n\"\n\
             [labels]\nlisten = \"127.0.0.1:{}\"\n\
             [live]\nlisten = \"127.0.0.1:0\"\n\
             [runtime]\nreader_cpu = 0\ninference_cpu = 1\nrealtime_priority = 10\nlock_memory = true\nwake_latency_us = 0\n",
            udp.port,
            t.out.join("records.csv").display(),
            actuator_line.path.display(),
            UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        ),
    );
    // The actuator controller reads its line.
    let serial_bytes = read_all(actuator_line.master.try_clone().unwrap());
    let rec = t.out.join("live.mcap");
    let (child, stdout, stderr) = start(
        &["run".as_ref(), "--config".as_ref(), cfg.as_os_str(), "--record".as_ref(), rec.as_os_str()],
        &[],
        &t.out,
        "live",
    );
    wait_for(&stderr, "serial device open");
    wait_for(&stderr, "labels: taking activity marks");
    let viewing = view(&stderr);
    let start_at = Instant::now();
    for (i, s) in samples().iter().enumerate() {
        let due = start_at + Duration::from_secs_f64(i as f64 / RATE as f64);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        imu.write(&encode::binary(i as u32, s));
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let text = finish(child, &stderr);
    let (datagrams, _) = udp.finish();
    drop(actuator_line);
    let serial = String::from_utf8(serial_bytes.join().unwrap()).unwrap();
    // Live, a loaded machine may drop a window (the oldest, counted) or a sink a record
    // (counted): everything else reached every sink.
    let predictions = stopped(&text, "predictions") as usize;
    assert_eq!(predictions + stopped(&text, "dropped_windows") as usize, WINDOWS, "{text}");
    let delivered = datagrams
        + lines(&t.out.join("records.csv"))
        + lines(&stdout)
        + serial.lines().filter(|l| l.starts_with("T ")).count();
    assert_eq!(delivered + stopped(&text, "sink_lost") as usize, 4 * predictions, "{text}");
    let (windows, allocs) = steady(&text);
    assert_eq!(allocs, 0, "{allocs} allocations in a steady state of {windows} windows:\n{text}");
    // The viewer saw it all, and what its threads allocated was counted, apart.
    let seen = viewing.join().unwrap();
    assert_eq!(seen.get("/imu/samples").copied(), Some(SAMPLES), "{seen:?}");
    assert_eq!(seen.get("/reflex/predictions").copied(), Some(predictions), "{seen:?}");
    assert!(stopped(&text, "live_allocs") > 0, "{text}");

    // The recording, replayed in real time: no config watcher, so nothing at all.
    let replayed = t.out.join("replayed.jsonl");
    let (child, _, stderr) = start(
        &[
            "replay".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            "--speed".as_ref(),
            "realtime".as_ref(),
            "--out".as_ref(),
            replayed.as_os_str(),
            rec.as_os_str(),
        ],
        &[],
        &t.out,
        "replay",
    );
    let text = finish(child, &stderr);
    assert!(text.contains("end of recording"), "{text}");
    assert_eq!(lines(&replayed), WINDOWS, "a replay is lossless, whatever the live run dropped");
    let (windows, allocs) = steady(&text);
    assert_eq!(allocs, 0, "{allocs} allocations in a steady state of {windows} windows:\n{text}");
    assert!(text.contains(" allocs_per_window=0 ") || text.contains(" allocs_per_window=0\n"), "{text}");
}

/// A viewer of the live view whose log is at `stderr`, subscribed (its first `/reflex/stats`
/// shows the subscription has taken effect), counting what it receives until the daemon
/// closes the connection.
fn view(stderr: &Path) -> JoinHandle<std::collections::HashMap<String, usize>> {
    let mut viewer = Viewer::connect(address(stderr));
    viewer.subscribe(&TOPICS);
    while viewer.next(Duration::from_secs(5)).expect("nothing within 5 s of subscribing").topic != "/reflex/stats" {}
    std::thread::spawn(move || viewer.count_until_closed())
}

/// `replay` of a csv log in real time, records on stdout: nothing allocated in the steady state.
#[test]
fn replaying_a_csv_log_allocates_nothing() {
    let t = trial();
    let log = t.csv_log();
    let cfg = t.config("format = \"csv\"\ntime_column = true\n", "");
    let (child, stdout, stderr) = start(
        &[
            "replay".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            "--speed".as_ref(),
            "realtime".as_ref(),
            log.as_os_str(),
        ],
        &[],
        &t.out,
        "replay",
    );
    let text = finish(child, &stderr);
    assert_eq!(lines(&stdout), WINDOWS);
    let (windows, allocs) = steady(&text);
    assert_eq!(allocs, 0, "{allocs} allocations in a steady state of {windows} windows:\n{text}");
}

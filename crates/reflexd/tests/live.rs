//! `[live]`: the Foxglove live view, end to end. The real `reflexd` runs the demo's model (six
//! depthwise-separable plugin layers loaded with dlopen, the trained weights) on the bundled
//! real recording streamed through a pseudo-terminal, with a UDP actuator; a viewer written
//! from the protocol (support/viewer.rs) connects over a real WebSocket.

mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::viewer::{address, Received, Viewer, TOPICS};
use support::{exe_dir, pty};

/// A real foot-IMU recording: `t` then acc_x … gyr_z, 204.8 Hz (examples/data/README.md).
const DATA: &str = "examples/data/gaitmap/stair_up_left.csv";
const NAMES: [&str; 6] = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"];
/// The demo's window.
const LENGTH: usize = 128;
const HOP: usize = 32;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The recording's rows: the csv line as written to the device, its time and its values.
fn rows() -> Vec<(String, f64, [f32; 6])> {
    let text = std::fs::read_to_string(repo().join(DATA)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let values = std::array::from_fn(|i| f[i + 1].parse().unwrap());
            (format!("{l}\n"), f[0].parse().unwrap(), values)
        })
        .collect()
}

/// config/demo.toml's `[window]`, `[model]` and `[output]`, reading csv from `device`, one UDP
/// sink, and the live view on any free port.
fn config(dir: &Path, device: &Path, udp: u16) -> PathBuf {
    let _ = exe_dir(); // the plugins are built beside reflexd, where the demo finds them
    let demo = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap();
    let model = &demo[demo.find("[window]").unwrap()..demo.find("[[sinks]]").unwrap()];
    let model = model.replace("\"../examples/", &format!("\"{}/examples/", repo().display()));
    let text = format!(
        "[source]\npath = \"{}\"\nformat = \"csv\"\nchannels = 6\ntime_column = true\n\
         channel_names = {NAMES:?}\nunits = [\"m/s^2\", \"m/s^2\", \"m/s^2\", \"deg/s\", \"deg/s\", \"deg/s\"]\n\
         {model}\
         [[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{udp}\"\n\
         [live]\nlisten = \"127.0.0.1:0\"\n",
        device.display()
    );
    let p = dir.join("reflex.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `reflexd run`, killed when the test ends however it ends.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, extra: &[&str]) -> Daemon {
        let log = config.with_file_name("reflexd.log");
        let d = Daemon { child: support::start_run(config, extra, &log), log };
        d.wait_log("serial device open");
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "no `{needle}` in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM; the log once it has exited (successfully, within 5 s).
    fn stop(mut self) -> String {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status:?}\n{}", self.log());
                return self.log();
            }
            assert!(Instant::now() < deadline, "no exit within 5 s of SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=N` from the `stopped` line.
fn stopped(log: &str, key: &str) -> u64 {
    let line = log.lines().rev().find(|l| l.contains(" stopped ")).unwrap_or_else(|| panic!("no summary:\n{log}"));
    let at = line.find(&format!(" {key}=")).unwrap_or_else(|| panic!("no {key} in {line}"));
    line[at + key.len() + 2..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn actuator() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// `n` datagrams, as received, with when each arrived.
fn datagrams(sock: &UdpSocket, n: usize) -> Vec<(Vec<u8>, Instant)> {
    let mut buf = [0u8; 65536];
    (0..n)
        .map(|i| {
            let len = sock.recv(&mut buf).unwrap_or_else(|e| panic!("datagram {i} of {n}: {e}"));
            (buf[..len].to_vec(), Instant::now())
        })
        .collect()
}

fn windows(samples: usize) -> usize {
    (samples - LENGTH) / HOP + 1
}

/// Writes `lines` to the device at `rate` lines per second; when each was written.
fn stream(imu: &mut support::Pty, lines: &[String], rate: f64) -> Vec<Instant> {
    let start = Instant::now();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let at = Instant::now();
            imu.write(l.as_bytes());
            at
        })
        .collect()
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// A viewer subscribed to every topic, and sure of it: a subscription takes effect on the
/// server's own time, and the first `/reflex/stats` (one a second) shows it has.
fn subscribed(daemon: &Daemon) -> Viewer {
    let mut v = Viewer::connect(address(&daemon.log));
    v.subscribe(&TOPICS);
    while v.next(Duration::from_secs(5)).expect("no message within 5 s of subscribing").topic != "/reflex/stats" {}
    v
}

/// Every topic advertised as JSON with its JSON schema; `/imu/samples` names the channels, in
/// order, with their units.
fn check_channels(v: &Viewer) {
    for (topic, schema) in [
        ("/imu/samples", "reflex.Sample"),
        ("/reflex/predictions", "reflex.Prediction"),
        ("/reflex/events", "reflex.Event"),
        ("/reflex/stats", "reflex.Stats"),
    ] {
        let c = &v.channels[topic];
        assert_eq!((c.encoding.as_str(), c.schema_name.as_str()), ("json", schema), "{topic}");
        assert_eq!(c.schema["title"], schema);
    }
    let samples = &v.channels["/imu/samples"].schema;
    let required: Vec<&str> = samples["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, ["sample", "acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]);
    assert_eq!(samples["properties"]["gyr_z"]["unit"], "deg/s");
}

/// What the viewer received until it has `samples` samples and `records` records, by topic.
fn receive(v: &mut Viewer, samples: usize, records: usize) -> BTreeMap<String, Vec<Received>> {
    let mut got: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    let count = |got: &BTreeMap<String, Vec<Received>>, t: &str| got.get(t).map_or(0, Vec::len);
    while count(&got, "/imu/samples") < samples || count(&got, "/reflex/predictions") < records {
        let r = v.next(Duration::from_secs(10)).unwrap_or_else(|| {
            panic!(
                "the viewer has {} samples of {samples}, {} records of {records}",
                count(&got, "/imu/samples"),
                count(&got, "/reflex/predictions")
            )
        });
        got.entry(r.topic.clone()).or_default().push(r);
    }
    got
}

/// The viewer sees every sample under its channel's name with the values streamed, every
/// record exactly as the UDP actuator got it, the decode error, and the stats; and it all is
/// what the recording of the same run holds, on the same schemas.
#[test]
fn a_viewer_sees_named_samples_and_the_actuators_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let cfg = config(dir.path(), &imu.path, port);
    let rec = dir.path().join("live.mcap");
    let daemon = Daemon::start(&cfg, &["--record", rec.to_str().unwrap()]);
    let mut viewer = subscribed(&daemon);
    check_channels(&viewer);

    let rows: Vec<_> = rows().into_iter().take(2000).collect();
    let mut lines: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    lines.insert(1000, "a line that is no sample\n".into());
    let n = windows(rows.len());
    let from = unix_ns();
    // The viewer reads while the device streams, as Foxglove would.
    let got = std::thread::scope(|s| {
        s.spawn(|| stream(&mut imu, &lines, 1000.0));
        receive(&mut viewer, rows.len(), n)
    });
    let udp = datagrams(&sock, n);
    let until = unix_ns();
    let log = daemon.stop();
    assert_eq!((stopped(&log, "dropped_windows"), stopped(&log, "live_dropped")), (0, 0), "{log}");

    for (i, (s, (_, t, values))) in got["/imu/samples"].iter().zip(&rows).enumerate() {
        assert!((from..=until).contains(&s.log_time), "sample {i} logged at {}", s.log_time);
        let s = s.json();
        assert_eq!((s["sample"].as_u64(), s["t"].as_f64()), (Some(i as u64), Some(*t)), "{s}");
        for (name, v) in NAMES.iter().zip(values) {
            assert_eq!(s[name].as_f64().map(|x| x as f32), Some(*v), "sample {i} {name}: {s}");
        }
    }
    // The same record objects the actuator got, serialised the same way: byte for byte.
    let live: Vec<&[u8]> = got["/reflex/predictions"].iter().map(|r| r.payload.as_slice()).collect();
    let actuator: Vec<&[u8]> = udp.iter().map(|(d, _)| d.as_slice()).collect();
    assert_eq!(live, actuator);
    let first: Value = serde_json::from_slice(live[0]).unwrap();
    assert_eq!((first["window"].as_u64(), first["last_sample"].as_u64()), (Some(0), Some(LENGTH as u64 - 1)));
    assert!(first["label"].is_string(), "{first}");

    let events: Vec<Value> = got.get("/reflex/events").into_iter().flatten().map(Received::json).collect();
    assert!(events.contains(&serde_json::json!({"event": "decode_error", "sample": 1000})), "{events:?}");
    let stats = got["/reflex/stats"].last().unwrap().json();
    for key in ["samples_per_s", "windows_per_s", "dropped_windows", "sink_lost", "live_dropped", "latency_p50_us"] {
        assert!(stats.get(key).is_some(), "no {key} in {stats}");
    }
    assert!(got["/reflex/stats"].iter().any(|s| s.json()["samples_per_s"].as_f64() > Some(0.0)));
    same_as_the_recording(&rec, &viewer, &got);
    let labels = got["/reflex/predictions"].iter().map(|r| r.json()["label"].as_str().unwrap().to_string()).collect();
    the_layout_shows_these(&viewer, &labels);
}

/// examples/foxglove/reflex-layout.json plots fields the live view's schemas have, and its
/// label indicator has a colour for every label the model gave.
fn the_layout_shows_these(viewer: &Viewer, labels: &std::collections::BTreeSet<String>) {
    let layout: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("examples/foxglove/reflex-layout.json")).unwrap())
            .unwrap();
    let mut paths = Vec::new();
    for (id, panel) in layout["configById"].as_object().unwrap() {
        let listed = panel["paths"].as_array().into_iter().flatten().map(|p| &p["value"]);
        paths.extend(listed.chain([&panel["path"], &panel["topicPath"]]).filter_map(Value::as_str).map(|p| (id, p)));
        let rules = panel["rules"].as_array().into_iter().flatten();
        let colours: std::collections::BTreeSet<String> =
            rules.map(|r| r["rawValue"].as_str().unwrap().into()).collect();
        assert!(id != "Indicator!label" || labels.is_subset(&colours), "{labels:?} vs {colours:?}");
    }
    assert!(paths.len() >= 12, "{paths:?}");
    for (id, path) in paths {
        let (topic, field) = path.find('.').map_or((path, None), |at| (&path[..at], Some(&path[at + 1..])));
        let channel = viewer.channels.get(topic).unwrap_or_else(|| panic!("{id}: no topic {topic}"));
        if let Some(field) = field {
            let field = field.split('[').next().unwrap();
            assert!(channel.schema["properties"].get(field).is_some(), "{id}: {topic} has no field {field}");
        }
    }
}

/// The recording of the same run: the viewer's samples and records are its messages, byte for
/// byte, and the live schemas are its schemas.
fn same_as_the_recording(rec: &Path, viewer: &Viewer, got: &BTreeMap<String, Vec<Received>>) {
    let bytes = std::fs::read(rec).unwrap();
    let mut recorded: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for m in mcap::MessageStream::new(&bytes).unwrap() {
        let m = m.unwrap();
        if m.channel.topic == "/imu/samples" || m.channel.topic == "/reflex/predictions" {
            let schema: Value = serde_json::from_slice(&m.channel.schema.as_ref().unwrap().data).unwrap();
            assert_eq!(schema, viewer.channels[&m.channel.topic].schema, "{}", m.channel.topic);
        }
        recorded.entry(m.channel.topic.clone()).or_default().push(m.data.to_vec());
    }
    for topic in ["/imu/samples", "/reflex/predictions"] {
        let live: Vec<&Vec<u8>> = got[topic].iter().map(|r| &r.payload).collect();
        assert_eq!(live, recorded[topic].iter().collect::<Vec<_>>(), "{topic}");
    }
}

/// p50, p99 and max of `v`, in µs.
fn figures(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("p50 {:7.1} µs  p99 {:7.1} µs  max {:7.1} µs  ({} windows)", at(0.5), at(0.99), at(1.0), v.len())
}

/// Datagrams arriving on `sock`, with when each arrived, collected in the background until
/// `n` have come (or 10 s pass without one).
fn collect(sock: UdpSocket) -> std::sync::mpsc::Receiver<(Vec<u8>, Instant)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(len) = sock.recv(&mut buf) {
            if tx.send((buf[..len].to_vec(), Instant::now())).is_err() {
                return;
            }
        }
    });
    rx
}

/// The recording's values over and over, each line with a time that goes on (1/204.8 s a
/// sample), written `RATE` lines a second in 1 ms batches, from sample `first` until `enough`
/// says so after a batch; when each line was written.
fn stream_until(imu: &mut support::Pty, first: usize, mut enough: impl FnMut(usize) -> bool) -> Vec<Instant> {
    const RATE: f64 = 5000.0;
    let rows = rows();
    let values: Vec<&str> = rows.iter().map(|r| r.0.split_once(',').unwrap().1).collect();
    let (start, mut sent) = (Instant::now(), Vec::new());
    let mut next = first;
    while !enough(next - first) {
        let due = first + ((start.elapsed().as_secs_f64() + 0.001) * RATE) as usize;
        let batch: String =
            (next..due.max(next + 1)).map(|i| format!("{},{}", i as f64 / 204.8, values[i % values.len()])).collect();
        let at = Instant::now();
        imu.write(batch.as_bytes());
        sent.extend((next..due.max(next + 1)).map(|_| at));
        next = due.max(next + 1);
        std::thread::sleep(Duration::from_millis(1));
    }
    sent
}

/// A viewer that connects, subscribes and never reads again, on a socket with a 4 KiB
/// receive buffer: once the server's socket buffer and the viewer's backlog in the SDK are
/// full, the SDK drops its oldest messages (and logs so). The daemon loses nothing meanwhile:
/// no window dropped, every record at the actuator, in order. The loop's latency with and
/// without that viewer is printed (`--nocapture`): figures, not bounds.
#[test]
fn a_stalled_viewer_costs_the_loop_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let cfg = config(dir.path(), &imu.path, port);
    let daemon = Daemon::start(&cfg, &[]);
    let udp = collect(sock);

    let alone = 10_000;
    let mut sent = stream_until(&mut imu, 0, |n| n >= alone);
    let mut stalled = Viewer::connect_small(address(&daemon.log), 4096);
    stalled.subscribe(&TOPICS);
    // The SDK says when the viewer's backlog is full and the oldest messages go; the loop then
    // runs on for as long again with it full.
    let full = format!("outbox for client {} full", stalled.local_addr());
    let mut full_at = None;
    sent.extend(stream_until(&mut imu, alone, |n| {
        assert!(n < 200_000, "the stalled viewer's backlog never filled:\n{}", daemon.log());
        if full_at.is_none() && daemon.log().contains(&full) {
            full_at = Some(n);
        }
        full_at.is_some_and(|at| n >= 2 * at)
    }));
    let total = windows(sent.len());
    let udp: Vec<(Vec<u8>, Instant)> = (0..total)
        .map(|i| {
            udp.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("record {i} of {total} never came"))
        })
        .collect();
    let log = daemon.stop();
    drop(stalled);

    assert_eq!(stopped(&log, "dropped_windows"), 0, "{log}");
    let records: Vec<Value> = udp.iter().map(|(d, _)| serde_json::from_slice(d).unwrap()).collect();
    let numbers: Vec<u64> = records.iter().map(|r| r["window"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (0..total as u64).collect::<Vec<_>>(), "every window, in order, at the actuator");
    let before = windows(alone);
    // Inside the daemon (arrival of the last sample → the sinks), and pty write → datagram.
    let inside = |r: &[Value]| r.iter().map(|r| r["latency_us"].as_f64().unwrap()).collect::<Vec<_>>();
    let outside = |from: usize, to: usize| {
        (from..to).map(|w| (udp[w].1 - sent[w * HOP + LENGTH - 1]).as_secs_f64() * 1e6).collect::<Vec<_>>()
    };
    println!("loop latency at 5000 samples/s, hop {HOP}:");
    println!("  no viewer       in the daemon {}", figures(inside(&records[..before])));
    println!("  stalled viewer  in the daemon {}", figures(inside(&records[before..])));
    println!("  no viewer       pty → UDP     {}", figures(outside(0, before)));
    println!("  stalled viewer  pty → UDP     {}", figures(outside(before, total)));
}

/// An address that cannot be bound is one line naming `[live] listen` and the address, and
/// exit 1, before the device is opened.
#[test]
fn a_live_address_in_use_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let imu = pty();
    let (_sock, port) = actuator();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = config(dir.path(), &imu.path, port);
    let text = std::fs::read_to_string(&cfg).unwrap().replace("127.0.0.1:0", &addr.to_string());
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reflexd"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| !l.contains(" INFO ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].starts_with("error: "), "{err}");
    assert!(errors[0].contains(&format!("[live] listen = \"{addr}\": cannot listen there")), "{err}");
    assert!(!err.contains("serial device open"), "{err}");
}

//! Issue 13, point 5: labelling a live recording. A pseudo-terminal streams a real recording
//! (the bundled gaitmap walk) into `reflexd run --record`; the real `reflexd label` marks
//! activities at known samples; the recording's `/reflex/labels` holds them on exactly those
//! samples.

mod support;

use serde_json::Value;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{actuator, exe_dir, one_line_error, output_within, pty, receive, reflexd, spawn, terminate, wait_log};

const LENGTH: u64 = 32;
const HOP: u64 = 8;

fn walk() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/gaitmap/healthy_2x20m_left.csv");
    std::fs::read_to_string(path).unwrap().lines().map(|l| format!("{l}\n")).collect()
}

/// A port nobody listens on (bound, noted, let go).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// csv with a time column from `device`, a global average (no weights), records to `udp`, and
/// `labels` appended.
fn config(dir: &Path, device: &Path, udp: u16, labels: &str) -> PathBuf {
    let p = dir.join("reflex.toml");
    let text = format!(
        "[source]\npath = \"{}\"\nformat = \"csv\"\nchannels = 6\ntime_column = true\n\
         channel_names = [\"acc_x\", \"acc_y\", \"acc_z\", \"gyr_x\", \"gyr_y\", \"gyr_z\"]\n\
         [window]\nlength = {LENGTH}\nhop = {HOP}\n\
         [model]\nplugin_dir = \"{}\"\n\
         [[model.layers]]\nname = \"pool\"\nplugin = \"global_avg_pool\"\n\
         [[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{udp}\"\n{labels}",
        device.display(),
        exe_dir().display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// Waits for the record of the window that ends on sample `n - 1`: the daemon has decoded `n`
/// samples (and no more, as no more were written).
fn decoded(sock: &UdpSocket, n: u64) {
    assert_eq!((n - LENGTH) % HOP, 0, "no window ends on sample {}", n - 1);
    while receive(sock)["last_sample"].as_u64().unwrap() < n - 1 {}
}

/// `reflexd label NAME`, which ends by itself within the 2 s it waits for an answer.
fn label(config: &Path, name: &str) -> Output {
    reflexd(&["label", "--config", config.to_str().unwrap(), name]).output().unwrap()
}

/// The marks of a recording: (sample, label).
fn marks(rec: &Path) -> Vec<(u64, Option<String>)> {
    let bytes = std::fs::read(rec).unwrap();
    let stream = mcap::MessageStream::new(&bytes).unwrap().map(Result::unwrap);
    let marks: Vec<Value> = stream
        .filter(|m| m.channel.topic == "/reflex/labels")
        .map(|m| serde_json::from_slice(&m.data).unwrap())
        .collect();
    marks.iter().map(|m| (m["sample"].as_u64().unwrap(), m["label"].as_str().map(String::from))).collect()
}

/// The recorded sample numbered `n`: its time.
fn recorded_t(rec: &Path, n: u64) -> f64 {
    let bytes = std::fs::read(rec).unwrap();
    let mut samples = mcap::MessageStream::new(&bytes).unwrap().map(Result::unwrap);
    let m = samples.find(|m| {
        m.channel.topic == "/imu/samples" && serde_json::from_slice::<Value>(&m.data).unwrap()["sample"] == n
    });
    serde_json::from_slice::<Value>(&m.unwrap().data).unwrap()["t"].as_f64().unwrap()
}

#[test]
fn marks_sent_with_reflexd_label_land_on_the_samples_decoded_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, udp) = actuator();
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = config(dir.path(), &imu.path, udp, &format!("[labels]\nlisten = \"{listen}\"\n"));
    let (rec, log) = (dir.path().join("session.mcap"), dir.path().join("err.log"));
    let mut daemon =
        spawn(reflexd(&["run", "--config", cfg.to_str().unwrap(), "--record", rec.to_str().unwrap()]), &log);
    wait_log(&log, "serial device open");
    wait_log(&log, "labels: taking activity marks");

    let lines = walk();
    imu.write(lines[0].as_bytes()); // the header: no sample
    let mut written = 0;
    for (at, name, said) in [
        (400, "walk", "walk: from sample 400"),
        (1000, "stairs up", "stairs up: from sample 1000"),
        (1600, "-", "unlabelled from sample 1600"),
        (2000, "walk", "walk: from sample 2000"),
    ] {
        imu.write(lines[1 + written..1 + at].concat().as_bytes());
        written = at;
        decoded(&sock, at as u64);
        let o = label(&cfg, name);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), said);
    }
    // A datagram that is no label is answered, counted and kept out of the recording.
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.connect(&listen).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    raw.send(b"walk\nrun").unwrap();
    let mut buf = [0u8; 512];
    let n = raw.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("control character"));
    let o = label(&cfg, &"x".repeat(65));
    one_line_error(&o, "longer than 64 bytes");
    imu.write(lines[1 + written..2401].concat().as_bytes());
    decoded(&sock, 2400);
    assert!(terminate(&mut daemon, &log).success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("recording complete") && text.contains("labels: mark"), "{text}");

    let want = [(400, Some("walk")), (1000, Some("stairs up")), (1600, None), (2000, Some("walk"))];
    let want: Vec<(u64, Option<String>)> = want.iter().map(|(s, l)| (*s, l.map(String::from))).collect();
    assert_eq!(marks(&rec), want);
    // Sample 400 of the recording is the 401st line of the log: the one written after the mark.
    let t400: f64 = lines[401].split(',').next().unwrap().parse().unwrap();
    assert_eq!(recorded_t(&rec, 400), t400);

    let info = reflexd(&["info", rec.to_str().unwrap()]).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("labels: 4 marks") && info.contains("sample 1000: stairs up"), "{info}");
    assert!(info.contains("sample 1600: -") && info.contains("/reflex/labels: 4 messages"), "{info}");
}

#[test]
fn label_without_a_section_or_a_daemon_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Path::new("/dev/ttyACM9"), 9, "");
    let o = label(&cfg, "walk");
    one_line_error(&o, &format!("{}: [labels] listen: not set", cfg.display()));
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = config(dir.path(), Path::new("/dev/ttyACM9"), 9, &format!("[labels]\nlisten = \"{listen}\"\n"));
    let o = label(&cfg, "walk");
    one_line_error(&o, &format!("[labels] listen = \"{listen}\": no daemon listens there"));
}

/// A port already taken stops `run` before anything starts: no recording is created.
#[test]
fn a_listen_address_in_use_stops_run_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let imu = pty();
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap();
    let cfg = config(dir.path(), &imu.path, 9, &format!("[labels]\nlisten = \"{listen}\"\n"));
    let rec = dir.path().join("never.mcap");
    let o = output_within(reflexd(&["run", "--config", cfg.to_str().unwrap(), "--record", rec.to_str().unwrap()]));
    one_line_error(&o, &format!("{}: [labels] listen = \"{listen}\": cannot bind", cfg.display()));
    assert!(!rec.exists());
}

/// Without `--record` marks are logged, and the sender is told they are not kept.
#[test]
fn marks_without_a_recording_are_logged_and_said_to_be() {
    let dir = tempfile::tempdir().unwrap();
    let imu = pty();
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = config(dir.path(), &imu.path, 9, &format!("[labels]\nlisten = \"{listen}\"\n"));
    let log = dir.path().join("err.log");
    let mut daemon = spawn(reflexd(&["run", "--config", cfg.to_str().unwrap()]), &log);
    wait_log(&log, "labels: taking activity marks");
    for _ in 0..2 {
        let o = label(&cfg, "walk");
        assert!(o.status.success());
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "walk: from sample 0");
        assert!(String::from_utf8_lossy(&o.stderr).contains("not recording"));
    }
    assert!(terminate(&mut daemon, &log).success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("marks are only logged").count(), 1, "{text}");
}

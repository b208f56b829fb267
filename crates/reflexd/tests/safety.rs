//! Issue 15, "safe on the robot": each defect found by the adversarial run, against the real
//! binary (pseudo-terminals for the IMU, UDP sockets for the actuator, the real plugins).

mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{
    actuator, exe_dir, one_line_error, output_within, pty, receive, reflexd, spawn, stopped, terminate, wait, wait_log,
    Running,
};

const CHANNELS: usize = 2;
const LENGTH: usize = 4;

/// `slow` (with `keys`) then a global average: records carry each channel's mean, so any
/// input value is easy to steer. Source `device`, csv with `time_column`, one UDP sink.
fn config(dir: &Path, device: &Path, udp: u16, keys: &str, time_column: bool) -> PathBuf {
    let p = dir.join("reflex.toml");
    std::fs::write(&p, config_text(device, udp, keys, time_column)).unwrap();
    p
}

fn config_text(device: &Path, udp: u16, keys: &str, time_column: bool) -> String {
    format!(
        "[source]\npath = \"{}\"\nformat = \"csv\"\nchannels = {CHANNELS}\ntime_column = {time_column}\n\
         [window]\nlength = {LENGTH}\nhop = {LENGTH}\n\
         [model]\nplugin_dir = \"{}\"\n\
         [[model.layers]]\nname = \"drag\"\nplugin = \"slow\"\nms = 0\n{keys}\n\
         [[model.layers]]\nname = \"pool\"\nplugin = \"global_avg_pool\"\n\
         [[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{udp}\"\n",
        device.display(),
        exe_dir().display()
    )
}

/// A live daemon on a pseudo-terminal IMU with a UDP actuator, its config `slow` with `keys`
/// plus `extra` config text: what most tests here start from.
struct Live {
    dir: tempfile::TempDir,
    imu: support::Pty,
    sock: UdpSocket,
    port: u16,
    config: PathBuf,
    err: PathBuf,
    child: Running,
}

fn live(keys: &str, extra: &str) -> Live {
    live_env(keys, extra, &[])
}

/// [`live`], with these environment variables for the daemon.
fn live_env(keys: &str, extra: &str, env: &[(&str, std::ffi::OsString)]) -> Live {
    let dir = tempfile::tempdir().unwrap();
    let imu = pty();
    let (sock, port) = actuator();
    let config = config(dir.path(), &imu.path, port, keys, false);
    let text = std::fs::read_to_string(&config).unwrap() + extra;
    std::fs::write(&config, text).unwrap();
    let err = dir.path().join("err.log");
    let mut command = reflexd(&["run", "--config", config.to_str().unwrap()]);
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let child = spawn(command, &err);
    wait_log(&err, "serial device open");
    Live { dir, imu, sock, port, config, err, child }
}

/// A csv time of 1e30, or a speed of 1e-300, made `Duration::from_secs_f64` panic (exit 0);
/// and a replay sleeping over a long gap ignored SIGTERM.
#[test]
fn replay_pacing_neither_panics_nor_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("imu.csv");
    for (lines, speed) in [("0,1,1\n1e30,2,2\n", "realtime"), ("0,1,1\n1,2,2\n", "1e-300"), ("0,1,1\n1000,2,2\n", "1")]
    {
        std::fs::write(&log, lines).unwrap();
        let c = config(dir.path(), &log, 9, "", true);
        let err = dir.path().join("err.log");
        let mut child =
            spawn(reflexd(&["replay", "--config", c.to_str().unwrap(), "--speed", speed, log.to_str().unwrap()]), &err);
        // Started (signal handlers in place once the graph is logged), then well into the wait.
        let start = Instant::now();
        while !std::fs::read_to_string(&err).unwrap().contains("plugin loaded") {
            assert!(start.elapsed() < Duration::from_secs(20) && child.try_wait().unwrap().is_none());
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(500));
        assert!(child.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(&err).unwrap());
        let status = terminate(&mut child, &err);
        let text = std::fs::read_to_string(&err).unwrap();
        assert!(status.success() && !text.contains("panicked"), "{status:?} {text}");
    }
}

/// A serial path that is a directory, a regular file or /dev/null retried forever.
#[test]
fn a_serial_path_that_is_not_a_serial_device_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, "0,0\n").unwrap();
    for device in [dir.path().to_path_buf(), file, PathBuf::from("/dev/null")] {
        let c = config(dir.path(), &device, 9, "", false);
        let o = output_within(reflexd(&["run", "--config", c.to_str().unwrap()]));
        one_line_error(&o, "not a serial device");
    }
}

/// `--record` replaced an existing recording, the running config or the log being replayed;
/// `replay --out LOG LOG` emptied LOG; all with exit 0.
#[test]
fn record_and_out_never_overwrite_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let imu = pty();
    let c = config(dir.path(), &imu.path, 9, "", false);
    let old = dir.path().join("old.mcap");
    std::fs::write(&old, "precious").unwrap();
    for target in [&old, &c] {
        let before = std::fs::read(target).unwrap();
        let o =
            reflexd(&["run", "--config", c.to_str().unwrap(), "--record", target.to_str().unwrap()]).output().unwrap();
        one_line_error(&o, "already exists");
        assert_eq!(std::fs::read(target).unwrap(), before);
    }
    let log = dir.path().join("imu.csv");
    std::fs::write(&log, "1,1\n2,2\n3,3\n4,4\n").unwrap();
    let c = config(dir.path(), &log, 9, "", false);
    for out in [&log, &c] {
        let before = std::fs::read(out).unwrap();
        let o = reflexd(&[
            "replay",
            "--config",
            c.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            log.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        one_line_error(&o, "--out");
        assert_eq!(std::fs::read(out).unwrap(), before);
    }
}

/// A csv log that does not fit the config replayed to nothing with exit 0.
#[test]
fn replay_of_a_log_that_does_not_fit_exits_1_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("imu.csv");
    let line = "1,2,3,4,5,6,7,8,9,10\n";
    std::fs::write(&log, line.repeat(100)).unwrap();
    let c = config(dir.path(), &log, 9, "", false);
    let out = dir.path().join("out.jsonl");
    let o =
        reflexd(&["replay", "--config", c.to_str().unwrap(), "--out", out.to_str().unwrap(), log.to_str().unwrap()])
            .output()
            .unwrap();
    one_line_error(&o, "csv lines have 10 fields; the config expects 2");
}

/// The warm-up of a swap ran on the signal-handling thread: a plugin that hangs there made
/// SIGTERM wait forever. Now it runs on its own thread; the running graph keeps going.
#[test]
fn sigterm_completes_while_a_swap_warm_up_hangs() {
    let Live { dir: _dir, mut imu, sock, port, config: c, err, mut child } = live("", "");
    imu.write(b"1,1\n1,1\n1,1\n1,1\n");
    assert_eq!(receive(&sock)["window"], 0);
    // The new graph's warm-up window sleeps ten minutes.
    std::fs::write(&c, config_text(&imu.path, port, "", false).replace("ms = 0", "ms = 600000")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    imu.write(b"2,2\n2,2\n2,2\n2,2\n");
    let r = receive(&sock);
    assert_eq!((r["window"].as_u64(), r["generation"].as_u64()), (Some(1), Some(1)), "{r}");
    let status = terminate(&mut child, &err);
    assert!(status.success(), "{}", std::fs::read_to_string(&err).unwrap());
}

/// A graph that outputs NaN: no NaN or inf ever reaches the actuator; the record says why.
#[test]
fn non_finite_outputs_never_reach_an_actuator() {
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } = live("nan_above = 5.0", "");
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    let good = receive(&sock);
    assert_eq!((good["health"].as_str(), good["values"][0].as_f64()), (Some("ok"), Some(1.0)), "{good}");
    imu.write(b"9,9\n9,9\n9,9\n9,9\n");
    let held = receive(&sock);
    assert_eq!(held["health"], "nonfinite", "{held}");
    assert_eq!(held["values"], good["values"], "hold: the last good values");
    assert_eq!(held["window"], 1, "{held}");
    let status = terminate(&mut child, &err);
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("nonfinite"), "{log}");
}

/// A config, weights file or recording that is a FIFO blocked forever; `/dev/zero` as weights
/// grew memory by gigabytes.
#[test]
fn fifos_and_devices_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.mcap");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let o = output_within(reflexd(&["check", "--config", fifo.to_str().unwrap()]));
    one_line_error(&o, "not a regular file (a FIFO)");
    let log = dir.path().join("imu.csv");
    std::fs::write(&log, "1,1\n").unwrap();
    for weights in [fifo.to_str().unwrap(), "/dev/zero"] {
        let c = config(dir.path(), &log, 9, "", false);
        let text =
            std::fs::read_to_string(&c).unwrap().replace("[model]\n", &format!("[model]\nweights = \"{weights}\"\n"));
        std::fs::write(&c, text).unwrap();
        let o = output_within(reflexd(&["check", "--config", c.to_str().unwrap()]));
        assert_eq!(o.status.code(), Some(1), "{weights}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let c = config(dir.path(), &log, 9, "", false);
    let o = output_within(reflexd(&["replay", "--config", c.to_str().unwrap(), fifo.to_str().unwrap()]));
    one_line_error(&o, "not a regular file (a FIFO)");
}

/// Live input that does not fit (witmotion with only 0x51 packets gave nothing and no word):
/// one line once the first 4 KiB yield no sample, and reading goes on.
#[test]
fn live_input_that_does_not_fit_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let c = config(dir.path(), &imu.path, 9, "", false);
    let text = std::fs::read_to_string(&c)
        .unwrap()
        .replace("format = \"csv\"\nchannels = 2", "format = \"witmotion\"\nchannels = 6");
    std::fs::write(&c, text).unwrap();
    let err = dir.path().join("err.log");
    let mut child = spawn(reflexd(&["run", "--config", c.to_str().unwrap()]), &err);
    wait_log(&err, "serial device open");
    let packet = reflex_codecs::encode::witmotion(0x51, [100, -200, 300, 0]);
    for _ in 0..2 {
        imu.write(&packet.repeat(400));
        std::thread::sleep(Duration::from_millis(300));
    }
    let start = Instant::now();
    while !std::fs::read_to_string(&err).unwrap().contains("does not fit the config") {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", std::fs::read_to_string(&err).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(terminate(&mut child, &err).success());
    let log = std::fs::read_to_string(&err).unwrap();
    assert_eq!(log.matches("does not fit the config").count(), 1, "{log}");
    assert!(log.contains("witmotion with 6 channels"), "{log}");
}

/// A plugin call that never returns: SIGTERM still completes within 2 s (the call is left
/// behind, and said so).
#[test]
fn sigterm_completes_while_a_plugin_call_never_returns() {
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } = live("loop_above = 5.0", "");
    imu.write(b"1,1\n1,1\n1,1\n1,1\n");
    assert_eq!(receive(&sock)["window"], 0);
    imu.write(b"9,9\n9,9\n9,9\n9,9\n");
    std::thread::sleep(Duration::from_millis(300));
    assert!(terminate(&mut child, &err).success());
    assert!(std::fs::read_to_string(&err).unwrap().contains("left behind"));
}

/// `[safety] stale_after_ms`: the IMU goes quiet (unplugged) and the actuator gets `stale`
/// records holding the last values within `stale_after_ms` + 20 ms, repeated while it lasts.
#[test]
fn a_quiet_imu_gets_stale_records_in_time() {
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } = live("", "[safety]\nstale_after_ms = 50\n");
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    let good = receive(&sock);
    let at = Instant::now();
    assert_eq!(good["health"], "ok", "{good}");
    let stale = receive(&sock);
    let first = at.elapsed();
    let again = receive(&sock);
    let second = at.elapsed();
    for r in [&stale, &again] {
        assert_eq!(r["health"], "stale", "{r}");
        assert_eq!((&r["values"], &r["window"]), (&good["values"], &good["window"]), "{r}");
    }
    assert!(first <= Duration::from_millis(70), "first stale record after {first:?}");
    assert!(second >= Duration::from_millis(90) && second <= Duration::from_millis(130), "{second:?}");
    // The IMU is back: predictions again.
    imu.write(b"3,4\n3,4\n3,4\n3,4\n");
    let r = loop {
        let r = receive(&sock);
        if r["health"] != "stale" {
            break r;
        }
    };
    assert_eq!((r["health"].as_str(), r["window"].as_u64(), r["values"][0].as_f64()), (Some("ok"), Some(1), Some(3.0)));
    assert!(terminate(&mut child, &err).success());
}

/// `fallback = "neutral"`: a non-finite output is replaced by the configured values; a neutral
/// of the wrong length is one line and exit 1.
#[test]
fn neutral_fallbacks_carry_the_configured_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let c = config(dir.path(), &imu.path, port, "nan_above = 5.0", false);
    let base = std::fs::read_to_string(&c).unwrap();
    std::fs::write(&c, base.clone() + "[safety]\nfallback = \"neutral\"\nneutral = [0.5]\n").unwrap();
    let o = output_within(reflexd(&["run", "--config", c.to_str().unwrap()]));
    one_line_error(&o, "[safety] neutral has 1 entries but the model outputs 2 values");
    std::fs::write(&c, base + "[safety]\nfallback = \"neutral\"\nneutral = [0.5, -0.5]\n").unwrap();
    let err = dir.path().join("err.log");
    let mut child = spawn(reflexd(&["run", "--config", c.to_str().unwrap()]), &err);
    wait_log(&err, "serial device open");
    imu.write(b"9,9\n9,9\n9,9\n9,9\n");
    let r = receive(&sock);
    assert_eq!(r["health"], "nonfinite", "{r}");
    assert_eq!(r["values"], serde_json::json!([0.5, -0.5]), "{r}");
    assert!(terminate(&mut child, &err).success());
}

/// A plugin call that never returns after good windows: the supervisor sends a `late` record
/// within `deadline_ms`, then `stale` ones every `stale_after_ms`, holding the last good
/// values (never a non-finite value); the source goes on; SIGTERM completes.
#[test]
fn a_hung_plugin_call_gets_late_then_stale_records() {
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } =
        live("loop_above = 5.0", "[safety]\nstale_after_ms = 100\ndeadline_ms = 50\n");
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    let good = receive(&sock);
    assert_eq!(good["health"], "ok", "{good}");
    imu.write(b"9,9\n9,9\n9,9\n9,9\n");
    let at = Instant::now();
    let late = receive(&sock);
    let late_after = at.elapsed();
    assert_eq!((late["health"].as_str(), late["window"].as_u64()), (Some("late"), Some(1)), "{late}");
    assert_eq!(late["values"], good["values"]);
    assert!(late_after <= Duration::from_millis(50 + 40), "late after {late_after:?}");
    for _ in 0..3 {
        let r = receive(&sock);
        assert_eq!(r["health"], "stale", "{r}");
        assert_eq!(r["values"], good["values"]);
    }
    // The source goes on meanwhile.
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    assert!(terminate(&mut child, &err).success());
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(log.contains("has not returned within deadline_ms") && log.contains("left behind"), "{log}");
}

/// A plugin that fails only on real data — it passes the plain windows it is loaded with: every
/// such window gets an `error` record holding the last good values, never a gap or a NaN.
#[test]
fn a_plugin_failing_on_real_data_gets_error_records() {
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } = live("fail_above = 1.5", "");
    imu.write(b"0,0\n0,0\n0,0\n0,0\n");
    let good = receive(&sock);
    assert_eq!(good["health"], "ok", "{good}");
    for w in 1..4u64 {
        imu.write(b"1,2\n1,2\n1,2\n1,2\n");
        let r = receive(&sock);
        assert_eq!((r["health"].as_str(), r["window"].as_u64()), (Some("error"), Some(w)), "{r}");
        assert_eq!(r["values"], good["values"]);
    }
    assert!(terminate(&mut child, &err).success());
    let log = std::fs::read_to_string(&err).unwrap();
    assert_eq!(log.matches("fallback record").count(), 1, "one line per ~10 s: {log}");
    assert!(log.contains("fallback_records=3"), "{log}");
}

/// A file sink on a full disk counted records as written while they sat in its buffer: every
/// record the disk did not take is counted lost.
#[test]
fn a_file_sink_on_a_full_disk_counts_every_record_lost() {
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } =
        live("", "[[sinks]]\nkind = \"file\"\npath = \"/dev/full\"\n");
    imu.write(b"1,2\n".repeat(4 * 20).as_slice());
    for _ in 0..20 {
        receive(&sock);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(terminate(&mut child, &err).success());
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(log.contains("predictions=20") && log.contains("sink_lost=20"), "{log}");
}

/// A serial actuator that takes nothing more (its buffer full): `sink_lost` in the stopped
/// line is every record it did not get, counted after the sinks finished (it was read before
/// they drained, 257 short per run).
#[test]
fn a_stuck_serial_actuator_loses_exactly_the_records_it_did_not_get() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let actuator = pty();
    let (sock, port) = self::actuator();
    let c = config(dir.path(), &imu.path, port, "", false);
    let sink = format!("[[sinks]]\nkind = \"serial\"\npath = \"{}\"\n", actuator.path.display());
    std::fs::write(&c, std::fs::read_to_string(&c).unwrap() + &sink).unwrap();
    let err = dir.path().join("err.log");
    let mut child = spawn(reflexd(&["run", "--config", c.to_str().unwrap()]), &err);
    wait_log(&err, "serial device open");
    // 3000 windows, in bursts the window queue takes whole; the UDP sink proves them computed.
    for _ in 0..100 {
        imu.write(b"1,2\n".repeat(4 * 30).as_slice());
        for _ in 0..30 {
            receive(&sock);
        }
    }
    let windows = 3000;
    assert!(terminate(&mut child, &err).success());
    // What the actuator got: the complete lines in its buffer.
    let fd = actuator.master.as_raw_fd();
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let mut master = &actuator.master;
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let lines = got.iter().filter(|b| **b == b'\n').count() as u64;
    let log = std::fs::read_to_string(&err).unwrap();
    let stopped = log.lines().rev().find(|l| l.contains("stopped")).unwrap();
    let lost: u64 = stopped.split("sink_lost=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(lines < windows as u64, "the actuator was not stuck: {lines} records");
    assert_eq!(lost, windows as u64 - lines, "{stopped}");
}

/// A swap to a graph that passes the warm-up on zeros but fails (or outputs NaN) on real data
/// was adopted and then skipped every window. In shadow on live windows it is refused in one
/// line, with the divergence seen so far, and the running graph never stops driving.
#[test]
fn a_swap_that_fails_on_live_windows_is_refused_in_shadow() {
    for (keys, why) in [("fail_above = 5.0", "failed on live window"), ("nan_above = 5.0", "not finite")] {
        let shadow = "[swap]\nshadow_windows = 5\n";
        let Live { dir: _dir, mut imu, sock, port, config: c, err, mut child } = live("", shadow);
        imu.write(b"1,2\n1,2\n1,2\n1,2\n");
        assert_eq!(receive(&sock)["health"], "ok");
        std::fs::write(&c, config_text(&imu.path, port, keys, false) + shadow).unwrap();
        wait_log(&err, "running it in shadow");
        for w in 1..4u64 {
            imu.write(b"9,9\n9,9\n9,9\n9,9\n");
            let r = receive(&sock);
            assert_eq!((r["window"].as_u64(), r["generation"].as_u64()), (Some(w), Some(1)), "{r}");
            assert_eq!((r["health"].as_str(), r["values"][0].as_f64()), (Some("ok"), Some(9.0)), "{r}");
        }
        wait_log(&err, "config change refused");
        let log = std::fs::read_to_string(&err).unwrap();
        let line = log.lines().find(|l| l.contains("config change refused")).unwrap();
        assert!(line.contains("in shadow") && line.contains(why), "{line}");
        assert!(terminate(&mut child, &err).success());
    }
}

/// A swap that passes its shadow run is adopted, and how far the new graph's outputs are from
/// the running graph's on the same live windows is logged.
#[test]
fn a_swap_that_passes_its_shadow_run_is_adopted_with_its_divergence_logged() {
    let shadow = "[swap]\nshadow_windows = 3\n";
    let Live { dir: _dir, mut imu, sock, port, config: c, err, mut child } = live("", shadow);
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    assert_eq!(receive(&sock)["generation"], 1);
    // Same outputs, another config: the divergence is exactly zero.
    std::fs::write(&c, config_text(&imu.path, port, "nan_above = 100.0", false) + shadow).unwrap();
    wait_log(&err, "running it in shadow");
    let mut generation = 1;
    // Paced like a device: the swap is adopted between two windows once the reloader has seen
    // the trial pass, which on a loaded machine may take a few windows.
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(10));
        imu.write(b"3,4\n3,4\n3,4\n3,4\n");
        let r = receive(&sock);
        assert_eq!((r["health"].as_str(), r["values"][0].as_f64()), (Some("ok"), Some(3.0)), "{r}");
        generation = r["generation"].as_u64().unwrap();
        if generation == 2 {
            break;
        }
    }
    assert_eq!(generation, 2, "{}", std::fs::read_to_string(&err).unwrap());
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(log.contains("shadow run passed: 3 shadow windows, max |Δ| 0.0000"), "{log}");
    assert!(terminate(&mut child, &err).success());
}

/// A new graph whose plugin call never returns in shadow: the running graph keeps driving the
/// actuator, and SIGTERM still completes within 2 s (the build thread is left behind).
#[test]
fn a_swap_that_hangs_in_shadow_neither_stops_the_actuators_nor_sigterm() {
    let shadow = "[swap]\nshadow_windows = 5\n";
    let Live { dir: _dir, mut imu, sock, port, config: c, err, mut child } = live("", shadow);
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    assert_eq!(receive(&sock)["health"], "ok");
    std::fs::write(&c, config_text(&imu.path, port, "loop_above = 5.0", false) + shadow).unwrap();
    wait_log(&err, "running it in shadow");
    for w in 1..4u64 {
        imu.write(b"9,9\n9,9\n9,9\n9,9\n");
        let r = receive(&sock);
        assert_eq!(
            (r["window"].as_u64(), r["generation"].as_u64(), r["health"].as_str()),
            (Some(w), Some(1), Some("ok"))
        );
    }
    assert!(terminate(&mut child, &err).success());
}

/// Past the build limit (10 s) the hung change is refused and its thread left behind; the next
/// change is built on a new one and adopted.
#[test]
fn after_a_swap_hung_in_shadow_the_next_change_is_adopted() {
    let shadow = "[swap]\nshadow_windows = 2\n";
    let Live { dir: _dir, mut imu, sock, port, config: c, err, mut child } = live("", shadow);
    std::fs::write(&c, config_text(&imu.path, port, "loop_above = 5.0", false) + shadow).unwrap();
    wait_log(&err, "running it in shadow");
    imu.write(b"9,9\n9,9\n9,9\n9,9\n");
    assert_eq!(receive(&sock)["generation"], 1);
    wait_log(&err, "did not return in time");
    std::fs::write(&c, config_text(&imu.path, port, "nan_above = 100.0", false) + shadow).unwrap();
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        imu.write(b"1,1\n1,1\n1,1\n1,1\n");
        if receive(&sock)["generation"] == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{}", std::fs::read_to_string(&err).unwrap());
    }
    assert!(terminate(&mut child, &err).success());
}

/// A recording that fails (the disk full) was silent until exit, and the exit was 0. It is said
/// when it happens, the actuator is fed on, and the run exits 1 naming the recording.
/// The full disk is a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored): writes past it fail
/// as on a full disk, without a small file system to mount.
#[test]
fn a_recording_that_fails_is_said_at_once_and_fails_the_run() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    // Built-in layers only: the plugin host's private copy of a library is a file write too.
    let c = dir.path().join("reflex.toml");
    let text = config_text(&imu.path, port, "", false);
    std::fs::write(&c, text.replace("[[model.layers]]\nname = \"drag\"\nplugin = \"slow\"\nms = 0\n\n", "")).unwrap();
    let rec = dir.path().join("r.mcap");
    let mut cmd = reflexd(&["run", "--config", c.to_str().unwrap(), "--compression", "none", "--record"]);
    cmd.arg(&rec);
    // SAFETY: only async-signal-safe calls between fork and exec: setrlimit and signal.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 24 * 1024, rlim_max: 24 * 1024 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let err = dir.path().join("err.log");
    let mut child = spawn(cmd, &err);
    wait_log(&err, "serial device open");
    let start = Instant::now();
    let mut w = 0u64;
    while !std::fs::read_to_string(&err).unwrap().contains("recording failed") {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", std::fs::read_to_string(&err).unwrap());
        imu.write(&b"1.5,2\n".repeat(4 * 25));
        for _ in 0..25 {
            assert_eq!(receive(&sock)["window"].as_u64(), Some(w));
            w += 1;
        }
    }
    // After the failure, the actuator is fed as before.
    imu.write(b"3,4\n3,4\n3,4\n3,4\n");
    let r = receive(&sock);
    assert_eq!((r["window"].as_u64(), r["values"][0].as_f64()), (Some(w), Some(3.0)), "{r}");
    let status = terminate(&mut child, &err);
    let log = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    let last = log.lines().last().unwrap();
    assert!(last.starts_with("error: recording failed: ") && last.contains("r.mcap"), "{log}");
    assert!(std::fs::metadata(&rec).unwrap().len() <= 24 * 1024);
}

/// Each window a panicking plugin failed on wrote the panic hook's lines to stderr, unthrottled.
/// The panic's message and place come back as the window's error, logged once per stats period.
#[test]
fn a_panicking_plugin_is_one_throttled_line_not_a_flood() {
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } = live("panic_above = 5.0", "");
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    assert_eq!(receive(&sock)["health"], "ok");
    for _ in 0..20 {
        imu.write(b"9,9\n9,9\n9,9\n9,9\n");
        assert_eq!(receive(&sock)["health"], "error");
    }
    assert!(terminate(&mut child, &err).success());
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(!log.contains("thread 'inference' panicked") && !log.contains("RUST_BACKTRACE"), "{log}");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("plugin panicked")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("plugin panicked at examples/plugin_slow/src/lib.rs:"), "{log}");
}

/// A notify socket as systemd binds it (`NOTIFY_SOCKET`): every datagram, with when it came.
struct Systemd {
    _dir: tempfile::TempDir,
    path: PathBuf,
    messages: std::sync::mpsc::Receiver<(Instant, String)>,
}

fn systemd() -> Systemd {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let (tx, messages) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            if tx.send((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned())).is_err() {
                return;
            }
        }
    });
    Systemd { _dir: dir, path, messages }
}

impl Systemd {
    /// `NOTIFY_SOCKET` and `WATCHDOG_USEC` for the daemon.
    fn env(&self, watchdog: Duration) -> [(&'static str, std::ffi::OsString); 2] {
        [("NOTIFY_SOCKET", self.path.clone().into()), ("WATCHDOG_USEC", watchdog.as_micros().to_string().into())]
    }

    /// The messages until (and with) the first that holds `what`, 10 s at most.
    fn until(&self, what: &str) -> Vec<(Instant, String)> {
        let mut seen = Vec::new();
        loop {
            let m =
                self.messages.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no {what}: {seen:?}"));
            let done = m.1.lines().any(|l| l == what || l.starts_with(what));
            seen.push(m);
            if done {
                return seen;
            }
        }
    }

    /// Whether a message holding `what` has come (without waiting).
    fn has_come(&self, what: &str) -> bool {
        self.messages.try_iter().any(|(_, m)| m.lines().any(|l| l == what))
    }

    /// Every message that arrives within `d`.
    fn during(&self, d: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + d;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.messages.recv_timeout(left) {
                Ok(m) => seen.push(m),
                Err(_) => break,
            }
        }
        seen
    }
}

fn pings(messages: &[(Instant, String)]) -> Vec<Instant> {
    messages.iter().filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1")).map(|(at, _)| *at).collect()
}

/// systemd (SPEC §7): `READY=1` once the device is open, `WATCHDOG=1` every half of
/// `WATCHDOG_USEC` while idle or predicting, `STATUS=` with the rates, `RELOADING=1` (with
/// `MONOTONIC_USEC=`) … `READY=1` around the swap SIGHUP asks for — READY once the new graph
/// has passed its shadow run and is handed over —, `STOPPING=1` on SIGTERM.
#[test]
fn systemd_hears_ready_watchdog_status_reloading_and_stopping() {
    let sd = systemd();
    // Pings every 750 ms; a gap is a failure only past the whole 1.5 s systemd would allow.
    let watchdog = Duration::from_millis(1500);
    let env = sd.env(watchdog);
    let shadow = "[swap]\nshadow_windows = 3\n";
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } = live_env("", shadow, &env);
    sd.until("READY=1");
    let mut seen = Vec::new();
    for _ in 0..16 {
        imu.write(b"1,2\n1,2\n1,2\n1,2\n");
        assert_eq!(receive(&sock)["health"], "ok");
        seen.extend(sd.during(Duration::from_millis(250)));
    }
    let status = seen.iter().find(|(_, m)| m.contains("STATUS=") && m.contains("samples/s")).map(|(_, m)| m);
    assert!(status.is_some_and(|m| m.contains("windows/s")), "{seen:?}");
    let pinged = pings(&seen);
    assert!(pinged.len() >= 4, "{seen:?}");
    for pair in pinged.windows(2) {
        assert!(pair[1] - pair[0] < watchdog, "a ping {:?} after the one before: {seen:?}", pair[1] - pair[0]);
    }

    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    let reloading = sd.until("RELOADING=1");
    let message = &reloading.last().unwrap().1;
    assert!(message.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{message}");
    // The new graph runs in shadow on live windows: READY once it has passed and is handed over
    // (the inference thread adopts it between two windows, maybe before READY is read here).
    let mut generations = Vec::new();
    while !sd.has_come("READY=1") {
        assert!(generations.len() < 200, "no READY=1 after RELOADING=1: {}", std::fs::read_to_string(&err).unwrap());
        imu.write(b"1,2\n1,2\n1,2\n1,2\n");
        generations.push(receive(&sock)["generation"].as_u64().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
    let shadowed = generations.iter().take_while(|g| **g == 1).count();
    assert!(shadowed >= 3 && generations[shadowed..].iter().all(|g| *g == 2), "{generations:?}");
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    assert_eq!(receive(&sock)["generation"], 2);

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    sd.until("STOPPING=1");
    assert!(
        wait(&mut child, Duration::from_secs(2)).is_some_and(|s| s.success()),
        "{}",
        std::fs::read_to_string(&err).unwrap()
    );
}

/// The watchdog is fed only while inference makes progress: a plugin call that never returns
/// stops the pings within two ping intervals, so systemd restarts the daemon.
#[test]
fn the_watchdog_goes_hungry_within_two_intervals_when_a_plugin_hangs() {
    let sd = systemd();
    let watchdog = Duration::from_millis(1000);
    let interval = watchdog / 2;
    let env = sd.env(watchdog);
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } = live_env("loop_above = 5.0", "", &env);
    sd.until("READY=1");
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    assert_eq!(receive(&sock)["health"], "ok");
    sd.until("WATCHDOG=1");
    imu.write(b"9,9\n9,9\n9,9\n9,9\n");
    let hung = Instant::now();
    let after = sd.during(4 * interval);
    if let Some(last) = pings(&after).last() {
        assert!(*last - hung <= 2 * interval, "a ping {:?} into the hang: {after:?}", *last - hung);
    }
    assert!(terminate(&mut child, &err).success());
    assert!(sd.during(Duration::from_millis(200)).iter().chain(&after).any(|(_, m)| m.contains("STOPPING=1")));
}

/// `GET /metrics` over HTTP: the counters equal what the actuator got and what the `stopped`
/// line says, per sink and per fallback reason; the histograms count every window.
#[test]
fn metrics_count_what_the_sinks_got_and_the_stopped_line_says() {
    let extra = "[metrics]\nlisten = \"127.0.0.1:0\"\n[[sinks]]\nkind = \"file\"\npath = \"/dev/full\"\n";
    let Live { dir: _dir, mut imu, sock, err, mut child, .. } = live("nan_above = 5.0", extra);
    let log = std::fs::read_to_string(&err).unwrap();
    let at = log.find("listen=127.0.0.1:").unwrap_or_else(|| panic!("{log}")) + "listen=127.0.0.1:".len();
    let port: u16 = log[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();

    // Five good windows with a malformed line (not the first: that one may be a header).
    imu.write(format!("1,2\noops\n{}", "1,2\n".repeat(19)).as_bytes());
    for _ in 0..5 {
        assert_eq!(receive(&sock)["health"], "ok");
    }
    let m = scrape(port);
    for (name, value) in [
        ("reflex_samples_total", 20.0),
        ("reflex_windows_total", 5.0),
        ("reflex_decode_errors_total", 1.0),
        ("reflex_latency_seconds_count", 5.0),
        ("reflex_inference_seconds_count", 5.0),
        ("reflex_generation", 1.0),
    ] {
        assert_eq!(m.value(name, None), value, "{name}: {}", m.text);
    }

    // Three windows whose outputs are not finite: fallback records.
    imu.write("9,9\n".repeat(12).as_bytes());
    for _ in 0..3 {
        assert_eq!(receive(&sock)["health"], "nonfinite");
    }
    // The file sink on /dev/full loses every record: once it has tried all 8, nothing moves.
    let file_sink = Some(("sink", "sinks[1] (file /dev/full)"));
    let start = Instant::now();
    let m = loop {
        let m = scrape(port);
        if m.value("reflex_sink_lost_total", file_sink) == 8.0 {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{}", m.text);
        std::thread::sleep(Duration::from_millis(20));
    };
    let (not_found, _) = get(port, "/");
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");

    assert!(terminate(&mut child, &err).success());
    let log = std::fs::read_to_string(&err).unwrap();
    let udp_sink = Some(("sink", "sinks[0] (udp 127.0.0.1:"));
    assert_eq!(m.value("reflex_sink_lost_total", udp_sink), 0.0, "{}", m.text);
    assert_eq!(m.value("reflex_fallback_records_total", Some(("reason", "nonfinite"))), 3.0, "{}", m.text);
    for reason in ["stale", "error", "late"] {
        assert_eq!(m.value("reflex_fallback_records_total", Some(("reason", reason))), 0.0, "{}", m.text);
    }
    for (name, key) in [
        ("reflex_samples_total", "samples"),
        ("reflex_windows_total", "windows"),
        ("reflex_dropped_windows_total", "dropped_windows"),
        ("reflex_decode_errors_total", "decode_errors"),
        ("reflex_lost_samples_total", "lost_samples"),
        ("reflex_time_jumps_total", "time_jumps"),
    ] {
        assert_eq!(m.value(name, None), stopped(&log, key) as f64, "{name} and {key}: {}\n{log}", m.text);
    }
    assert_eq!(m.sum("reflex_fallback_records_total"), stopped(&log, "fallback_records") as f64, "{log}");
    assert_eq!(m.sum("reflex_sink_lost_total"), stopped(&log, "sink_lost") as f64, "{log}");
    assert_eq!(stopped(&log, "windows"), 8, "{log}");
    for h in ["reflex_latency_seconds", "reflex_inference_seconds"] {
        assert_eq!(m.value(&format!("{h}_count"), None), 8.0, "{}", m.text);
        assert_eq!(m.bucket(h, f64::INFINITY), 8.0, "{}", m.text);
    }
}

/// `[metrics] listen` on an address already taken: one line naming the key and the address,
/// exit 1, before any sink opens.
#[test]
fn a_metrics_address_in_use_is_one_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let imu = pty();
    let c = config(dir.path(), &imu.path, 9, "", false);
    let file = dir.path().join("records.jsonl");
    let extra =
        format!("[metrics]\nlisten = \"{address}\"\n[[sinks]]\nkind = \"file\"\npath = \"{}\"\n", file.display());
    std::fs::write(&c, std::fs::read_to_string(&c).unwrap() + &extra).unwrap();
    let o = output_within(reflexd(&["run", "--config", c.to_str().unwrap()]));
    one_line_error(&o, &format!("[metrics] listen = \"{address}\": cannot listen there"));
    assert!(!file.exists(), "a sink opened before the endpoint was bound");
}

/// `GET path`: the response's head and body.
fn get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{text}"));
    (head.to_string(), body.to_string())
}

/// One scrape, parsed.
struct Scraped {
    text: String,
    parsed: prometheus_parse::Scrape,
}

fn scrape(port: u16) -> Scraped {
    let (head, text) = get(port, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    Scraped { text, parsed }
}

impl Scraped {
    /// The value of `name` (whose `label` starts with the given text, if any).
    fn value(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        let matching = |s: &&prometheus_parse::Sample| {
            s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k).is_some_and(|l| l.starts_with(v)))
        };
        let samples: Vec<_> = self.parsed.samples.iter().filter(matching).collect();
        assert_eq!(samples.len(), 1, "{name} {label:?}: {}", self.text);
        match samples[0].value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    }

    /// The sum of `name` over its labels.
    fn sum(&self, name: &str) -> f64 {
        let values = self.parsed.samples.iter().filter(|s| s.metric == name).map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            ref other => panic!("{name}: {other:?}"),
        });
        values.sum()
    }

    /// Histogram `name`'s cumulative count up to `le`.
    fn bucket(&self, name: &str, le: f64) -> f64 {
        let h = self.parsed.samples.iter().find(|s| s.metric == name).unwrap_or_else(|| panic!("{}", self.text));
        let prometheus_parse::Value::Histogram(buckets) = &h.value else { panic!("{name}: {:?}", h.value) };
        buckets.iter().find(|b| b.less_than == le).unwrap_or_else(|| panic!("{name} le {le}: {}", self.text)).count
    }
}

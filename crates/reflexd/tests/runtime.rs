//! Issue 14, `[runtime]`: the reader and inference threads pinned and SCHED_FIFO, memory
//! locked, idle CPUs kept quick to wake — and, where the OS does not permit it, one warning per setting and the daemon runs
//! on. Against the real binary on a pseudo-terminal, its threads read from /proc.

mod support;

use std::path::Path;
use support::{actuator, pty, receive, reflexd, spawn, terminate, wait_log};

/// A plugin-free model (a built-in layer), so that the daemon can also run as `nobody`.
fn config(dir: &Path, device: &Path, udp: u16, runtime: &str) -> std::path::PathBuf {
    let p = dir.join("reflex.toml");
    let text = format!(
        "[source]\npath = \"{}\"\nformat = \"csv\"\nchannels = 2\ntime_column = false\n\
         [window]\nlength = 4\nhop = 4\n\
         [model]\n[[model.layers]]\nname = \"pool\"\nplugin = \"global_avg_pool\"\n\
         [[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{udp}\"\n{runtime}",
        device.display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// The daemon's thread named `name`: (CPUs it may run on, scheduling policy).
fn thread(pid: u32, name: &str) -> (String, u32) {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        if std::fs::read_to_string(dir.join("comm")).unwrap_or_default().trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
        let sched = std::fs::read_to_string(dir.join("sched")).unwrap();
        let policy = sched.lines().find(|l| l.starts_with("policy")).unwrap();
        return (cpus, policy.split(':').nth(1).unwrap().trim().parse().unwrap());
    }
    panic!("no thread {name} in reflexd");
}

fn locked_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmLck:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The wake-up latency the kernel now grants idle CPUs (the strictest request held), µs.
fn wake_latency_us() -> i32 {
    let bytes = std::fs::read("/dev/cpu_dma_latency").unwrap();
    i32::from_ne_bytes(bytes[..4].try_into().unwrap())
}

/// Where permitted (CI runs as root, as here): both threads on CPU 0, SCHED_FIFO (1), the
/// daemon's memory locked, and idle CPUs asked to wake at once while it runs (not after).
#[test]
fn runtime_pins_the_two_threads_runs_them_fifo_and_locks_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut imu = pty();
    let (sock, port) = actuator();
    let runtime = "[runtime]\nreader_cpu = 0\ninference_cpu = 0\nrealtime_priority = 10\nlock_memory = true\n\
                   wake_latency_us = 0\n";
    let before = wake_latency_us();
    assert_ne!(before, 0, "another process already keeps idle CPUs polling: nothing to see here");
    let c = config(dir.path(), &imu.path, port, runtime);
    let err = dir.path().join("err.log");
    let mut child = spawn(reflexd(&["run", "--config", c.to_str().unwrap()]), &err);
    wait_log(&err, "serial device open");
    imu.write(b"1,2\n1,2\n1,2\n1,2\n");
    assert_eq!(receive(&sock)["values"][0], 1.0);
    let pid = child.id();
    assert_eq!(thread(pid, "reader"), ("0".to_string(), 1), "reader: CPU 0, SCHED_FIFO");
    assert_eq!(thread(pid, "inference"), ("0".to_string(), 1), "inference: CPU 0, SCHED_FIFO");
    assert!(locked_kb(pid) > 0, "memory locked");
    assert_eq!(wake_latency_us(), 0, "idle CPUs poll while reflexd runs");
    assert!(terminate(&mut child, &err).success());
    assert_eq!(wake_latency_us(), before, "the request is released when reflexd exits");
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(!log.contains("WARN"), "{log}");
}

/// As `nobody` with no real-time priority and no lockable memory allowed (RLIMIT_RTPRIO and
/// RLIMIT_MEMLOCK 0): one warning per refused setting — not one per thread — and the loop runs
/// on, pinned all the same (pinning one's own threads needs no privilege).
#[test]
fn runtime_settings_not_permitted_are_one_warning_each_and_the_daemon_runs_on() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut imu = pty();
    std::fs::set_permissions(&imu.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (sock, port) = actuator();
    let runtime = "[runtime]\nreader_cpu = 0\ninference_cpu = 0\nrealtime_priority = 80\nlock_memory = true\n\
                   wake_latency_us = 0\n";
    let c = config(dir.path(), &imu.path, port, runtime);
    let err = dir.path().join("err.log");
    let mut cmd = reflexd(&["run", "--config", c.to_str().unwrap()]);
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_RTPRIO, &none);
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &none);
            Ok(())
        });
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let mut child = spawn(cmd, &err);
    wait_log(&err, "serial device open");
    for _ in 0..3 {
        imu.write(b"3,4\n3,4\n3,4\n3,4\n");
        assert_eq!(receive(&sock)["values"][1], 4.0);
    }
    let pid = child.id();
    assert_eq!(thread(pid, "reader").0, "0");
    assert_eq!(thread(pid, "inference").0, "0");
    assert!(terminate(&mut child, &err).success());
    let log = std::fs::read_to_string(&err).unwrap();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 3, "{log}");
    assert!(warnings.iter().any(|w| w.contains("[runtime] realtime_priority = 80 not applied")), "{log}");
    assert!(warnings.iter().any(|w| w.contains("[runtime] lock_memory not applied")), "{log}");
    let wake = "[runtime] wake_latency_us = 0 not applied: /dev/cpu_dma_latency: Permission denied";
    assert!(warnings.iter().any(|w| w.contains(wake)), "{log}");
}

//! Shared by the end-to-end tests.

#![allow(dead_code)]

pub mod viewer;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::pty::openpty;
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use nix::unistd::Pid;
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Where `reflexd` looks for plugins by default. `cargo test` compiles the plugin libraries but
/// leaves them in `deps/`; only `cargo build` puts them beside `reflexd`, hence the README's
/// `cargo build --workspace && cargo test --workspace`.
pub fn exe_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_reflexd")).parent().unwrap().to_path_buf();
    for plugin in
        ["conv_standard", "conv_dilated", "conv_depthwise", "conv_grouped", "residual", "moving_average", "slow"]
    {
        let lib = dir.join(format!("lib{plugin}.so"));
        assert!(lib.exists(), "{} is missing: run `cargo build --workspace` before the tests", lib.display());
    }
    dir
}

/// Writes an f32 safetensors file.
pub fn write_weights(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (n.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, &None, path).unwrap();
}

/// Deterministic values in [-1, 1).
pub fn noise(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

/// One end of a pseudo-terminal pair for the test (the "IMU"), the other for the daemon.
pub struct Pty {
    pub master: File,
    _slave: OwnedFd,
    pub path: PathBuf,
}

pub fn pty() -> Pty {
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
    Pty { master: File::from(p.master), _slave: p.slave, path }
}

impl Pty {
    pub fn write(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }
}

pub fn reflexd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reflexd"));
    c.args(args).env("RUST_LOG", "info");
    c
}

/// A daemon that is killed when the test ends, passed or failed: one left running would hold
/// its pty (serial ports are opened exclusively) and fail later tests that get the same number.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `reflexd run --config CONFIG EXTRA…`, its stderr to `log`: the daemon as the tests start it.
pub fn start_run(config: &Path, extra: &[&str], log: &Path) -> Child {
    let mut c = reflexd(&["run", "--config"]);
    c.arg(config).args(extra);
    c.stdout(Stdio::null()).stderr(File::create(log).unwrap()).spawn().unwrap()
}

pub fn spawn(mut c: Command, log: &Path) -> Running {
    Running(c.stdout(Stdio::null()).stderr(File::create(log).unwrap()).spawn().unwrap())
}

/// Waits at most `limit` for the child to exit.
pub fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Waits until the log at `path` holds `needle` (the daemon has opened its device).
pub fn wait_log(path: &Path, needle: &str) {
    let start = Instant::now();
    while !std::fs::read_to_string(path).unwrap_or_default().contains(needle) {
        assert!(start.elapsed() < Duration::from_secs(20), "no `{needle}`: {}", std::fs::read_to_string(path).unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGTERM; the exit status, or a panic if it takes more than 2 s.
pub fn terminate(child: &mut Child, log: &Path) -> ExitStatus {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait(child, Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    status.unwrap_or_else(|| panic!("no exit within 2 s of SIGTERM:\n{}", std::fs::read_to_string(log).unwrap()))
}

/// Runs `c` to its end, or kills it after 5 s (a daemon that should have refused to start).
pub fn output_within(mut c: Command) -> Output {
    let mut child = c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let status = wait(&mut child, Duration::from_secs(5));
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    assert!(status.is_some(), "still running after 5 s: {}", String::from_utf8_lossy(&o.stderr));
    Output { status: status.unwrap(), ..o }
}

pub fn one_line_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().filter(|l| !l.contains(" INFO ")).count(), 1, "{err}");
    assert!(err.contains(needle), "no `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

pub fn actuator() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

pub fn receive(sock: &UdpSocket) -> Value {
    let mut buf = [0u8; 65536];
    let len = sock.recv(&mut buf).unwrap();
    serde_json::from_slice(&buf[..len]).unwrap()
}

/// `key=N` from the final `stopped` line of a daemon's log.
pub fn stopped(log: &str, key: &str) -> u64 {
    let line = log.lines().rev().find(|l| l.contains(" stopped ")).unwrap_or_else(|| panic!("no summary:\n{log}"));
    let at = line.find(&format!(" {key}=")).unwrap_or_else(|| panic!("no {key} in {line}"));
    line[at + key.len() + 2..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

//! Shared by the end-to-end tests.

#![allow(dead_code)]

pub mod viewer;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

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

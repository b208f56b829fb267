//! The contenders: `reflexd run` as is, `reflexd run` with `[runtime]` real-time settings, and
//! the Python + onnxruntime loop (`tools/loop_python.py`) — each started on the contender CPU,
//! awaited until ready, and stopped with SIGTERM for its `stopped` line.

use crate::args::Args;
use crate::pin;
use crate::stream::Recording;
use crate::support::Running;
use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The SCHED_FIFO priority of the real-time variant (SPEC §7 allows 1–99).
const REALTIME_PRIORITY: u32 = 80;

/// Start-up may import numpy and onnxruntime on a busy machine.
const START_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Contender {
    /// `reflexd run`, the process pinned to the contender CPU.
    Daemon,
    /// The same plus `[runtime]`: both threads pinned there, SCHED_FIFO, mlockall, idle CPUs
    /// polling (`wake_latency_us = 0`).
    DaemonRt,
    /// `tools/loop_python.py`.
    Python,
}

pub const ALL: [Contender; 3] = [Contender::Daemon, Contender::DaemonRt, Contender::Python];

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Daemon => "daemon",
            Contender::DaemonRt => "daemon-rt",
            Contender::Python => "python",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Contender> {
        match ALL.into_iter().find(|c| c.name() == s) {
            Some(c) => Ok(c),
            None => bail!("--contenders: unknown `{s}` (daemon, daemon-rt, python)"),
        }
    }

    /// What the log says once the contender can take frames.
    fn ready(self) -> &'static str {
        match self {
            Contender::Python => "ready",
            _ => "serial device open",
        }
    }
}

/// Everything the runs share, made once: the temp dir, the model's shape, the recording, the
/// ONNX export, and which contenders take part.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub model: PathBuf,
    /// The model's reflex.toml, the base of every daemon config.
    text: String,
    pub length: usize,
    pub hop: usize,
    pub recording: Recording,
    pub contenders: Vec<Contender>,
    pub python: String,
    pub onnx: PathBuf,
    pub cpu: usize,
    /// `--queue`: the daemons' `[window] queue`, windows.
    pub queue: usize,
    /// `--stalled-viewer`: the daemons serve `[live]` to a viewer that never reads.
    pub stalled_viewer: bool,
    /// Said once at the start: a skipped contender and why.
    pub notes: Vec<String>,
}

pub fn repo() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    repo.canonicalize().unwrap_or(repo)
}

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_reflexd"))
}

impl Setup {
    pub fn new(a: &Args) -> anyhow::Result<Setup> {
        let toml = a.model.join("reflex.toml");
        let cfg = reflex_config::load(&toml).map_err(|e| anyhow::anyhow!("{e}"))?;
        let text = std::fs::read_to_string(&toml)?;
        let recording = Recording::load(&a.recording, cfg.source.channels)?;
        let mut s = Setup {
            dir: tempfile::Builder::new().prefix("reflex_loop_").tempdir()?,
            model: a.model.clone(),
            text,
            length: cfg.window.length,
            hop: a.hop,
            recording,
            contenders: a.contenders.clone().unwrap_or_else(|| ALL.to_vec()),
            python: a.python.clone(),
            onnx: PathBuf::new(),
            cpu: a.contender_cpu,
            queue: a.queue,
            stalled_viewer: a.stalled_viewer,
            notes: Vec::new(),
        };
        s.check_daemon(a.contenders.is_some())?;
        if s.contenders.contains(&Contender::Python) {
            s.export()?;
        }
        Ok(s)
    }

    /// `reflexd check` on the configs the daemons will run: a model that does not load fails
    /// here, not as a silent run; a reflexd without `[runtime]` yet drops the real-time variant
    /// unless it was asked for by name.
    fn check_daemon(&mut self, explicit: bool) -> anyhow::Result<()> {
        for c in [Contender::Daemon, Contender::DaemonRt] {
            if !self.contenders.contains(&c) {
                continue;
            }
            let cfg = self.config(c, Path::new("/dev/null"), 9)?;
            let out = Command::new(exe()).arg("check").arg("--config").arg(&cfg).output()?;
            if out.status.success() {
                continue;
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr.trim().trim_start_matches("error: ").to_string();
            if c == Contender::DaemonRt && !explicit && why.contains("runtime") {
                self.notes.push(format!("daemon-rt skipped: this reflexd does not take [runtime] yet ({why})"));
                self.contenders.retain(|x| *x != c);
            } else {
                bail!("reflexd check {}: {why}", cfg.display());
            }
        }
        Ok(())
    }

    /// The model exported to ONNX by tools/perf_compare.py (checked against PyTorch there), once.
    fn export(&mut self) -> anyhow::Result<()> {
        let onnx = self.dir.path().join("model.onnx");
        let src = repo().join("python/src");
        let path = match std::env::var_os("PYTHONPATH") {
            Some(p) => std::env::join_paths(std::iter::once(src).chain(std::env::split_paths(&p)))?,
            None => src.into_os_string(),
        };
        let out = Command::new(&self.python)
            .arg(repo().join("tools/perf_compare.py"))
            .arg("--export-onnx")
            .arg(self.model.join("reflex.toml"))
            .arg(&onnx)
            .env("PYTHONPATH", path)
            .output()
            .with_context(|| format!("cannot run {} (--python)", self.python))?;
        if !out.status.success() {
            bail!("the ONNX export failed:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        self.notes.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        self.onnx = onnx;
        Ok(())
    }

    /// The model's config with the bench's source, hop, queue and UDP sink (and `[runtime]`
    /// for the real-time variant). The Python contender reads the same file.
    pub fn config(&self, c: Contender, pty: &Path, port: u16) -> anyhow::Result<PathBuf> {
        let weights = self.model.join("weights.safetensors").canonicalize()?;
        let plugins = exe().parent().context("reflexd has no directory")?;
        let mut out = String::new();
        for line in self.text.lines() {
            match line.split('=').next().unwrap_or("").trim() {
                "weights" => out.push_str(&format!(
                    "weights = \"{}\"\nplugin_dir = \"{}\"\n",
                    weights.display(),
                    plugins.display()
                )),
                "hop" => out.push_str(&format!("hop = {}\nqueue = {}\n", self.hop, self.queue)),
                _ if line.trim() == "[source]" => {
                    out.push_str(&format!("[source]\npath = \"{}\"\nformat = \"binary\"\n", pty.display()))
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out.push_str(&format!("\n[[sinks]]\nkind = \"udp\"\ntarget = \"127.0.0.1:{port}\"\n"));
        if self.stalled_viewer {
            out.push_str("\n[live]\nlisten = \"127.0.0.1:0\"\n");
        }
        if c == Contender::DaemonRt {
            out.push_str(&format!(
                "\n[runtime]\nreader_cpu = {cpu}\ninference_cpu = {cpu}\nrealtime_priority = {REALTIME_PRIORITY}\n\
                 lock_memory = true\nwake_latency_us = 0\n",
                cpu = self.cpu
            ));
        }
        let p = self.dir.path().join(format!("{}.toml", c.name()));
        std::fs::write(&p, out)?;
        Ok(p)
    }

    /// Starts `c` on the contender CPU reading `pty` and sending to `port`; returns once its
    /// log says it is ready (start-up is not timed).
    pub fn start(&self, c: Contender, pty: &Path, port: u16, log: &Path) -> anyhow::Result<Running> {
        let cfg = self.config(c, pty, port)?;
        let mut cmd = match c {
            Contender::Python => {
                let mut cmd = Command::new(&self.python);
                cmd.arg(repo().join("tools/loop_python.py"))
                    .arg("--port")
                    .arg(pty)
                    .arg("--config")
                    .arg(&cfg)
                    .arg("--onnx")
                    .arg(&self.onnx)
                    .args(["--target", &format!("127.0.0.1:{port}"), "--hop", &self.hop.to_string()])
                    .args(["--cpu", &self.cpu.to_string()]);
                cmd
            }
            _ => {
                let mut cmd = Command::new(exe());
                cmd.args(["run", "--config"]).arg(&cfg);
                cmd
            }
        };
        pin::child(&mut cmd, self.cpu);
        let child = cmd.stdout(Stdio::null()).stderr(File::create(log)?).spawn()?;
        let mut child = Running(child);
        let start = Instant::now();
        while !std::fs::read_to_string(log).unwrap_or_default().contains(c.ready()) {
            if child.0.try_wait()?.is_some() || start.elapsed() > START_LIMIT {
                bail!("{} did not start:\n{}", c.name(), std::fs::read_to_string(log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(child)
    }
}

/// SIGTERM, then the log (with its `stopped` line); killed if it has not ended after 5 s.
pub fn stop(mut child: Running, log: &Path) -> anyhow::Result<String> {
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM)?;
    let start = Instant::now();
    while child.0.try_wait()?.is_none() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(child);
    Ok(std::fs::read_to_string(log)?)
}

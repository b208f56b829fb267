//! The bench's command line (after `cargo bench -p reflexd --bench loop_latency --`).

use crate::contender::{repo, Contender};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::str::FromStr;

pub struct Args {
    pub model: PathBuf,
    pub recording: PathBuf,
    pub rate: f64,
    pub hop: usize,
    pub seconds: f64,
    pub rounds: usize,
    pub find_max: Option<f64>,
    /// None: all three, the real-time variant only if this reflexd takes `[runtime]`.
    pub contenders: Option<Vec<Contender>>,
    pub python: String,
    pub driver_cpu: usize,
    pub contender_cpu: usize,
    /// A datagram later than this (ms) after its window's last sample, or a writer further
    /// behind its schedule, means the contender did not keep up.
    pub late_ms: f64,
    /// The daemons' `[window] queue`: how many windows may wait before the oldest is dropped.
    pub queue: usize,
    /// Serve the daemons' live view (`[live]`) to a Foxglove viewer that subscribes to every
    /// topic and never reads again.
    pub stalled_viewer: bool,
    /// Move unbound workqueues and movable interrupts off the contender CPU for the runs.
    pub isolate: bool,
    pub json: bool,
}

fn value<T: FromStr>(key: &str, v: Option<String>) -> anyhow::Result<T> {
    let v = v.with_context(|| format!("{key} needs a value"))?;
    v.parse().map_err(|_| anyhow::anyhow!("{key}: `{v}` is not valid"))
}

pub fn parse() -> anyhow::Result<Args> {
    let repo = repo();
    let mut a = Args {
        model: repo.join("examples/bench/standard"),
        recording: repo.join("examples/data/gaitmap/healthy_2x20m_left.csv"),
        rate: 1000.0,
        hop: 1,
        seconds: 20.0,
        rounds: 2,
        find_max: None,
        contenders: None,
        python: std::env::var("REFLEX_PYTHON").unwrap_or_else(|_| "python3".into()),
        driver_cpu: 0,
        contender_cpu: 1,
        late_ms: 100.0,
        queue: 64,
        stalled_viewer: false,
        isolate: false,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let key = k.as_str();
        match key {
            "--model" => a.model = value(key, it.next())?,
            "--recording" => a.recording = value(key, it.next())?,
            "--rate" => a.rate = value(key, it.next())?,
            "--hop" => a.hop = value(key, it.next())?,
            "--seconds" => a.seconds = value(key, it.next())?,
            "--rounds" => a.rounds = value(key, it.next())?,
            "--find-max" => a.find_max = Some(value(key, it.next())?),
            "--contenders" => {
                let list: String = value(key, it.next())?;
                a.contenders = Some(list.split(',').map(Contender::parse).collect::<Result<_, _>>()?);
            }
            "--python" => a.python = value(key, it.next())?,
            "--driver-cpu" => a.driver_cpu = value(key, it.next())?,
            "--contender-cpu" => a.contender_cpu = value(key, it.next())?,
            "--late-ms" => a.late_ms = value(key, it.next())?,
            "--queue" => a.queue = value(key, it.next())?,
            "--json" => a.json = true,
            "--stalled-viewer" => a.stalled_viewer = true,
            "--isolate" => a.isolate = true,
            "--bench" => {} // cargo bench passes it
            _ => bail!("unknown option `{key}` (the options are in crates/reflexd/benches/loop_latency/main.rs)"),
        }
    }
    if a.rate <= 0.0 || a.seconds <= 0.0 || a.hop == 0 || a.rounds == 0 || a.queue == 0 {
        bail!("--rate, --seconds, --hop, --rounds and --queue must be positive");
    }
    if a.driver_cpu == a.contender_cpu {
        bail!("--driver-cpu and --contender-cpu must differ: the driver and the contender get one CPU each");
    }
    Ok(a)
}

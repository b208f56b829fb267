//! The whole loop, side by side, measured from outside: the last sample of a window written into
//! a pseudo-terminal → a contender → that window's UDP datagram at a socket on 127.0.0.1 (the
//! kernel's arrival stamp, so the driver's own wake-up is not counted).
//! Not a test: a benchmark, run by hand (tools/README.md, "Loop latency: the daemon against a
//! Python loop").
//!
//! ```sh
//! cargo build --release --workspace
//! cargo bench -p reflexd --bench loop_latency -- --python /path/to/venv/bin/python \
//!     [--rate 1000] [--hop 1] [--seconds 20] [--rounds 2] [--find-max 60] [--json]
//!     [--contenders daemon,daemon-rt,python] [--model examples/bench/standard]
//!     [--recording examples/data/gaitmap/healthy_2x20m_left.csv]
//!     [--driver-cpu 0] [--contender-cpu 1] [--late-ms 100] [--queue 64] [--stalled-viewer] [--isolate]
//! ```
//!
//! The driver — this process: the writer (main thread) and the receiver thread — runs on
//! `--driver-cpu`. It writes the recording's samples as binary frames, rate-paced, into a fresh
//! pty for each run and collects every datagram with the kernel's arrival stamp. The contenders take turns (`--rounds`
//! alternations of `--seconds` each), each process pinned whole to `--contender-cpu`:
//!
//! - `daemon`: `reflexd run` on the model's config (binary source on the pty, the hop, a UDP
//!   sink, `[window] queue` = `--queue`: the windows that may wait before the oldest is
//!   dropped);
//! - `daemon-rt`: the same with `[runtime]` (both threads on the contender CPU, SCHED_FIFO 80,
//!   `lock_memory`, `wake_latency_us = 0`); left out, with a note, while this reflexd does not take `[runtime]`;
//! - `python`: `tools/loop_python.py` (pyserial, numpy ring buffer, one onnxruntime thread,
//!   JSON over UDP) on the model exported to ONNX by `tools/perf_compare.py --export-onnx`.
//!
//! The first round checks that every contender sent the daemon's values for the same windows
//! (within 1e-4 relative) and stops with an error if not. Then per contender: windows,
//! received, dropped, missing, latency p50/p99/max, and the ratios of each daemon variant to
//! the Python loop. `--find-max S` then searches, alternating, each contender's highest rate
//! sustained for S seconds: no dropped window, no missing datagram, and the contender kept up —
//! no datagram more than `--late-ms` after its window's last sample, and the writer never that
//! far behind its schedule. The daemon drops windows when it falls behind; the Python loop
//! never drops, its backlog grows instead (first in the pty's buffer, up to about 2000 frames,
//! then by holding the writer up, where a real serial port would lose the bytes).
//!
//! `--isolate` (root) moves unbound workqueues and every movable interrupt to the driver CPU
//! for the runs, as a robot host's kernel line would for its control core, and puts them back.
//!
//! `--stalled-viewer` has the daemons serve the live view (`[live]`) to a Foxglove viewer that
//! subscribes to every topic and never reads again (the Python loop has no live view).

mod args;
mod contender;
mod drive;
mod isolate;
mod pin;
mod report;
mod stamp;
mod stream;

#[path = "../../tests/support/mod.rs"]
mod support;

use anyhow::bail;
use contender::{Contender, Setup};
use drive::Outcome;
use report::{Out, Pooled};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The Python loop must send the daemon's values within this, relative to the window's largest
/// |value| (tools/perf_compare.py checks onnxruntime against PyTorch to the same bound).
const REL_TOL: f64 = 1e-4;

/// Steps of one contender's rate search at most.
const SEARCH_STEPS: usize = 12;

/// The search goes no lower than a rate that makes this many windows in a run.
const SEARCH_MIN_WINDOWS: usize = 100;

fn main() {
    if let Err(e) = bench() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn bench() -> anyhow::Result<()> {
    let a = args::parse()?;
    // First, before any thread exists: the receiver inherits it.
    pin::this_thread(a.driver_cpu)?;
    let out = Out { json: a.json, late_us: a.late_ms * 1000.0 };
    let setup = Setup::new(&a)?;
    let isolated = a.isolate.then(|| isolate::apply(a.driver_cpu)).transpose()?;
    let load_before = load();
    header(&out, &a, &setup, &load_before);
    if let Some(i) = &isolated {
        out.say(&format!(
            "isolated CPU {}: unbound workqueues and {} interrupts moved to CPU {} ({} would not move), put back at the end \
             (if killed: `{}` and the same for /proc/irq/*/smp_affinity)",
            a.contender_cpu,
            i.moved_irqs(),
            a.driver_cpu,
            i.kept_irqs,
            i.undo_hint()
        ));
    }
    let mut runs: Vec<(Contender, Vec<Outcome>)> = setup.contenders.iter().map(|c| (*c, Vec::new())).collect();
    for round in 0..a.rounds {
        out.say(&format!("round {} of {} ({} s each)", round + 1, a.rounds, a.seconds));
        for (c, done) in &mut runs {
            let o = drive::run(&setup, *c, a.rate, a.seconds, round == 0)?;
            out.run(*c, a.rate, &o);
            done.push(o);
        }
        if round == 0 {
            same_values(&out, &mut runs)?;
        }
    }
    let mut pooled: Vec<Pooled> = runs.iter().map(|(c, o)| Pooled::new(*c, o, out.late_us)).collect();
    let searched = match a.find_max {
        Some(s) => find_max(&a, &setup, &out, s, &mut pooled)?,
        None => Value::Null,
    };
    out.say(&format!("\n{} Hz, hop {}, {} round(s) of {} s, pooled:", a.rate, a.hop, a.rounds, a.seconds));
    report::summary(&out, &pooled);
    let ratios = report::ratios(&out, &pooled);
    let load_after = load();
    out.say(&format!("load average after: {load_after}"));
    if a.json {
        let contenders: serde_json::Map<String, Value> = pooled
            .iter()
            .zip(&runs)
            .map(|(p, (c, o))| {
                (c.name().to_string(), json!({"pooled": p.json(), "runs": run_json(o, a.rate, out.late_us)}))
            })
            .collect();
        let doc = json!({
            "model": setup.model, "recording": setup.recording.path, "rate_hz": a.rate, "hop": a.hop,
            "seconds": a.seconds, "rounds": a.rounds, "driver_cpu": a.driver_cpu,
            "contender_cpu": a.contender_cpu, "isolated": a.isolate, "queue": a.queue, "load_before": load_before, "load_after": load_after,
            "notes": setup.notes, "contenders": contenders, "ratios": ratios, "find_max": searched,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

/// `/proc/loadavg`'s first three fields: the machine is shared, the numbers are noisy.
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn header(out: &Out, a: &args::Args, s: &Setup, load: &str) {
    out.say(&format!(
        "model {} (window {}, hop {}); {} ({} samples, repeated as needed) as binary frames at {} Hz",
        s.model.display(),
        s.length,
        s.hop,
        s.recording.path.display(),
        s.recording.len(),
        a.rate
    ));
    out.say(&format!(
        "driver (writer, receiver) on CPU {}, each contender on CPU {}; contenders {}; the daemons' queue {} windows; load average {load}",
        a.driver_cpu,
        a.contender_cpu,
        s.contenders.iter().map(|c| c.name()).collect::<Vec<_>>().join(", "),
        a.queue
    ));
    for n in &s.notes {
        out.say(n);
    }
}

fn run_json(runs: &[Outcome], rate: f64, late_us: f64) -> Vec<Value> {
    runs.iter()
        .map(|o| {
            json!({
                "rate_hz": rate, "windows": o.windows, "received": o.received, "dropped": o.dropped(),
                "missing": o.missing(), "late": o.late(late_us), "p50_us": report::pct(&o.latencies_us, 0.5),
                "p99_us": report::pct(&o.latencies_us, 0.99), "max_us": o.latencies_us.last(),
                "writer_lag_ms": o.lag_max_us / 1000.0,
                "breakdown": o.stopped.breakdown_json(),
                "warnings": o.warnings, "stopped": o.stopped.all(),
            })
        })
        .collect()
}

/// Every contender's first run against the first daemon's: the same windows must carry the
/// same values, or the comparison is of different computations. Frees the values after.
fn same_values(out: &Out, runs: &mut [(Contender, Vec<Outcome>)]) -> anyhow::Result<()> {
    let Some(i) = runs.iter().position(|(c, _)| *c != Contender::Python) else {
        return Ok(());
    };
    let rc = runs[i].0;
    let reference: HashMap<u64, &Vec<f64>> = runs[i].1[0].values.iter().map(|(w, v)| (*w, v)).collect();
    for (c, o) in runs.iter().filter(|(c, _)| *c != rc) {
        let (mut worst, mut at, mut compared) = (0.0f64, 0u64, 0usize);
        for (w, v) in &o[0].values {
            let Some(r) = reference.get(w) else { continue };
            if r.len() != v.len() {
                bail!("{} sent {} values for window {w}, {} sent {}", c.name(), v.len(), rc.name(), r.len());
            }
            let scale = r.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
            let rel = r.iter().zip(v).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale;
            compared += 1;
            if rel > worst || rel.is_nan() {
                (worst, at) = (rel, *w);
            }
        }
        if compared == 0 {
            bail!("{} and {} have no window in common: nothing to compare", c.name(), rc.name());
        }
        if worst.is_nan() || worst > REL_TOL {
            let mine = o[0].values.iter().find(|(w, _)| *w == at).map(|(_, v)| v);
            bail!(
                "{} and {} disagree on window {at}: {mine:?} against {:?}, relative difference {worst:.2e} > \
                 {REL_TOL:e}: not the same model, normalisation or windows",
                c.name(),
                rc.name(),
                reference[&at]
            );
        }
        out.say(&format!(
            "  same values: {} = {} on {compared} windows (max relative difference {worst:.1e})",
            c.name(),
            rc.name()
        ));
    }
    for (_, o) in runs.iter_mut() {
        o[0].values = Vec::new();
    }
    Ok(())
}

/// One contender's search: double the rate until a run fails, then bisect while the bounds
/// are more than 10 % apart.
struct Search {
    rate: f64,
    good: f64,
    bad: f64,
    /// The lowest rate worth a run (see [`SEARCH_MIN_WINDOWS`]).
    floor: f64,
    steps: Vec<Value>,
}

impl Search {
    fn done(&self) -> bool {
        (self.good > 0.0 && self.bad / self.good < 1.1) || self.rate < self.floor || self.steps.len() >= SEARCH_STEPS
    }

    /// The result: the highest rate sustained, or what none was sustained above.
    fn said(&self) -> String {
        if self.good > 0.0 {
            format!("{:.0} Hz", self.good)
        } else {
            format!("none: not sustained at {:.0} Hz or any rate tried", self.bad)
        }
    }

    fn next(&mut self, ok: bool) {
        if ok {
            self.good = self.rate;
        } else {
            self.bad = self.rate;
        }
        self.rate = if self.bad.is_infinite() { self.rate * 2.0 } else { ((self.good + self.bad) / 2.0).round() };
    }
}

fn sustained(a: &args::Args, o: &Outcome) -> Result<(), String> {
    let mut why = Vec::new();
    if o.windows == 0 {
        why.push("no window".to_string());
    }
    if o.dropped() > 0 {
        why.push(format!("{} dropped", o.dropped()));
    }
    if o.missing() > 0 {
        why.push(format!("{} missing", o.missing()));
    }
    let late = o.late(a.late_ms * 1000.0);
    if late > 0 {
        why.push(format!("{late} later than {} ms", a.late_ms));
    }
    if o.lag_max_us > a.late_ms * 1000.0 {
        why.push(format!("writer held up {:.0} ms", o.lag_max_us / 1000.0));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join(", "))
    }
}

fn find_max(a: &args::Args, setup: &Setup, out: &Out, seconds: f64, pooled: &mut [Pooled]) -> anyhow::Result<Value> {
    out.say(&format!(
        "\nhighest rate sustained for {seconds} s (no dropped window, no missing datagram, none later than {} ms, writer never as far behind), \
         contenders alternating:",
        a.late_ms
    ));
    let floor = ((setup.length + (SEARCH_MIN_WINDOWS - 1) * setup.hop) as f64 / seconds).ceil();
    let mut searches: Vec<Search> = pooled
        .iter()
        .map(|_| Search { rate: a.rate, good: 0.0, bad: f64::INFINITY, floor, steps: Vec::new() })
        .collect();
    while searches.iter().any(|s| !s.done()) {
        for (p, s) in pooled.iter().zip(&mut searches).filter(|(_, s)| !s.done()) {
            let o = drive::run(setup, p.contender, s.rate, seconds, false)?;
            out.run(p.contender, s.rate, &o);
            let verdict = sustained(a, &o);
            out.say(&format!(
                "            {}",
                verdict.as_ref().map_or_else(|w| format!("not sustained: {w}"), |()| "sustained".into())
            ));
            s.steps.push(json!({"run": run_json(std::slice::from_ref(&o), s.rate, out.late_us)[0], "sustained": verdict.is_ok()}));
            s.next(verdict.is_ok());
        }
    }
    let mut all = serde_json::Map::new();
    for (p, s) in pooled.iter_mut().zip(searches) {
        p.max_rate = Some(s.good);
        out.say(&format!("  {:<9} {}", p.contender.name(), s.said()));
        all.insert(p.contender.name().to_string(), json!({"max_rate_hz": s.good, "steps": s.steps}));
    }
    Ok(Value::Object(all))
}

//! `--isolate`: for the runs, the kernel's own deferred work moves off the contender CPU — as a
//! robot host's kernel line does for its control core (`irqaffinity=`,
//! `workqueue.unbound_cpus=`): unbound workqueues (a pty's input is pushed by one) and every
//! interrupt that may move go to the driver CPU. The same for every contender, and everything
//! is put back when the bench ends. Needs root.

use anyhow::Context;
use std::path::{Path, PathBuf};

const WORKQUEUES: &str = "/sys/devices/virtual/workqueue/cpumask";

/// What was changed, with the values to put back (on drop).
pub struct Isolated {
    restore: Vec<(PathBuf, String)>,
    /// Interrupts that refused to move (kernel-managed ones, e.g. a virtio disk's queues).
    pub kept_irqs: usize,
}

impl Isolated {
    pub fn moved_irqs(&self) -> usize {
        self.restore.len() - 1
    }

    /// What puts the workqueues back by hand, should the bench be killed before it does.
    pub fn undo_hint(&self) -> String {
        self.restore.first().map_or(String::new(), |(p, old)| format!("echo {old} > {}", p.display()))
    }
}

/// Moves unbound workqueues and movable interrupts to `driver_cpu` alone.
pub fn apply(driver_cpu: usize) -> anyhow::Result<Isolated> {
    anyhow::ensure!(driver_cpu < 64, "--isolate handles CPUs 0 to 63");
    let mask = format!("{:x}", 1u64 << driver_cpu);
    let mut done = Isolated { restore: Vec::new(), kept_irqs: 0 };
    set(Path::new(WORKQUEUES), &mask, &mut done.restore)
        .with_context(|| format!("--isolate: cannot restrict unbound workqueues ({WORKQUEUES}); it needs root"))?;
    let mut irqs: Vec<PathBuf> = std::fs::read_dir("/proc/irq")?
        .filter_map(|e| e.ok().map(|e| e.path().join("smp_affinity")))
        .filter(|p| p.is_file())
        .collect();
    irqs.sort();
    for irq in irqs {
        if set(&irq, &mask, &mut done.restore).is_err() {
            done.kept_irqs += 1;
        }
    }
    Ok(done)
}

/// Writes `value` to `path`, remembering what was there.
fn set(path: &Path, value: &str, restore: &mut Vec<(PathBuf, String)>) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path)?;
    std::fs::write(path, value)?;
    restore.push((path.to_path_buf(), old.trim().to_string()));
    Ok(())
}

impl Drop for Isolated {
    fn drop(&mut self) {
        for (path, old) in self.restore.drain(..).rev() {
            if let Err(e) = std::fs::write(&path, &old) {
                eprintln!("--isolate: could not put {} back to {old}: {e}", path.display());
            }
        }
    }
}

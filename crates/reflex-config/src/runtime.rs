//! `[runtime]`: where the two threads of a window's path run, at which priority, and whether
//! the daemon's memory is locked — for a control loop whose tail latency matters.

use serde::Deserialize;

/// The highest CPU number a CPU set can name (glibc's `CPU_SETSIZE`).
const MAX_CPU: usize = 1023;

/// The largest wake-up latency the kernel takes (its default: 2000 s, meaning no limit).
const MAX_WAKE_US: u32 = 2_000_000_000;

/// `[runtime]`; without it the threads run wherever and however the OS schedules them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Pin the reader thread (serial read, decode, windows) to this CPU.
    #[serde(default)]
    pub reader_cpu: Option<usize>,
    /// Pin the inference thread (graph, records, direct sinks) to this CPU; it may be the
    /// reader's.
    #[serde(default)]
    pub inference_cpu: Option<usize>,
    /// SCHED_FIFO at this priority (1–99) for both threads. Where not permitted: one warning,
    /// and the daemon runs on at normal priority.
    #[serde(default)]
    pub realtime_priority: Option<u8>,
    /// `mlockall` (current and future pages) once started, so that no page of the loop is
    /// swapped out or faulted in late. Where not permitted: one warning, and the daemon runs on.
    #[serde(default)]
    pub lock_memory: bool,
    /// The longest an idle CPU may take to wake, µs, asked of the kernel (Linux PM QoS,
    /// `/dev/cpu_dma_latency`) for as long as the daemon runs. `0` keeps idle CPUs polling
    /// instead of halting, so that a byte on the serial line or a datagram sent wakes its
    /// thread at once; it costs power on every CPU. Where not permitted: one warning, and the
    /// daemon runs on.
    #[serde(default)]
    pub wake_latency_us: Option<u32>,
}

impl crate::Setting for RuntimeConfig {
    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (key, cpu) in [("reader_cpu", self.reader_cpu), ("inference_cpu", self.inference_cpu)] {
            if let Some(cpu) = cpu.filter(|c| *c > MAX_CPU) {
                p.push(format!("{key} = {cpu}: at most {MAX_CPU}"));
            }
        }
        if let Some(prio) = self.realtime_priority.filter(|p| !(1..=99).contains(p)) {
            p.push(format!("realtime_priority = {prio}: SCHED_FIFO priorities are 1 to 99"));
        }
        if let Some(us) = self.wake_latency_us.filter(|us| *us > MAX_WAKE_US) {
            p.push(format!("wake_latency_us = {us}: at most {MAX_WAKE_US} (the kernel's default, no limit)"));
        }
        p
    }
}

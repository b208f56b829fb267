//! `[runtime]`: the reader and inference threads pinned to CPUs and run SCHED_FIFO, the
//! daemon's memory locked, and idle CPUs kept quick to wake — for a control loop whose tail
//! latency matters. Each setting that the OS does not permit (no CAP_SYS_NICE /
//! RLIMIT_RTPRIO, no CAP_IPC_LOCK / RLIMIT_MEMLOCK, a CPU that is not there, no write access
//! to `/dev/cpu_dma_latency`) is one warning, and the daemon runs on without it.

use super::os;
use reflex_config::RuntimeConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Which of the two threads is entering.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    Reader,
    Inference,
}

/// How long the inference thread spins for the next window before it parks, when it has a CPU
/// of its own: a parked thread is woken in tens of microseconds, a spinning one at once. Short
/// enough that a loop between windows costs little; at 1 kHz and more the next window usually
/// comes within it.
const SPIN: Duration = Duration::from_micros(50);

/// The section, and which refusals were said already (one warning each, not one per thread).
#[derive(Debug, Default)]
pub struct Runtime {
    config: RuntimeConfig,
    said_affinity: AtomicBool,
    said_priority: AtomicBool,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Runtime {
        Runtime { config, ..Runtime::default() }
    }

    /// Applies the section to the calling thread, which is the `role` thread.
    pub fn enter(&self, role: Role) {
        let cpu = match role {
            Role::Reader => self.config.reader_cpu,
            Role::Inference => self.config.inference_cpu,
        };
        if let Some(cpu) = cpu {
            if let Err(e) = os::pin(cpu) {
                self.warn_once(
                    &self.said_affinity,
                    format_args!("[runtime] {role:?} thread not pinned to CPU {cpu}: {e}; it runs on any CPU"),
                );
            }
        }
        if let Some(priority) = self.config.realtime_priority {
            if let Err(e) = os::fifo(priority) {
                self.warn_once(&self.said_priority, format_args!("[runtime] realtime_priority = {priority} not applied: {e}; running at normal priority (grant CAP_SYS_NICE or LimitRTPRIO)"));
            }
        }
    }

    /// `lock_memory`: once everything is started (pools, queues, threads' stacks).
    pub fn lock_memory(&self) {
        if !self.config.lock_memory {
            return;
        }
        match os::lock_all() {
            Ok(()) => tracing::info!("[runtime] memory locked"),
            Err(e) => tracing::warn!("[runtime] lock_memory not applied: {e}; memory may be paged (grant CAP_IPC_LOCK or LimitMEMLOCK=infinity)"),
        }
    }

    /// `wake_latency_us`: the kernel's PM QoS request, held for as long as the returned handle
    /// lives (the kernel drops the request when the file is closed).
    pub fn hold_wake_latency(&self) -> Option<std::fs::File> {
        let us = self.config.wake_latency_us?;
        match os::wake_latency(us) {
            Ok(held) => {
                tracing::info!("[runtime] idle CPUs wake within {us} µs");
                Some(held)
            }
            Err(e) => {
                tracing::warn!("[runtime] wake_latency_us = {us} not applied: {e}; idle CPUs may sleep deeply between samples (grant write access to /dev/cpu_dma_latency)");
                None
            }
        }
    }

    /// How long the inference thread spins before it parks: only when it is pinned to a CPU
    /// other than the reader's, where spinning takes nothing from the reader.
    pub fn spin(&self) -> Duration {
        match (self.config.reader_cpu, self.config.inference_cpu) {
            (Some(r), Some(i)) if r != i => SPIN,
            _ => Duration::ZERO,
        }
    }

    fn warn_once(&self, said: &AtomicBool, line: std::fmt::Arguments<'_>) {
        if !said.swap(true, Ordering::Relaxed) {
            tracing::warn!("{line}");
        }
    }
}

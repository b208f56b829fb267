//! The one way to stop a pipeline: set by a signal handler, seen by the reader between two
//! frames and by any wait (pacing, a device's reopen backoff), which it cuts short.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A stop request, shared by cloning. Checking it is one atomic load; waiting on it allocates
/// nothing.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    set: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    /// A stop not yet requested.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Requests the stop and wakes every [`Stop::sleep`].
    pub fn set(&self) {
        let _guard = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.0.set.store(true, Ordering::Relaxed);
        self.0.wake.notify_all();
    }

    /// Whether the stop was requested.
    pub fn is_set(&self) -> bool {
        self.0.set.load(Ordering::Relaxed)
    }

    /// Sleeps for `d`, or less if the stop is requested meanwhile; returns whether it was.
    pub fn sleep(&self, d: Duration) -> bool {
        // A deadline past what `Instant` can hold is a sleep until the stop.
        let deadline = Instant::now().checked_add(d);
        let mut guard = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !self.is_set() {
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => break,
                },
                None => Duration::from_secs(3600),
            };
            guard = self.0.wake.wait_timeout(guard, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        self.is_set()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_cuts_a_sleep_short() {
        let stop = Stop::new();
        let other = stop.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            (other.sleep(Duration::from_secs(30)), start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(20));
        stop.set();
        let (stopped, took) = t.join().unwrap();
        assert!(stopped && took < Duration::from_secs(5));
        assert!(!Stop::new().sleep(Duration::from_millis(1)));
    }
}

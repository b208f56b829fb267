//! A new graph's trial on live windows: the inference thread hands a copy of each window and
//! of what the running graph made of it to the build thread, which runs the new graph on the
//! same window and compares. The graph is adopted only if it gave finite values without error
//! on every shadow window; the divergence is logged either way.
//!
//! Off the hot path: while no trial runs, the inference thread's cost is one atomic load; during
//! one, a copy into a buffer made by the trial, handed over without blocking (a window the build
//! thread has no free buffer for is simply not shadowed).

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use reflex_graph::Graph;
use reflex_io::record::argmax;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Buffers in flight between the two threads during a trial.
const SLOTS: usize = 4;

/// One live window and the running graph's values for it (empty when it had none good).
struct Shadowed {
    window: u64,
    data: Vec<f32>,
    old: Vec<f32>,
}

/// The trial's ends of the hand-over, made fresh by each trial.
struct Session {
    to_trial: Sender<Shadowed>,
    free: Receiver<Shadowed>,
}

/// Shared by the inference thread (which offers windows) and the build thread (which runs
/// trials).
#[derive(Default)]
pub struct ShadowFeed {
    active: AtomicBool,
    session: Mutex<Option<Session>>,
}

impl ShadowFeed {
    /// On the inference thread, after each window: a copy for the trial, if one runs. Never
    /// blocks: a lock held by the other side, or no free buffer, skips this window.
    pub fn offer(&self, window: u64, data: &[f32], old: Option<&[f32]>) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        let Ok(guard) = self.session.try_lock() else { return };
        let Some(session) = guard.as_ref() else { return };
        let Ok(mut s) = session.free.try_recv() else { return };
        s.window = window;
        s.data.clear();
        s.data.extend_from_slice(data);
        s.old.clear();
        s.old.extend_from_slice(old.unwrap_or_default());
        let _ = session.to_trial.try_send(s);
    }

    /// Starts a trial: the windows offered from now on come out of the returned receiver.
    fn open(&self, input_len: usize, output_len: usize) -> (Receiver<Shadowed>, Sender<Shadowed>) {
        let (to_trial, from_inference) = crossbeam_channel::bounded(SLOTS);
        let (give_back, free) = crossbeam_channel::bounded(SLOTS);
        for _ in 0..SLOTS {
            let s = Shadowed { window: 0, data: Vec::with_capacity(input_len), old: Vec::with_capacity(output_len) };
            let _ = give_back.send(s);
        }
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(Session { to_trial, free });
        self.active.store(true, Ordering::Release);
        (from_inference, give_back)
    }

    /// Ends a trial (also when its thread is abandoned): the inference thread stops copying.
    pub fn close(&self) {
        self.active.store(false, Ordering::Release);
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// How the new graph's outputs compare with the running graph's over the shadow windows.
#[derive(Debug, Default)]
pub struct Divergence {
    /// Windows the new graph ran.
    pub windows: u32,
    /// The largest |new − old| over windows where both gave the same number of finite values.
    pub max_abs: Option<f32>,
    /// (agreeing, compared) argmax labels, for classify outputs.
    pub labels: Option<(u32, u32)>,
}

impl Divergence {
    fn add(&mut self, old: &[f32], new: &[f32], classify: bool) {
        self.windows += 1;
        if old.is_empty() || old.len() != new.len() {
            return;
        }
        let delta = old.iter().zip(new).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        self.max_abs = Some(self.max_abs.map_or(delta, |m| m.max(delta)));
        if classify {
            let (agree, seen) = self.labels.unwrap_or_default();
            self.labels = Some((agree + u32::from(argmax(old) == argmax(new)), seen + 1));
        }
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} shadow windows", self.windows)?;
        match self.max_abs {
            Some(d) => write!(f, ", max |Δ| {d:.4}")?,
            None => write!(f, ", outputs not comparable (another shape, or no good value to compare)")?,
        }
        if let Some((agree, seen)) = self.labels {
            write!(f, ", labels agree on {agree}/{seen}")?;
        }
        Ok(())
    }
}

/// Why a trial did not adopt the graph.
#[derive(Debug)]
pub enum Failed {
    /// The new graph failed on a live window.
    Error { window: u64, error: String, so_far: Divergence },
    /// The new graph's output was not finite.
    Nonfinite { window: u64, so_far: Divergence },
    /// The reloader gave up on it (a newer change, or shutdown).
    Cancelled,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Error { window, error, so_far } => {
                write!(f, "in shadow, the new graph failed on live window {window}: {error} ({so_far})")
            }
            Failed::Nonfinite { window, so_far } => {
                write!(f, "in shadow, the new graph's output was not finite on live window {window} ({so_far})")
            }
            Failed::Cancelled => write!(f, "superseded"),
        }
    }
}

/// Runs `graph` beside the running one on `windows` live windows. `carry_on` is called before
/// every wait (a sign of life for the reloader's watch) and ends the trial when false; the
/// windows may not come while the IMU is unplugged, and the trial then waits.
pub fn trial(
    graph: &mut Graph,
    feed: &ShadowFeed,
    windows: u32,
    classify: bool,
    carry_on: &dyn Fn() -> bool,
) -> Result<Divergence, Failed> {
    let (from_inference, give_back) = feed.open(graph.input_len(), graph.output_len());
    // Said once the feed is open: every window cut from now on is offered to the new graph.
    tracing::info!(windows, "new graph built: running it in shadow on live windows before it drives the actuators");
    let result = run_trial(graph, &from_inference, &give_back, windows, classify, carry_on);
    feed.close();
    result
}

fn run_trial(
    graph: &mut Graph,
    from_inference: &Receiver<Shadowed>,
    give_back: &Sender<Shadowed>,
    windows: u32,
    classify: bool,
    carry_on: &dyn Fn() -> bool,
) -> Result<Divergence, Failed> {
    let mut seen = Divergence::default();
    while seen.windows < windows {
        if !carry_on() {
            return Err(Failed::Cancelled);
        }
        let s = match from_inference.recv_timeout(Duration::from_millis(100)) {
            Ok(s) => s,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Err(Failed::Cancelled),
        };
        match graph.run(&s.data) {
            Ok(new) if new.iter().all(|v| v.is_finite()) => seen.add(&s.old, new, classify),
            Ok(_) => return Err(Failed::Nonfinite { window: s.window, so_far: seen }),
            Err(e) => return Err(Failed::Error { window: s.window, error: e.to_string(), so_far: seen }),
        }
        let _ = give_back.send(s);
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_compares_like_with_like() {
        let mut d = Divergence::default();
        d.add(&[0.1, 0.9], &[0.2, 0.8], true);
        d.add(&[0.9, 0.1], &[0.4, 0.6], true);
        d.add(&[], &[0.5, 0.5], true); // the running graph had nothing good: counted, not compared
        d.add(&[1.0], &[0.5, 0.5], true); // another shape
        assert_eq!(d.windows, 4);
        assert!((d.max_abs.unwrap() - 0.5).abs() < 1e-6);
        assert_eq!(d.labels, Some((1, 2)));
        assert_eq!(d.to_string(), "4 shadow windows, max |Δ| 0.5000, labels agree on 1/2");
    }

    #[test]
    fn an_idle_feed_takes_nothing_and_a_closed_one_stops_copying() {
        let feed = ShadowFeed::default();
        feed.offer(0, &[1.0], None); // no trial: nothing happens
        let (rx, _give_back) = feed.open(1, 1);
        feed.offer(7, &[2.0], Some(&[3.0]));
        let s = rx.try_recv().unwrap();
        assert_eq!((s.window, s.data.as_slice(), s.old.as_slice()), (7, &[2.0][..], &[3.0][..]));
        feed.close();
        feed.offer(8, &[2.0], None);
        assert!(rx.try_recv().is_err());
    }
}

//! The windower: samples in, overlapping `[C, L]` windows out (docs/records.md).
//!
//! Window `w` covers samples `[w·hop, w·hop + length)` in decode order and is complete when
//! sample `w·hop + length − 1` arrives. Samples are normalised on the way in, so a window is
//! a copy out of a ring buffer, channel by channel, into a buffer of the [`WindowPool`].

use crate::pool::{WindowBuf, WindowPool};
use crate::source::TimedSample;
use reflex_config::WindowConfig;
use std::time::Instant;

/// One window of samples on its way to the graph.
#[derive(Debug)]
pub struct SampleWindow {
    /// `w`: the window's number.
    pub index: u64,
    /// The number of the window's last sample.
    pub last_sample: u64,
    /// The last sample's timestamp in seconds, when the source has one.
    pub t: Option<f64>,
    /// When the last sample arrived: latency is measured from here.
    pub arrival: Instant,
    /// When the window was cut (its samples decoded): the queue wait is measured from here.
    pub cut: Instant,
    /// `[channels, length]`, row-major, normalised.
    pub data: WindowBuf,
}

/// Cuts the sample stream into windows.
pub struct Windower {
    channels: usize,
    length: usize,
    hop: u64,
    offset: Vec<f32>,
    scale: Vec<f32>,
    /// `[channels, length]` ring; column `n % length` holds sample `n`.
    ring: Vec<f32>,
    /// Samples seen so far, i.e. the next sample's number.
    next: u64,
    pool: WindowPool,
}

/// A sample did not have `channels` values.
#[derive(Debug, PartialEq, Eq)]
pub struct WrongWidth;

impl Windower {
    /// The `[window]` section's windower for `channels` channels, taking buffers from `pool`.
    pub fn from_config(w: &WindowConfig, channels: usize, pool: WindowPool) -> Self {
        Windower { pool, ..Windower::new(channels, w.length, w.hop, w.mean.as_deref(), w.std.as_deref()) }
    }

    /// `mean`/`std` default to 0 and 1 per channel (validated by the config). Its buffers come
    /// from a pool of its own, for one window at a time.
    pub fn new(channels: usize, length: usize, hop: usize, mean: Option<&[f32]>, std: Option<&[f32]>) -> Self {
        let offset = mean.map_or_else(|| vec![0.0; channels], <[f32]>::to_vec);
        let scale = std.map_or_else(|| vec![1.0; channels], |s| s.iter().map(|v| 1.0 / v).collect());
        Windower {
            channels,
            length,
            hop: hop.max(1) as u64,
            offset,
            scale,
            ring: vec![0.0; channels * length],
            next: 0,
            pool: WindowPool::new(0, channels * length),
        }
    }

    /// Values per sample.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Samples numbered so far.
    pub fn samples(&self) -> u64 {
        self.next
    }

    /// Adds one decoded sample and returns the window it completes, if any.
    pub fn cut(&mut self, s: &TimedSample) -> Result<Option<SampleWindow>, WrongWidth> {
        self.push(&s.values, s.t, s.arrival)
    }

    /// Adds one sample (exactly `channels` values) and returns the window it completes, if any.
    pub fn push(
        &mut self,
        values: &[f32],
        t: Option<f64>,
        arrival: Instant,
    ) -> Result<Option<SampleWindow>, WrongWidth> {
        if values.len() != self.channels {
            return Err(WrongWidth);
        }
        let n = self.next;
        self.next += 1;
        let col = (n % self.length as u64) as usize;
        for (c, v) in values.iter().enumerate() {
            self.ring[c * self.length + col] = (v - self.offset[c]) * self.scale[c];
        }
        let len = self.length as u64;
        if n + 1 < len || !(n + 1 - len).is_multiple_of(self.hop) {
            return Ok(None);
        }
        let mut buf = self.pool.take();
        // The oldest sample of the window sits right after the newest in the ring.
        let start = (col + 1) % self.length;
        for c in 0..self.channels {
            let row = &self.ring[c * self.length..(c + 1) * self.length];
            buf.extend_from_slice(&row[start..]);
            buf.extend_from_slice(&row[..start]);
        }
        let cut = Instant::now();
        Ok(Some(SampleWindow { index: (n + 1 - len) / self.hop, last_sample: n, t, arrival, cut, data: buf }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(channels: usize, length: usize, hop: usize, samples: usize) -> Vec<SampleWindow> {
        let mut w = Windower::new(channels, length, hop, None, None);
        let now = Instant::now();
        (0..samples)
            .filter_map(|n| {
                let v: Vec<f32> = (0..channels).map(|c| (n * 10 + c) as f32).collect();
                w.push(&v, Some(n as f64), now).unwrap()
            })
            .collect()
    }

    #[test]
    fn windows_follow_the_spec_numbering() {
        let ws = run(2, 4, 2, 9);
        assert_eq!(ws.iter().map(|w| (w.index, w.last_sample)).collect::<Vec<_>>(), [(0, 3), (1, 5), (2, 7)]);
        // Window 1 covers samples 2..6, channel-major.
        assert_eq!(*ws[1].data, [20.0, 30.0, 40.0, 50.0, 21.0, 31.0, 41.0, 51.0]);
        assert_eq!(ws[1].t, Some(5.0));
    }

    #[test]
    fn normalisation_is_applied_per_channel() {
        let mut w = Windower::new(2, 1, 1, Some(&[1.0, -1.0]), Some(&[2.0, 0.5]));
        let win = w.push(&[5.0, 1.0], None, Instant::now()).unwrap().unwrap();
        assert_eq!(*win.data, [2.0, 4.0]);
    }

    #[test]
    fn a_sample_with_the_wrong_width_is_refused() {
        let mut w = Windower::new(2, 1, 1, None, None);
        assert_eq!(w.push(&[1.0], None, Instant::now()).unwrap_err(), WrongWidth);
        assert_eq!(w.samples(), 0);
    }

    proptest! {
        #[test]
        fn every_window_holds_exactly_its_samples(channels in 1usize..4, length in 1usize..9, hop in 1usize..6, samples in 0usize..60) {
            let ws = run(channels, length, hop, samples);
            let expected = if samples < length { 0 } else { (samples - length) / hop + 1 };
            prop_assert_eq!(ws.len(), expected);
            for (i, w) in ws.iter().enumerate() {
                prop_assert_eq!(w.index, i as u64);
                let first = i * hop;
                prop_assert_eq!(w.last_sample as usize, first + length - 1);
                for c in 0..channels {
                    for k in 0..length {
                        prop_assert_eq!(w.data[c * length + k], ((first + k) * 10 + c) as f32);
                    }
                }
            }
        }
    }
}

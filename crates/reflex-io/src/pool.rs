//! Window buffers, made once and used over and over: the window pool.
//!
//! Every window's samples live in a [`WindowBuf`] taken from the pool; dropping the window —
//! after inference, or when the live queue evicts it — puts the buffer back. The pool is sized
//! once, from the queue's capacity, for every window that can exist at one time, so the steady
//! state takes buffers and never makes one.

use crossbeam_channel::{Receiver, Sender};
use std::ops::Deref;

/// Windows alive besides those queued: the one being cut (or waiting to be queued), the one
/// the live queue is evicting for it, and the one being predicted.
pub const IN_FLIGHT: usize = 3;

/// Buffers of `[channels, length]` samples.
#[derive(Clone, Debug)]
pub struct WindowPool {
    give: Sender<Vec<f32>>,
    take: Receiver<Vec<f32>>,
    len: usize,
}

impl WindowPool {
    /// A pool for windows of `len` values queued `queue` at a time: every buffer that can be in
    /// use at once is made now.
    pub fn new(queue: usize, len: usize) -> WindowPool {
        let size = queue + IN_FLIGHT;
        let (give, take) = crossbeam_channel::bounded(size);
        for _ in 0..size {
            let _ = give.try_send(Vec::with_capacity(len));
        }
        WindowPool { give, take, len }
    }

    /// An empty buffer with room for a window; made only if every buffer is in use (a backlog
    /// the pool was not sized for).
    pub fn take(&self) -> WindowBuf {
        let mut data = self.take.try_recv().unwrap_or_else(|_| Vec::with_capacity(self.len));
        data.clear();
        WindowBuf { data, home: self.give.clone() }
    }
}

/// A window's samples, `[channels, length]` row-major; back to its pool when dropped.
#[derive(Debug)]
pub struct WindowBuf {
    data: Vec<f32>,
    home: Sender<Vec<f32>>,
}

impl WindowBuf {
    /// Appends values.
    pub(crate) fn extend_from_slice(&mut self, values: &[f32]) {
        self.data.extend_from_slice(values);
    }
}

impl Deref for WindowBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data
    }
}

impl Drop for WindowBuf {
    fn drop(&mut self) {
        // A full pool (it was outgrown once) lets the buffer go.
        let _ = self.home.try_send(std::mem::take(&mut self.data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_comes_back_with_its_memory() {
        let pool = WindowPool::new(0, 8);
        let mut all: Vec<WindowBuf> = (0..IN_FLIGHT).map(|_| pool.take()).collect();
        all[0].extend_from_slice(&[1.0; 8]);
        let memory = all[0].as_ptr();
        drop(all);
        let again: Vec<WindowBuf> = (0..IN_FLIGHT).map(|_| pool.take()).collect();
        assert!(again.iter().any(|b| b.as_ptr() == memory && b.is_empty()));
    }
}

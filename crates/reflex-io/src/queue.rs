//! A bounded, lock-free queue that drops its OLDEST item when full (crossbeam underneath).
//!
//! The producer holds a receiver too, so that when the queue is full it can take the oldest
//! item out and put the new one in: the producer never blocks, memory never grows, and the
//! consumer always gets the freshest data — what a control loop wants under overload.
//!
//! [`WindowQueue`] is the pipeline's queue between the reader and inference: drop-oldest when
//! live, lossless (the reader waits) when replaying.

use crate::pool::WindowPool;
use crate::window::SampleWindow;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::time::Duration;

/// The producing side of [`drop_oldest`].
pub struct DropOldest<T> {
    tx: Sender<T>,
    evict: Receiver<T>,
}

impl<T> Clone for DropOldest<T> {
    fn clone(&self) -> Self {
        DropOldest { tx: self.tx.clone(), evict: self.evict.clone() }
    }
}

/// The consumer went away; the item is handed back.
#[derive(Debug)]
pub struct Disconnected<T>(pub T);

impl<T> DropOldest<T> {
    /// Queues `item`, first evicting the oldest waiting item if the queue is full. Returns the
    /// evicted item so the caller can count it (and reuse its memory).
    pub fn send(&self, mut item: T) -> Result<Option<T>, Disconnected<T>> {
        let mut evicted = None;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(evicted),
                Err(TrySendError::Full(back)) => {
                    item = back;
                    // The consumer may have emptied the queue in between: then just retry.
                    if let Ok(old) = self.evict.try_recv() {
                        evicted = Some(old);
                    }
                }
                Err(TrySendError::Disconnected(back)) => return Err(Disconnected(back)),
            }
        }
    }
}

impl<T> DropOldest<T> {
    /// Queues `item`, waiting for room instead of evicting: for a consumer that must see
    /// everything (a replay's output).
    pub fn send_all(&self, item: T) -> Result<(), Disconnected<T>> {
        self.tx.send(item).map_err(|e| Disconnected(e.into_inner()))
    }
}

/// A queue of `capacity` items (at least 1).
pub fn drop_oldest<T>(capacity: usize) -> (DropOldest<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    (DropOldest { tx, evict: rx.clone() }, rx)
}

/// How windows reach the inference thread.
pub enum WindowQueue {
    /// Live: when the queue is full the oldest waiting window is dropped; the reader never
    /// waits for inference.
    Live(DropOldest<SampleWindow>),
    /// Replay: lossless, the reader waits for inference instead.
    Lossless(Sender<SampleWindow>),
}

/// The inference side went away: the reader should stop.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

impl WindowQueue {
    /// A queue of `capacity` windows: drop-oldest, or lossless.
    pub fn new(capacity: usize, lossless: bool, pool: &WindowPool) -> (WindowQueue, Receiver<SampleWindow>) {
        if !lossless {
            let (tx, rx) = drop_oldest(capacity);
            return (WindowQueue::Live(tx), rx);
        }
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        warm_full_queue(&tx, &rx, pool);
        (WindowQueue::Lossless(tx), rx)
    }

    /// Queues a window; `Ok(true)` when the oldest waiting one was dropped for it (its buffer
    /// goes back to the pool).
    pub fn send(&self, w: SampleWindow) -> Result<bool, Closed> {
        match self {
            WindowQueue::Live(q) => q.send(w).map(|old| old.is_some()).map_err(|_| Closed),
            WindowQueue::Lossless(tx) => tx.send(w).map(|()| false).map_err(|_| Closed),
        }
    }
}

/// crossbeam allocates the first time a sender waits on a full channel (its list of waiting
/// senders). A lossless reader waits whenever inference falls behind, and the first time may
/// come long after the start: it is done now instead.
fn warm_full_queue(tx: &Sender<SampleWindow>, rx: &Receiver<SampleWindow>, pool: &WindowPool) {
    let now = std::time::Instant::now();
    let empty = || SampleWindow { index: 0, last_sample: 0, t: None, arrival: now, cut: now, data: pool.take() };
    while tx.try_send(empty()).is_ok() {}
    let _ = tx.send_timeout(empty(), Duration::from_millis(1));
    while rx.try_recv().is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_item() {
        let (tx, rx) = drop_oldest(2);
        assert!(tx.send(1).unwrap().is_none());
        assert!(tx.send(2).unwrap().is_none());
        assert_eq!(tx.send(3).unwrap(), Some(1));
        assert_eq!(tx.send(4).unwrap(), Some(2));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn the_consumer_sees_the_end_when_producers_are_gone() {
        let (tx, rx) = drop_oldest(4);
        tx.send(1).unwrap();
        drop(tx);
        assert_eq!(rx.recv().ok(), Some(1));
        assert!(rx.recv().is_err());
    }

    #[test]
    fn concurrent_producer_and_consumer_lose_nothing_but_what_is_evicted() {
        let (tx, rx) = drop_oldest(8);
        let consumer = std::thread::spawn(move || rx.iter().collect::<Vec<u32>>());
        let mut evicted = Vec::new();
        for i in 0..100_000u32 {
            evicted.extend(tx.send(i).unwrap());
        }
        drop(tx);
        let got = consumer.join().unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "order is kept");
        assert_eq!(got.len() + evicted.len(), 100_000, "every item is delivered or evicted");
    }
}

//! Sync hunting and garbage accounting shared by the two framed binary formats.

use bytes::{Buf, BytesMut};

use crate::{Frame, Malformed};

/// A run of skipped bytes counts as one [`Malformed::Garbage`], and once more for every further
/// `GARBAGE_BLOCK` bytes of it: a stray byte is not counted a hundred times, yet a port that never
/// syncs (wrong baud rate, wrong format) keeps the malformed counter climbing. It exceeds the
/// longest binary frame (1029 bytes), so the skipped tail of a rejected frame never counts again.
pub const GARBAGE_BLOCK: usize = 2048;

/// Where the first possible sync starts: the first `first` byte followed by a byte accepted by
/// `second`, or a `first` byte at the very end (it may yet turn out to be a sync). `None` means
/// every byte in `buf` is garbage.
pub(crate) fn find_sync(buf: &[u8], first: u8, second: impl Fn(u8) -> bool) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf.get(from..)?.iter().position(|&b| b == first) {
        let at = from + i;
        match buf.get(at + 1) {
            None => return Some(at),
            Some(&b) if second(b) => return Some(at),
            Some(_) => from = at + 1,
        }
    }
    None
}

/// Bookkeeping for the current run of skipped bytes.
///
/// The decisions depend only on byte positions in the stream, never on where a chunk ended, which
/// keeps the output independent of how the stream is split.
#[derive(Clone, Debug, Default)]
pub(crate) struct Resync {
    /// Bytes skipped since the last accepted or rejected frame.
    run: usize,
    /// The run follows a rejected frame, which has been counted already.
    counted: bool,
}

impl Resync {
    /// Skips up to `n` (> 0) garbage bytes. Returns `Some(Garbage)` when the first of them starts
    /// a new counted stretch; stops at the next block boundary so that a boundary is never jumped
    /// over (the caller just tries again).
    pub(crate) fn skip(&mut self, buf: &mut BytesMut, n: usize) -> Option<Frame> {
        let into_block = self.run % GARBAGE_BLOCK;
        let count = into_block == 0 && (self.run > 0 || !self.counted);
        let step = n.min(GARBAGE_BLOCK - into_block).min(buf.len());
        buf.advance(step);
        self.run += step;
        count.then_some(Frame::Malformed(Malformed::Garbage))
    }

    /// A frame was rejected (and counted): the bytes skipped after it are part of that rejection.
    pub(crate) fn rejected(&mut self) {
        self.run = 0;
        self.counted = true;
    }

    /// A frame was accepted: the next skipped byte starts a new run.
    pub(crate) fn accepted(&mut self) {
        self.run = 0;
        self.counted = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_sync_cases() {
        let is_5a = |b| b == 0x5A;
        assert_eq!(find_sync(&[], 0xA5, is_5a), None);
        assert_eq!(find_sync(&[1, 2, 3], 0xA5, is_5a), None);
        assert_eq!(find_sync(&[1, 0xA5], 0xA5, is_5a), Some(1));
        assert_eq!(find_sync(&[0xA5, 1, 0xA5, 0x5A], 0xA5, is_5a), Some(2));
        assert_eq!(find_sync(&[0xA5, 0xA5, 0x5A], 0xA5, is_5a), Some(1));
        assert_eq!(find_sync(&[0xA5, 1, 2], 0xA5, is_5a), None);
    }

    #[test]
    fn garbage_counts_once_per_block() {
        let mut r = Resync::default();
        let mut buf = BytesMut::from(&vec![0u8; 3 * GARBAGE_BLOCK][..]);
        let mut counted = 0;
        while !buf.is_empty() {
            let n = buf.len();
            counted += usize::from(r.skip(&mut buf, n).is_some());
        }
        assert_eq!(counted, 3);

        // After a rejection the first block is already paid for.
        r.rejected();
        let mut buf = BytesMut::from(&vec![0u8; GARBAGE_BLOCK + 1][..]);
        let mut counted = 0;
        while !buf.is_empty() {
            counted += usize::from(r.skip(&mut buf, 1).is_some());
        }
        assert_eq!(counted, 1);
    }
}

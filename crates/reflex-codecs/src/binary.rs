//! The `binary` format: `A5 5A | n: u8 | counter: u32 LE | n × f32 LE | crc: u16 LE`.

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio_util::codec::Decoder;

use crate::resync::{find_sync, Resync};
use crate::{Frame, Malformed, Sample};

/// The two sync bytes that open every frame.
pub(crate) const SYNC: [u8; 2] = [0xA5, 0x5A];
/// The largest counter step counted as lost samples (minus one): 65 536, a minute at 1 kHz.
/// A larger step is a restart of the counter.
pub const MAX_GAP: u32 = 1 << 16;

/// Sync, `n` and counter.
pub(crate) const HEADER_LEN: usize = 2 + 1 + 4;
/// The CRC trailer.
pub(crate) const CRC_LEN: usize = 2;

/// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout (the catalogue calls it
/// CRC-16/IBM-3740).
pub(crate) const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// The length of a whole frame carrying `n` values.
pub(crate) fn frame_len(n: usize) -> usize {
    HEADER_LEN + 4 * n + CRC_LEN
}

/// Decodes the `binary` format.
///
/// - Bytes before a sync are skipped and counted as [`Malformed::Garbage`] (see there for how runs
///   are counted).
/// - A frame whose `n` is not `channels` is rejected as [`Malformed::WrongLength`] as soon as `n`
///   is seen, and one with a bad CRC as [`Malformed::Checksum`]; either way the search for a sync
///   goes on one byte past the rejected sync, since the real next frame may start inside it.
/// - A frame holding NaN or infinity is consumed as [`Malformed::NotFinite`]; its counter still
///   counts.
/// - Counter: the first frame sets it. When the next counter `c` is ahead of the last one by
///   `d = c - last` (wrapping) with `1 < d <= MAX_GAP` (2^16), [`Frame::Lost`]`(d - 1)` comes
///   before that frame. A counter that repeats, goes backwards or jumps further ahead (`d == 0`
///   or `d > MAX_GAP` — a firmware restart or a corrupted counter, not a billion lost samples)
///   restarts the tracking from `c` with nothing counted as lost. The sample of a rejected frame
///   thus shows up once as malformed and, when the next good frame arrives, once more as lost.
/// - At the end of the stream an incomplete frame is [`Malformed::Truncated`], and the search goes
///   on inside it as after a bad CRC.
#[derive(Clone, Debug)]
pub struct BinaryDecoder {
    channels: usize,
    last_counter: Option<u32>,
    resync: Resync,
    /// A frame held back because a [`Frame::Lost`] had to go first.
    pending: Option<Frame>,
}

impl BinaryDecoder {
    /// A decoder for frames of `channels` values. Frames with any other `n` are rejected, so a
    /// `channels` above 255 rejects everything.
    pub fn new(channels: usize) -> BinaryDecoder {
        BinaryDecoder { channels, last_counter: None, resync: Resync::default(), pending: None }
    }

    /// Rejects the frame at the start of `buf`: count it and look again one byte later.
    fn reject(&mut self, buf: &mut BytesMut, why: Malformed) -> Frame {
        buf.advance(1);
        self.resync.rejected();
        Frame::Malformed(why)
    }

    /// Follows the counter; returns how many samples went missing before `counter`.
    fn track(&mut self, counter: u32) -> u64 {
        let lost = match self.last_counter {
            Some(last) => {
                let d = counter.wrapping_sub(last);
                if d == 0 || d > MAX_GAP {
                    0
                } else {
                    u64::from(d - 1)
                }
            }
            None => 0,
        };
        self.last_counter = Some(counter);
        lost
    }

    /// Decodes what can be decoded; at the end of the stream (`eof`), also rejects an incomplete
    /// frame and skips a lone trailing sync byte.
    fn step(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        if let Some(frame) = self.pending.take() {
            return Some(frame);
        }
        loop {
            match find_sync(buf, SYNC[0], |b| b == SYNC[1]) {
                None if buf.is_empty() => return None,
                None => {
                    let n = buf.len();
                    if let Some(garbage) = self.resync.skip(buf, n) {
                        return Some(garbage);
                    }
                }
                Some(at) if at > 0 => {
                    if let Some(garbage) = self.resync.skip(buf, at) {
                        return Some(garbage);
                    }
                }
                Some(_) => {
                    // A sync (or its first byte) starts the buffer.
                    if buf.len() < 3 {
                        if !eof {
                            return None;
                        }
                        return if buf.len() == 1 {
                            // A lone A5 is just a garbage byte.
                            match self.resync.skip(buf, 1) {
                                Some(garbage) => Some(garbage),
                                None => continue,
                            }
                        } else {
                            Some(self.reject(buf, Malformed::Truncated))
                        };
                    }
                    let n = usize::from(buf[2]);
                    if n != self.channels {
                        return Some(self.reject(buf, Malformed::WrongLength));
                    }
                    let len = frame_len(n);
                    if buf.len() < len {
                        return if eof { Some(self.reject(buf, Malformed::Truncated)) } else { None };
                    }
                    return Some(self.frame(buf, n, len));
                }
            }
        }
    }

    /// Checks and consumes the complete candidate frame of `len` bytes at the start of `buf`.
    fn frame(&mut self, buf: &mut BytesMut, n: usize, len: usize) -> Frame {
        let crc_at = len - CRC_LEN;
        let sent = u16::from_le_bytes([buf[crc_at], buf[crc_at + 1]]);
        if CRC16.checksum(&buf[2..crc_at]) != sent {
            return self.reject(buf, Malformed::Checksum);
        }
        let counter = u32::from_le_bytes([buf[3], buf[4], buf[5], buf[6]]);
        let values: SmallVec<[f32; 16]> =
            buf[HEADER_LEN..crc_at].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        debug_assert_eq!(values.len(), n);
        buf.advance(len);
        self.resync.accepted();

        let frame = if values.iter().all(|v| v.is_finite()) {
            Frame::Sample(Sample { values, time: None })
        } else {
            Frame::Malformed(Malformed::NotFinite)
        };
        match self.track(counter) {
            0 => frame,
            lost => {
                self.pending = Some(frame);
                Frame::Lost(lost)
            }
        }
    }
}

impl Decoder for BinaryDecoder {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        Ok(self.step(buf, false))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        Ok(self.step(buf, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_ccitt_false() {
        assert_eq!(CRC16.checksum(b"123456789"), 0x29B1);
    }

    #[test]
    fn counter_tracking() {
        let mut d = BinaryDecoder::new(1);
        assert_eq!(d.track(10), 0);
        assert_eq!(d.track(11), 0);
        assert_eq!(d.track(15), 3);
        assert_eq!(d.track(15), 0, "a repeat is a restart");
        assert_eq!(d.track(3), 0, "going back is a restart");
        assert_eq!(d.track(4), 0);
        d.last_counter = Some(u32::MAX - 1);
        assert_eq!(d.track(u32::MAX), 0);
        assert_eq!(d.track(0), 0, "wrapping is not a gap");
        assert_eq!(d.track(2), 1);
        d.last_counter = Some(u32::MAX - 2);
        assert_eq!(d.track(1), 3, "a gap across the wrap");
    }

    /// Issue 15: a counter that jumps by 2^30 counted a billion lost samples.
    #[test]
    fn a_counter_jump_beyond_any_plausible_gap_is_a_restart() {
        let mut d = BinaryDecoder::new(1);
        assert_eq!(d.track(10), 0);
        assert_eq!(d.track(10 + (1 << 30)), 0);
        assert_eq!(d.track(11 + (1 << 30)), 0);
        assert_eq!(d.track(11 + (1 << 30) + MAX_GAP), MAX_GAP as u64 - 1, "the largest gap still counts");
        assert_eq!(d.track(12 + (1 << 30) + 2 * MAX_GAP), 0);
    }
}

//! The `witmotion` format: WitMotion's standard 11-byte packets
//! `55 | type | 4 × i16 LE | sum of the 10 preceding bytes mod 256`.

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio_util::codec::Decoder;

use crate::resync::{find_sync, Resync};
use crate::{Frame, Malformed, Sample};

/// A witmotion sample always has `ax ay az wx wy wz`.
pub const WITMOTION_CHANNELS: usize = 6;

/// The byte that opens every packet.
pub(crate) const HEADER: u8 = 0x55;
/// The whole packet.
pub(crate) const PACKET_LEN: usize = 11;
/// Acceleration: ax ay az temperature.
pub(crate) const ACCEL: u8 = 0x51;
/// Angular velocity: wx wy wz temperature (or voltage).
pub(crate) const GYRO: u8 = 0x52;

/// WitMotion's packet types all lie here (0x50 time … 0x5F); a `55` followed by anything else
/// cannot be a packet start, which spares a checksum test (and a 1-in-256 false match) at most
/// stray `55`s.
pub(crate) fn is_packet_type(b: u8) -> bool {
    (0x50..=0x5F).contains(&b)
}

/// The packet checksum: the sum of `bytes` mod 256.
pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// Acceleration in g from a raw reading (±16 g full scale).
pub(crate) fn accel_g(raw: i16) -> f32 {
    f32::from(raw) / 32768.0 * 16.0
}

/// Angular velocity in deg/s from a raw reading (±2000 deg/s full scale).
pub(crate) fn gyro_dps(raw: i16) -> f32 {
    f32::from(raw) / 32768.0 * 2000.0
}

/// Decodes WitMotion's standard protocol (WT901/JY901/HWT905 family) into 6-channel samples
/// `ax ay az` (g) `wx wy wz` (deg/s).
///
/// - A sample is emitted when a good `0x52` packet completes a pending `0x51`. A later `0x51`
///   replaces a pending one; a `0x52` with none pending is ignored. Good packets of other types
///   (time, angle, magnetometer, …) are ignored and leave a pending `0x51` alone, but a rejected
///   packet or skipped garbage drops it, so that the halves of two different samples are never
///   paired.
/// - A bad checksum is [`Malformed::Checksum`]; the search goes on one byte past its `55`.
/// - A `55` counts as a packet start only when followed by a type in `0x50..=0x5F`; bytes before
///   one are [`Malformed::Garbage`], counted as for the binary format.
/// - At the end of the stream an incomplete packet is [`Malformed::Truncated`].
#[derive(Clone, Debug, Default)]
pub struct WitmotionDecoder {
    /// Raw ax ay az of the last `0x51` not yet paired.
    accel: Option<[i16; 3]>,
    resync: Resync,
}

impl WitmotionDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> WitmotionDecoder {
        WitmotionDecoder::default()
    }

    /// Rejects the packet at the start of `buf`: count it and look again one byte later.
    fn reject(&mut self, buf: &mut BytesMut, why: Malformed) -> Frame {
        buf.advance(1);
        self.resync.rejected();
        self.accel = None;
        Frame::Malformed(why)
    }

    /// Skips garbage, which also breaks any pending pair.
    fn skip(&mut self, buf: &mut BytesMut, n: usize) -> Option<Frame> {
        self.accel = None;
        self.resync.skip(buf, n)
    }

    /// Decodes what can be decoded; at the end of the stream (`eof`), also rejects an incomplete
    /// packet and skips a lone trailing `55`.
    fn step(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        loop {
            match find_sync(buf, HEADER, is_packet_type) {
                None if buf.is_empty() => return None,
                None => {
                    let n = buf.len();
                    if let Some(garbage) = self.skip(buf, n) {
                        return Some(garbage);
                    }
                }
                Some(at) if at > 0 => {
                    if let Some(garbage) = self.skip(buf, at) {
                        return Some(garbage);
                    }
                }
                Some(_) if buf.len() < PACKET_LEN => {
                    if !eof {
                        return None;
                    }
                    if buf.len() == 1 {
                        if let Some(garbage) = self.skip(buf, 1) {
                            return Some(garbage);
                        }
                    } else {
                        return Some(self.reject(buf, Malformed::Truncated));
                    }
                }
                Some(_) => {
                    let packet = &buf[..PACKET_LEN];
                    if checksum(&packet[..PACKET_LEN - 1]) != packet[PACKET_LEN - 1] {
                        return Some(self.reject(buf, Malformed::Checksum));
                    }
                    let kind = packet[1];
                    let word = |i: usize| i16::from_le_bytes([packet[2 + 2 * i], packet[3 + 2 * i]]);
                    let data = [word(0), word(1), word(2)];
                    buf.advance(PACKET_LEN);
                    self.resync.accepted();
                    match kind {
                        ACCEL => self.accel = Some(data),
                        GYRO => {
                            if let Some(acc) = self.accel.take() {
                                let values: SmallVec<[f32; 16]> =
                                    acc.iter().map(|&r| accel_g(r)).chain(data.iter().map(|&r| gyro_dps(r))).collect();
                                return Some(Frame::Sample(Sample { values, time: None }));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

impl Decoder for WitmotionDecoder {
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
    fn scales() {
        assert_eq!(accel_g(32767), 32767.0 / 2048.0);
        assert_eq!(accel_g(-32768), -16.0);
        assert_eq!(gyro_dps(-32768), -2000.0);
        assert_eq!(gyro_dps(16384), 1000.0);
    }

    #[test]
    fn checksum_wraps() {
        assert_eq!(checksum(&[0x55, 0x51, 0xFF, 0xFF]), 0xA4);
    }
}

//! Encoders for the three formats, for tests, the firmware example and benchmarks.
//!
//! Each produces exactly what the matching decoder reads back: binary values bit for bit, csv
//! values exactly (shortest round-trip formatting), witmotion values as quantised by the sensor.

use std::fmt::Write as _;

use crate::binary::{frame_len, CRC16, SYNC};
use crate::witmotion::{accel_g, checksum, gyro_dps as gyro_from_raw, ACCEL, GYRO, HEADER, PACKET_LEN};

/// A binary frame: A5 5A | n: u8 | counter: u32 LE | n × f32 LE | crc16 LE over n..last data byte.
///
/// # Panics
/// If `values` has more than 255 entries, which `n` cannot express.
pub fn binary(counter: u32, values: &[f32]) -> Vec<u8> {
    let n = u8::try_from(values.len()).expect("a binary frame holds at most 255 values");
    let mut out = Vec::with_capacity(frame_len(values.len()));
    out.extend_from_slice(&SYNC);
    out.push(n);
    out.extend_from_slice(&counter.to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let crc = CRC16.checksum(&out[SYNC.len()..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// One WitMotion packet: 55 | kind | 4 × i16 LE | checksum.
pub fn witmotion(kind: u8, data: [i16; 4]) -> [u8; 11] {
    let mut out = [0u8; PACKET_LEN];
    out[0] = HEADER;
    out[1] = kind;
    for (i, word) in data.iter().enumerate() {
        out[2 + 2 * i..4 + 2 * i].copy_from_slice(&word.to_le_bytes());
    }
    out[PACKET_LEN - 1] = checksum(&out[..PACKET_LEN - 1]);
    out
}

/// The raw temperature word the encoder puts in both packets: 25.00 °C in the sensor's 0.01 °C.
const TEMPERATURE_RAW: i16 = 2500;

/// Quantises `x` to the sensor's i16 at `full_scale`, rounding to nearest and saturating (NaN
/// becomes 0, as a float-to-int `as` cast does).
fn quantise(x: f32, full_scale: f32) -> i16 {
    (x / full_scale * 32768.0).round() as i16
}

/// The 0x51 + 0x52 pair for one sample in physical units (g and deg/s), quantised as the sensor
/// does (±16 g, ±2000 deg/s, saturating at the ends); returns also the values the decoder will
/// yield (after quantisation) so tests can compare exactly.
pub fn witmotion_sample(acc_g: [f32; 3], gyro_dps: [f32; 3]) -> ([u8; 22], [f32; 6]) {
    let acc = acc_g.map(|x| quantise(x, 16.0));
    let gyro = gyro_dps.map(|x| quantise(x, 2000.0));
    let mut out = [0u8; 2 * PACKET_LEN];
    out[..PACKET_LEN].copy_from_slice(&witmotion(ACCEL, [acc[0], acc[1], acc[2], TEMPERATURE_RAW]));
    out[PACKET_LEN..].copy_from_slice(&witmotion(GYRO, [gyro[0], gyro[1], gyro[2], TEMPERATURE_RAW]));
    let values = [
        accel_g(acc[0]),
        accel_g(acc[1]),
        accel_g(acc[2]),
        gyro_from_raw(gyro[0]),
        gyro_from_raw(gyro[1]),
        gyro_from_raw(gyro[2]),
    ];
    (out, values)
}

/// A csv line ("v1,v2,...\n", with an optional leading time) using Rust's shortest round-trip
/// float formatting, so the decoder reads back exactly the same values.
pub fn csv(time: Option<f64>, values: &[f32]) -> String {
    let mut out = String::with_capacity(12 * (values.len() + 1));
    // Writing to a String cannot fail.
    if let Some(t) = time {
        let _ = write!(out, "{t}");
        if !values.is_empty() {
            out.push(',');
        }
    }
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v}");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_layout() {
        let frame = binary(0x0403_0201, &[1.0]);
        assert_eq!(&frame[..7], &[0xA5, 0x5A, 1, 1, 2, 3, 4]);
        assert_eq!(&frame[7..11], &1.0f32.to_le_bytes());
        assert_eq!(frame.len(), 13);
    }

    #[test]
    fn witmotion_layout() {
        let p = witmotion(0x51, [1, -1, 0x0100, 0]);
        assert_eq!(&p[..10], &[0x55, 0x51, 1, 0, 0xFF, 0xFF, 0, 1, 0, 0]);
        // 0x55 + 0x51 + 1 + 0xFF + 0xFF + 1 = 678 = 0x2A6
        assert_eq!(p[10], 0xA6);
    }

    #[test]
    fn quantise_saturates() {
        assert_eq!(quantise(100.0, 16.0), i16::MAX);
        assert_eq!(quantise(-100.0, 16.0), i16::MIN);
        assert_eq!(quantise(f32::NAN, 16.0), 0);
        assert_eq!(quantise(1.0, 16.0), 2048);
    }

    #[test]
    fn csv_shape() {
        assert_eq!(csv(None, &[1.0, -0.5]), "1,-0.5\n");
        assert_eq!(csv(Some(0.01), &[2.0]), "0.01,2\n");
    }
}

//! The WitMotion decoder on hand-made streams.

mod common;

use bytes::BytesMut;
use common::{decode_all, decode_chunked, m, s};
use reflex_codecs::encode::{witmotion, witmotion_sample};
use reflex_codecs::{Frame, Malformed, WitmotionDecoder, WITMOTION_CHANNELS};
use tokio_util::codec::Decoder;

fn decode(bytes: &[u8]) -> Vec<Frame> {
    let frames = decode_all(&mut WitmotionDecoder::new(), bytes);
    assert_eq!(decode_chunked(&mut WitmotionDecoder::new(), bytes, &[1]), frames, "byte by byte");
    frames
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A pair from raw readings.
fn pair(acc: [i16; 3], gyro: [i16; 3]) -> Vec<u8> {
    cat(&[&witmotion(0x51, [acc[0], acc[1], acc[2], 2500]), &witmotion(0x52, [gyro[0], gyro[1], gyro[2], 2500])])
}

#[test]
fn one_sample_in_physical_units() {
    let frames = decode(&pair([2048, -4096, 32767], [16384, -32768, 0]));
    assert_eq!(frames, vec![s(&[1.0, -2.0, 32767.0 / 2048.0, 1000.0, -2000.0, 0.0])]);
    match &frames[0] {
        Frame::Sample(sample) => assert_eq!(sample.values.len(), WITMOTION_CHANNELS),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_documented_packet() {
    // 0x51 with ax = 0x0800 (1 g), the rest 0, temperature 0x0A28 (26.00 °C).
    let packet = [0x55, 0x51, 0x00, 0x08, 0, 0, 0, 0, 0x28, 0x0A, 0x00];
    let mut packet = packet;
    packet[10] = packet[..10].iter().fold(0u8, |a, &b| a.wrapping_add(b));
    assert_eq!(packet, witmotion(0x51, [0x0800, 0, 0, 0x0A28]));
}

#[test]
fn encoder_quantises_like_the_sensor() {
    let (bytes, values) = witmotion_sample([1.0, -0.5, 20.0], [250.0, -90.0, 0.01]);
    assert_eq!(values[0], 1.0);
    assert_eq!(values[1], -0.5);
    assert_eq!(values[2], 32767.0 / 2048.0, "saturated at full scale");
    assert!((values[3] - 250.0).abs() < 2000.0 / 32768.0);
    assert_eq!(decode(&bytes), vec![s(&values)]);
}

#[test]
fn other_packet_types_are_ignored() {
    let bytes = cat(&[
        &witmotion(0x50, [1, 2, 3, 4]),
        &witmotion(0x51, [2048, 0, 0, 0]),
        &witmotion(0x53, [5, 6, 7, 8]),
        &witmotion(0x52, [0, 0, 16384, 0]),
        &witmotion(0x54, [9, 9, 9, 9]),
        &witmotion(0x59, [9, 9, 9, 9]),
    ]);
    assert_eq!(decode(&bytes), vec![s(&[1.0, 0.0, 0.0, 0.0, 0.0, 1000.0])]);
}

#[test]
fn pairing_rules() {
    let bytes = cat(&[
        // a 0x52 with nothing pending: ignored
        &witmotion(0x52, [1, 1, 1, 0]),
        // a second 0x51 replaces the first
        &witmotion(0x51, [2048, 2048, 2048, 0]),
        &witmotion(0x51, [4096, 0, 0, 0]),
        &witmotion(0x52, [0, 0, 0, 0]),
        // the pending 0x51 is used up
        &witmotion(0x52, [0, 0, 0, 0]),
    ]);
    assert_eq!(decode(&bytes), vec![s(&[2.0, 0.0, 0.0, 0.0, 0.0, 0.0])]);
}

#[test]
fn bad_checksum_resyncs() {
    let mut bad = pair([1, 2, 3], [4, 5, 6]);
    bad[5] ^= 0x10;
    let bytes = cat(&[&bad, &pair([2048, 0, 0], [0, 0, 0])]);
    // The corrupt 0x51 is rejected, so its 0x52 finds nothing to complete.
    assert_eq!(decode(&bytes), vec![m(Malformed::Checksum), s(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0])]);

    let mut bad_gyro = pair([1, 2, 3], [4, 5, 6]);
    bad_gyro[21] ^= 0x01;
    let bytes = cat(&[&bad_gyro, &pair([2048, 0, 0], [0, 0, 0])]);
    assert_eq!(decode(&bytes), vec![m(Malformed::Checksum), s(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0])]);
}

#[test]
fn garbage_holding_headers() {
    let garbage = [0x00, 0x55, 0x00, 0x55, 0x51, 0x01, 0x55, 0x55, 0x61, 0x55];
    let bytes = cat(&[&garbage, &pair([2048, 0, 0], [0, 0, 0])]);
    // `55 00` and `55 61` cannot start packets; `55 51`, and `55 55` twice (0x55 is the port
    // status type), can and fail their checksums.
    assert_eq!(
        decode(&bytes),
        vec![
            m(Malformed::Garbage),
            m(Malformed::Checksum),
            m(Malformed::Checksum),
            m(Malformed::Checksum),
            s(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        ]
    );
}

#[test]
fn garbage_inside_a_pair_breaks_it() {
    let p = pair([2048, 0, 0], [0, 0, 0]);
    let bytes = cat(&[&p[..11], b"xx", &p[11..], &pair([4096, 0, 0], [0, 0, 0])]);
    assert_eq!(decode(&bytes), vec![m(Malformed::Garbage), s(&[2.0, 0.0, 0.0, 0.0, 0.0, 0.0])]);
}

#[test]
fn truncated_packets() {
    let p = pair([2048, 0, 0], [0, 0, 0]);
    // Cut short, then a good pair.
    let bytes = cat(&[&p[..5], &p]);
    assert_eq!(decode(&bytes), vec![m(Malformed::Checksum), s(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0])]);
    // Cut short by the end of the stream.
    for keep in 2..11 {
        let bytes = cat(&[&p, &p[..keep]]);
        assert_eq!(decode(&bytes), vec![s(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), m(Malformed::Truncated)], "keeping {keep}");
    }
    assert_eq!(decode(&cat(&[&p, &[0x55]])), vec![s(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), m(Malformed::Garbage)]);
}

#[test]
fn empty_input() {
    let mut d = WitmotionDecoder::new();
    let mut buf = BytesMut::new();
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert_eq!(d.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn a_stream_of_samples() {
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..200 {
        let x = i as f32 / 10.0;
        let (pair, values) = witmotion_sample([x.sin(), x.cos(), 1.0], [x * 3.0, -x, 0.5]);
        bytes.extend_from_slice(&witmotion(0x50, [0, 0, 0, 0]));
        bytes.extend_from_slice(&pair);
        bytes.extend_from_slice(&witmotion(0x53, [1, 2, 3, 4]));
        expected.push(s(&values));
    }
    assert_eq!(decode(&bytes), expected);
}

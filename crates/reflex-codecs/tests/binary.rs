//! The binary decoder on hand-made streams.

mod common;

use bytes::BytesMut;
use common::{decode_all, decode_chunked, m, s};
use reflex_codecs::encode::binary;
use reflex_codecs::{BinaryDecoder, Frame, Malformed, GARBAGE_BLOCK};
use tokio_util::codec::Decoder;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn decode(channels: usize, bytes: &[u8]) -> Vec<Frame> {
    let frames = decode_all(&mut BinaryDecoder::new(channels), bytes);
    // Byte by byte must agree.
    assert_eq!(decode_chunked(&mut BinaryDecoder::new(channels), bytes, &[1]), frames);
    frames
}

#[test]
fn good_stream() {
    let bytes = cat(&[&binary(0, &[1.0, 2.0]), &binary(1, &[-3.5, 1e-30]), &binary(2, &[0.0, -0.0])]);
    assert_eq!(decode(2, &bytes), vec![s(&[1.0, 2.0]), s(&[-3.5, 1e-30]), s(&[0.0, -0.0])]);
}

#[test]
fn empty_input() {
    let mut d = BinaryDecoder::new(3);
    let mut buf = BytesMut::new();
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert_eq!(d.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(d.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn bad_crc_is_rejected_and_its_sample_lost() {
    let mut bad = binary(1, &[5.0, 6.0]);
    bad[9] ^= 0x01;
    let bytes = cat(&[&binary(0, &[1.0, 2.0]), &bad, &binary(2, &[3.0, 4.0])]);
    assert_eq!(decode(2, &bytes), vec![s(&[1.0, 2.0]), m(Malformed::Checksum), Frame::Lost(1), s(&[3.0, 4.0])]);
}

#[test]
fn bad_crc_field_itself() {
    let mut bad = binary(0, &[5.0]);
    let last = bad.len() - 1;
    bad[last] ^= 0x80;
    let bytes = cat(&[&bad, &binary(1, &[7.0])]);
    assert_eq!(decode(1, &bytes), vec![m(Malformed::Checksum), s(&[7.0])]);
}

#[test]
fn wrong_n_is_rejected_at_once() {
    let mut d = BinaryDecoder::new(2);
    let mut buf = BytesMut::from(&[0xA5, 0x5A, 9][..]);
    assert_eq!(d.decode(&mut buf).unwrap(), Some(m(Malformed::WrongLength)), "no need to wait for 9 values");

    let bytes = cat(&[&binary(0, &[1.0, 2.0, 3.0]), &binary(1, &[4.0, 5.0])]);
    assert_eq!(decode(2, &bytes), vec![m(Malformed::WrongLength), s(&[4.0, 5.0])]);
}

#[test]
fn truncated_frame_followed_by_good_one() {
    let cut = binary(1, &[9.0, 9.0]);
    let bytes = cat(&[&binary(0, &[1.0, 2.0]), &cut[..10], &binary(2, &[3.0, 4.0])]);
    assert_eq!(decode(2, &bytes), vec![s(&[1.0, 2.0]), m(Malformed::Checksum), Frame::Lost(1), s(&[3.0, 4.0])]);
}

#[test]
fn truncated_at_end_of_stream() {
    let cut = binary(1, &[9.0, 9.0]);
    for keep in 2..cut.len() {
        let bytes = cat(&[&binary(0, &[1.0, 2.0]), &cut[..keep]]);
        assert_eq!(decode(2, &bytes), vec![s(&[1.0, 2.0]), m(Malformed::Truncated)], "keeping {keep} bytes");
    }
    // A lone trailing A5 is a garbage byte.
    let bytes = cat(&[&binary(0, &[1.0, 2.0]), &cut[..1]]);
    assert_eq!(decode(2, &bytes), vec![s(&[1.0, 2.0]), m(Malformed::Garbage)]);
}

#[test]
fn garbage_holding_sync_bytes() {
    let garbage = [0x00, 0xA5, 0x5A, 0x07, 0x11, 0xA5, 0xA5, 0x5A, 0x02, 0x01, 0x5A, 0xA5];
    let bytes = cat(&[&garbage, &binary(4, &[1.0, 2.0]), &binary(5, &[3.0, 4.0])]);
    assert_eq!(
        decode(2, &bytes),
        vec![m(Malformed::Garbage), m(Malformed::WrongLength), m(Malformed::Checksum), s(&[1.0, 2.0]), s(&[3.0, 4.0])]
    );
}

#[test]
fn a_stray_byte_counts_once() {
    let bytes = cat(&[
        &binary(0, &[1.0]),
        &[0x42],
        &binary(1, &[2.0]),
        b"some longer noise between frames",
        &binary(2, &[3.0]),
    ]);
    assert_eq!(decode(1, &bytes), vec![s(&[1.0]), m(Malformed::Garbage), s(&[2.0]), m(Malformed::Garbage), s(&[3.0])]);
}

#[test]
fn pure_noise_keeps_counting_and_the_buffer_small() {
    let noise: Vec<u8> =
        (0..10 * GARBAGE_BLOCK as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 & 0x7F).collect();
    let frames = decode(4, &noise);
    assert_eq!(frames, vec![m(Malformed::Garbage); 10]);

    let mut d = BinaryDecoder::new(4);
    let mut buf = BytesMut::new();
    for chunk in noise.chunks(100) {
        buf.extend_from_slice(chunk);
        while d.decode(&mut buf).unwrap().is_some() {}
        assert!(buf.len() <= 1, "the decoder holds {} bytes", buf.len());
    }
}

#[test]
fn not_finite_is_rejected_but_counts_for_the_counter() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let bytes =
            cat(&[&binary(0, &[1.0, 2.0]), &binary(1, &[bad, 2.0]), &binary(2, &[3.0, 4.0]), &binary(9, &[5.0, bad])]);
        assert_eq!(
            decode(2, &bytes),
            vec![s(&[1.0, 2.0]), m(Malformed::NotFinite), s(&[3.0, 4.0]), Frame::Lost(6), m(Malformed::NotFinite)]
        );
    }
}

#[test]
fn counter_gaps_wraps_and_restarts() {
    let bytes = cat(&[
        &binary(100, &[1.0]),
        &binary(101, &[2.0]),
        &binary(105, &[3.0]),
        // firmware restart: no loss
        &binary(0, &[4.0]),
        &binary(1, &[5.0]),
        // repeat: no loss either
        &binary(1, &[6.0]),
        // a jump of more than 2^16 reads as a restart: a restart, no loss
        &binary(u32::MAX - 1, &[7.0]),
        &binary(u32::MAX, &[8.0]),
        &binary(0, &[9.0]),
        &binary(3, &[10.0]),
    ]);
    assert_eq!(
        decode(1, &bytes),
        vec![
            s(&[1.0]),
            s(&[2.0]),
            Frame::Lost(3),
            s(&[3.0]),
            s(&[4.0]),
            s(&[5.0]),
            s(&[6.0]),
            s(&[7.0]),
            s(&[8.0]),
            s(&[9.0]),
            Frame::Lost(2),
            s(&[10.0]),
        ]
    );
}

#[test]
fn first_counter_may_be_anything() {
    assert_eq!(decode(1, &binary(123_456, &[1.0])), vec![s(&[1.0])], "no loss before the first frame");
}

#[test]
fn real_frame_starting_inside_a_rejected_one() {
    // A false sync whose claimed frame swallows the start of a real one.
    let bytes = cat(&[&[0xA5, 0x5A, 0x01, 0, 0], &binary(7, &[2.5])]);
    assert_eq!(decode(1, &bytes), vec![m(Malformed::Checksum), s(&[2.5])]);
}

#[test]
fn zero_and_many_channels() {
    assert_eq!(decode(0, &binary(0, &[])), vec![s(&[])]);
    let many: Vec<f32> = (0..255).map(|i| i as f32).collect();
    assert_eq!(decode(255, &binary(0, &many)), vec![s(&many)]);
    // More channels than a frame can hold: everything is the wrong length.
    assert_eq!(decode(300, &binary(0, &many)), vec![m(Malformed::WrongLength)]);
}

#[test]
fn continues_after_end_of_stream() {
    // A serial port may report EOF and then deliver more; the decoder carries on.
    let mut d = BinaryDecoder::new(1);
    let mut buf = BytesMut::from(&binary(0, &[1.0])[..]);
    assert_eq!(d.decode_eof(&mut buf).unwrap(), Some(s(&[1.0])));
    assert_eq!(d.decode_eof(&mut buf).unwrap(), None);
    buf.extend_from_slice(&binary(2, &[2.0]));
    assert_eq!(d.decode(&mut buf).unwrap(), Some(Frame::Lost(1)));
    assert_eq!(d.decode(&mut buf).unwrap(), Some(s(&[2.0])));
    assert_eq!(d.decode(&mut buf).unwrap(), None);
}

//! The csv decoder on hand-made streams.

mod common;

use bytes::BytesMut;
use common::{decode_all, decode_chunked, m, s, ts};
use reflex_codecs::{CsvDecoder, Frame, Malformed, MAX_LINE_LEN};
use tokio_util::codec::Decoder;

fn decode(channels: usize, time: bool, text: &[u8]) -> Vec<Frame> {
    let frames = decode_all(&mut CsvDecoder::new(channels, time), text);
    assert_eq!(decode_chunked(&mut CsvDecoder::new(channels, time), text, &[1]), frames, "byte by byte");
    assert_eq!(decode_chunked(&mut CsvDecoder::new(channels, time), text, &[3, 7, 1, 50]), frames, "uneven chunks");
    frames
}

#[test]
fn good_lines() {
    assert_eq!(decode(3, false, b"1,2,3\n-0.5,1e-3,+4\n"), vec![s(&[1.0, 2.0, 3.0]), s(&[-0.5, 1e-3, 4.0])]);
    assert_eq!(decode(2, true, b"0.01,1,2\n0.02,3,4\n"), vec![ts(0.01, &[1.0, 2.0]), ts(0.02, &[3.0, 4.0])]);
}

#[test]
fn crlf_and_whitespace() {
    assert_eq!(decode(2, true, b" 1.5 ,\t2 , 3\r\n2.5,4,5\r\n"), vec![ts(1.5, &[2.0, 3.0]), ts(2.5, &[4.0, 5.0])]);
}

#[test]
fn last_line_without_newline_is_flushed() {
    assert_eq!(decode(2, false, b"1,2\n3,4"), vec![s(&[1.0, 2.0]), s(&[3.0, 4.0])]);
    assert_eq!(decode(2, false, b"1,2\n# the end"), vec![s(&[1.0, 2.0])]);
    assert_eq!(decode(2, false, b"1,2\n3"), vec![s(&[1.0, 2.0]), m(Malformed::FieldCount)]);
}

#[test]
fn empty_input() {
    let mut d = CsvDecoder::new(1, false);
    let mut buf = BytesMut::new();
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert_eq!(d.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(d.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(decode(1, false, b""), vec![]);
    assert_eq!(decode(1, false, b"\n\r\n  \n"), vec![]);
}

#[test]
fn header_comments_and_blank_lines() {
    let text = b"# recorded 2024-05-01\n\n  # indented comment\ntime,ax,ay\n0,1,2\n\n# mid comment\n1,3,4\n";
    assert_eq!(decode(2, true, text), vec![ts(0.0, &[1.0, 2.0]), ts(1.0, &[3.0, 4.0])]);
}

#[test]
fn only_the_first_line_can_be_a_header() {
    assert_eq!(decode(2, false, b"ax,ay\nax,ay\n1,2\n"), vec![m(Malformed::NotANumber), s(&[1.0, 2.0])]);
    // A first line of numbers is data, so a later word line is malformed.
    assert_eq!(decode(2, false, b"1,2\nax,ay\n"), vec![s(&[1.0, 2.0]), m(Malformed::NotANumber)]);
    // A first line of numbers in the wrong count is counted, and uses up the header chance.
    assert_eq!(decode(2, false, b"1,2,3\nax,ay\n"), vec![m(Malformed::FieldCount), m(Malformed::NotANumber)]);
    // A header with a different number of columns is still a header.
    assert_eq!(decode(2, false, b"a,b,c,d\n1,2\n"), vec![s(&[1.0, 2.0])]);
}

#[test]
fn wrong_field_counts() {
    assert_eq!(
        decode(3, false, b"1,2,3\n1,2\n1,2,3,4\n5,6,7\n1,2,3,\n"),
        vec![
            s(&[1.0, 2.0, 3.0]),
            m(Malformed::FieldCount),
            m(Malformed::FieldCount),
            s(&[5.0, 6.0, 7.0]),
            m(Malformed::NotANumber),
        ]
    );
    assert_eq!(decode(2, true, b"0,1,2\n1,2\n"), vec![ts(0.0, &[1.0, 2.0]), m(Malformed::FieldCount)]);
}

#[test]
fn not_numbers() {
    assert_eq!(
        decode(2, false, b"1,2\n1,x\n0x10,2\n1;2\n\xff\xfe,1\n3,4\n"),
        vec![
            s(&[1.0, 2.0]),
            m(Malformed::NotANumber),
            m(Malformed::NotANumber),
            m(Malformed::NotANumber),
            m(Malformed::NotANumber),
            s(&[3.0, 4.0]),
        ]
    );
}

#[test]
fn not_finite() {
    assert_eq!(
        decode(2, true, b"0,1,2\n1,NaN,2\n2,1,inf\n-infinity,1,2\n3,1e39,0\n4,3,4\n1e309,1,2\n"),
        vec![
            ts(0.0, &[1.0, 2.0]),
            m(Malformed::NotFinite),
            m(Malformed::NotFinite),
            m(Malformed::NotFinite),
            m(Malformed::NotFinite),
            ts(4.0, &[3.0, 4.0]),
            m(Malformed::NotFinite),
        ]
    );
}

#[test]
fn overlong_line_is_dropped_once() {
    let mut text = b"1,2\n".to_vec();
    text.extend(std::iter::repeat_n(b'9', 3 * MAX_LINE_LEN));
    text.extend_from_slice(b",1\n3,4\n");
    assert_eq!(decode(2, false, &text), vec![s(&[1.0, 2.0]), m(Malformed::TooLong), s(&[3.0, 4.0])]);
}

#[test]
fn line_length_limit_is_exact() {
    // Exactly MAX_LINE_LEN bytes before the newline: accepted.
    let mut ok = b"1".to_vec();
    ok.resize(MAX_LINE_LEN, b' ');
    ok.push(b'\n');
    assert_eq!(decode(1, false, &ok), vec![s(&[1.0])]);
    // One more: rejected.
    let mut long = b"1".to_vec();
    long.resize(MAX_LINE_LEN + 1, b' ');
    long.extend_from_slice(b"\n2\n");
    assert_eq!(decode(1, false, &long), vec![m(Malformed::TooLong), s(&[2.0])]);
    // Overlong without any newline, up to the end of the stream.
    let endless = vec![b'7'; 2 * MAX_LINE_LEN];
    assert_eq!(decode(1, false, &endless), vec![m(Malformed::TooLong)]);
}

#[test]
fn buffer_stays_bounded_without_newlines() {
    let mut d = CsvDecoder::new(1, false);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for _ in 0..1000 {
        buf.extend_from_slice(&[b'5'; 1000]);
        while let Some(f) = d.decode(&mut buf).unwrap() {
            frames.push(f);
        }
        assert!(buf.len() <= MAX_LINE_LEN, "holding {} bytes", buf.len());
    }
    assert_eq!(frames, vec![m(Malformed::TooLong)]);
    buf.extend_from_slice(b"\n8\n");
    assert_eq!(d.decode(&mut buf).unwrap(), Some(s(&[8.0])));
}

#[test]
fn overlong_first_line_uses_up_the_header_chance() {
    let mut text = vec![b'x'; MAX_LINE_LEN + 10];
    text.extend_from_slice(b"\nax\n1\n");
    assert_eq!(decode(1, false, &text), vec![m(Malformed::TooLong), m(Malformed::NotANumber), s(&[1.0])]);
}

#[test]
fn bare_carriage_return_is_not_a_line_end() {
    assert_eq!(decode(1, false, b"0\n1\r2\n"), vec![s(&[0.0]), m(Malformed::NotANumber)]);
}

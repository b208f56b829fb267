//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bytes::BytesMut;
use reflex_codecs::{Frame, Malformed, Sample};
use tokio_util::codec::Decoder;

/// Feeds `bytes` in chunks of the given sizes (cycled; a 0 counts as 1), draining the decoder
/// after each chunk, then drains `decode_eof`. Panics if the decoder yields more frames than the
/// input could justify (a sign of a loop) or leaves bytes behind at the end.
pub fn decode_chunked<D>(decoder: &mut D, bytes: &[u8], sizes: &[usize]) -> Vec<Frame>
where
    D: Decoder<Item = Frame, Error = std::io::Error>,
{
    let bound = 2 * bytes.len() + 16;
    let mut frames = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(usize::MAX);
        let (chunk, tail) = rest.split_at(size.max(1).min(rest.len()));
        rest = tail;
        i += 1;
        buf.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf).expect("decode never errors") {
            frames.push(frame);
            assert!(frames.len() <= bound, "decode keeps yielding frames");
        }
    }
    while let Some(frame) = decoder.decode_eof(&mut buf).expect("decode_eof never errors") {
        frames.push(frame);
        assert!(frames.len() <= bound, "decode_eof keeps yielding frames");
    }
    assert!(buf.is_empty(), "decode_eof left {} bytes", buf.len());
    assert_eq!(decoder.decode_eof(&mut buf).unwrap(), None);
    frames
}

/// Decodes `bytes` given all at once.
pub fn decode_all<D>(decoder: &mut D, bytes: &[u8]) -> Vec<Frame>
where
    D: Decoder<Item = Frame, Error = std::io::Error>,
{
    decode_chunked(decoder, bytes, &[])
}

/// A sample without time.
pub fn s(values: &[f32]) -> Frame {
    Frame::Sample(Sample { values: values.into(), time: None })
}

/// A sample with a time.
pub fn ts(time: f64, values: &[f32]) -> Frame {
    Frame::Sample(Sample { values: values.into(), time: Some(time) })
}

/// A rejected frame.
pub fn m(why: Malformed) -> Frame {
    Frame::Malformed(why)
}

/// Only the samples' values.
pub fn samples(frames: &[Frame]) -> Vec<Vec<f32>> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Sample(s) => Some(s.values.to_vec()),
            _ => None,
        })
        .collect()
}

/// How many frames were rejected.
pub fn malformed(frames: &[Frame]) -> usize {
    frames.iter().filter(|f| matches!(f, Frame::Malformed(_))).count()
}

//! The decoders: `binary`, `csv` and `witmotion`. The first byte of the input picks the chunk
//! size the stream is fed in; the rest is the stream.

use bytes::BytesMut;
use reflex_codecs::{BinaryDecoder, CsvDecoder, Frame, WitmotionDecoder};
use tokio_util::codec::Decoder;

/// The binary decoder, for 2 channels and for any `n` (0 = as the frame says).
pub fn binary(data: &[u8]) {
    check(|| BinaryDecoder::new(2), data);
    check(|| BinaryDecoder::new(0), data);
}

/// The csv decoder, with a time column and 3 channels, and without one.
pub fn csv(data: &[u8]) {
    check(|| CsvDecoder::new(3, true), data);
    check(|| CsvDecoder::new(1, false), data);
}

/// The WitMotion decoder.
pub fn witmotion(data: &[u8]) {
    check(WitmotionDecoder::new, data);
}

/// Decodes `data` twice, all at once and in chunks of a size taken from its first byte, and
/// checks that neither panics, loops or leaves bytes behind, and that both yield the same frames.
pub fn check<D>(make: impl Fn() -> D, data: &[u8])
where
    D: Decoder<Item = Frame, Error = std::io::Error>,
{
    let Some((&size, data)) = data.split_first() else {
        return;
    };
    let whole = decode(make(), data, usize::MAX);
    let chunked = decode(make(), data, usize::from(size % 32) + 1);
    // Compare bit patterns: -0.0 and 0.0 differ in a stream.
    assert_eq!(format!("{whole:?}"), format!("{chunked:?}"));
}

fn decode<D>(mut decoder: D, data: &[u8], chunk: usize) -> Vec<Frame>
where
    D: Decoder<Item = Frame, Error = std::io::Error>,
{
    // More frames than bytes would mean a decoder that yields without consuming: a loop.
    let bound = 2 * data.len() + 16;
    let mut frames = Vec::new();
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk.min(data.len().max(1))) {
        buf.extend_from_slice(piece);
        while let Some(frame) = decoder.decode(&mut buf).expect("decode never errors") {
            frames.push(frame);
            assert!(frames.len() <= bound);
        }
    }
    while let Some(frame) = decoder.decode_eof(&mut buf).expect("decode_eof never errors") {
        frames.push(frame);
        assert!(frames.len() <= bound);
    }
    assert!(buf.is_empty());
    frames
}

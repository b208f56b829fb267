//! The oracle shared by the fuzz targets.

use bytes::BytesMut;
use reflex_codecs::Frame;
use tokio_util::codec::Decoder;

/// Decodes `data` twice, all at once and in chunks of a size taken from its first byte, and
/// checks that neither panics, loops or leaves bytes behind, and that both yield the same frames.
pub fn check<D>(make: impl Fn() -> D, data: &[u8])
where
    D: Decoder<Item = Frame, Error = std::io::Error>,
{
    let Some((&size, data)) = data.split_first() else {
        return;
    };
    let whole = run(make(), data, usize::MAX);
    let chunked = run(make(), data, usize::from(size % 32) + 1);
    // Compare bit patterns: -0.0 and 0.0 differ in a stream.
    assert_eq!(format!("{whole:?}"), format!("{chunked:?}"));
}

fn run<D>(mut decoder: D, data: &[u8], chunk: usize) -> Vec<Frame>
where
    D: Decoder<Item = Frame, Error = std::io::Error>,
{
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
    while let Some(frame) = decoder
        .decode_eof(&mut buf)
        .expect("decode_eof never errors")
    {
        frames.push(frame);
        assert!(frames.len() <= bound);
    }
    assert!(buf.is_empty());
    frames
}

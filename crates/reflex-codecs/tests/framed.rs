//! The decoders inside tokio-util's `FramedRead`, the way the daemon uses them: the end of the
//! stream must flush and finish cleanly, never with "bytes remaining on stream".

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_core::Stream;
use reflex_codecs::{encode, AnyDecoder, Format, Frame, Malformed};
use tokio_util::codec::FramedRead;

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// Drains a `FramedRead` over an in-memory reader (always ready, so no runtime is needed).
fn read_all(bytes: &[u8], decoder: AnyDecoder) -> Vec<Frame> {
    let waker = Waker::from(Arc::new(NoopWaker));
    let mut cx = Context::from_waker(&waker);
    let mut framed = FramedRead::with_capacity(bytes, decoder, 7);
    let mut frames = Vec::new();
    for _ in 0..100_000 {
        match Pin::new(&mut framed).poll_next(&mut cx) {
            Poll::Ready(Some(frame)) => frames.push(frame.expect("no I/O error")),
            Poll::Ready(None) => return frames,
            Poll::Pending => panic!("an in-memory reader is never pending"),
        }
    }
    panic!("FramedRead never ended");
}

#[test]
fn csv_through_framed_read() {
    let text = b"t,ax\n0.5,1\n1.5,oops\n2.5,3";
    let frames = read_all(text, AnyDecoder::new(Format::Csv, 1, true));
    assert_eq!(frames, vec![common::ts(0.5, &[1.0]), common::m(Malformed::NotANumber), common::ts(2.5, &[3.0]),]);
}

#[test]
fn binary_through_framed_read() {
    let mut bytes = Vec::new();
    for i in 0..50u32 {
        bytes.extend_from_slice(&encode::binary(i * 2, &[i as f32, -(i as f32)]));
    }
    bytes.extend_from_slice(&encode::binary(100, &[0.0, 0.0])[..9]);
    let frames = read_all(&bytes, AnyDecoder::new(Format::Binary, 2, false));
    assert_eq!(frames.len(), 50 + 49 + 1);
    assert_eq!(frames[1], Frame::Lost(1));
    assert_eq!(frames.last(), Some(&common::m(Malformed::Truncated)));
    assert_eq!(common::samples(&frames).len(), 50);
}

#[test]
fn witmotion_through_framed_read() {
    let mut bytes = b"\x55\x51partial".to_vec();
    let mut expected = vec![common::m(Malformed::Checksum)];
    for i in 0..30 {
        let (pair, values) = encode::witmotion_sample([0.0, 0.0, 1.0], [i as f32, 0.0, 0.0]);
        bytes.extend_from_slice(&pair);
        expected.push(common::s(&values));
    }
    assert_eq!(read_all(&bytes, AnyDecoder::new(Format::Witmotion, 6, false)), expected);
}

#[test]
fn empty_stream_ends_at_once() {
    for format in [Format::Csv, Format::Binary, Format::Witmotion] {
        assert_eq!(read_all(b"", AnyDecoder::new(format, 3, false)), vec![]);
    }
}

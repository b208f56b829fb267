//! Streaming decoders (bytes → samples) for the three Reflex serial formats of docs/wire-formats.md, plus the
//! encoders that tests, the firmware example and benchmarks use to produce them.
//!
//! Every decoder is a [`tokio_util::codec::Decoder`] yielding [`Frame`]s; reflex-io's
//! `source::Samples` is the one loop that calls them, for every source (serial device, log,
//! recording). [`Format`] is the one wire-format type: the config's `[source] format` key
//! deserializes straight into it (feature `serde`), and recordings name it in their metadata. The decoders are pure: no I/O, no threads, no clocks, and no panic
//! on any input. Malformed input is never an error: it comes out as [`Frame::Malformed`] and decoding
//! goes on with the next line or sync. The frames produced do not depend on how the byte stream is
//! split into chunks.
//!
//! | format | decoder | resynchronises on |
//! | --- | --- | --- |
//! | [`Format::Csv`] | [`CsvDecoder`] | the next `\n` |
//! | [`Format::Binary`] | [`BinaryDecoder`] | the next `A5 5A` |
//! | [`Format::Witmotion`] | [`WitmotionDecoder`] | the next `55` followed by a packet type `50..=5F` |
//!
//! ```
//! use bytes::BytesMut;
//! use reflex_codecs::{encode, AnyDecoder, Format, Frame, Malformed};
//! use tokio_util::codec::Decoder;
//!
//! let mut decoder = AnyDecoder::new(Format::Binary, 2, false);
//! let mut buf = BytesMut::new();
//! buf.extend_from_slice(&encode::binary(7, &[1.5, -2.0]));
//! buf.extend_from_slice(b"noise");
//! buf.extend_from_slice(&encode::binary(9, &[0.25, 4.0]));
//!
//! let mut frames = Vec::new();
//! while let Some(frame) = decoder.decode_eof(&mut buf)? {
//!     frames.push(frame);
//! }
//! let sample = |values: &[f32]| {
//!     Frame::Sample(reflex_codecs::Sample { values: values.into(), time: None })
//! };
//! assert_eq!(
//!     frames,
//!     vec![
//!         sample(&[1.5, -2.0]),
//!         Frame::Malformed(Malformed::Garbage),
//!         Frame::Lost(1), // counter 8 never arrived
//!         sample(&[0.25, 4.0]),
//!     ]
//! );
//! # Ok::<(), std::io::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod binary;
mod csv;
pub mod encode;
mod resync;
mod witmotion;

use bytes::BytesMut;
use smallvec::SmallVec;
use tokio_util::codec::Decoder;

pub use binary::BinaryDecoder;
pub use csv::{CsvDecoder, MAX_LINE_LEN};
pub use resync::GARBAGE_BLOCK;
pub use witmotion::{WitmotionDecoder, WITMOTION_CHANNELS};

/// One decoded sample: `channels` values, plus the csv time column when configured.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The channel values, in the order they were sent.
    pub values: SmallVec<[f32; 16]>,
    /// The csv time column in seconds; `None` for csv without one and for the binary formats, whose
    /// samples the daemon stamps with their receive time.
    pub time: Option<f64>,
}

/// Why a line or frame was rejected (each is counted by the daemon).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Malformed {
    /// csv: a line with a number of fields other than `channels` (+1 with a time column).
    #[error("wrong number of fields")]
    FieldCount,
    /// csv: a field that is not a decimal number (or a line that is not UTF-8).
    #[error("field is not a number")]
    NotANumber,
    /// A value (or the csv time) that is NaN or infinite.
    #[error("value is NaN or infinite")]
    NotFinite,
    /// binary: a CRC mismatch; witmotion: a checksum mismatch.
    #[error("checksum mismatch")]
    Checksum,
    /// binary: a frame whose `n` is not the configured number of channels.
    #[error("frame has the wrong number of values")]
    WrongLength,
    /// csv: a line longer than [`MAX_LINE_LEN`] bytes, dropped up to its newline.
    #[error("line too long")]
    TooLong,
    /// binary/witmotion: bytes skipped while looking for a sync. One run of skipped bytes between two
    /// frames counts once (and once more per further [`GARBAGE_BLOCK`] bytes), so a stray byte is
    /// counted once while a stream that never syncs keeps the counter moving. Bytes skipped right
    /// after a rejected frame belong to that rejection and only count again past a block.
    #[error("garbage between frames")]
    Garbage,
    /// binary/witmotion: a frame cut short by the end of the stream.
    #[error("frame truncated by end of stream")]
    Truncated,
}

impl Malformed {
    /// Every variant, for initialising per-reason counters.
    pub const ALL: [Malformed; 8] = [
        Malformed::FieldCount,
        Malformed::NotANumber,
        Malformed::NotFinite,
        Malformed::Checksum,
        Malformed::WrongLength,
        Malformed::TooLong,
        Malformed::Garbage,
        Malformed::Truncated,
    ];

    /// A short snake_case name, stable enough for metric labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::FieldCount => "field_count",
            Malformed::NotANumber => "not_a_number",
            Malformed::NotFinite => "not_finite",
            Malformed::Checksum => "checksum",
            Malformed::WrongLength => "wrong_length",
            Malformed::TooLong => "too_long",
            Malformed::Garbage => "garbage",
            Malformed::Truncated => "truncated",
        }
    }
}

/// What the decoder yields, in stream order.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A good sample; it gets the next sample number (docs/records.md).
    Sample(Sample),
    /// A rejected line/frame; the decoder has already resynchronised.
    Malformed(Malformed),
    /// Samples known to be missing (binary: a gap in `counter`), to be counted as lost.
    Lost(u64),
}

/// The serial frame format: the one type the config's `[source] format` key, a recording's
/// metadata and the decoders share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize), serde(rename_all = "lowercase"))]
pub enum Format {
    /// Comma-separated ASCII lines.
    #[default]
    Csv,
    /// `A5 5A` framed little-endian f32 with a counter and a CRC.
    Binary,
    /// WitMotion's 11-byte packets (WT901/JY901/HWT905 family).
    Witmotion,
}

impl Format {
    /// The config's name for it (`"csv"`, `"binary"`, `"witmotion"`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Binary => "binary",
            Format::Witmotion => "witmotion",
        }
    }

    /// The format a config (or a recording's metadata) names.
    pub fn from_name(name: &str) -> Option<Format> {
        [Format::Csv, Format::Binary, Format::Witmotion].into_iter().find(|f| f.name() == name)
    }
}

/// Any of the three decoders, chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyDecoder {
    /// See [`CsvDecoder`].
    Csv(CsvDecoder),
    /// See [`BinaryDecoder`].
    Binary(BinaryDecoder),
    /// See [`WitmotionDecoder`].
    Witmotion(WitmotionDecoder),
}

impl AnyDecoder {
    /// The decoder for `format`. `time_column` only matters for csv; `channels` is ignored for
    /// witmotion, which always yields [`WITMOTION_CHANNELS`] values.
    pub fn new(format: Format, channels: usize, time_column: bool) -> AnyDecoder {
        match format {
            Format::Csv => AnyDecoder::Csv(CsvDecoder::new(channels, time_column)),
            Format::Binary => AnyDecoder::Binary(BinaryDecoder::new(channels)),
            Format::Witmotion => AnyDecoder::Witmotion(WitmotionDecoder::new()),
        }
    }

    /// Which format this decoder reads.
    pub fn format(&self) -> Format {
        match self {
            AnyDecoder::Csv(_) => Format::Csv,
            AnyDecoder::Binary(_) => Format::Binary,
            AnyDecoder::Witmotion(_) => Format::Witmotion,
        }
    }
}

impl Decoder for AnyDecoder {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        match self {
            AnyDecoder::Csv(d) => d.decode(buf),
            AnyDecoder::Binary(d) => d.decode(buf),
            AnyDecoder::Witmotion(d) => d.decode(buf),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        match self {
            AnyDecoder::Csv(d) => d.decode_eof(buf),
            AnyDecoder::Binary(d) => d.decode_eof(buf),
            AnyDecoder::Witmotion(d) => d.decode_eof(buf),
        }
    }
}

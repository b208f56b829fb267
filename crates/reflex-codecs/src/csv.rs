//! The `csv` format: ASCII lines of comma-separated decimals.

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio_util::codec::Decoder;

use crate::{Frame, Malformed, Sample};

/// The longest csv line accepted, in bytes, not counting its `\n` (a `\r` before it counts).
/// Longer lines are dropped as [`Malformed::TooLong`]; this also bounds the decoder's buffer when
/// no newline ever comes.
pub const MAX_LINE_LEN: usize = 4096;

/// Decodes the `csv` format.
///
/// - Lines end with `\n` or `\r\n`; the last line may lack its newline (it is decoded at the end
///   of the stream).
/// - Blank lines and lines whose first non-blank character is `#` are skipped, uncounted.
/// - The first other line is a header, skipped uncounted, when one of its fields is not a number.
///   Any later such line is [`Malformed::NotANumber`].
/// - With a time column the first field is the time in seconds (f64), then `channels` values
///   (f32); the field count must be exact ([`Malformed::FieldCount`]). Blanks around fields are
///   fine. NaN or infinity anywhere is [`Malformed::NotFinite`].
/// - A line over [`MAX_LINE_LEN`] bytes is one [`Malformed::TooLong`], dropped up to its newline.
#[derive(Clone, Debug)]
pub struct CsvDecoder {
    channels: usize,
    time_column: bool,
    /// The header chance is spent: a line other than blank or comment has been seen.
    past_header: bool,
    /// Inside an overlong line, dropping bytes up to its newline.
    discarding: bool,
    /// How many bytes at the start of the buffer are known to hold no `\n`, so that a line
    /// trickling in byte by byte is not rescanned from its start each time.
    scanned: usize,
}

impl CsvDecoder {
    /// A decoder for lines of `channels` values, preceded by a time when `time_column` is set.
    pub fn new(channels: usize, time_column: bool) -> CsvDecoder {
        CsvDecoder { channels, time_column, past_header: false, discarding: false, scanned: 0 }
    }

    /// Decodes one complete line (without its `\n`); `None` when it is skipped.
    fn line(&mut self, line: &[u8]) -> Option<Frame> {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed[0] == b'#' {
            return None;
        }
        let first = !self.past_header;
        self.past_header = true;
        match parse(trimmed, self.channels, self.time_column) {
            Ok(sample) => Some(Frame::Sample(sample)),
            Err(Malformed::NotANumber) if first => None,
            Err(why) => Some(Frame::Malformed(why)),
        }
    }
}

/// Parses the fields of a non-blank line.
///
/// Non-numbers are reported before a wrong field count, so that a header with a different number
/// of columns is still recognised as one.
fn parse(line: &[u8], channels: usize, time_column: bool) -> Result<Sample, Malformed> {
    let text = std::str::from_utf8(line).map_err(|_| Malformed::NotANumber)?;
    let expected = channels.saturating_add(usize::from(time_column));
    let mut fields = 0usize;
    let mut time = None;
    let mut values = SmallVec::<[f32; 16]>::new();
    let mut finite = true;
    for (i, field) in text.split(',').enumerate() {
        let field = field.trim();
        fields += 1;
        if time_column && i == 0 {
            let t: f64 = field.parse().map_err(|_| Malformed::NotANumber)?;
            finite &= t.is_finite();
            time = Some(t);
        } else {
            let v: f32 = field.parse().map_err(|_| Malformed::NotANumber)?;
            finite &= v.is_finite();
            // A line with too many fields is rejected below; don't keep more than fit.
            if values.len() < channels {
                values.push(v);
            }
        }
    }
    if fields != expected {
        return Err(Malformed::FieldCount);
    }
    if !finite {
        return Err(Malformed::NotFinite);
    }
    Ok(Sample { values, time })
}

impl Decoder for CsvDecoder {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        loop {
            if self.discarding {
                match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.discarding = false;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                }
            }
            // Only the first MAX_LINE_LEN + 1 bytes can hold the end of an acceptable line.
            let limit = buf.len().min(MAX_LINE_LEN + 1);
            let from = self.scanned.min(limit);
            match buf[from..limit].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let line = buf.split_to(from + i + 1);
                    self.scanned = 0;
                    if let Some(frame) = self.line(&line[..from + i]) {
                        return Ok(Some(frame));
                    }
                }
                None if buf.len() > MAX_LINE_LEN => {
                    buf.advance(limit);
                    self.scanned = 0;
                    self.discarding = true;
                    self.past_header = true;
                    return Ok(Some(Frame::Malformed(Malformed::TooLong)));
                }
                None => {
                    self.scanned = limit;
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        // What is left is a last line without its newline (already known to be short enough), or
        // nothing.
        self.discarding = false;
        self.scanned = 0;
        if buf.is_empty() {
            return Ok(None);
        }
        let line = buf.split();
        Ok(self.line(&line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_orders_errors() {
        assert_eq!(parse(b"a,b", 3, false), Err(Malformed::NotANumber));
        assert_eq!(parse(b"1,2", 3, false), Err(Malformed::FieldCount));
        assert_eq!(parse(b"1,2,inf,4", 3, false), Err(Malformed::FieldCount));
        assert_eq!(parse(b"1,2,inf", 3, false), Err(Malformed::NotFinite));
        assert_eq!(parse(b"NaN, 1 ,2,3", 3, true), Err(Malformed::NotFinite));
        assert_eq!(
            parse(b" 0.5 ,\t1, 2 ,3e0", 3, true),
            Ok(Sample { values: [1.0, 2.0, 3.0].into_iter().collect(), time: Some(0.5) })
        );
        assert_eq!(parse(b"1,,2", 3, false), Err(Malformed::NotANumber));
        assert_eq!(parse(&[0xFF, b','], 1, false), Err(Malformed::NotANumber));
    }
}

//! Property tests: no panics, recovery after garbage, chunking invariance, exact round trips.

mod common;

use common::{decode_all, decode_chunked, malformed, samples};
use proptest::prelude::*;
use reflex_codecs::{encode, AnyDecoder, BinaryDecoder, Format, Frame, Malformed, Sample};

/// Bytes that favour the ones the decoders care about, so that syncs, separators and headers
/// turn up often enough to reach the deep paths.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(vec![
            0xA5, 0x5A, 0x55, 0x50, 0x51, 0x52, 0x53, 0x00, 0x01, 0x02, 0x03, b'\n', b'\r', b',', b'#', b' ', b'1',
            b'.', b'e', b'-', b'n', b'a', b'i',
        ]),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(byte(), 0..max)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=64, 1..16)
}

/// A decoder configuration.
fn config() -> impl Strategy<Value = (Format, usize, bool)> {
    prop_oneof![
        (1usize..=4, any::<bool>()).prop_map(|(c, t)| (Format::Csv, c, t)),
        (0usize..=4).prop_map(|c| (Format::Binary, c, false)),
        Just((Format::Witmotion, 6, false)),
    ]
}

/// A frame with its floats as bits, so that comparisons are exact (-0.0 vs 0.0).
#[derive(Debug, PartialEq)]
enum Exact {
    Sample(Vec<u32>, Option<u64>),
    Malformed(Malformed),
    Lost(u64),
}

fn exact(frames: &[Frame]) -> Vec<Exact> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Sample(Sample { values, time }) => {
                Exact::Sample(values.iter().map(|v| v.to_bits()).collect(), time.map(f64::to_bits))
            }
            Frame::Malformed(why) => Exact::Malformed(*why),
            Frame::Lost(n) => Exact::Lost(*n),
        })
        .collect()
}

/// Whether a complete, valid binary frame for `channels` starts at `at`.
fn valid_binary_at(stream: &[u8], at: usize, channels: usize) -> bool {
    let len = 2 + 1 + 4 + 4 * channels + 2;
    let Some(frame) = stream.get(at..at + len) else {
        return false;
    };
    if frame[..3] != [0xA5, 0x5A, channels as u8] {
        return false;
    }
    matches!(
        decode_all(&mut BinaryDecoder::new(channels), frame).as_slice(),
        [Frame::Sample(_)] | [Frame::Malformed(Malformed::NotFinite)]
    )
}

/// Whether a complete WitMotion packet with a good checksum starts at `at`.
fn valid_witmotion_at(stream: &[u8], at: usize) -> bool {
    let Some(p) = stream.get(at..at + 11) else {
        return false;
    };
    p[0] == 0x55 && (0x50..=0x5F).contains(&p[1]) && p[..10].iter().fold(0u8, |a, &b| a.wrapping_add(b)) == p[10]
}

/// Checks that between consecutive samples (and before the first, after the last) something was
/// counted as malformed exactly when garbage was inserted there.
fn check_gaps(frames: &[Frame], garbage: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let mut counted = vec![0usize; 1];
    for f in frames {
        match f {
            Frame::Sample(_) => counted.push(0),
            Frame::Malformed(_) => *counted.last_mut().unwrap() += 1,
            Frame::Lost(n) => prop_assert!(false, "unexpected Lost({n})"),
        }
    }
    prop_assert_eq!(counted.len(), garbage.len());
    for (i, (c, g)) in counted.iter().zip(garbage).enumerate() {
        prop_assert_eq!(*c > 0, !g.is_empty(), "gap {}: {} counted for {:?}", i, c, g);
    }
    Ok(())
}

/// A piece of garbage: random bytes, sometimes after the start of a frame cut short.
fn garbage_with_cut_frames(frame: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = frame.len();
    prop_oneof![
        3 => bytes(24),
        1 => Just(Vec::new()),
        1 => (1..len, bytes(8)).prop_map(move |(cut, tail)| [&frame[..cut], &tail[..]].concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (a) Any bytes, any chunking: no panic, `decode_eof` ends with an empty buffer, and the
    /// frames do not depend on the chunking (c).
    #[test]
    fn arbitrary_bytes((format, channels, time) in config(), input in bytes(3000), sizes in chunk_sizes()) {
        let whole = decode_all(&mut AnyDecoder::new(format, channels, time), &input);
        let chunked = decode_chunked(&mut AnyDecoder::new(format, channels, time), &input, &sizes);
        prop_assert_eq!(exact(&whole), exact(&chunked));
    }

    /// (a) The same with uniformly random bytes.
    #[test]
    fn uniform_bytes((format, channels, time) in config(), input in prop::collection::vec(any::<u8>(), 0..3000), sizes in chunk_sizes()) {
        let whole = decode_all(&mut AnyDecoder::new(format, channels, time), &input);
        let chunked = decode_chunked(&mut AnyDecoder::new(format, channels, time), &input, &sizes);
        prop_assert_eq!(exact(&whole), exact(&chunked));
    }

    /// (b)+(c) Binary: good frames with garbage (holding cut frames and sync bytes) between them
    /// all come back, in order, with the garbage counted exactly where it was.
    #[test]
    fn binary_recovers_after_garbage(
        (channels, frames, garbage, sizes) in (0usize..=6).prop_flat_map(|channels| {
            let frame = encode::binary(1, &vec![1.0; channels]);
            (
                Just(channels),
                prop::collection::vec(prop::collection::vec(-1e6f32..1e6, channels), 0..12),
                prop::collection::vec(garbage_with_cut_frames(frame), 13),
                chunk_sizes(),
            )
        }),
        start in any::<u32>(),
    ) {
        let garbage = &garbage[..frames.len() + 1];
        let mut stream = Vec::new();
        let mut starts = Vec::new();
        for (i, values) in frames.iter().enumerate() {
            stream.extend_from_slice(&garbage[i]);
            starts.push(stream.len());
            stream.extend_from_slice(&encode::binary(start.wrapping_add(i as u32), values));
        }
        stream.extend_from_slice(&garbage[frames.len()]);
        // A frame hidden in the garbage that happens to pass its CRC (or one that straddles
        // garbage and a good frame) is indistinguishable from a real one: leave those cases out.
        prop_assume!((0..stream.len()).all(|p| starts.contains(&p) || !valid_binary_at(&stream, p, channels)));

        let out = decode_chunked(&mut BinaryDecoder::new(channels), &stream, &sizes);
        prop_assert_eq!(samples(&out), frames.clone());
        check_gaps(&out, garbage)?;
        prop_assert_eq!(exact(&out), exact(&decode_all(&mut BinaryDecoder::new(channels), &stream)));
    }

    /// (b)+(c) WitMotion: good samples (with other packet types around them) and garbage between
    /// them.
    #[test]
    fn witmotion_recovers_after_garbage(
        units in prop::collection::vec(
            (prop::array::uniform3(-16f32..16.0), prop::array::uniform3(-2000f32..2000.0), any::<bool>(), any::<bool>()),
            0..10,
        ),
        garbage in prop::collection::vec(
            garbage_with_cut_frames(encode::witmotion(0x51, [1, 2, 3, 4]).to_vec()),
            11,
        ),
        sizes in chunk_sizes(),
    ) {
        let garbage = &garbage[..units.len() + 1];
        let mut stream = Vec::new();
        let mut starts = Vec::new();
        let mut expected = Vec::new();
        for (i, (acc, gyro, time_before, angle_after)) in units.iter().enumerate() {
            stream.extend_from_slice(&garbage[i]);
            let mut packets = Vec::new();
            if *time_before {
                packets.push(encode::witmotion(0x50, [24, 5, 1, 12]).to_vec());
            }
            let (pair, values) = encode::witmotion_sample(*acc, *gyro);
            packets.push(pair[..11].to_vec());
            packets.push(pair[11..].to_vec());
            if *angle_after {
                packets.push(encode::witmotion(0x53, [100, -100, 9000, 0]).to_vec());
            }
            for p in packets {
                starts.push(stream.len());
                stream.extend_from_slice(&p);
            }
            expected.push(values.to_vec());
        }
        stream.extend_from_slice(&garbage[units.len()]);
        prop_assume!((0..stream.len()).all(|p| starts.contains(&p) || !valid_witmotion_at(&stream, p)));

        let out = decode_chunked(&mut reflex_codecs::WitmotionDecoder::new(), &stream, &sizes);
        prop_assert_eq!(samples(&out), expected);
        check_gaps(&out, garbage)?;
    }

    /// (b)+(c) csv: good lines come back whatever junk lines, comments and blank lines are mixed in.
    #[test]
    fn csv_recovers_after_junk_lines(
        channels in 1usize..=5,
        time in any::<bool>(),
        lines in prop::collection::vec(prop::collection::vec(-1e9f32..1e9, 5), 0..12),
        junk in prop::collection::vec(
            prop_oneof![
                Just(String::new()),
                "[ #a-z0-9,.\r-]{0,30}x[ a-z0-9,.-]{0,10}",
                "#[ -~]{0,20}",
                "[ \t\r]{0,3}",
            ],
            13,
        ),
        crlf in any::<bool>(),
        sizes in chunk_sizes(),
    ) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for (i, values) in lines.iter().enumerate() {
            text.push_str(&junk[i]);
            text.push('\n');
            let t = time.then_some(i as f64 * 0.01);
            let mut line = encode::csv(t, &values[..channels]);
            if crlf {
                line.insert(line.len() - 1, '\r');
            }
            text.push_str(&line);
            expected.push(values[..channels].to_vec());
        }
        text.push_str(&junk[lines.len()]);

        let out = decode_chunked(&mut reflex_codecs::CsvDecoder::new(channels, time), text.as_bytes(), &sizes);
        prop_assert_eq!(samples(&out), expected);
        prop_assert!(malformed(&out) <= lines.len() + 1);
        prop_assert_eq!(exact(&out), exact(&decode_all(&mut reflex_codecs::CsvDecoder::new(channels, time), text.as_bytes())));
    }

    /// (c) csv lines around the length limit, with and without newlines, in any chunking.
    #[test]
    fn csv_long_lines(
        pieces in prop::collection::vec(
            prop_oneof![
                (4090usize..4100, any::<bool>()).prop_map(|(n, nl)| {
                    let mut line = vec![b'1'; n];
                    if nl {
                        line.push(b'\n');
                    }
                    line
                }),
                Just(b"1,2\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"#\n".to_vec()),
            ],
            0..8,
        ),
        sizes in prop::collection::vec(1usize..=5000, 1..8),
    ) {
        let text = pieces.concat();
        let whole = decode_all(&mut reflex_codecs::CsvDecoder::new(1, false), &text);
        let chunked = decode_chunked(&mut reflex_codecs::CsvDecoder::new(1, false), &text, &sizes);
        prop_assert_eq!(exact(&whole), exact(&chunked));
        let bytewise = decode_chunked(&mut reflex_codecs::CsvDecoder::new(1, false), &text, &[1]);
        prop_assert_eq!(exact(&whole), exact(&bytewise));
    }

    /// (d) Binary round trip: values bit for bit, any counter start, NaN/inf rejected.
    #[test]
    fn binary_round_trip(
        channels in 0usize..=16,
        start in any::<u32>(),
        raw in prop::collection::vec(prop::collection::vec(any::<u32>(), 16), 0..20),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (i, bits) in raw.iter().enumerate() {
            let values: Vec<f32> = bits[..channels].iter().map(|&b| f32::from_bits(b)).collect();
            stream.extend_from_slice(&encode::binary(start.wrapping_add(i as u32), &values));
            expected.push(if values.iter().all(|v| v.is_finite()) {
                Frame::Sample(Sample { values: values.as_slice().into(), time: None })
            } else {
                Frame::Malformed(Malformed::NotFinite)
            });
        }
        let out = decode_all(&mut BinaryDecoder::new(channels), &stream);
        prop_assert_eq!(exact(&out), exact(&expected));
    }

    /// (d) csv round trip: shortest round-trip formatting reads back exactly.
    #[test]
    fn csv_round_trip(
        channels in 1usize..=16,
        time in prop::option::of(any::<f64>().prop_filter("finite", |t| t.is_finite())),
        raw in prop::collection::vec(prop::collection::vec(any::<f32>().prop_filter("finite", |v| v.is_finite()), 16), 1..10),
    ) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for values in &raw {
            text.push_str(&encode::csv(time, &values[..channels]));
            expected.push(Frame::Sample(Sample { values: values[..channels].into(), time }));
        }
        let out = decode_all(&mut reflex_codecs::CsvDecoder::new(channels, time.is_some()), text.as_bytes());
        prop_assert_eq!(exact(&out), exact(&expected));
    }

    /// (d) WitMotion round trip: the decoder yields exactly the quantised values the encoder reports.
    #[test]
    fn witmotion_round_trip(
        samples_in in prop::collection::vec((prop::array::uniform3(any::<f32>()), prop::array::uniform3(any::<f32>())), 0..20),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (acc, gyro) in &samples_in {
            let (bytes, values) = encode::witmotion_sample(*acc, *gyro);
            stream.extend_from_slice(&bytes);
            expected.push(Frame::Sample(Sample { values: values.as_slice().into(), time: None }));
        }
        let out = decode_all(&mut reflex_codecs::WitmotionDecoder::new(), &stream);
        prop_assert_eq!(exact(&out), exact(&expected));
    }

    /// (d) Physical values within range come back within half a quantisation step.
    #[test]
    fn witmotion_quantisation_error(acc in prop::array::uniform3(-15.9f32..15.9), gyro in prop::array::uniform3(-1999f32..1999.0)) {
        let (_, values) = encode::witmotion_sample(acc, gyro);
        for i in 0..3 {
            prop_assert!((values[i] - acc[i]).abs() <= 16.0 / 65536.0 + 1e-6);
            prop_assert!((values[3 + i] - gyro[i]).abs() <= 2000.0 / 65536.0 + 1e-3);
        }
    }
}

use super::*;
use reflex_codecs::encode;

/// Chunks handed out one per read, then the end.
struct Chunks(std::vec::IntoIter<(Vec<u8>, Chunk)>, Chunk);

impl Source for Chunks {
    fn read(&mut self, buf: &mut BytesMut, _stop: &Stop) -> Result<Chunk, Error> {
        Ok(match self.0.next() {
            Some((bytes, chunk)) => {
                buf.extend_from_slice(&bytes);
                chunk
            }
            None => self.1,
        })
    }
}

fn samples(format: Format, chunks: Vec<(Vec<u8>, Chunk)>, end: Chunk) -> (Vec<TimedSample>, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let decoding = Decoding { format, channels: 2, time_column: false };
    let mut s = Samples::new(Chunks(chunks.into_iter(), end), decoding, Speed::Max, counters.clone());
    let stop = Stop::new();
    let mut out = Vec::new();
    while let Some(x) = s.next(&stop).unwrap() {
        out.push(x);
    }
    (out, counters)
}

const RECORDED: Chunk = Chunk::Bytes(Received::Recorded(2_000_000_000));

#[test]
fn binary_samples_get_their_receive_time_and_csv_samples_none() {
    let (got, _) = samples(Format::Binary, vec![(encode::binary(0, &[1.0, 2.0]), RECORDED)], Chunk::End);
    assert_eq!((got[0].number, got[0].t), (0, Some(2.0)));
    let (got, _) = samples(Format::Csv, vec![(b"1,2\n".to_vec(), RECORDED)], Chunk::End);
    assert_eq!(got[0].t, None);
}

#[test]
fn the_end_of_a_stream_decodes_its_last_line_and_a_stop_does_not() {
    let (got, _) = samples(Format::Csv, vec![(b"1,2\n3,4".to_vec(), Chunk::Bytes(Received::Unknown))], Chunk::End);
    assert_eq!(got.len(), 2);
    let (got, _) = samples(Format::Csv, vec![(b"1,2\n3,4".to_vec(), Chunk::Bytes(Received::Unknown))], Chunk::Stopped);
    assert_eq!(got.len(), 1);
}

#[test]
fn a_restart_drops_half_a_frame_and_numbering_goes_on() {
    let unknown = Chunk::Bytes(Received::Unknown);
    let chunks = vec![(b"1,2\n3,".to_vec(), unknown), (Vec::new(), Chunk::Restart), (b"5,6\nx\n".to_vec(), unknown)];
    let (got, counters) = samples(Format::Csv, chunks, Chunk::End);
    assert_eq!(got.iter().map(|s| (s.number, s.values[0])).collect::<Vec<_>>(), [(0, 1.0), (1, 5.0)]);
    assert_eq!(counters.decode_errors.load(Ordering::Relaxed), 1);
    assert_eq!(counters.opens.load(Ordering::Relaxed), 1, "a restart is the source (re)opened");
}

/// Issue 15: a csv time of 1e30 or a factor of 1e-300 overflowed `Duration` (a panic).
#[test]
fn pacing_never_overflows() {
    let stop = Stop::new();
    stop.set();
    for (speed, t) in [(Speed::Realtime, 1e30), (Speed::Factor(1e-300), 1.0), (Speed::Factor(1e-300), f64::MAX)] {
        let mut pace = Pace::new(speed).unwrap();
        pace.until(0.0, &stop);
        pace.until(t, &stop);
    }
    assert!(stop.sleep(Duration::MAX), "a stopped sleep of any length returns");
}

/// SPEC 7: a csv time column that jumps backwards or by more than 10 sample periods is counted.
#[test]
fn time_column_jumps_are_counted() {
    let text = "0,1,1\n0.01,1,1\n0.02,1,1\n0.05,1,1\n5.0,1,1\n5.01,1,1\n1.0,1,1\n1.01,1,1\n";
    let counters = Arc::new(Counters::default());
    let decoding = Decoding { format: Format::Csv, channels: 2, time_column: true };
    let chunks = vec![(text.as_bytes().to_vec(), Chunk::Bytes(Received::Unknown))];
    let mut s = Samples::new(Chunks(chunks.into_iter(), Chunk::End), decoding, Speed::Max, counters.clone());
    let stop = Stop::new();
    let mut n = 0;
    while s.next(&stop).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 8);
    assert_eq!(counters.time_jumps.load(Ordering::Relaxed), 2, "5.0 (forwards) and 1.0 (backwards)");
}

//! `mcap`: a recording as `reflexd info` and `reflexd replay LOG.mcap` read it — the summary
//! `info` prints (metadata, every record, events, damage), then replay's input: every
//! `/imu/raw` message through the decoder the metadata names, device events restarting it, each
//! sample cut into windows.

use reflex_codecs::Format;
use reflex_config::Speed;
use reflex_io::mcap::McapFile;
use reflex_io::source::mcap::McapRecording;
use reflex_io::source::{Counters, Decoding, Samples};
use reflex_io::stop::Stop;
use reflex_io::window::Windower;
use std::path::Path;
use std::sync::Arc;

/// The target's body.
pub fn run(data: &[u8]) {
    let Ok(file) = McapFile::from_bytes(Path::new("/fuzz/recording.mcap"), data.to_vec()) else { return };
    let _ = reflex_io::info::describe(&file);
    let recording = McapRecording::from_file(file);
    let format = recording.format().unwrap_or(Format::Csv);
    let channels = 6;
    let decoding = Decoding { format, channels, time_column: false };
    let mut samples = Samples::new(recording, decoding, Speed::Max, Arc::new(Counters::default()));
    let mut windows = Windower::new(channels, 4, 1, None, None);
    let stop = Stop::new();
    while let Ok(Some(sample)) = samples.next(&stop) {
        let _ = windows.cut(&sample);
    }
}

//! Everything around the layer graph: sources (serial device, recorded log) → decoder →
//! windower → a bounded lock-free queue → (the graph, elsewhere) → sinks.
//!
//! ```
//! use reflex_io::window::Windower;
//! use std::time::Instant;
//!
//! // 2 channels, windows of 3 samples every 2 samples.
//! let mut w = Windower::new(2, 3, 2, None, None);
//! let now = Instant::now();
//! assert!(w.push(&[1.0, 10.0], None, now)?.is_none());
//! assert!(w.push(&[2.0, 20.0], None, now)?.is_none());
//! let first = w.push(&[3.0, 30.0], None, now)?.expect("samples 0..3 complete window 0");
//! assert_eq!((first.index, first.last_sample), (0, 2));
//! assert_eq!(first.data, [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
//! # Ok::<(), reflex_io::window::WrongWidth>(())
//! ```

mod mcap_writer;
pub mod queue;
pub mod record;
pub mod recording;
pub mod sink;
pub mod source;
pub mod window;

pub use reflex_codecs::Format;

/// The codec format of a config's `source.format`.
pub fn format_of(f: reflex_config::FrameFormat) -> Format {
    match f {
        reflex_config::FrameFormat::Csv => Format::Csv,
        reflex_config::FrameFormat::Binary => Format::Binary,
        reflex_config::FrameFormat::Witmotion => Format::Witmotion,
    }
}

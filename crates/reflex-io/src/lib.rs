//! Everything around the layer graph, one module per stage, in the order a sample takes them:
//!
//! ```text
//! source ──bytes──▶ Samples ──TimedSample──▶ Windower ──SampleWindow──▶ WindowQueue ──▶ (graph, in reflexd) ──Prediction──▶ Sinks
//! serial | log |    decode, number, time,     normalise, cut            drop-oldest live,                         RecordPool      stdout | file |
//! mcap              pace, count, record       [C, L] from the pool      lossless replay                                           udp | serial
//! ```
//!
//! | module | stage |
//! | --- | --- |
//! | [`source`] | the [`Source`](source::Source) trait and its three implementations ([`source::serial`], [`source::log`], [`source::mcap`]); [`Samples`](source::Samples), the one decode loop, time rule and pace |
//! | [`window`] | the [`Windower`](window::Windower): samples → [`SampleWindow`](window::SampleWindow)s |
//! | [`pool`] | the [`WindowPool`](pool::WindowPool): window buffers, sized once and recycled on drop |
//! | [`queue`] | the [`WindowQueue`](queue::WindowQueue) to inference, and the generic drop-oldest queue |
//! | [`record`] | the [`Prediction`](record::Prediction) record, its pool and its text forms |
//! | [`sink`] | [`Sinks`](sink::Sinks): one thread and queue per sink |
//! | [`tap`] | the [`Tap`](tap::Tap): samples, records and events handed to the recorder and the live view |
//! | [`recording`] | `run --record`: the [`Recorder`](recording::Recorder) thread |
//! | [`labels`] | `[labels] listen`: the thread taking activity marks for the recording |
//! | [`live`] | `[live]`: the Foxglove WebSocket server, the [`LiveView`](live::LiveView) |
//! | [`mcap`] | the MCAP writer, and the one MCAP reader (replay and plot) |
//! | [`info`] | what a recording holds, as `reflexd info` prints it |
//! | [`stop`] | [`Stop`](stop::Stop): the one stop request |
//! | [`error`] | [`Error`]: what went wrong, with the file or sink as data |
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
//! assert_eq!(*first.data, [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
//! # Ok::<(), reflex_io::window::WrongWidth>(())
//! ```

pub mod error;
pub mod info;
pub mod labels;
pub mod live;
pub mod mcap;
pub mod pool;
pub mod queue;
pub mod record;
pub mod recording;
pub mod sink;
pub mod source;
pub mod stop;
pub mod tap;
pub mod window;

pub use error::Error;

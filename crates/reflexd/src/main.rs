//! `reflexd`: the Reflex command line (docs/cli.md) — wiring, not pipeline. The stages are
//! reflex-io's (sources, windower, queue, records, sinks), reflex-codecs' (decoders) and
//! reflex-graph's (the layers); this crate chooses them from the config, starts the threads,
//! handles signals and hot swap, counts, and renders every error.
//!
//! | module | what |
//! | --- | --- |
//! | `commands` | one module per subcommand: `run`, `replay`, `info`, `label`, `inspect`, `check`, `bench` |
//! | `daemon` | `run`/`replay` wiring: `input` (which source), `reader` (its thread), `inference` (its thread), `signals`, `stats`, `provenance` |
//! | `reload` | hot swap: watching the config, building and warming a new graph |
//! | `model` | config file → built graph |
//! | `plot` | `replay --plot`: an SVG of a replay's recording |
//! | `allocs` | the process-wide allocation counter behind `allocs_per_window` |
//!
//! The path of one sample, from the serial read to a UDP datagram, one call per stage:
//!
//! 1. `reflex_io::source::serial::SerialDevice::read` — `poll` + `read` on the device, bytes
//!    appended to the reader's buffer, stamped `Received::Live` (reader thread, `daemon::reader`);
//! 2. `reflex_io::source::Samples::next` — `reflex_codecs::AnyDecoder::decode` turns the bytes
//!    into a `Frame::Sample`; it is numbered and timed (the time rule) into a `TimedSample`;
//! 3. `reflex_io::window::Windower::cut` — normalised into the ring; a completed
//!    `SampleWindow` is copied out into a buffer of the `WindowPool`;
//! 4. `reflex_io::queue::WindowQueue::send` — onto the lock-free bounded queue (drop-oldest);
//! 5. `daemon::inference::Inference::predict` (inference thread) — `reflex_graph::Graph::run`,
//!    then a `Prediction` from the `RecordPool`, handed to `reflex_io::sink::Sinks::send`;
//! 6. the UDP sink's thread — `reflex_io::record::Formatter::write` into its buffer, then the
//!    `udp` output's `send_to`: one datagram.
//!
//! Every error a user can cause ends here as one line on stderr and a non-zero exit status:
//! 1 for a problem with the config, weights, plugins or input; 2 for a bad command line. The
//! libraries return typed errors carrying their file, key or sink; only `main` prints them.

mod allocs;
mod commands;
mod daemon;
mod model;
mod plot;
mod reload;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "reflexd", version, about = "Runs a small 1-D CNN of plugin convolution layers on IMU windows")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The config file.
    #[arg(long, default_value = "config/reflex.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: source → windows → layer graph → sinks, until SIGINT/SIGTERM.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Record what is read, decoded and predicted to this MCAP file.
        #[arg(long)]
        record: Option<PathBuf>,
        /// How the recording's chunks are compressed: zstd, lz4 or none.
        #[arg(long, default_value = "zstd", value_parser = commands::run::parse_compression)]
        compression: reflex_io::mcap::Compression,
    },
    /// Feed a recorded log through the same pipeline, losslessly.
    Replay {
        /// The config [default: a recording's own configs, generation by generation; else
        /// config/reflex.toml].
        #[arg(long)]
        config: Option<PathBuf>,
        /// max, realtime, or a factor of real time such as 4.
        #[arg(long, default_value = "max", value_parser = commands::replay::parse_speed)]
        speed: reflex_config::Speed,
        /// Write the prediction records here (JSON lines) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also draw the input channels and the predictions over time to this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// The log: an MCAP recording (`.mcap`) or csv (decoded with the config's [source] settings).
        log: PathBuf,
    },
    /// Mark the wearer's activity in the running daemon's recording, from the next sample on.
    Label {
        #[command(flatten)]
        config: ConfigArg,
        /// The activity (at most 64 bytes, no control characters); `-` ends the labelled span.
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Print a recording's metadata, channels, duration, generations, events and label marks.
    Info {
        /// The recording (`.mcap`).
        log: PathBuf,
    },
    /// Print the layer graph: shapes, parameters, MACs per window, receptive field.
    Inspect(ConfigArg),
    /// Validate config, plugins and weights; print every problem.
    Check(ConfigArg),
    /// Time the graph on one window: per-layer and total latency.
    Bench {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Time windows that each follow the previous one by this many samples, as a stream
        /// delivers them (streaming inference); default: unrelated whole windows.
        #[arg(long, value_name = "SAMPLES", value_parser = clap::value_parser!(u32).range(1..))]
        hop: Option<u32>,
    },
}

/// Logs go to stderr, one line per event; `RUST_LOG` sets the level (default `info`).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// `reflexd inspect | head -1`: a report whose reader went away ends quietly, as Unix tools do,
/// instead of panicking in `println!`. Only for the commands that print a report: the daemon
/// and replay keep SIGPIPE ignored, so a sink whose reader goes away is counted, not fatal.
fn quiet_on_closed_pipe() {
    // SAFETY: called on the main thread before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE and no Rust code relies on SIGPIPE being ignored in these commands.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if matches!(
        cli.command,
        Command::Info { .. } | Command::Label { .. } | Command::Inspect(_) | Command::Check(_) | Command::Bench { .. }
    ) {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Run { config, record, compression } => {
            commands::run::run(&config.config, record.as_deref(), compression)
        }
        Command::Replay { config, speed, out, plot, log } => {
            commands::replay::run(config.as_deref(), speed, out.as_deref(), plot.as_deref(), &log)
        }
        Command::Info { log } => commands::info::run(&log),
        Command::Label { config, name } => commands::label::run(&config.config, &name),
        Command::Inspect(c) => commands::inspect::run(&c.config),
        Command::Check(c) => commands::check::run(&c.config),
        Command::Bench { config, json, hop } => commands::bench::run(&config.config, json, hop.map(|h| h as usize)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Problems already are one line each; anything else is flattened to one line.
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

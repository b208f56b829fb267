//! `reflexd`: the Reflex command line (SPEC §1).
//!
//! Every error a user can cause ends here as one line on stderr and a non-zero exit status:
//! 1 for a problem with the config, weights, plugins or input; 2 for a bad command line.

mod commands;
mod model;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "reflexd",
    version,
    about = "Runs a small 1-D CNN of plugin convolution layers on IMU windows"
)]
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(c) => commands::inspect::run(&c.config),
        Command::Check(c) => commands::check::run(&c.config),
        Command::Bench { config, json } => commands::bench::run(&config.config, json),
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

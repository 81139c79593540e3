//! `mqtt`: the command-line entry point. Parses arguments, sets up logging, runs a subcommand.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mqtt_cli::cmd;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// MQTT 3.1, 3.1.1 and 5.0 tools.
#[derive(Debug, Parser)]
#[command(name = "mqtt", version, about)]
struct Cli {
    /// More log output: -v debug, -vv trace (RUST_LOG, when set, takes precedence)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an MQTT broker until Ctrl-C or SIGTERM
    Broker(cmd::broker::BrokerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose);
    let result = match &cli.command {
        Command::Broker(args) => cmd::broker::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqtt: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: info by default, raised by `-v`; `RUST_LOG` directives win.
fn init_logs(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::INFO,
        1 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

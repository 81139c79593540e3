//! `mqtt`: the command-line entry point. Parses arguments, sets up logging, runs a subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mqtt_cli::cmd;
use mqtt_cli::run::Exit;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// MQTT 3.1, 3.1.1 and 5.0 tools.
#[derive(Debug, Parser)]
#[command(name = "mqtt", version, about)]
struct Cli {
    /// More log output: -v debug, -vv trace (RUST_LOG, when set, takes precedence)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an MQTT broker until Ctrl-C or SIGTERM
    Broker {
        #[command(flatten)]
        args: cmd::broker::BrokerArgs,
        /// More log output: -v debug, -vv trace (RUST_LOG, when set, takes precedence)
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// Publish a message and exit (mosquitto_pub's flags)
    #[command(disable_help_flag = true)]
    Pub(cmd::publish::PubArgs),
    /// Subscribe and print the messages that arrive (mosquitto_sub's flags)
    #[command(disable_help_flag = true)]
    Sub(cmd::subscribe::SubArgs),
    /// Publish a request and print its response (mosquitto_rr's flags)
    #[command(disable_help_flag = true)]
    Rr(cmd::rr::RrArgs),
    /// Load a broker with many clients and measure rates, latency and delivery
    #[command(disable_help_flag = true)]
    Bench(cmd::bench::BenchArgs),
}

mod arena;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Broker { .. } = cli.command {
        // Before any thread starts: see `arena`.
        arena::share_one();
    }
    // The broker logs its life at info; the clients speak only of trouble unless -d.
    let (base, extra) = match &cli.command {
        Command::Broker { verbose, .. } => (LevelFilter::INFO, *verbose),
        Command::Pub(args) => (LevelFilter::WARN, args.conn.debug),
        Command::Sub(args) => (LevelFilter::WARN, args.conn.debug),
        Command::Rr(args) => (LevelFilter::WARN, args.conn.debug),
        Command::Bench(args) => (LevelFilter::WARN, args.debug),
    };
    init_logs(base, cli.verbose.saturating_add(extra));
    let result = match &cli.command {
        Command::Broker { args, .. } => cmd::broker::run(args),
        Command::Pub(args) => cmd::publish::run(args),
        Command::Sub(args) => cmd::subscribe::run(args),
        Command::Rr(args) => cmd::rr::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqtt: error: {e:#}");
            ExitCode::from(e.downcast_ref::<Exit>().map_or(1, |exit| exit.code))
        }
    }
}

/// Logs go to stderr: `base` by default, raised to debug and trace by `-v`/`-d`; `RUST_LOG`
/// directives win.
fn init_logs(base: LevelFilter, more: u8) {
    let level = match more {
        0 => base,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}

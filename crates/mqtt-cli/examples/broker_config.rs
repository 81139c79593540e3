//! Prints what `mqtt broker` would run with, given the same flags, without starting it.
//!
//! `cargo run -p mqtt-cli --example broker_config -- --config crates/mqtt-cli/examples/broker.toml -p 0`
//! checks a configuration file: it exits non-zero, naming the key, if the file is refused.

use clap::Parser;
use mqtt_cli::cmd::broker::{BrokerArgs, Settings};

/// The flags of `mqtt broker`.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::resolve(&args.broker)?;
    println!("listen: mqtt://{}", settings.tcp);
    if let Some((addr, tls)) = &settings.tls {
        let (cert, key) = (tls.cert_path.display(), tls.key_path.display());
        println!("listen: mqtts://{addr} (certificate {cert}, key {key})");
    }
    println!("{:#?}", settings.config);
    Ok(())
}

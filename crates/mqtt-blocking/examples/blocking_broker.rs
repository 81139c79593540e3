//! An MQTT broker in a few lines: serves on 127.0.0.1:1883 (or the address given) until Ctrl-C.
//!
//! `cargo run -p mqtt-blocking --example blocking_broker -- 127.0.0.1:0`, then for instance
//! `mosquitto_sub -p PORT -t '#' -v` and `mosquitto_pub -p PORT -t a/b -m hi`.

use std::net::SocketAddr;

use mqtt_blocking::broker::Server;
use mqtt_core::broker::BrokerConfig;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => ([127, 0, 0, 1], 1883).into(),
    };
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let server = Server::new(BrokerConfig::default())
        .listen_tcp(addr)
        .start()?;
    for listener in server.local_addrs() {
        println!("listening on mqtt://{}", listener.addr);
    }
    signals.forever().next();
    println!("shutting down");
    server.shutdown()?;
    Ok(())
}

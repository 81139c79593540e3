//! An MQTT broker in a few lines: serves on 127.0.0.1:1883 (or the address given) until Ctrl-C.
//!
//! `cargo run -p mqtt-tokio --example tokio_broker -- 127.0.0.1:0`, then for instance
//! `mosquitto_sub -p PORT -t '#' -v` and `mosquitto_pub -p PORT -t a/b -m hi`.

use std::net::SocketAddr;

use mqtt_core::broker::BrokerConfig;
use mqtt_tokio::broker::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => ([127, 0, 0, 1], 1883).into(),
    };
    let server = Server::new(BrokerConfig::default())
        .listen_tcp(addr)
        .start()
        .await?;
    for listener in server.local_addrs() {
        println!("listening on mqtt://{}", listener.addr);
    }
    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    server.shutdown().await?;
    Ok(())
}

//! An MQTT broker in a few lines: serves on 127.0.0.1:1883 (or the address given) until Ctrl-C.
//!
//! `cargo run -p mqtt-smol --example smol_broker -- 127.0.0.1:0`, then for instance
//! `mosquitto_sub -p PORT -t '#' -v` and `mosquitto_pub -p PORT -t a/b -m hi`.

use std::net::SocketAddr;

use async_signal::{Signal, Signals};
use futures_lite::StreamExt;
use mqtt_core::broker::BrokerConfig;
use mqtt_smol::broker::Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let addr: SocketAddr = match std::env::args().nth(1) {
            Some(arg) => arg.parse()?,
            None => ([127, 0, 0, 1], 1883).into(),
        };
        let mut ctrl_c = Signals::new([Signal::Int])?;
        let server = Server::new(BrokerConfig::default())
            .listen_tcp(addr)
            .start()
            .await?;
        for listener in server.local_addrs() {
            println!("listening on mqtt://{}", listener.addr);
        }
        ctrl_c.next().await;
        println!("shutting down");
        server.shutdown().await?;
        Ok(())
    })
}

//! The sans-IO client driven by hand over a `std::net::TcpStream`: the whole run loop, for
//! anyone embedding `mqtt-core` in a runtime of their own. Subscribes, publishes one QoS 1
//! message to itself, prints what arrives, and stops after the first message.
//!
//! ```text
//! mqtt broker &                                   # or any MQTT broker
//! cargo run -p mqtt-core --example manual_loop -- 127.0.0.1:1883
//! ```
#![allow(clippy::disallowed_methods)] // An adapter reads the clock; the core never does.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_core::client::{Client, ClientEvent, ClientOptions, PublishRequest};
use mqtt_core::packet::{SubscribeProperties, Subscription, SubscriptionOptions};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::QoS;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1883".into());
    let mut socket = TcpStream::connect(&addr)?;
    let mut client = Client::new(ClientOptions::new("manual-loop"));
    client.connect(Instant::now())?;
    let (mut rx, mut tx) = (BytesMut::with_capacity(8192), BytesMut::new());
    let mut chunk = [0u8; 8192];
    loop {
        // 1. Drain the core until it has nothing more: bytes to write, then events (which
        //    may make more bytes).
        loop {
            client.poll_transmit(Instant::now(), &mut tx);
            socket.write_all(&tx)?;
            tx.clear();
            let Some(event) = client.poll_event() else {
                break;
            };
            match event {
                ClientEvent::Connected { .. } => {
                    let options = SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        ..Default::default()
                    };
                    let filter = TopicFilter::new("demo/#")?;
                    let sub = Subscription { filter, options };
                    client.subscribe(Instant::now(), vec![sub], SubscribeProperties::default())?;
                    let msg = PublishRequest::new(TopicName::new("demo/hello")?, "hi")
                        .with_qos(QoS::AtLeastOnce);
                    client.publish(Instant::now(), msg)?;
                }
                ClientEvent::Message { publish, .. } => {
                    println!(
                        "{} {}",
                        publish.topic,
                        String::from_utf8_lossy(&publish.payload)
                    );
                    return Ok(());
                }
                other => println!("{other:?}"),
            }
        }
        // 2. Wait for bytes, but no longer than the core's next deadline.
        let wait = client
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()));
        socket.set_read_timeout(Some(
            wait.unwrap_or(Duration::from_secs(60))
                .max(Duration::from_millis(1)),
        ))?;
        match socket.read(&mut chunk) {
            Ok(0) => return Err("the broker closed the connection".into()),
            Ok(n) => {
                rx.extend_from_slice(&chunk[..n]);
                client.handle_bytes(Instant::now(), &mut rx);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                client.handle_timeout(Instant::now());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

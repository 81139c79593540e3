//! The blocking client: connect, subscribe, publish at QoS 1, read the message back,
//! disconnect.
//!
//! ```text
//! cargo run -p mqtt-blocking --example blocking_client                 # against a broker it starts itself
//! cargo run -p mqtt-blocking --example blocking_client -- mqtt://127.0.0.1:1883 demo/hello
//! ```

use std::time::Duration;

use mqtt_blocking::broker::Server;
use mqtt_blocking::client::{Client, ConnectOptions, Event};
use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{SubscribeProperties, Subscription, SubscriptionOptions};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::QoS;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next();
    let topic = args.next().unwrap_or_else(|| "demo/hello".to_string());

    // Without a URL, a broker of our own on a free port.
    let (url, server) = match url {
        Some(url) => (url, None),
        None => {
            let server = Server::new(BrokerConfig::default())
                .listen_tcp(([127, 0, 0, 1], 0).into())
                .start()?;
            (
                format!("mqtt://{}", server.local_addrs()[0].addr),
                Some(server),
            )
        }
    };

    let mut options = ClientOptions::new(format!("example-{}", std::process::id()));
    options.keep_alive = Duration::from_secs(30);
    let (client, events) = Client::connect(ConnectOptions::new(url.as_str(), options))?;
    println!("connected to {url}");

    let subscription = Subscription {
        filter: TopicFilter::new(topic.as_str())?,
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        },
    };
    let granted = client.subscribe(vec![subscription], SubscribeProperties::default())?;
    println!("subscribed to {topic}: {granted:?}");

    let request = PublishRequest::new(TopicName::new(topic.as_str())?, "hello from mqtt-blocking")
        .with_qos(QoS::AtLeastOnce);
    let code = client.publish(request)?;
    println!("published: {code}");

    // Events come in order: Connected first, then the message.
    for event in events {
        match event {
            Event::Message { publish, .. } => {
                let text = String::from_utf8_lossy(&publish.payload);
                println!("received on {}: {text}", publish.topic.as_str());
                break;
            }
            other => println!("event: {other:?}"),
        }
    }

    client.disconnect()?;
    println!("disconnected");
    if let Some(server) = server {
        server.shutdown()?;
    }
    Ok(())
}

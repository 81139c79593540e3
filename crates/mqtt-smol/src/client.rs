//! The MQTT client over smol: a [`Client`] handle that sends commands to one driver task, and
//! the [`Events`] that task reports.
//!
//! ```text
//!  Client (Clone) ── bounded command channel ──► driver task ◄──► socket (TCP or TLS)
//!   publish().await ◄── oneshot: completion ────┘  owns mqtt_core::client::Client,
//!  Events::recv() ◄──── bounded event channel ───┘  the read buffer and the write buffer
//! ```
//!
//! Every protocol rule (QoS flows, session resume, keep alive, flow control, backoff numbers)
//! lives in [`mqtt_core::client::Client`]; every decision besides moving bytes (replies,
//! reconnecting, a graceful disconnect) in [`mqtt_adapter::client::Supervisor`], shared with
//! the tokio and blocking adapters. The driver (`client/driver.rs`) only moves bytes, commands,
//! events and time. The handle, options, events and errors are
//! [`mqtt_adapter::client`]'s: the same in every async adapter (see there for back-pressure
//! and lifetime). The driver runs on smol's global executor, so the handle works from any
//! executor (`smol::block_on`, another runtime's task).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mqtt_core::client::{ClientOptions, PublishRequest};
//! use mqtt_core::topic::TopicName;
//! use mqtt_core::QoS;
//! use mqtt_smol::client::{Client, ConnectOptions, Event};
//!
//! let options = ConnectOptions::new("mqtt://127.0.0.1", ClientOptions::new("sensor-1"));
//! let (client, mut events) = Client::connect(options).await?;
//! let message = PublishRequest::new(TopicName::new("sensors/1/temp")?, "21.5")
//!     .with_qos(QoS::AtLeastOnce);
//! client.publish(message).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Message { publish, .. } = event {
//!         println!("{}: {:?}", publish.topic, publish.payload);
//!     }
//! }
//! # Ok(()) }
//! ```

mod driver;

pub use mqtt_adapter::client::{ConnectOptions, Error, Event, Events, TlsOptions};

/// A handle to one connection over smol. Clones share it; each method is a command to its
/// driver task. See [`mqtt_adapter::client::Client`] for every method.
pub type Client = mqtt_adapter::client::Client<Smol>;

/// Runs client drivers as tasks on smol's global executor.
#[derive(Debug)]
pub struct Smol;

impl mqtt_adapter::client::Runtime for Smol {
    fn spawn_driver(parts: mqtt_adapter::client::DriverParts) {
        smol::spawn(driver::Driver::new(parts).run()).detach();
    }
}

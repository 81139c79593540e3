//! The runtime-free half of every `mqtt-core` adapter (`mqtt-tokio`, `mqtt-smol`,
//! `mqtt-blocking`): what they would otherwise each write again. No protocol rule lives here
//! (those are in `mqtt-core`), and no socket, task or thread (those are the adapters').
//!
//! - [`broker`]: the [`Router`](broker::Router) that owns the sans-IO broker and addresses its
//!   output to connections, and the [`ConnState`](broker::ConnState) of one connection
//!   (decoding in the version its CONNECT names, the chunks waiting for a vectored write, the
//!   written bytes to report).
//! - [`client`]: the options, events and errors of a client connection, its commands, the async
//!   [`Client`](client::Client) handle, and the [`Supervisor`](client::Supervisor) that decides
//!   everything a driver does besides moving bytes (replies, reconnect backoff, graceful
//!   disconnect, the first connection's deadline).
//! - [`endpoint`] and [`tls`]: `mqtt://` / `mqtts://` URLs and rustls configurations from PEM
//!   files.
//!
//! # Example
//!
//! A router whose connections are plain channels, as a test or a new adapter would start:
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Instant;
//!
//! use bytes::Bytes;
//! use mqtt_adapter::broker::{ConnCommand, ConnSink, ConnState, Router};
//! use mqtt_core::broker::{Broker, BrokerConfig, PeerInfo};
//!
//! struct Sink(mpsc::Sender<ConnCommand>);
//! impl ConnSink for Sink {
//!     fn write(&self, bytes: Bytes, payload: Bytes) {
//!         let _ = self.0.send(ConnCommand::Write { bytes, payload });
//!     }
//!     fn close(&self) {
//!         let _ = self.0.send(ConnCommand::Close);
//!     }
//! }
//!
//! let now = Instant::now();
//! let mut router = Router::new(Broker::new(BrokerConfig::default()));
//! let (tx, rx) = mpsc::channel();
//! let peer = PeerInfo { addr: None, tls: false };
//! let conn = router.accept(now, peer, |_| Sink(tx));
//! let mut state = ConnState::new(conn, router.broker().decode_limits(), 1 << 20);
//! // A 3.1.1 CONNECT from "c" with a 60 s keep alive.
//! state.rx.extend_from_slice(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c");
//! while let Some(report) = state.decode() {
//!     router.handle(now, report);
//! }
//! router.drain(now);
//! // CONNACK: accepted, no session present.
//! match rx.try_recv() {
//!     Ok(ConnCommand::Write { bytes, .. }) => assert_eq!(&bytes[..], b"\x20\x02\x00\x00"),
//!     other => panic!("{other:?}"),
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod broker;
pub mod client;
pub mod endpoint;
pub mod tls;

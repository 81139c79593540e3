//! Tokio adapter for `mqtt-core`: the sans-IO MQTT broker served over TCP and TLS sockets, and
//! the sans-IO MQTT client driven over `mqtt://` and `mqtts://` connections.
//!
//! `mqtt-core` holds the protocol; this crate only moves bytes and time in and out of it.
//!
//! # Data flow
//!
//! ```text
//!  listener tasks (TCP, TLS)                 router task                     connection tasks
//!  accept ──► Input::Accept ─────────┐      owns mqtt_core::broker::Broker    one per socket
//!                                    ▼                                        read_buf ──► codec::decode
//!                 bounded inbox (back-pressure on reads) ◄── Input::Packet ───┘  (version from its CONNECT)
//!                          │                                 Input::Written (batched, see below)
//!                          ▼                                 Input::Closed  (EOF, error)
//!      handle_packet / handle_written / handle_closed / handle_timeout
//!      drain poll_transmit ──► per-connection writer channel ──► write_vectored(header, payload)
//!      drain poll_event    ──► Close: flush, then close that socket; logs
//!      sleep_until(poll_timeout)
//! ```
//!
//! The client is one task owning `mqtt_core::client::Client`, the socket and both buffers; the
//! application talks to it through [`client::Client`] (commands on a bounded channel, each
//! answered on a oneshot) and [`client::Events`] (a bounded channel): see [`client`].
//!
//! Decoding runs on the connection tasks, in parallel; only routing runs on the one task that
//! owns the [`Broker`](mqtt_core::broker::Broker). A PUBLISH reaches every subscriber's task as
//! its encoded header and the one shared payload `Bytes`, written with vectored I/O.
//!
//! Memory stays bounded: the inbox is a bounded channel, so a busy router slows reading from
//! sockets; the writer channels are unbounded only because the core bounds what it emits per
//! connection (`Limits::max_pending_write_bytes`, in-flight windows, session queues) and every
//! task reports the bytes it wrote: every 64 KiB, and when its queue empties with a quarter of
//! that limit unreported, so that the router's count never stalls and a quiet connection does
//! not wake the router after each write. The router wakes the tasks it wrote to once it has
//! drained the broker, the first written to first: a delivery goes out before the PUBACK of
//! the PUBLISH it came from.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), mqtt_tokio::Error> {
//! use mqtt_core::broker::BrokerConfig;
//! use mqtt_tokio::broker::Server;
//!
//! let server = Server::new(BrokerConfig::default())
//!     .listen_tcp(([127, 0, 0, 1], 0).into())
//!     .start()
//!     .await?;
//! println!("listening on {}", server.local_addrs()[0].addr);
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`broker`]: [`Server`] (what to listen on), [`RunningServer`] (addresses, shutdown);
//!   inside, the listener loop, `broker/router.rs` (the task owning the broker) and
//!   `broker/connection.rs` (one socket's read / decode / write loop).
//! - [`client`]: [`client::Client`] (connect by URL, publish, subscribe, disconnect),
//!   [`client::Events`], [`client::ConnectOptions`]; inside, `client/driver.rs` (the one loop).
//! - [`transport`]: the byte streams (TCP, TLS), [`TlsConfig`] for listeners, and the client's
//!   URL parsing and TLS configuration.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod broker;
pub mod client;
pub mod transport;

pub use broker::{ListenAddr, RunningServer, Server};
pub use transport::TlsConfig;

/// What can go wrong starting or stopping a server (the same in every adapter).
pub use mqtt_adapter::broker::ServerError as Error;

//! Blocking adapter for `mqtt-core`: the sans-IO MQTT broker served over `std::net` sockets,
//! and the sans-IO MQTT client driven over `mqtt://` and `mqtts://` connections, with plain
//! threads and no async runtime.
//!
//! `mqtt-core` holds the protocol and `mqtt-adapter` what every runtime shares (the router,
//! each connection's state, the client's supervisor); this crate only moves bytes and time in
//! and out of them, and it is the same shape as `mqtt-tokio` with threads for tasks.
//!
//! # Data flow
//!
//! ```text
//!  listener threads (TCP, TLS)           router thread                    per socket: two threads
//!  accept ──► Input::Accept ───────┐    owns mqtt_adapter::broker::Router  reader: read(2) ──► chunk
//!                                  ▼                                        (one per credit)   │
//!      bounded sync_channel inbox (INBOX_CAPACITY) ◄── Input::Report ─── connection thread ◄─┘
//!                     │            (back-pressure on reads)   Packet, Written,  TLS decrypt, ConnState::decode
//!                     ▼                                       Closed            write_vectored, TLS encrypt
//!      handle_packet / handle_written / handle_closed / handle_timeout                ▲
//!      drain poll_transmit ──► per-connection channel (ConnCommand) ──────────────────┘
//!      drain poll_event    ──► Close: write, then close that socket; logs
//!      recv_timeout(poll_timeout)
//! ```
//!
//! The client is one driver thread owning `mqtt_adapter::client::Supervisor`, the socket's
//! writing side and both buffers, plus a reader thread per connection; the application talks
//! to it through [`client::Client`] (commands on a bounded channel, each answered on a
//! oneshot the calling thread blocks on) and [`client::Events`] (a bounded channel, an
//! iterator): see [`client`].
//!
//! The timer of each loop is the timeout of the one channel it waits on (`recv_timeout` until
//! `poll_timeout`): the design's "poll_timeout becomes set_read_timeout", moved from the
//! socket to the channel so that a command wakes the loop as promptly as bytes do.
//!
//! # Threads and their cost
//!
//! Per broker connection: a connection thread and a reader thread (two OS threads, a small
//! stack for the reader, one duplicated socket descriptor). Fine for thousands of
//! connections, not for hundreds of thousands: use `mqtt-tokio` there. Per client: a driver
//! thread and a reader thread. No thread is started per message; every blocking wait has a
//! timeout or ends when its channel or socket closes; shutdown waits a bounded time
//! ([`mqtt_adapter::broker::SHUTDOWN_GRACE`]) and leaves what remains to end on its own
//! (within `CLOSE_LINGER`).
//!
//! # Example
//!
//! ```no_run
//! # fn run() -> Result<(), mqtt_blocking::Error> {
//! use mqtt_core::broker::BrokerConfig;
//! use mqtt_blocking::broker::Server;
//!
//! let server = Server::new(BrokerConfig::default())
//!     .listen_tcp(([127, 0, 0, 1], 0).into())
//!     .start()?;
//! println!("listening on {}", server.local_addrs()[0].addr);
//! server.shutdown()?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`broker`]: [`Server`] (what to listen on), [`RunningServer`] (addresses, shutdown);
//!   inside, the listener threads, `broker/router.rs` (the thread owning the broker) and
//!   `broker/connection.rs` (one socket's reader and connection threads).
//! - [`client`]: [`client::Client`] (connect by URL, publish, subscribe, disconnect),
//!   [`client::Events`], [`client::ConnectOptions`]; inside, `client/driver.rs` (the one loop).
//! - [`transport`]: the byte streams (TCP, TLS driven by hand over a reader thread) and
//!   [`TlsConfig`] for listeners.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod broker;
pub mod client;
pub mod transport;

pub use broker::{ListenAddr, RunningServer, Server};
pub use transport::TlsConfig;

/// What can go wrong starting or stopping a server (the same in every adapter).
pub use mqtt_adapter::broker::ServerError as Error;

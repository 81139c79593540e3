//! smol adapter for `mqtt-core`: the sans-IO MQTT broker served over TCP and TLS sockets, and
//! the sans-IO MQTT client driven over `mqtt://` and `mqtts://` connections.
//!
//! `mqtt-core` holds the protocol and `mqtt-adapter` every decision shared by the runtimes;
//! this crate only moves bytes and time in and out of them, with smol's tasks, `async-io`'s
//! reactor and timers, and `futures-rustls`.
//!
//! # Data flow
//!
//! ```text
//!  listener tasks (TCP, TLS)                 router task                     connection tasks
//!  accept ──► Input::Accept ─────────┐      owns mqtt_core::broker::Broker    one per socket
//!                                    ▼                                        poll_read ──► codec::decode
//!                 bounded inbox (back-pressure on reads) ◄── Input::Report ───┘  (version from its CONNECT)
//!                          │                                 Report::Written (batched, see below)
//!                          ▼                                 Report::Closed  (EOF, error)
//!      handle_packet / handle_written / handle_closed / handle_timeout       Input::Ended (task over)
//!      drain poll_transmit ──► per-connection writer channel ──► poll_write_vectored(header, payload)
//!      drain poll_event    ──► Close: flush, then close that socket; logs
//!      Timer::at(poll_timeout)
//! ```
//!
//! smol has no `select!`: each loop waits in one hand-written `poll_fn` over an enum of outcomes
//! (`Step`), polling the socket's `poll_read` / `poll_write_vectored` / `poll_flush`, the
//! channels' `poll_recv` and an `async_io::Timer`. Every buffer and pending write lives in the
//! loop's state, never in a future, so an outcome that loses a turn loses nothing.
//!
//! The client is one task owning `mqtt_core::client::Client` (through
//! [`mqtt_adapter::client::Supervisor`]), the socket and both buffers; the application talks to
//! it through [`client::Client`] (commands on a bounded channel, each answered on a oneshot)
//! and [`client::Events`] (a bounded channel): see [`client`]. The channels are tokio's `sync`
//! ones, which need no tokio runtime.
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
//! Tasks run on smol's global executor (`smol::spawn`; `SMOL_THREADS` threads, default 1), so
//! the server and the client work under `smol::block_on`, inside another runtime, or from
//! plain threads awaiting them with any executor.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), mqtt_smol::Error> {
//! use mqtt_core::broker::BrokerConfig;
//! use mqtt_smol::broker::Server;
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
//! - [`transport`]: the byte streams (TCP, TLS), [`TlsConfig`] for listeners, and the bounded
//!   waits (`timeout_at`) the loops use.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod broker;
pub mod client;
pub mod transport;

pub use broker::{ListenAddr, RunningServer, Server};
pub use transport::TlsConfig;

/// What can go wrong starting or stopping a server (the same in every adapter).
pub use mqtt_adapter::broker::ServerError as Error;

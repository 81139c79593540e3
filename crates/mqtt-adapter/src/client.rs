//! The client side every runtime shares: the options, events and errors of a connection, the
//! commands a handle sends its driver, the async [`Client`] handle (tokio and smol; the
//! blocking adapter wraps the same commands), and the [`Supervisor`]: everything a driver
//! decides besides moving bytes.
//!
//! ```text
//!  Client (Clone) ── bounded command channel ──► driver (task or thread) ◄──► socket
//!   publish().await ◄── oneshot: completion ────┘  owns a Supervisor: the sans-IO
//!  Events::recv() ◄──── bounded event channel ───┘  mqtt_core::client::Client and both buffers
//! ```
//!
//! The channels are tokio's `sync` ones, which need no tokio runtime: they work under smol
//! and from plain threads (`blocking_send`, `blocking_recv`).
//!
//! # Back-pressure
//!
//! - Commands wait in a channel of [`ConnectOptions::request_queue`]. The driver takes the
//!   next one only when the core accepted the last one: a publish the core's queue has no room
//!   for waits for a completion, and the channel fills. [`Client::publish`] then waits for
//!   room; [`Client::try_publish`] returns [`Error::QueueFull`].
//! - Events wait in a channel of [`ConnectOptions::event_queue`]; while it is full the driver
//!   stops reading from the server. Read [`Events`] or drop it.
//!
//! # Lifetime
//!
//! The connection lasts until [`Client::disconnect`], until the server refuses a first
//! connection or the link is lost without `reconnect`, or until every [`Client`] handle and
//! the [`Events`] are dropped (then it disconnects gracefully, as `disconnect` does).
//! Requests still waiting then fail with [`Error::Closed`].

mod command;
mod handle;
mod supervisor;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use mqtt_core::client::{
    AckError, AckToken, ClientOptions, CommandError, PublishError, RequestError,
};
use mqtt_core::packet::AuthProperties;
use mqtt_core::{Publish, ReasonCode};

pub use command::{Command, Reply};
pub use handle::{channels, Client, DriverParts, Events, Runtime};
pub use mqtt_store::ClientStoreOptions;
pub use supervisor::{Due, Interest, Supervisor, READ_CHUNK};

/// How to connect: the server's URL, the protocol options, TLS, and the adapter's own bounds.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]`.
    pub url: String,
    /// Everything MQTT: version, client id, keep alive, session, limits, backoff numbers.
    pub client: ClientOptions,
    /// Certificates for `mqtts://`.
    pub tls: TlsOptions,
    /// Commands that may wait for the driver (default 64): the back-pressure bound.
    pub request_queue: usize,
    /// Events that may wait for the application (default 64); while full, the driver stops
    /// reading from the server.
    pub event_queue: usize,
    /// After a connection that was accepted is lost, connect again after the core's
    /// [`ClientOptions::backoff`], resuming the session (default `true`). A failed first
    /// connection is never retried: `connect` returns the error.
    pub reconnect: bool,
    /// Bounds the first connection (TCP, TLS and CONNACK), and opening the transport of each
    /// reconnection (default 10 s). The core's `connect_timeout` also bounds each CONNACK.
    pub connect_timeout: Duration,
    /// How long a graceful disconnect waits for messages in flight (default 5 s).
    pub drain_timeout: Duration,
    /// A durable store for the session (default none): the client starts from what it kept
    /// ([`mqtt_core::client::Client::recover`]), turns `client.persistence` on, and a
    /// persistent session's messages survive a restart of the process. Opening it is part
    /// of the first connection: a failure is `connect`'s [`Error::Store`].
    pub store: Option<ClientStoreOptions>,
}

impl ConnectOptions {
    /// Options for `url` with the defaults above.
    pub fn new(url: impl Into<String>, client: ClientOptions) -> Self {
        Self {
            url: url.into(),
            client,
            tls: TlsOptions::default(),
            request_queue: 64,
            event_queue: 64,
            reconnect: true,
            connect_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            store: None,
        }
    }
}

/// TLS for `mqtts://`. By default the server is checked against the system's roots.
#[derive(Debug, Default, Clone)]
pub struct TlsOptions {
    /// PEM file of the CA certificates to check the server against, instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM file with a client certificate chain, leaf first (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key (with `cert_file`).
    pub key_file: Option<PathBuf>,
    /// Skip the check of the server's certificate: for testing only.
    pub insecure: bool,
}

/// What the application hears, in order.
#[non_exhaustive]
#[derive(Debug)]
pub enum Event {
    /// The server accepted a connection (the first one, or a reconnection). With
    /// `session_present: false` the server kept nothing: subscribe again.
    Connected {
        /// Whether the server resumed the session.
        session_present: bool,
    },
    /// A message arrived.
    Message {
        /// The message, its topic filled in even when the server used a Topic Alias.
        publish: Publish,
        /// With `ClientOptions::manual_acks`, for QoS 1/2: hand it to `Client::ack`.
        ack: Option<AckToken>,
    },
    /// The connection ended.
    Disconnected {
        /// Why, as the core words it.
        reason: String,
        /// Whether the driver will connect again (after the backoff).
        will_reconnect: bool,
    },
    /// The server refused a reconnection (CONNACK with an error code); the driver tries
    /// again after the backoff. A refused first connection is [`Error::Refused`] instead.
    ConnectionRefused {
        /// The server's reason code.
        reason_code: ReasonCode,
    },
    /// The server sent AUTH (5.0 enhanced authentication): answer with `Client::auth`
    /// while the reason code is 0x18 (Continue authentication).
    Auth {
        /// 0x18 (Continue authentication) or 0x00 (Success).
        reason_code: ReasonCode,
        /// Authentication method and data.
        properties: AuthProperties,
    },
}

/// What can go wrong.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The transport failed (TCP connect, read or write).
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// TLS configuration, certificate files or handshake.
    #[error("TLS: {0}")]
    Tls(String),
    /// The URL is not `mqtt://host[:port]` or `mqtts://host[:port]`.
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    /// The server refused the first connection (CONNACK with this reason code).
    #[error("connection refused: {0}")]
    Refused(ReasonCode),
    /// The first connection did not complete within `connect_timeout`.
    #[error("timed out")]
    Timeout,
    /// `try_publish`: the request channel is full (and so is the core's queue).
    #[error("request queue full")]
    QueueFull,
    /// The connection is over for good: nothing more can be sent, and the answer to a request
    /// waiting for one will never come.
    #[error("connection closed")]
    Closed,
    /// The first connection ended before CONNACK, for this reason.
    #[error("{0}")]
    Disconnected(String),
    /// The core refused the message.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The core refused the SUBSCRIBE or UNSUBSCRIBE.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The core refused the acknowledgement.
    #[error(transparent)]
    Ack(#[from] AckError),
    /// The core refused a connect, auth or disconnect command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The session's store could not be opened.
    #[error(transparent)]
    Store(#[from] mqtt_store::StoreError),
}

//! The MQTT client over tokio: a [`Client`] handle that sends commands to one driver task, and
//! the [`Events`] that task reports.
//!
//! ```text
//!  Client (Clone) ── bounded command channel ──► driver task ◄──► socket (TCP or TLS)
//!   publish().await ◄── oneshot: completion ────┘  owns mqtt_core::client::Client,
//!  Events::recv() ◄──── bounded event channel ───┘  the read buffer and the write buffer
//! ```
//!
//! Every protocol rule (QoS flows, session resume, keep alive, flow control, backoff numbers)
//! lives in [`mqtt_core::client::Client`]; the driver (`client/driver.rs`) only moves bytes,
//! commands, events and time in and out of it.
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

mod driver;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use mqtt_core::client::{
    AckError, AckToken, ClientOptions, CommandError, PublishError, PublishRequest, RequestError,
};
use mqtt_core::packet::{AuthProperties, SubscribeProperties, Subscription, UnsubscribeProperties};
use mqtt_core::topic::TopicFilter;
use mqtt_core::{Publish, ReasonCode};
use tokio::sync::{mpsc, oneshot};

use crate::transport::Endpoint;
use driver::{Command, Driver};

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
    /// connection is never retried: [`Client::connect`] returns the error.
    pub reconnect: bool,
    /// Bounds the first connection (TCP, TLS and CONNACK), and opening the transport of each
    /// reconnection (default 10 s). The core's `connect_timeout` also bounds each CONNACK.
    pub connect_timeout: Duration,
    /// How long a graceful disconnect waits for messages in flight (default 5 s).
    pub drain_timeout: Duration,
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

/// A handle to one connection. Clones share it; each method is a command to its driver task.
///
/// Every method is cancel safe: dropping its future before the command is queued sends
/// nothing, and dropping it after only drops the answer (the session is unaffected: a
/// message already queued is still published).
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
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
        /// With `ClientOptions::manual_acks`, for QoS 1/2: hand it to [`Client::ack`].
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
    /// The server sent AUTH (5.0 enhanced authentication): answer with [`Client::auth`]
    /// while the reason code is 0x18 (Continue authentication).
    Auth {
        /// 0x18 (Continue authentication) or 0x00 (Success).
        reason_code: ReasonCode,
        /// Authentication method and data.
        properties: AuthProperties,
    },
}

/// The events of one connection, from a bounded channel. Read them, or drop this: while the
/// channel is full the driver reads nothing from the server (not even CONNACK or PINGRESP).
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the connection is over for good and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
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
    /// [`Client::try_publish`]: the request channel is full (and so is the core's queue).
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
}

impl Client {
    /// Connects and waits for the first CONNACK. `Ok` once the server accepted (the
    /// [`Event::Connected`] is also the first event); `Err` when it refused, the transport
    /// failed, or `connect_timeout` passed.
    pub async fn connect(options: ConnectOptions) -> Result<(Self, Events), Error> {
        let endpoint = Endpoint::parse(&options.url, &options.tls)?;
        let (commands_tx, commands) = mpsc::channel(options.request_queue.max(1));
        let (events_tx, events) = mpsc::channel(options.event_queue.max(1));
        let (ready_tx, ready) = oneshot::channel();
        let driver = Driver::new(options, endpoint, commands, events_tx, ready_tx);
        tokio::spawn(driver.run());
        ready.await.map_err(|_| Error::Closed)??;
        Ok((
            Self {
                commands: commands_tx,
            },
            Events { rx: events },
        ))
    }

    /// Publishes and waits for the end of the QoS flow: QoS 0 once its bytes are handed to
    /// the transport, QoS 1 on PUBACK, QoS 2 on PUBCOMP. Returns the final reason code
    /// (`Success`, 0x10 No matching subscribers, or the server's failure code). Waits for
    /// room while the core's queue is full; survives reconnections.
    pub async fn publish(&self, request: PublishRequest) -> Result<ReasonCode, Error> {
        let (done, answer) = oneshot::channel();
        self.send(Command::Publish {
            request,
            done: Some(done),
        })
        .await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Queues a message without waiting for room or completion. [`Error::QueueFull`] when
    /// the request channel is full, which happens once the core's queue is full too. A
    /// refusal by the core later (a message its limits rule out) is only logged.
    pub fn try_publish(&self, request: PublishRequest) -> Result<(), Error> {
        let command = Command::Publish {
            request,
            done: None,
        };
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Error::Closed,
        })
    }

    /// Subscribes and returns the SUBACK's reason codes, one per subscription (granted QoS
    /// or failure). Without a connection the SUBSCRIBE waits for the next one.
    pub async fn subscribe(
        &self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.request(|done| Command::Subscribe {
            subscriptions,
            properties,
            done,
        })
        .await?
    }

    /// Unsubscribes and returns the UNSUBACK's reason codes, one per filter (3.x: all
    /// `Success`).
    pub async fn unsubscribe(&self, filters: Vec<TopicFilter>) -> Result<Vec<ReasonCode>, Error> {
        self.unsubscribe_with(filters, UnsubscribeProperties::default())
            .await
    }

    /// [`Client::unsubscribe`] with 5.0 properties.
    pub async fn unsubscribe_with(
        &self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.request(|done| Command::Unsubscribe {
            filters,
            properties,
            done,
        })
        .await?
    }

    /// Acknowledges a message received with `manual_acks` (acknowledgements still go out in
    /// receive order).
    pub async fn ack(&self, token: AckToken) -> Result<(), Error> {
        self.request(|done| Command::Ack { token, done }).await?
    }

    /// Sends AUTH (5.0 enhanced authentication): 0x18 to answer an [`Event::Auth`], 0x19 to
    /// re-authenticate.
    pub async fn auth(
        &self,
        properties: AuthProperties,
        reason_code: ReasonCode,
    ) -> Result<(), Error> {
        self.request(|done| Command::Auth {
            properties,
            reason_code,
            done,
        })
        .await?
    }

    /// Disconnects gracefully with 0x00 (Normal disconnection): see
    /// [`Client::disconnect_with`].
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.disconnect_with(ReasonCode::Success, None).await
    }

    /// Disconnects gracefully: waits up to `drain_timeout` for the messages queued and in
    /// flight to complete, sends DISCONNECT with `reason_code` (5.0; 0x04 asks the server to
    /// publish the will) and, if given, a new Session Expiry Interval, then closes. Commands
    /// sent after this one fail with [`Error::Closed`].
    pub async fn disconnect_with(
        &self,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Error> {
        self.request(|done| Command::Disconnect {
            reason_code,
            session_expiry,
            done: Some(done),
        })
        .await?
    }

    /// Completes when the connection is over for good (the driver task ended).
    pub async fn closed(&self) {
        self.commands.closed().await;
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).await.map_err(|_| Error::Closed)
    }

    /// Sends the command `make` builds around a reply channel, and waits for the reply.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<Result<T, Error>, Error> {
        let (done, answer) = oneshot::channel();
        self.send(make(done)).await?;
        answer.await.map_err(|_| Error::Closed)
    }
}

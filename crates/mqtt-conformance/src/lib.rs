//! One MQTT behaviour suite over real sockets, run against every broker adapter with every
//! client adapter.
//!
//! ```text
//!  tests/matrix.rs: one #[test] per behaviour ──► every (broker adapter × client adapter) pair,
//!                                                 each pair on its own thread
//!        │
//!        ▼
//!  behaviours::all()  Behaviour { name, run: fn(&dyn BrokerAdapter, &dyn ClientAdapter) }
//!        │                                       │
//!        ▼                                       ▼
//!  harness::Ctx::start(broker, clients, config)  starts a broker on 127.0.0.1:0
//!        ├─ ctx.client(options)     a well-behaved client through the ClientAdapter
//!        ├─ ctx.severable(options)  the same behind a link the behaviour can cut (wills)
//!        └─ ctx.raw(..)             raw::RawPeer: std TcpStream + mqtt_core::codec, for what a
//!                                   well-behaved client cannot do (bad input, exact codes)
//! ```
//!
//! A behaviour is a plain synchronous function: it starts its own broker (so behaviours run
//! in parallel without sharing anything), talks to it, and returns `Err(Failure)` with a
//! clear message when the broker does not behave; it never panics. Every wait is bounded
//! ([`harness::WAIT`]), and every broker it starts is stopped when it returns.
//!
//! # Layout
//!
//! - [`BrokerAdapter`], [`RunningBroker`], [`ClientAdapter`], [`ClientHandle`], [`Event`]:
//!   what an adapter implements; [`Failure`] and the `ensure!` macros: how behaviours fail.
//! - [`adapters`]: one file per runtime (`tokio.rs` today) and the two lists,
//!   [`adapters::brokers`] and [`adapters::clients`], that the matrix runs.
//! - [`harness`]: the helpers behaviours are written with ([`harness::Ctx`],
//!   [`harness::Client`], the severable link).
//! - [`raw`]: the raw-socket peer.
//! - [`behaviours`]: the behaviours, one module per topic, and the registry
//!   [`behaviours::all`].

#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;
use std::panic::Location;
use std::time::Duration;

use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{SubscribeProperties, Subscription};
use mqtt_core::topic::TopicFilter;
use mqtt_core::{Publish, ReasonCode};

/// Fails the behaviour with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::Failure::new(format!($($arg)+)));
        }
    };
}

/// Fails the behaviour unless `left == right`, showing both and a formatted context.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($arg:tt)+) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    return Err($crate::Failure::new(format!(
                        "{}: expected {:?}, got {:?}",
                        format!($($arg)+),
                        right,
                        left
                    )));
                }
            }
        }
    };
}

/// Fails the behaviour with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)+) => {
        return Err($crate::Failure::new(format!($($arg)+)))
    };
}

pub mod adapters;
pub mod behaviours;
pub mod harness;
pub mod raw;

/// Why a behaviour failed: what was expected and what happened, and where it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    message: String,
    location: &'static Location<'static>,
}

impl Failure {
    /// A failure with `message`, located at the caller.
    #[track_caller]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: Location::caller(),
        }
    }

    /// The message alone.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same failure, its message prefixed with `context`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}:{})",
            self.message,
            self.location.file(),
            self.location.line()
        )
    }
}

impl std::error::Error for Failure {}

/// A way to run a broker: one per runtime adapter.
pub trait BrokerAdapter: Send + Sync {
    /// A short name for reports, such as `"tokio"`.
    fn name(&self) -> &'static str;

    /// Starts a broker with `config`, listening on plain TCP at 127.0.0.1 port 0, and returns
    /// once it accepts connections.
    fn start(&self, config: BrokerConfig) -> Result<Box<dyn RunningBroker>, Failure>;
}

/// A started broker. Dropping it stops it at once; [`RunningBroker::stop`] stops it
/// gracefully and waits (bounded) until it has.
pub trait RunningBroker: Send {
    /// The address it listens on.
    fn addr(&self) -> SocketAddr;

    /// Stops it gracefully, within a bounded time.
    fn stop(self: Box<Self>) -> Result<(), Failure>;
}

/// A way to run a client: one per runtime adapter.
pub trait ClientAdapter: Send + Sync {
    /// A short name for reports, such as `"tokio"`.
    fn name(&self) -> &'static str;

    /// Connects to `addr` over plain TCP with `options`, and returns once the broker accepted
    /// (CONNACK 0x00) or refused. The adapter must not reconnect by itself: when the
    /// connection is lost the handle reports [`Event::Disconnected`] and then
    /// [`Event::Closed`]. The [`Event::Connected`] of the first connection is consumed here:
    /// its `session_present` is in the returned [`Connection`].
    fn connect(&self, addr: SocketAddr, options: ClientOptions)
        -> Result<Connection, ConnectError>;
}

/// A connected client, as [`ClientAdapter::connect`] returns it.
pub struct Connection {
    /// The handle.
    pub client: Box<dyn ClientHandle>,
    /// The CONNACK's Session Present.
    pub session_present: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("session_present", &self.session_present)
            .finish_non_exhaustive()
    }
}

/// Why [`ClientAdapter::connect`] did not connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The broker answered CONNACK with this failure code (3.x codes mapped to 5.0 ones).
    Refused(ReasonCode),
    /// Anything else (transport, timeout), in words.
    Other(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(code) => write!(f, "refused: {code}"),
            Self::Other(why) => f.write_str(why),
        }
    }
}

/// One connected client, driven synchronously. Every method returns within a bounded time
/// (the adapter bounds its own waits by [`harness::WAIT`] or the given timeout).
///
/// Dropping the handle ends the connection; whether it sends DISCONNECT first is the
/// adapter's business, so behaviours that need a link lost without DISCONNECT cut it with
/// [`harness::Ctx::severable`] instead.
pub trait ClientHandle: Send {
    /// Publishes and waits for the end of the QoS flow (QoS 0: handed to the transport;
    /// QoS 1: PUBACK; QoS 2: PUBCOMP); returns the final reason code.
    fn publish(&mut self, request: PublishRequest) -> Result<ReasonCode, Failure>;

    /// Subscribes and returns the SUBACK's reason codes.
    fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Failure>;

    /// Unsubscribes and returns the UNSUBACK's reason codes.
    fn unsubscribe(&mut self, filters: Vec<TopicFilter>) -> Result<Vec<ReasonCode>, Failure>;

    /// The next event, or `None` if none came within `timeout`.
    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Failure>;

    /// Disconnects gracefully with `reason_code` (5.0) and, if given, a new Session Expiry
    /// Interval; returns once the connection is closed.
    fn disconnect(
        self: Box<Self>,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Failure>;
}

/// What a client hears, the same for every adapter.
// Events are moved once, from the adapter to the behaviour: boxing the message would only
// add an allocation.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A (re)connection was accepted.
    Connected {
        /// The CONNACK's Session Present.
        session_present: bool,
    },
    /// A message arrived (its topic resolved when the broker used a Topic Alias).
    Message(Publish),
    /// The connection ended.
    Disconnected {
        /// Why, in the adapter's words.
        reason: String,
    },
    /// The event stream is over: nothing more will come.
    Closed,
    /// Anything else, described.
    Other(String),
}

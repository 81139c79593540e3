//! What the client tells its application: [`ClientEvent`], and the ids and tokens that name
//! the requests and messages it is about.

use core::fmt;

use bytestring::ByteString;

use super::store::{ClientStoreOp, StoreTicket};
use crate::packet::{AuthProperties, ConnAck, Publish, ReasonCode};

/// Names one message given to [`super::Client::publish`]; its completion is reported as
/// [`ClientEvent::Published`] with the same id. Never reused within one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublishId(pub(crate) u64);

impl PublishId {
    /// The number behind the id, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for PublishId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "publish#{}", self.0)
    }
}

/// Names one SUBSCRIBE or UNSUBSCRIBE request; its answer is reported as
/// [`ClientEvent::Subscribed`] or [`ClientEvent::Unsubscribed`] with the same id. Never
/// reused within one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscribeId(pub(crate) u64);

impl SubscribeId {
    /// The number behind the id, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SubscribeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request#{}", self.0)
    }
}

/// The right to acknowledge one received QoS 1/2 message, in manual-ack mode: hand it back
/// to [`super::Client::ack`] once the message is processed. It cannot be cloned, so a message
/// is acknowledged at most once.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AckToken(pub(crate) u64);

/// Something the application must hear about.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted the connection (CONNACK 0x00).
    Connected {
        /// Whether the server resumed the session; when `false` the client's own session
        /// state was discarded [MQTT-3.2.2-5] and subscriptions must be made again.
        session_present: bool,
        /// The whole CONNACK, with the server's limits and assigned identifier.
        connack: ConnAck,
    },
    /// The server refused the connection (CONNACK with an error code). Close the transport.
    ConnectionRefused {
        /// Why, as the server said (3.x return codes mapped to their 5.0 equivalents).
        reason_code: ReasonCode,
        /// The server to use instead, with 0x9C (Use another server) or 0x9D (Server moved).
        server_reference: Option<ByteString>,
    },
    /// A message arrived. Its topic is always filled in, even when the server sent a Topic
    /// Alias in its place.
    Message {
        /// The message.
        publish: Publish,
        /// In manual-ack mode, for QoS 1/2: the token to acknowledge it with.
        ack: Option<AckToken>,
    },
    /// A publication finished: QoS 0 when its bytes were handed to the transport, QoS 1 on
    /// PUBACK, QoS 2 on PUBCOMP, or early with a failure (a PUBACK or PUBREC 0x80 or above,
    /// a message that no longer fits the server's limits, a QoS 0 message lost with the
    /// connection before it was written).
    Published {
        /// The id `publish` returned.
        id: PublishId,
        /// `Success` (or 0x10 No matching subscribers), or the failure.
        reason_code: ReasonCode,
    },
    /// The answer to a SUBSCRIBE.
    Subscribed {
        /// The id `subscribe` returned.
        id: SubscribeId,
        /// One per subscription, in order: the granted QoS or a failure.
        reason_codes: Vec<ReasonCode>,
    },
    /// The answer to an UNSUBSCRIBE.
    Unsubscribed {
        /// The id `unsubscribe` returned.
        id: SubscribeId,
        /// One per filter, in order; 3.x has none, and every filter reads `Success`.
        reason_codes: Vec<ReasonCode>,
    },
    /// The server sent AUTH (5.0 enhanced authentication): answer with
    /// [`super::Client::auth`] while the reason code is 0x18 (Continue authentication).
    Auth {
        /// 0x18 (Continue authentication) or 0x00 (Success, the end of a re-authentication).
        reason_code: ReasonCode,
        /// Authentication method and data.
        properties: AuthProperties,
    },
    /// Store operations to make durable, in order, as one batch (only with
    /// [`super::ClientOptions::persistence`] and a persistent session). Answer with
    /// [`super::Client::handle_stored`] once it is durable, or
    /// [`super::Client::handle_store_failed`]; what promises durability waits until then.
    /// This event never waits behind others.
    Store {
        /// The batch's number: batches are made durable in this order.
        ticket: StoreTicket,
        /// The operations.
        ops: Vec<ClientStoreOp>,
    },
    /// The connection is over. Write what [`super::Client::poll_transmit`] still gives (a
    /// DISCONNECT at most), then close the transport. The session stays for a reconnect.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

/// Why a connection ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server sent DISCONNECT (5.0).
    Server {
        /// Its reason code.
        reason_code: ReasonCode,
        /// Another server to use [MQTT-4.11], with 0x9C or 0x9D.
        server_reference: Option<ByteString>,
        /// Its Reason String, for logs.
        reason_string: Option<ByteString>,
    },
    /// The application called [`super::Client::disconnect`].
    Local {
        /// The reason code sent.
        reason_code: ReasonCode,
    },
    /// No answer to PINGREQ within the keep alive: the link is dead.
    KeepAliveTimeout,
    /// No CONNACK within `connect_timeout`.
    ConnectTimeout,
    /// The server broke the protocol. A 5.0 server was sent DISCONNECT with this code.
    ProtocolError(ReasonCode),
    /// The transport closed ([`super::Client::handle_disconnect`]).
    TransportClosed,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server { reason_code, .. } => write!(f, "server disconnected: {reason_code}"),
            Self::Local { reason_code } => write!(f, "disconnected: {reason_code}"),
            Self::KeepAliveTimeout => f.write_str("keep alive timeout: no answer to PINGREQ"),
            Self::ConnectTimeout => f.write_str("no CONNACK in time"),
            Self::ProtocolError(c) => write!(f, "server broke the protocol: {c}"),
            Self::TransportClosed => f.write_str("transport closed"),
        }
    }
}

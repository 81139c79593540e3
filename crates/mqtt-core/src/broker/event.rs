//! What the broker hands its caller: bytes to write, events to act on, questions to answer.

use core::fmt;
use core::net::SocketAddr;

use bytes::Bytes;
use bytestring::ByteString;

use crate::packet::{ProtocolVersion, ReasonCode};

/// A connection, as named by [`super::Broker::accept`]. Never reused within one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The number behind the id, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A map keyed by [`ConnId`], hashed with one multiplication instead of SipHash: the ids are
/// the broker's own counter, never a peer's choice, so there is nothing to flood. Looked up for
/// every packet and every transmit.
pub type ConnMap<V> = std::collections::HashMap<ConnId, V, BuildConnHasher>;

/// Builds [`ConnHasher`]s.
pub type BuildConnHasher = core::hash::BuildHasherDefault<ConnHasher>;

/// Fibonacci hashing of a [`ConnId`]'s number (other input is folded in byte by byte).
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnHasher(u64);

impl core::hash::Hasher for ConnHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What the adapter knows about a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The remote address, when there is one.
    pub addr: Option<SocketAddr>,
    /// Whether the connection is encrypted (TLS).
    pub tls: bool,
}

/// Bytes to write to one connection, in order: `bytes`, then `payload` (often empty).
///
/// A PUBLISH comes as its encoded header and its payload, so that the one payload `Bytes` is
/// shared by every subscriber: write both, e.g. with vectored I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection to write to.
    pub conn: ConnId,
    /// Encoded packet bytes.
    pub bytes: Bytes,
    /// Payload to write right after `bytes`.
    pub payload: Bytes,
}

impl Transmit {
    /// Total bytes to write.
    pub fn len(&self) -> usize {
        self.bytes.len() + self.payload.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Something the application must act on or answer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A client asks to connect; answer with [`super::Broker::handle_auth`]. Only asked when
    /// [`super::BrokerConfig::authenticate`] is on.
    Authenticate {
        /// The connection.
        conn: ConnId,
        /// What the client presented.
        request: AuthRequest,
    },
    /// A client is connected (CONNACK sent).
    Connected {
        /// The connection.
        conn: ConnId,
        /// Its client identifier (assigned by the broker if it sent none).
        client_id: ByteString,
        /// The protocol version it speaks.
        version: ProtocolVersion,
        /// Whether an existing session was resumed.
        session_present: bool,
    },
    /// Close this connection once the transmits already drained for it are written. The
    /// broker has forgotten it: no further input about `conn` is expected, except
    /// [`super::Broker::handle_closed`], which is then a no-op.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for logs; for v5 peers it was also sent in a DISCONNECT or CONNACK.
        reason: CloseReason,
    },
    /// Store these operations, in order, as one batch (only with
    /// [`super::BrokerConfig::persistence`]); then answer with
    /// [`super::Broker::handle_stored`]. Acknowledgements that promise durability wait for
    /// that answer.
    Store {
        /// The batch's number.
        ticket: super::store::StoreTicket,
        /// What changed.
        ops: Vec<super::store::StoreOp>,
        /// Transmits wait for this batch: make it durable without delay. A batch nothing
        /// waits for may ride along with the next one (its ticket is answered with it).
        urgent: bool,
    },
}

/// The credentials of a CONNECT, for the application to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Client identifier as sent (may be empty).
    pub client_id: ByteString,
    /// User Name.
    pub username: Option<ByteString>,
    /// Password.
    pub password: Option<Bytes>,
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Where the connection comes from.
    pub peer: PeerInfo,
}

/// The application's answer to [`BrokerEvent::Authenticate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Let the client in.
    Allow,
    /// Refuse with this reason code (3.x peers get the closest return code).
    Deny(ReasonCode),
}

/// Why the broker closes a connection.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    ClientDisconnected,
    /// The client broke the protocol; the reason code says how.
    ProtocolViolation(ReasonCode),
    /// No CONNECT in time.
    ConnectTimeout,
    /// Nothing received for 1.5 times the keep alive [MQTT-3.1.2-24].
    KeepAliveTimeout,
    /// Another connection took over the session [MQTT-3.1.4-3].
    SessionTakenOver,
    /// The CONNECT was refused.
    ConnectRefused(ReasonCode),
    /// The broker is shutting down.
    ServerShuttingDown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientDisconnected => f.write_str("client disconnected"),
            Self::ProtocolViolation(c) => write!(f, "protocol violation: {c}"),
            Self::ConnectTimeout => f.write_str("no CONNECT in time"),
            Self::KeepAliveTimeout => f.write_str("keep alive timeout"),
            Self::SessionTakenOver => f.write_str("session taken over"),
            Self::ConnectRefused(c) => write!(f, "connect refused: {c}"),
            Self::ServerShuttingDown => f.write_str("server shutting down"),
        }
    }
}

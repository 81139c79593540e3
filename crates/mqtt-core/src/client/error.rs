//! Commands the client refuses: faults of the caller, never of the peer.

use crate::codec::EncodeError;
use crate::packet::{QoS, ReasonCode};

/// Why [`super::Client::publish`] refused a message. Nothing was queued.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// `max_queued` messages already wait for a window slot: back-pressure. Wait for a
    /// [`super::ClientEvent::Published`] and try again.
    #[error("publish queue full")]
    QueueFull,
    /// The encoded PUBLISH is larger than the server's Maximum Packet Size [MQTT-3.2.2-15].
    #[error("PUBLISH of {size} bytes exceeds the server's maximum packet size of {max}")]
    PacketTooLarge {
        /// Size of the encoded PUBLISH.
        size: usize,
        /// The server's limit.
        max: u32,
    },
    /// The server's Maximum QoS is lower [MQTT-3.2.2-11].
    #[error("the server supports QoS up to {maximum:?}")]
    QoSNotSupported {
        /// The server's Maximum QoS.
        maximum: QoS,
    },
    /// The server does not support retained messages [MQTT-3.2.2-14].
    #[error("the server does not support retained messages")]
    RetainNotSupported,
    /// The topic is the empty placeholder: topic aliases are the client's business.
    #[error("empty topic name")]
    EmptyTopic,
    /// A client may not send Subscription Identifiers [MQTT-3.3.4-6].
    #[error("a client PUBLISH may not carry subscription identifiers")]
    SubscriptionIdentifier,
    /// The message cannot be encoded (a field too long).
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
}

/// Why [`super::Client::subscribe`] or [`super::Client::unsubscribe`] refused a request.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No subscription or filter was given [MQTT-3.8.3-2] [MQTT-3.10.3-2].
    #[error("no topic filters")]
    Empty,
    /// `max_requests` requests already wait for their acknowledgement.
    #[error("too many requests waiting for acknowledgement")]
    TooManyRequests,
    /// The encoded packet is larger than the server's Maximum Packet Size [MQTT-3.2.2-15].
    #[error("packet of {size} bytes exceeds the server's maximum packet size of {max}")]
    PacketTooLarge {
        /// Size of the encoded packet.
        size: usize,
        /// The server's limit.
        max: u32,
    },
    /// The request cannot be encoded.
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
}

/// Why [`super::Client::ack`] refused a token.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The token was not issued by this client, or its session was discarded (the server
    /// did not resume it) and there is nothing left to acknowledge.
    #[error("no such message waiting for acknowledgement")]
    NotPending,
}

/// Why `connect`, `auth` or `disconnect` was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `connect` while a connection is open or being opened.
    #[error("already connected")]
    AlreadyConnected,
    /// The command needs an open connection.
    #[error("not connected")]
    NotConnected,
    /// AUTH exists only in MQTT 5.0.
    #[error("AUTH needs MQTT 5.0")]
    NotV5,
    /// AUTH without an Authentication Method in CONNECT [MQTT-4.12.0-7].
    #[error("no authentication method was given in CONNECT")]
    NoAuthenticationMethod,
    /// The reason code is not one this packet may carry.
    #[error("reason code {0} not allowed here")]
    ReasonCodeNotAllowed(ReasonCode),
    /// A session that was to end with the connection cannot be given an expiry on the way
    /// out (spec 3.14.2.2.2).
    #[error("the session expiry was 0 in CONNECT and cannot be changed in DISCONNECT")]
    SessionExpiryWasZero,
    /// The packet cannot be encoded (a field of the options too long).
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
}

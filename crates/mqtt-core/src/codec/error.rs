//! Why a packet could not be decoded or encoded, and the reason code a receiver answers with.

use crate::packet::{PacketType, ReasonCode};
use crate::topic::TopicError;

/// A received packet broke a rule of the spec. The connection must be closed; in 5.0 the
/// receiver first sends [`DecodeError::reason_code`] in a DISCONNECT (or CONNACK) [MQTT-4.13.1-1].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet is larger than the configured maximum; found from the fixed header alone.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Total packet size announced by the fixed header.
        size: u64,
        /// The limit in force.
        max: u32,
    },
    /// Packet type 0, or 15 (AUTH) before MQTT 5.0.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// The low nibble of the fixed header is not what this packet type requires.
    #[error("invalid fixed header flags {flags:#06b} for {packet_type:?}")]
    InvalidFlags {
        /// The packet type.
        packet_type: PacketType,
        /// The flags received.
        flags: u8,
    },
    /// A Variable Byte Integer longer than four bytes or not in its shortest form.
    #[error("malformed variable byte integer")]
    MalformedVarInt,
    /// A field runs past the end of the packet, or the packet has bytes left over.
    #[error("lengths inside the packet disagree with its remaining length")]
    LengthMismatch,
    /// A string is not well-formed UTF-8 (this includes surrogates) [MQTT-1.5.4-1].
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A string contains U+0000 [MQTT-1.5.4-2].
    #[error("string contains U+0000")]
    NullCharacter,
    /// QoS 3 in a PUBLISH, a will or a subscription.
    #[error("QoS 3 is reserved")]
    InvalidQoS,
    /// DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2].
    #[error("DUP flag set on a QoS 0 message")]
    DupOnQoS0,
    /// A topic name with wildcards or otherwise invalid.
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicError),
    /// A zero-length topic name with no Topic Alias.
    #[error("empty topic name without a topic alias")]
    EmptyTopicWithoutAlias,
    /// A topic filter that breaks the wildcard or shared-subscription rules.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
    /// Packet identifier 0 [MQTT-2.2.1-3].
    #[error("packet identifier 0")]
    PacketIdZero,
    /// CONNECT with a protocol name other than `MQTT` / `MQIsdp`.
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// CONNECT with a protocol level we do not speak, or that does not match the name.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// A CONNECT flag rule is broken (reserved bit, will flags, password without user name).
    #[error("invalid CONNECT flags: {0}")]
    InvalidConnectFlags(&'static str),
    /// A CONNACK flags byte with reserved bits set [MQTT-3.2.2-1].
    #[error("invalid CONNACK flags")]
    InvalidConnAckFlags,
    /// A property that may appear once appeared twice.
    #[error("property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    /// A property id that is unknown or not allowed in this packet.
    #[error("property {0:#04x} not allowed in this packet")]
    PropertyNotAllowed(u8),
    /// A property with a value the spec forbids (zero Receive Maximum, a boolean of 2, ...).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// A reason code that is undefined or not allowed in this packet.
    #[error("reason code {0:#04x} not allowed in this packet")]
    InvalidReasonCode(u8),
    /// SUBSCRIBE or UNSUBSCRIBE without any topic filter.
    #[error("no topic filters")]
    NoTopicFilters,
    /// Subscription options with reserved bits or Retain Handling 3 [MQTT-3.8.3-5].
    #[error("invalid subscription options {0:#04x}")]
    InvalidSubscriptionOptions(u8),
    /// No Local on a shared subscription [MQTT-3.8.3-4].
    #[error("No Local set on a shared subscription")]
    NoLocalOnSharedSubscription,
}

impl DecodeError {
    /// The MQTT 5.0 reason code the receiver sends before it closes the connection.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::InvalidTopicName(_) => ReasonCode::TopicNameInvalid,
            Self::InvalidTopicFilter(_) => ReasonCode::TopicFilterInvalid,
            Self::UnsupportedProtocolVersion(_) | Self::InvalidProtocolName => {
                ReasonCode::UnsupportedProtocolVersion
            }
            // The spec calls these out as Protocol Errors rather than Malformed Packets.
            Self::EmptyTopicWithoutAlias
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue(_)
            | Self::NoTopicFilters
            | Self::NoLocalOnSharedSubscription
            | Self::PacketIdZero => ReasonCode::ProtocolError,
            Self::ReservedPacketType(_)
            | Self::InvalidFlags { .. }
            | Self::MalformedVarInt
            | Self::LengthMismatch
            | Self::InvalidUtf8
            | Self::NullCharacter
            | Self::InvalidQoS
            | Self::DupOnQoS0
            | Self::InvalidConnectFlags(_)
            | Self::InvalidConnAckFlags
            | Self::PropertyNotAllowed(_)
            | Self::InvalidReasonCode(_)
            | Self::InvalidSubscriptionOptions(_) => ReasonCode::MalformedPacket,
        }
    }
}

/// A packet that cannot be put on the wire in the requested version. This is a fault of the
/// caller, never of a peer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The packet would exceed the 268,435,455-byte remaining-length limit.
    #[error("packet too large to encode")]
    PacketTooLarge,
    /// A string or binary field longer than 65,535 bytes.
    #[error("field longer than 65535 bytes")]
    FieldTooLong,
    /// A PUBLISH whose QoS and packet identifier disagree.
    #[error("QoS 1 and 2 need a packet identifier, QoS 0 must have none")]
    PacketIdMismatch,
    /// The packet does not exist in this protocol version (AUTH before 5.0).
    #[error("{0:?} does not exist in this protocol version")]
    NotInVersion(PacketType),
    /// SUBSCRIBE or UNSUBSCRIBE without topic filters.
    #[error("no topic filters")]
    NoTopicFilters,
    /// A zero-length topic name is only valid with a 5.0 Topic Alias.
    #[error("empty topic name without a topic alias")]
    EmptyTopic,
    /// A value outside its range (a Subscription Identifier over 268,435,455, Maximum QoS 2).
    #[error("value out of range")]
    ValueOutOfRange,
}

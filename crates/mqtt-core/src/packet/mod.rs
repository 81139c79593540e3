//! The control packets of MQTT 3.1, 3.1.1 and 5.0 as plain values: one type for every version.
//!
//! Version 5.0 is the superset; fields it adds (properties, reason codes) are ignored when a
//! packet is encoded for an earlier version and come out empty or default when decoded from one.
//! Nothing here does I/O or knows the wire form: that is [`crate::codec`].

mod properties;
mod types;

use bytes::Bytes;
use bytestring::ByteString;

pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, PublishPropertiesBox, SubscribeProperties, UnsubscribeProperties,
    UserProperty, WillProperties,
};
pub use types::{PacketId, ProtocolVersion, QoS, ReasonCode, RetainHandling};

use crate::topic::{TopicFilter, TopicName};

/// Any MQTT control packet.
///
/// The large, rare packets are boxed so that the common ones (PUBLISH and the acks) stay small
/// to move around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT: client to server, first packet of a connection.
    Connect(Box<Connect>),
    /// CONNACK: server to client, the answer to CONNECT.
    ConnAck(Box<ConnAck>),
    /// PUBLISH: an application message, either direction.
    Publish(Publish),
    /// PUBACK: QoS 1 acknowledgement.
    PubAck(Ack),
    /// PUBREC: QoS 2, part 1.
    PubRec(Ack),
    /// PUBREL: QoS 2, part 2.
    PubRel(Ack),
    /// PUBCOMP: QoS 2, part 3.
    PubComp(Ack),
    /// SUBSCRIBE: client to server.
    Subscribe(Subscribe),
    /// SUBACK: server to client.
    SubAck(SubAck),
    /// UNSUBSCRIBE: client to server.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK: server to client.
    UnsubAck(UnsubAck),
    /// PINGREQ: client to server.
    PingReq,
    /// PINGRESP: server to client.
    PingResp,
    /// DISCONNECT: client to server, and in 5.0 also server to client.
    Disconnect(Box<Disconnect>),
    /// AUTH (5.0 only): enhanced authentication exchange.
    Auth(Box<Auth>),
}

// A broker moves every packet several times (into its inbox and out, into the state machine);
// at 128 bytes and less a move is a few vector stores, above it a call to `memcpy`, which was
// 13% of the broker thread's time in fan-in QoS 1 while DISCONNECT and AUTH were inline (128).
const _: () = assert!(core::mem::size_of::<Packet>() <= 96);

impl Packet {
    /// The control packet type (the high nibble of the first byte).
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }
}

/// The fifteen control packet types, with their wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// 1
    Connect = 1,
    /// 2
    ConnAck = 2,
    /// 3
    Publish = 3,
    /// 4
    PubAck = 4,
    /// 5
    PubRec = 5,
    /// 6
    PubRel = 6,
    /// 7
    PubComp = 7,
    /// 8
    Subscribe = 8,
    /// 9
    SubAck = 9,
    /// 10
    Unsubscribe = 10,
    /// 11
    UnsubAck = 11,
    /// 12
    PingReq = 12,
    /// 13
    PingResp = 13,
    /// 14
    Disconnect = 14,
    /// 15 (5.0 only)
    Auth = 15,
}

impl PacketType {
    /// The type for the high nibble of a fixed header; `None` for the reserved value 0.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 => Self::Auth,
            _ => return None,
        })
    }
}

/// CONNECT (spec 3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version the client asks for; every later packet is coded in it.
    pub protocol_version: ProtocolVersion,
    /// Clean Session (3.x) or Clean Start (5.0).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 turns the mechanism off.
    pub keep_alive: u16,
    /// Client Identifier; may be empty.
    pub client_id: ByteString,
    /// The will message, if any.
    pub will: Option<Will>,
    /// User Name.
    pub username: Option<ByteString>,
    /// Password: binary data.
    pub password: Option<Bytes>,
    /// Properties (5.0).
    pub properties: ConnectProperties,
}

impl Connect {
    /// A CONNECT with Clean Start, a 60 s keep alive and nothing else: no will, no
    /// credentials, no properties.
    pub fn new(protocol_version: ProtocolVersion, client_id: impl Into<ByteString>) -> Self {
        Self {
            protocol_version,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }
}

/// The will message of CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will Topic.
    pub topic: TopicName,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// Will Properties (5.0).
    pub properties: WillProperties,
}

/// CONNACK (spec 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// The Connect Reason Code; 3.x return codes map onto it (see the codec).
    pub reason_code: ReasonCode,
    /// Properties (5.0).
    pub properties: ConnAckProperties,
}

/// PUBLISH (spec 3.3).
///
/// `topic`, `payload` and the binary properties are slices of the received buffer: decoding
/// copies nothing, and cloning a `Publish` only bumps reference counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: this may be a re-delivery; only with QoS 1 or 2.
    pub dup: bool,
    /// The QoS level.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// Topic Name; empty only in 5.0 when a Topic Alias stands in for it.
    pub topic: TopicName,
    /// Packet Identifier: present exactly when QoS is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// Properties (5.0), stored out of line: most messages have none.
    pub properties: PublishPropertiesBox,
    /// The application message.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 message with no properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>) -> Self {
        Self {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            properties: PublishPropertiesBox::new(),
            payload: payload.into(),
        }
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP: one shape, four packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The Packet Identifier being acknowledged.
    pub packet_id: PacketId,
    /// Reason code (5.0); `Success` in earlier versions.
    pub reason_code: ReasonCode,
    /// Properties (5.0).
    pub properties: AckProperties,
}

impl Ack {
    /// A successful acknowledgement without properties.
    pub fn new(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }
}

/// The options of one subscription (spec 3.8.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local (5.0): do not send the client's own publications back.
    pub no_local: bool,
    /// Retain As Published (5.0): keep the RETAIN flag when forwarding.
    pub retain_as_published: bool,
    /// Retain Handling (5.0).
    pub retain_handling: RetainHandling,
}

/// One topic filter of a SUBSCRIBE, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The Topic Filter.
    pub filter: TopicFilter,
    /// The Subscription Options.
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE (spec 3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// The subscriptions: at least one [MQTT-3.8.3-2].
    pub subscriptions: Vec<Subscription>,
    /// Properties (5.0).
    pub properties: SubscribeProperties,
}

/// SUBACK (spec 3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet Identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// One code per subscription, in order: granted QoS or a failure.
    pub reason_codes: Vec<ReasonCode>,
    /// Properties (5.0).
    pub properties: AckProperties,
}

/// UNSUBSCRIBE (spec 3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// The topic filters: at least one [MQTT-3.10.3-2].
    pub filters: Vec<TopicFilter>,
    /// Properties (5.0).
    pub properties: UnsubscribeProperties,
}

/// UNSUBACK (spec 3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet Identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// One code per filter (5.0); empty in earlier versions, which have none.
    pub reason_codes: Vec<ReasonCode>,
    /// Properties (5.0).
    pub properties: AckProperties,
}

/// DISCONNECT (spec 3.14).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// Disconnect Reason Code (5.0); `Success` is "Normal disconnection".
    pub reason_code: ReasonCode,
    /// Properties (5.0).
    pub properties: DisconnectProperties,
}

/// AUTH (spec 3.15, 5.0 only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// Authenticate Reason Code.
    pub reason_code: ReasonCode,
    /// Properties.
    pub properties: AuthProperties,
}

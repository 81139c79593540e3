//! MQTT 5.0 properties, one typed set per packet so that a property can only sit where the
//! spec allows it (spec 2.2.2.2). Earlier versions carry none and ignore these on encode.

use core::fmt;
use core::num::{NonZeroU16, NonZeroU32};
use core::ops::{Deref, DerefMut};

use bytes::Bytes;
use bytestring::ByteString;

use super::types::QoS;
use crate::topic::TopicName;

/// One User Property: a name/value pair of UTF-8 strings; the order of pairs is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// The name.
    pub name: ByteString,
    /// The value.
    pub value: ByteString,
}

impl UserProperty {
    /// A pair from anything that converts into strings.
    pub fn new(name: impl Into<ByteString>, value: impl Into<ByteString>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Properties of CONNECT (spec 3.1.2.11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// Session Expiry Interval in seconds; absent means 0.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum: QoS 1/2 publications the client processes at once; zero is invalid.
    pub receive_maximum: Option<NonZeroU16>,
    /// Maximum Packet Size the client accepts; zero is invalid.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// Topic Alias Maximum the client accepts.
    pub topic_alias_maximum: Option<u16>,
    /// Request Response Information.
    pub request_response_information: Option<bool>,
    /// Request Problem Information.
    pub request_problem_information: Option<bool>,
    /// Authentication Method for enhanced authentication.
    pub authentication_method: Option<ByteString>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// Properties of the will message inside CONNECT (spec 3.1.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    /// Will Delay Interval in seconds.
    pub will_delay_interval: Option<u32>,
    /// Payload Format Indicator: `true` means UTF-8 text.
    pub payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Content Type.
    pub content_type: Option<ByteString>,
    /// Response Topic.
    pub response_topic: Option<TopicName>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// Properties of CONNACK (spec 3.2.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// Session Expiry Interval the server uses.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum of the server.
    pub receive_maximum: Option<NonZeroU16>,
    /// Maximum QoS the server supports: only 0 or 1 may be sent.
    pub maximum_qos: Option<QoS>,
    /// Retain Available.
    pub retain_available: Option<bool>,
    /// Maximum Packet Size the server accepts.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// Assigned Client Identifier.
    pub assigned_client_identifier: Option<ByteString>,
    /// Topic Alias Maximum the server accepts.
    pub topic_alias_maximum: Option<u16>,
    /// Reason String.
    pub reason_string: Option<ByteString>,
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
    /// Wildcard Subscription Available.
    pub wildcard_subscription_available: Option<bool>,
    /// Subscription Identifiers Available.
    pub subscription_identifiers_available: Option<bool>,
    /// Shared Subscription Available.
    pub shared_subscription_available: Option<bool>,
    /// Server Keep Alive: the keep alive the client must use.
    pub server_keep_alive: Option<u16>,
    /// Response Information.
    pub response_information: Option<ByteString>,
    /// Server Reference: another server to use.
    pub server_reference: Option<ByteString>,
    /// Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// Properties of PUBLISH (spec 3.3.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// Payload Format Indicator: `true` means UTF-8 text.
    pub payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias; zero is invalid.
    pub topic_alias: Option<NonZeroU16>,
    /// Response Topic.
    pub response_topic: Option<TopicName>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
    /// Subscription Identifiers of the subscriptions that matched (server to client only).
    pub subscription_identifiers: Vec<NonZeroU32>,
    /// Content Type.
    pub content_type: Option<ByteString>,
}

/// The properties of a [`Publish`](super::Publish), stored out of line.
///
/// Most messages carry no property, so a PUBLISH keeps its [`PublishProperties`] behind this
/// pointer-sized handle rather than inline: a message without properties allocates nothing
/// and stays small to move, decode and drop. It reads as a [`PublishProperties`] through
/// `Deref` (the empty set when nothing is stored), so `publish.properties.topic_alias` reads
/// as it would on the set itself. The first mutable access through `DerefMut` allocates the
/// set; [`Self::get_mut`] and [`Self::take`] never do.
///
/// Two handles are equal when the sets they read as are: an allocated empty set equals no
/// set at all.
#[derive(Clone, Default)]
pub struct PublishPropertiesBox(Option<Box<PublishProperties>>);

/// What a [`PublishPropertiesBox`] without a set reads as.
static NO_PUBLISH_PROPERTIES: PublishProperties = PublishProperties::EMPTY;

impl PublishPropertiesBox {
    /// No properties; allocates nothing.
    pub const fn new() -> Self {
        Self(None)
    }

    /// Whether no property is set; cheaper than asking the set when none is stored.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(PublishProperties::is_empty)
    }

    /// The stored set for changing in place, or `None` (without allocating) if there is none.
    #[inline]
    pub fn get_mut(&mut self) -> Option<&mut PublishProperties> {
        self.0.as_deref_mut()
    }

    /// Takes the set out, leaving no properties.
    #[inline]
    pub fn take(&mut self) -> PublishProperties {
        self.0.take().map(|p| *p).unwrap_or_default()
    }

    /// The set, by value.
    #[inline]
    pub fn into_inner(self) -> PublishProperties {
        self.0.map(|p| *p).unwrap_or_default()
    }
}

impl Deref for PublishPropertiesBox {
    type Target = PublishProperties;

    #[inline]
    fn deref(&self) -> &PublishProperties {
        self.0.as_deref().unwrap_or(&NO_PUBLISH_PROPERTIES)
    }
}

impl DerefMut for PublishPropertiesBox {
    /// Allocates the set if none is stored yet.
    #[inline]
    fn deref_mut(&mut self) -> &mut PublishProperties {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<PublishProperties> for PublishPropertiesBox {
    /// Stores `properties`; an empty set allocates nothing.
    #[inline]
    fn from(properties: PublishProperties) -> Self {
        if properties.is_empty() {
            Self(None)
        } else {
            Self(Some(Box::new(properties)))
        }
    }
}

impl From<Box<PublishProperties>> for PublishPropertiesBox {
    #[inline]
    fn from(properties: Box<PublishProperties>) -> Self {
        Self(Some(properties))
    }
}

impl From<PublishPropertiesBox> for PublishProperties {
    #[inline]
    fn from(properties: PublishPropertiesBox) -> Self {
        properties.into_inner()
    }
}

impl PartialEq for PublishPropertiesBox {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for PublishPropertiesBox {}

impl PartialEq<PublishProperties> for PublishPropertiesBox {
    fn eq(&self, other: &PublishProperties) -> bool {
        **self == *other
    }
}

impl fmt::Debug for PublishPropertiesBox {
    /// As the set it reads as.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK: the same two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// Reason String.
    pub reason_string: Option<ByteString>,
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// Properties of SUBSCRIBE (spec 3.8.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// Subscription Identifier, 1 to 268,435,455.
    pub subscription_identifier: Option<NonZeroU32>,
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// Properties of UNSUBSCRIBE (spec 3.10.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeProperties {
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// Properties of DISCONNECT (spec 3.14.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// Session Expiry Interval (client to server only).
    pub session_expiry_interval: Option<u32>,
    /// Reason String.
    pub reason_string: Option<ByteString>,
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
    /// Server Reference (server to client only).
    pub server_reference: Option<ByteString>,
}

/// Properties of AUTH (spec 3.15.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// Reason String.
    pub reason_string: Option<ByteString>,
    /// User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

impl ConnectProperties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl PublishProperties {
    /// The set with no property: what [`Default::default`] returns, usable in `const` and
    /// `static` items.
    pub const EMPTY: Self = Self {
        payload_format_indicator: None,
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
        subscription_identifiers: Vec::new(),
        content_type: None,
    };

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
            && self.subscription_identifiers.is_empty()
            && self.content_type.is_none()
    }
}

impl AckProperties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

//! MQTT 5.0 properties on the wire (spec 2.2.2): a length, then identifier/value pairs.
//!
//! Each packet's property set says once which identifiers it accepts (`apply`) and once what
//! it holds (`visit`); measuring and writing both walk `visit`, so they cannot disagree.

use core::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{field_len, put_binary, put_varint, varint_len, Reader, VARINT_MAX};
use crate::packet::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, QoS, SubscribeProperties, UnsubscribeProperties, UserProperty,
    WillProperties,
};
use crate::topic::TopicName;

/// Property identifiers (spec 2.2.2.2, table 2-4).
mod id {
    pub(super) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(super) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(super) const CONTENT_TYPE: u8 = 0x03;
    pub(super) const RESPONSE_TOPIC: u8 = 0x08;
    pub(super) const CORRELATION_DATA: u8 = 0x09;
    pub(super) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(super) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(super) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(super) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(super) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(super) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(super) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(super) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(super) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(super) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(super) const SERVER_REFERENCE: u8 = 0x1C;
    pub(super) const REASON_STRING: u8 = 0x1F;
    pub(super) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(super) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(super) const TOPIC_ALIAS: u8 = 0x23;
    pub(super) const MAXIMUM_QOS: u8 = 0x24;
    pub(super) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(super) const USER_PROPERTY: u8 = 0x26;
    pub(super) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(super) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(super) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub(super) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}
use id::*;

/// A packet's property set.
pub(crate) trait PropertySet: Default {
    /// Decodes the value of property `id` from `r` into the set, or refuses the property.
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError>;
    /// Shows every property held to `sink`, in wire order.
    fn visit<S: Sink>(&self, sink: &mut S);
}

/// Reads a property length and the properties it covers.
pub(crate) fn decode<P: PropertySet>(r: &mut Reader) -> Result<P, DecodeError> {
    let mut props = P::default();
    decode_into(r, &mut props)?;
    Ok(props)
}

/// [`decode`] straight into a new box: for a large set, which is then never moved.
pub(crate) fn decode_boxed<P: PropertySet>(r: &mut Reader) -> Result<Box<P>, DecodeError> {
    let mut props = Box::<P>::default();
    decode_into(r, &mut *props)?;
    Ok(props)
}

fn decode_into<P: PropertySet>(r: &mut Reader, props: &mut P) -> Result<(), DecodeError> {
    let len = r.short_varint()?;
    if len == 0 {
        return Ok(());
    }
    let mut pr = r.section(len as usize)?;
    while !pr.is_empty() {
        // Identifiers are Variable Byte Integers, though all defined ones fit in one byte.
        let id = pr.short_varint()?;
        let id = u8::try_from(id).map_err(|_| DecodeError::PropertyNotAllowed(0xFF))?;
        props.apply(id, &mut pr)?;
    }
    Ok(())
}

/// Size of the properties without their length prefix.
#[inline]
pub(crate) fn measure<P: PropertySet>(props: &P) -> Result<usize, EncodeError> {
    let mut m = Measure { len: 0, err: None };
    props.visit(&mut m);
    match m.err {
        Some(err) => Err(err),
        None if m.len > VARINT_MAX as usize => Err(EncodeError::PacketTooLarge),
        None => Ok(m.len),
    }
}

/// Size of the properties with their length prefix.
pub(crate) fn wire_len(inner: usize) -> usize {
    varint_len(inner as u32) + inner
}

/// Writes the length prefix (`inner`, from [`measure`]) and the properties.
#[inline]
pub(crate) fn write<P: PropertySet>(props: &P, inner: usize, out: &mut BytesMut) {
    put_varint(out, inner as u32);
    props.visit(&mut Write(out));
}

/// What a property set is shown to: something that measures or something that writes.
pub(crate) trait Sink {
    fn byte(&mut self, id: u8, v: u8);
    fn two(&mut self, id: u8, v: u16);
    fn four(&mut self, id: u8, v: u32);
    fn varint(&mut self, id: u8, v: u32);
    /// A string or binary data: both are length-prefixed bytes.
    fn data(&mut self, id: u8, v: &[u8]);
    fn pair(&mut self, id: u8, name: &[u8], value: &[u8]);
}

struct Measure {
    len: usize,
    err: Option<EncodeError>,
}

impl Measure {
    fn field(&mut self, len: usize) -> usize {
        field_len(len).unwrap_or_else(|e| {
            self.err = Some(e);
            0
        })
    }
}

impl Sink for Measure {
    #[inline]
    fn byte(&mut self, _: u8, _: u8) {
        self.len += 2;
    }
    #[inline]
    fn two(&mut self, _: u8, _: u16) {
        self.len += 3;
    }
    #[inline]
    fn four(&mut self, _: u8, _: u32) {
        self.len += 5;
    }
    #[inline]
    fn varint(&mut self, _: u8, v: u32) {
        if v > VARINT_MAX {
            self.err = Some(EncodeError::ValueOutOfRange);
        }
        self.len += 1 + varint_len(v);
    }
    #[inline]
    fn data(&mut self, _: u8, v: &[u8]) {
        self.len += 1 + self.field(v.len());
    }
    #[inline]
    fn pair(&mut self, _: u8, name: &[u8], value: &[u8]) {
        self.len += 1 + self.field(name.len()) + self.field(value.len());
    }
}

struct Write<'a>(&'a mut BytesMut);

impl Sink for Write<'_> {
    #[inline]
    fn byte(&mut self, id: u8, v: u8) {
        self.0.put_u8(id);
        self.0.put_u8(v);
    }
    #[inline]
    fn two(&mut self, id: u8, v: u16) {
        self.0.put_u8(id);
        self.0.put_u16(v);
    }
    #[inline]
    fn four(&mut self, id: u8, v: u32) {
        self.0.put_u8(id);
        self.0.put_u32(v);
    }
    #[inline]
    fn varint(&mut self, id: u8, v: u32) {
        self.0.put_u8(id);
        put_varint(self.0, v);
    }
    #[inline]
    fn data(&mut self, id: u8, v: &[u8]) {
        self.0.put_u8(id);
        put_binary(self.0, v);
    }
    #[inline]
    fn pair(&mut self, id: u8, name: &[u8], value: &[u8]) {
        self.0.put_u8(id);
        put_binary(self.0, name);
        put_binary(self.0, value);
    }
}

// ---- decoding helpers ----

/// Stores a property that may appear only once; a second one is a Protocol Error (each
/// property's description in spec 3.x says so).
fn once<T>(slot: &mut Option<T>, id: u8, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

/// A Byte property that is a boolean: any value but 0 or 1 is a Protocol Error.
fn flag(r: &mut Reader, id: u8) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

fn non_zero_u16(r: &mut Reader, id: u8) -> Result<NonZeroU16, DecodeError> {
    NonZeroU16::new(r.u16()?).ok_or(DecodeError::InvalidPropertyValue(id))
}

fn non_zero_u32(r: &mut Reader, id: u8) -> Result<NonZeroU32, DecodeError> {
    NonZeroU32::new(r.u32()?).ok_or(DecodeError::InvalidPropertyValue(id))
}

fn user_property(r: &mut Reader) -> Result<UserProperty, DecodeError> {
    Ok(UserProperty {
        name: r.string()?,
        value: r.string()?,
    })
}

/// [MQTT-3.3.2-14] a Response Topic has no wildcards (the same holds in Will Properties,
/// spec 3.1.3.2.5).
fn response_topic(r: &mut Reader, id: u8) -> Result<TopicName, DecodeError> {
    TopicName::try_from(r.string()?).map_err(|_| DecodeError::InvalidPropertyValue(id))
}

/// [MQTT-3.8.2-1] a Subscription Identifier of 0 is a Protocol Error.
fn subscription_identifier(r: &mut Reader, id: u8) -> Result<NonZeroU32, DecodeError> {
    NonZeroU32::new(r.varint()?).ok_or(DecodeError::InvalidPropertyValue(id))
}

#[inline]
fn flag_sink<S: Sink>(sink: &mut S, id: u8, v: Option<bool>) {
    if let Some(v) = v {
        sink.byte(id, u8::from(v));
    }
}

#[inline]
fn users<S: Sink>(sink: &mut S, users: &[UserProperty]) {
    for u in users {
        sink.pair(USER_PROPERTY, u.name.as_bytes(), u.value.as_bytes());
    }
}

#[inline]
fn data<S: Sink>(sink: &mut S, id: u8, v: Option<&[u8]>) {
    if let Some(v) = v {
        sink.data(id, v);
    }
}

// ---- the property sets ----

impl PropertySet for ConnectProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            SESSION_EXPIRY_INTERVAL => once(&mut self.session_expiry_interval, id, r.u32()?),
            // Receive Maximum and Maximum Packet Size of 0 are Protocol Errors (spec 3.1.2.11.3,
            // 3.1.2.11.4).
            RECEIVE_MAXIMUM => once(&mut self.receive_maximum, id, non_zero_u16(r, id)?),
            MAXIMUM_PACKET_SIZE => once(&mut self.maximum_packet_size, id, non_zero_u32(r, id)?),
            TOPIC_ALIAS_MAXIMUM => once(&mut self.topic_alias_maximum, id, r.u16()?),
            REQUEST_RESPONSE_INFORMATION => {
                once(&mut self.request_response_information, id, flag(r, id)?)
            }
            REQUEST_PROBLEM_INFORMATION => {
                once(&mut self.request_problem_information, id, flag(r, id)?)
            }
            AUTHENTICATION_METHOD => once(&mut self.authentication_method, id, r.string()?),
            AUTHENTICATION_DATA => once(&mut self.authentication_data, id, r.binary()?),
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(v) = self.session_expiry_interval {
            s.four(SESSION_EXPIRY_INTERVAL, v);
        }
        data(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref().map(str::as_bytes),
        );
        data(s, AUTHENTICATION_DATA, self.authentication_data.as_deref());
        flag_sink(
            s,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        flag_sink(
            s,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        if let Some(v) = self.receive_maximum {
            s.two(RECEIVE_MAXIMUM, v.get());
        }
        if let Some(v) = self.topic_alias_maximum {
            s.two(TOPIC_ALIAS_MAXIMUM, v);
        }
        users(s, &self.user_properties);
        if let Some(v) = self.maximum_packet_size {
            s.four(MAXIMUM_PACKET_SIZE, v.get());
        }
    }
}

impl PropertySet for WillProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            WILL_DELAY_INTERVAL => once(&mut self.will_delay_interval, id, r.u32()?),
            PAYLOAD_FORMAT_INDICATOR => once(&mut self.payload_format_indicator, id, flag(r, id)?),
            MESSAGE_EXPIRY_INTERVAL => once(&mut self.message_expiry_interval, id, r.u32()?),
            CONTENT_TYPE => once(&mut self.content_type, id, r.string()?),
            RESPONSE_TOPIC => once(&mut self.response_topic, id, response_topic(r, id)?),
            CORRELATION_DATA => once(&mut self.correlation_data, id, r.binary()?),
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        flag_sink(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        if let Some(v) = self.message_expiry_interval {
            s.four(MESSAGE_EXPIRY_INTERVAL, v);
        }
        data(
            s,
            CONTENT_TYPE,
            self.content_type.as_deref().map(str::as_bytes),
        );
        data(
            s,
            RESPONSE_TOPIC,
            self.response_topic.as_deref().map(str::as_bytes),
        );
        data(s, CORRELATION_DATA, self.correlation_data.as_deref());
        if let Some(v) = self.will_delay_interval {
            s.four(WILL_DELAY_INTERVAL, v);
        }
        users(s, &self.user_properties);
    }
}

impl PropertySet for ConnAckProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            SESSION_EXPIRY_INTERVAL => once(&mut self.session_expiry_interval, id, r.u32()?),
            RECEIVE_MAXIMUM => once(&mut self.receive_maximum, id, non_zero_u16(r, id)?),
            // Maximum QoS is 0 or 1; 2 is what its absence means (spec 3.2.2.3.4).
            MAXIMUM_QOS => {
                let qos = match r.u8()? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(DecodeError::InvalidPropertyValue(id)),
                };
                once(&mut self.maximum_qos, id, qos)
            }
            RETAIN_AVAILABLE => once(&mut self.retain_available, id, flag(r, id)?),
            MAXIMUM_PACKET_SIZE => once(&mut self.maximum_packet_size, id, non_zero_u32(r, id)?),
            ASSIGNED_CLIENT_IDENTIFIER => {
                once(&mut self.assigned_client_identifier, id, r.string()?)
            }
            TOPIC_ALIAS_MAXIMUM => once(&mut self.topic_alias_maximum, id, r.u16()?),
            REASON_STRING => once(&mut self.reason_string, id, r.string()?),
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                once(&mut self.wildcard_subscription_available, id, flag(r, id)?)
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => once(
                &mut self.subscription_identifiers_available,
                id,
                flag(r, id)?,
            ),
            SHARED_SUBSCRIPTION_AVAILABLE => {
                once(&mut self.shared_subscription_available, id, flag(r, id)?)
            }
            SERVER_KEEP_ALIVE => once(&mut self.server_keep_alive, id, r.u16()?),
            RESPONSE_INFORMATION => once(&mut self.response_information, id, r.string()?),
            SERVER_REFERENCE => once(&mut self.server_reference, id, r.string()?),
            AUTHENTICATION_METHOD => once(&mut self.authentication_method, id, r.string()?),
            AUTHENTICATION_DATA => once(&mut self.authentication_data, id, r.binary()?),
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(v) = self.session_expiry_interval {
            s.four(SESSION_EXPIRY_INTERVAL, v);
        }
        data(
            s,
            ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier
                .as_deref()
                .map(str::as_bytes),
        );
        if let Some(v) = self.server_keep_alive {
            s.two(SERVER_KEEP_ALIVE, v);
        }
        data(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref().map(str::as_bytes),
        );
        data(s, AUTHENTICATION_DATA, self.authentication_data.as_deref());
        data(
            s,
            RESPONSE_INFORMATION,
            self.response_information.as_deref().map(str::as_bytes),
        );
        data(
            s,
            SERVER_REFERENCE,
            self.server_reference.as_deref().map(str::as_bytes),
        );
        data(
            s,
            REASON_STRING,
            self.reason_string.as_deref().map(str::as_bytes),
        );
        if let Some(v) = self.receive_maximum {
            s.two(RECEIVE_MAXIMUM, v.get());
        }
        if let Some(v) = self.topic_alias_maximum {
            s.two(TOPIC_ALIAS_MAXIMUM, v);
        }
        if let Some(v) = self.maximum_qos {
            s.byte(MAXIMUM_QOS, v.as_u8());
        }
        flag_sink(s, RETAIN_AVAILABLE, self.retain_available);
        users(s, &self.user_properties);
        if let Some(v) = self.maximum_packet_size {
            s.four(MAXIMUM_PACKET_SIZE, v.get());
        }
        flag_sink(
            s,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        flag_sink(
            s,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        flag_sink(
            s,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
    }
}

impl PropertySet for PublishProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            PAYLOAD_FORMAT_INDICATOR => once(&mut self.payload_format_indicator, id, flag(r, id)?),
            MESSAGE_EXPIRY_INTERVAL => once(&mut self.message_expiry_interval, id, r.u32()?),
            // [MQTT-3.3.2-8] a Topic Alias of 0 is a Protocol Error.
            TOPIC_ALIAS => once(&mut self.topic_alias, id, non_zero_u16(r, id)?),
            RESPONSE_TOPIC => once(&mut self.response_topic, id, response_topic(r, id)?),
            CORRELATION_DATA => once(&mut self.correlation_data, id, r.binary()?),
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            // A PUBLISH may carry several, one per matching subscription (spec 3.3.2.3.8).
            SUBSCRIPTION_IDENTIFIER => {
                let v = subscription_identifier(r, id)?;
                self.subscription_identifiers.push(v);
                Ok(())
            }
            CONTENT_TYPE => once(&mut self.content_type, id, r.string()?),
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        flag_sink(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        if let Some(v) = self.message_expiry_interval {
            s.four(MESSAGE_EXPIRY_INTERVAL, v);
        }
        data(
            s,
            CONTENT_TYPE,
            self.content_type.as_deref().map(str::as_bytes),
        );
        data(
            s,
            RESPONSE_TOPIC,
            self.response_topic.as_deref().map(str::as_bytes),
        );
        data(s, CORRELATION_DATA, self.correlation_data.as_deref());
        for v in &self.subscription_identifiers {
            s.varint(SUBSCRIPTION_IDENTIFIER, v.get());
        }
        if let Some(v) = self.topic_alias {
            s.two(TOPIC_ALIAS, v.get());
        }
        users(s, &self.user_properties);
    }
}

impl PropertySet for AckProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            REASON_STRING => once(&mut self.reason_string, id, r.string()?),
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        data(
            s,
            REASON_STRING,
            self.reason_string.as_deref().map(str::as_bytes),
        );
        users(s, &self.user_properties);
    }
}

impl PropertySet for SubscribeProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            SUBSCRIPTION_IDENTIFIER => {
                let v = subscription_identifier(r, id)?;
                once(&mut self.subscription_identifier, id, v)
            }
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(v) = self.subscription_identifier {
            s.varint(SUBSCRIPTION_IDENTIFIER, v.get());
        }
        users(s, &self.user_properties);
    }
}

impl PropertySet for UnsubscribeProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        users(s, &self.user_properties);
    }
}

impl PropertySet for DisconnectProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            SESSION_EXPIRY_INTERVAL => once(&mut self.session_expiry_interval, id, r.u32()?),
            REASON_STRING => once(&mut self.reason_string, id, r.string()?),
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            SERVER_REFERENCE => once(&mut self.server_reference, id, r.string()?),
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(v) = self.session_expiry_interval {
            s.four(SESSION_EXPIRY_INTERVAL, v);
        }
        data(
            s,
            SERVER_REFERENCE,
            self.server_reference.as_deref().map(str::as_bytes),
        );
        data(
            s,
            REASON_STRING,
            self.reason_string.as_deref().map(str::as_bytes),
        );
        users(s, &self.user_properties);
    }
}

impl PropertySet for AuthProperties {
    fn apply(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            AUTHENTICATION_METHOD => once(&mut self.authentication_method, id, r.string()?),
            AUTHENTICATION_DATA => once(&mut self.authentication_data, id, r.binary()?),
            REASON_STRING => once(&mut self.reason_string, id, r.string()?),
            USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            _ => Err(DecodeError::PropertyNotAllowed(id)),
        }
    }

    fn visit<S: Sink>(&self, s: &mut S) {
        data(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref().map(str::as_bytes),
        );
        data(s, AUTHENTICATION_DATA, self.authentication_data.as_deref());
        data(
            s,
            REASON_STRING,
            self.reason_string.as_deref().map(str::as_bytes),
        );
        users(s, &self.user_properties);
    }
}

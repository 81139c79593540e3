//! PUBLISH. The header (fixed header, topic, packet id, properties) is encoded apart from the
//! payload so that fan-out can write one header per wire form and share the payload `Bytes`.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{field_len, put_binary, put_varint, varint_len, Reader, VARINT_MAX};
use super::properties;
use crate::packet::{PacketType, ProtocolVersion, Publish, PublishProperties, QoS};
use crate::topic::TopicName;

const DUP: u8 = 0b1000;
const RETAIN: u8 = 0b0001;

#[inline]
pub(super) fn decode(
    flags: u8,
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    // [MQTT-3.3.1-4] QoS 3 is malformed.
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let dup = flags & DUP != 0;
    // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::DupOnQoS0);
    }
    let topic = r.string()?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.packet_id()?)
    };
    // Most messages carry no properties: skip the property decoder, and its large return
    // value, for a property length of 0.
    let properties: PublishProperties = if version.is_v5() && !r.zero_varint() {
        properties::decode(r)?
    } else {
        Default::default()
    };
    let topic = if topic.is_empty() && version.is_v5() {
        // A zero-length Topic Name without a Topic Alias is a Protocol Error (spec 3.3.2.1).
        if properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicWithoutAlias);
        }
        TopicName::empty()
    } else {
        // [MQTT-3.3.2-2] no wildcards in a Topic Name; [MQTT-4.7.3-1] not empty.
        TopicName::try_from(topic).map_err(DecodeError::InvalidTopicName)?
    };
    Ok(Publish {
        dup,
        qos,
        retain: flags & RETAIN != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

/// Writes everything of `publish` but its payload: fixed header, topic, packet identifier and
/// properties. The payload's bytes must follow; they are counted in the Remaining Length.
/// Returns the number of header bytes written.
#[inline]
pub fn encode_header(
    publish: &Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    write_header(publish, version, out, 0)
}

/// Writes the header, having reserved room for it and `extra` bytes more.
#[inline]
fn write_header(
    publish: &Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
    extra: usize,
) -> Result<usize, EncodeError> {
    if publish.qos == QoS::AtMostOnce && publish.packet_id.is_some()
        || publish.qos != QoS::AtMostOnce && publish.packet_id.is_none()
    {
        return Err(EncodeError::PacketIdMismatch);
    }
    if publish.topic.is_empty() && !(version.is_v5() && publish.properties.topic_alias.is_some()) {
        return Err(EncodeError::EmptyTopic);
    }
    let mut remaining = field_len(publish.topic.len())?;
    if publish.packet_id.is_some() {
        remaining += 2;
    }
    // Most messages carry no properties: their length is the byte 0, with no walk over the
    // property set to measure or write them.
    let props = if !version.is_v5() {
        0
    } else if publish.properties.is_empty() {
        remaining += 1;
        0
    } else {
        let p = properties::measure(&publish.properties)?;
        remaining += properties::wire_len(p);
        p
    };
    remaining += publish.payload.len();
    if remaining > VARINT_MAX as usize {
        return Err(EncodeError::PacketTooLarge);
    }
    let header_len = 1 + varint_len(remaining as u32) + remaining - publish.payload.len();
    out.reserve(header_len + extra);
    let mut first = (PacketType::Publish as u8) << 4 | publish.qos.as_u8() << 1;
    // DUP is meaningless and forbidden on QoS 0 [MQTT-3.3.1-2].
    if publish.dup && publish.qos != QoS::AtMostOnce {
        first |= DUP;
    }
    if publish.retain {
        first |= RETAIN;
    }
    out.put_u8(first);
    put_varint(out, remaining as u32);
    put_binary(out, publish.topic.as_bytes());
    if let Some(id) = publish.packet_id {
        out.put_u16(id.get());
    }
    if version.is_v5() {
        if props == 0 {
            out.put_u8(0);
        } else {
            properties::write(&publish.properties, props, out);
        }
    }
    Ok(header_len)
}

/// Writes the whole PUBLISH, payload included.
#[inline]
pub(super) fn encode(
    publish: &Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    write_header(publish, version, out, publish.payload.len())?;
    out.put_slice(&publish.payload);
    Ok(())
}

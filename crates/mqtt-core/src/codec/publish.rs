//! PUBLISH. The header (fixed header, topic, packet id, properties) is encoded apart from the
//! payload so that fan-out can write one header per wire form and share the payload `Bytes`.

use core::num::NonZeroU16;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use bytestring::ByteString;

use super::primitives::{
    field_len, no_null, packet_id, put_binary, put_varint, utf8, varint_len, Cursor, Reader,
    VARINT_MAX,
};
use super::properties;
use crate::packet::{PacketType, ProtocolVersion, Publish, PublishPropertiesBox, QoS};
use crate::topic::TopicName;

const DUP: u8 = 0b1000;
const RETAIN: u8 = 0b0001;

/// Takes a PUBLISH without properties (the common case) off the front of `buf`, whose
/// first `len` bytes it fills, as two handles and no more: the topic and the payload.
///
/// `None`, with nothing consumed, for a PUBLISH with properties or too short to hold its
/// variable header: [`decode`] reads those, and finds the same faults in the same order.
#[inline]
pub(super) fn decode_split(
    flags: u8,
    buf: &mut BytesMut,
    header_len: usize,
    len: usize,
    version: ProtocolVersion,
) -> Option<Result<Publish, DecodeError>> {
    let body = buf.get(header_len..len)?;
    let mut c = Cursor::new(body);
    let topic_len = usize::from(c.u16().ok()?);
    let topic_at = header_len + 2;
    let topic = c.bytes(topic_len).ok()?;
    let (qos, dup, retain) = match fixed_header(flags) {
        Ok(flags) => flags,
        Err(e) => return Some(Err(e)),
    };
    let id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(c.u16().ok()?)
    };
    if version.is_v5() && !c.zero_varint() {
        return None;
    }
    let payload_at = len - c.remaining();
    // The packet is this function's from here on.
    if let Err(e) = no_null(topic) {
        return Some(Err(e));
    }
    let mut frame = buf.split_to(len).freeze();
    let topic = frame.slice(topic_at..topic_at + topic_len);
    // The payload is the frame's own handle. Cut it now: a handle moved right after it was
    // changed is read back before the change is stored, which stalls.
    frame.advance(payload_at);
    let publish = || {
        let topic = topic_name(utf8(topic)?, version, None)?;
        Ok(Publish {
            dup,
            qos,
            retain,
            topic,
            packet_id: id.map(packet_id).transpose()?,
            properties: PublishPropertiesBox::new(),
            payload: frame,
        })
    };
    Some(publish())
}

/// Decodes a PUBLISH whose body starts `body_at` bytes into `frame`; the payload is what
/// is left of `frame` after the variable header.
#[inline]
pub(super) fn decode(
    flags: u8,
    mut frame: Bytes,
    body_at: usize,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    let (qos, dup, retain) = fixed_header(flags)?;
    let mut r = Reader::at(&frame, body_at)?;
    let topic = r.string()?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.packet_id()?)
    };
    // Most messages carry no properties: skip the property decoder, and the allocation of
    // the set, for a property length of 0.
    let properties = if version.is_v5() && !r.zero_varint() {
        PublishPropertiesBox::from(properties::decode_boxed(&mut r)?)
    } else {
        PublishPropertiesBox::new()
    };
    // The payload is the rest of the body: the body's own handle, moved, not a new one.
    let header_len = r.position();
    let topic = topic_name(topic, version, properties.topic_alias)?;
    frame.advance(header_len);
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        properties,
        payload: frame,
    })
}

/// QoS, DUP and RETAIN from the flags of the fixed header.
#[inline]
fn fixed_header(flags: u8) -> Result<(QoS, bool, bool), DecodeError> {
    // [MQTT-3.3.1-4] QoS 3 is malformed.
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let dup = flags & DUP != 0;
    // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::DupOnQoS0);
    }
    Ok((qos, dup, flags & RETAIN != 0))
}

/// The Topic Name of a PUBLISH with the Topic Alias `alias`, from its string.
#[inline]
fn topic_name(
    topic: ByteString,
    version: ProtocolVersion,
    alias: Option<NonZeroU16>,
) -> Result<TopicName, DecodeError> {
    if topic.is_empty() && version.is_v5() {
        // A zero-length Topic Name without a Topic Alias is a Protocol Error (spec 3.3.2.1).
        if alias.is_none() {
            return Err(DecodeError::EmptyTopicWithoutAlias);
        }
        Ok(TopicName::empty())
    } else {
        // [MQTT-3.3.2-2] no wildcards in a Topic Name; [MQTT-4.7.3-1] not empty.
        TopicName::try_from(topic).map_err(DecodeError::InvalidTopicName)
    }
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
        let p = properties::measure(&*publish.properties)?;
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
            properties::write(&*publish.properties, props, out);
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

//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{field_len, put_binary, Cursor, Reader};
use super::properties;
use crate::packet::{
    ProtocolVersion, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};
use crate::topic::TopicFilter;

pub(super) fn decode_subscribe(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Subscribe, DecodeError> {
    // Built first and filled in place: moved whole at the end, a just-filled value is read
    // back before it is stored, which stalls.
    let mut s = Subscribe {
        packet_id: r.packet_id()?,
        subscriptions: Vec::new(),
        // Most SUBSCRIBEs carry no properties: a property length of 0 skips the decoder.
        properties: if version.is_v5() && !r.zero_varint() {
            properties::decode(r)?
        } else {
            Default::default()
        },
    };
    s.subscriptions
        .reserve_exact(count_subscriptions(r.cursor()));
    while !r.is_empty() {
        let filter = filter(r)?;
        let options = options(r.u8()?, version)?;
        // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
        if options.no_local && filter.shared().is_some() {
            return Err(DecodeError::NoLocalOnSharedSubscription);
        }
        s.subscriptions.push(Subscription { filter, options });
    }
    // [MQTT-3.8.3-3] (3.1.1) [MQTT-3.8.3-2] (5.0): at least one subscription.
    if s.subscriptions.is_empty() {
        return Err(DecodeError::NoTopicFilters);
    }
    Ok(s)
}

/// How many subscriptions the rest of a SUBSCRIBE holds, counted before any is decoded so
/// that the list is allocated once. Stops at the first that is cut short, which decoding
/// then refuses.
fn count_subscriptions(mut c: Cursor) -> usize {
    let mut n = 0;
    while let Ok(len) = c.u16() {
        if c.bytes(usize::from(len)).is_err() || c.u8().is_err() {
            break;
        }
        n += 1;
    }
    n
}

#[inline]
fn filter(r: &mut Reader) -> Result<TopicFilter, DecodeError> {
    // `string` has refused U+0000 already.
    TopicFilter::from_decoded(r.string()?).map_err(DecodeError::InvalidTopicFilter)
}

fn options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
    // [MQTT-3.8.3-4] (3.1.1): bits 7-2 are reserved. [MQTT-3.8.3-5] (5.0): bits 7-6 are
    // reserved and Retain Handling 3 is malformed.
    let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
    let invalid = || DecodeError::InvalidSubscriptionOptions(byte);
    if byte & reserved != 0 {
        return Err(invalid());
    }
    Ok(SubscriptionOptions {
        qos: QoS::from_u8(byte & 0b11).ok_or_else(invalid)?,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling: RetainHandling::from_u8((byte >> 4) & 0b11).ok_or_else(invalid)?,
    })
}

fn options_byte(o: &SubscriptionOptions, version: ProtocolVersion) -> u8 {
    let mut byte = o.qos.as_u8();
    if version.is_v5() {
        byte |= u8::from(o.no_local) << 2
            | u8::from(o.retain_as_published) << 3
            | (o.retain_handling as u8) << 4;
    }
    byte
}

pub(super) fn measure_subscribe(
    s: &Subscribe,
    version: ProtocolVersion,
) -> Result<(usize, usize), EncodeError> {
    if s.subscriptions.is_empty() {
        return Err(EncodeError::NoTopicFilters);
    }
    let mut len = 2;
    let props = if version.is_v5() {
        let p = properties::measure(&s.properties)?;
        len += properties::wire_len(p);
        p
    } else {
        0
    };
    for sub in &s.subscriptions {
        len += field_len(sub.filter.len())? + 1;
    }
    Ok((len, props))
}

pub(super) fn write_subscribe(
    s: &Subscribe,
    version: ProtocolVersion,
    props: usize,
    out: &mut BytesMut,
) {
    out.put_u16(s.packet_id.get());
    if version.is_v5() {
        properties::write(&s.properties, props, out);
    }
    for sub in &s.subscriptions {
        put_binary(out, sub.filter.as_bytes());
        out.put_u8(options_byte(&sub.options, version));
    }
}

pub(super) fn decode_suback(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        properties::decode(r)?
    } else {
        Default::default()
    };
    let mut reason_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = r.u8()?;
        let reason = if version.is_v5() {
            ReasonCode::from_u8(code).filter(|c| suback_allows(*c))
        } else {
            // 3.1.1 table 3.x: 0, 1, 2 or 0x80 (Failure).
            match code {
                0x00..=0x02 => ReasonCode::from_u8(code),
                0x80 => Some(ReasonCode::UnspecifiedError),
                _ => None,
            }
        };
        reason_codes.push(reason.ok_or(DecodeError::InvalidReasonCode(code))?);
    }
    Ok(SubAck {
        packet_id,
        reason_codes,
        properties,
    })
}

pub(super) fn measure_suback(
    s: &SubAck,
    version: ProtocolVersion,
) -> Result<(usize, usize), EncodeError> {
    let mut len = 2 + s.reason_codes.len();
    let props = if version.is_v5() {
        let p = properties::measure(&s.properties)?;
        len += properties::wire_len(p);
        p
    } else {
        0
    };
    Ok((len, props))
}

pub(super) fn write_suback(s: &SubAck, version: ProtocolVersion, props: usize, out: &mut BytesMut) {
    out.put_u16(s.packet_id.get());
    if version.is_v5() {
        properties::write(&s.properties, props, out);
        for code in &s.reason_codes {
            out.put_u8(code.as_u8());
        }
    } else {
        for code in &s.reason_codes {
            // 3.x knows only the granted QoS and a single failure code.
            out.put_u8(match code {
                ReasonCode::Success | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2 => {
                    code.as_u8()
                }
                _ => 0x80,
            });
        }
    }
}

pub(super) fn decode_unsubscribe(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        properties::decode(r)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(filter(r)?);
    }
    // [MQTT-3.10.3-2] at least one topic filter.
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

pub(super) fn measure_unsubscribe(
    u: &Unsubscribe,
    version: ProtocolVersion,
) -> Result<(usize, usize), EncodeError> {
    if u.filters.is_empty() {
        return Err(EncodeError::NoTopicFilters);
    }
    let mut len = 2;
    let props = if version.is_v5() {
        let p = properties::measure(&u.properties)?;
        len += properties::wire_len(p);
        p
    } else {
        0
    };
    for f in &u.filters {
        len += field_len(f.len())?;
    }
    Ok((len, props))
}

pub(super) fn write_unsubscribe(
    u: &Unsubscribe,
    version: ProtocolVersion,
    props: usize,
    out: &mut BytesMut,
) {
    out.put_u16(u.packet_id.get());
    if version.is_v5() {
        properties::write(&u.properties, props, out);
    }
    for f in &u.filters {
        put_binary(out, f.as_bytes());
    }
}

pub(super) fn decode_unsuback(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<UnsubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut ack = UnsubAck {
        packet_id,
        reason_codes: Vec::new(),
        properties: Default::default(),
    };
    if version.is_v5() {
        ack.properties = properties::decode(r)?;
        while !r.is_empty() {
            let code = r.u8()?;
            let reason = ReasonCode::from_u8(code)
                .filter(|c| unsuback_allows(*c))
                .ok_or(DecodeError::InvalidReasonCode(code))?;
            ack.reason_codes.push(reason);
        }
    }
    Ok(ack)
}

pub(super) fn measure_unsuback(
    u: &UnsubAck,
    version: ProtocolVersion,
) -> Result<(usize, usize), EncodeError> {
    if !version.is_v5() {
        return Ok((2, 0));
    }
    let props = properties::measure(&u.properties)?;
    Ok((
        2 + properties::wire_len(props) + u.reason_codes.len(),
        props,
    ))
}

pub(super) fn write_unsuback(
    u: &UnsubAck,
    version: ProtocolVersion,
    props: usize,
    out: &mut BytesMut,
) {
    out.put_u16(u.packet_id.get());
    if version.is_v5() {
        properties::write(&u.properties, props, out);
        for code in &u.reason_codes {
            out.put_u8(code.as_u8());
        }
    }
}

/// Subscribe Reason Codes, spec 3.9.3.
pub(super) fn suback_allows(code: ReasonCode) -> bool {
    use ReasonCode::*;
    matches!(
        code,
        Success
            | GrantedQoS1
            | GrantedQoS2
            | UnspecifiedError
            | ImplementationSpecificError
            | NotAuthorized
            | TopicFilterInvalid
            | PacketIdentifierInUse
            | QuotaExceeded
            | SharedSubscriptionsNotSupported
            | SubscriptionIdentifiersNotSupported
            | WildcardSubscriptionsNotSupported
    )
}

/// Unsubscribe Reason Codes, spec 3.11.3.
pub(super) fn unsuback_allows(code: ReasonCode) -> bool {
    use ReasonCode::*;
    matches!(
        code,
        Success
            | NoSubscriptionExisted
            | UnspecifiedError
            | ImplementationSpecificError
            | NotAuthorized
            | TopicFilterInvalid
            | PacketIdentifierInUse
    )
}

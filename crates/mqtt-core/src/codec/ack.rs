//! PUBACK, PUBREC, PUBREL and PUBCOMP: one shape (packet id, then in 5.0 an optional reason
//! code and optional properties), four packets that differ only in the codes they allow.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{Cursor, Reader};
use super::properties;
use crate::packet::{Ack, PacketId, PacketType, ProtocolVersion, ReasonCode};

/// The longest body that [`decode_fixed`] reads whole: packet id and reason code.
pub(super) const FIXED_LEN: usize = 3;

#[inline]
pub(super) fn decode(
    r: &mut Reader,
    version: ProtocolVersion,
    kind: PacketType,
) -> Result<Ack, DecodeError> {
    let mut ack = fixed(decode_fixed(r, version, kind)?);
    if version.is_v5() && !r.is_empty() {
        ack.properties = properties::decode(r)?;
    }
    Ok(ack)
}

/// All of an ack before its properties: the whole packet when the body is at most
/// [`FIXED_LEN`] bytes long, which is read in place. The fields come back bare, not as an
/// [`Ack`]: a pair fits in registers, so the packet is built once, where it is returned.
#[inline]
pub(super) fn decode_fixed(
    c: &mut Cursor,
    version: ProtocolVersion,
    kind: PacketType,
) -> Result<(PacketId, ReasonCode), DecodeError> {
    let packet_id = c.packet_id()?;
    // Before 5.0 the packet is the id alone; extra bytes are caught by the caller's finish().
    // In 5.0 a Remaining Length of 2 means Success with no properties, and one of 3 means a
    // reason code with no properties (spec 3.4.2.1, 3.4.2.2.1 and the same for the others).
    if version.is_v5() && !c.is_empty() {
        let code = c.u8()?;
        let reason_code = ReasonCode::from_u8(code)
            .filter(|c| allows(kind, *c))
            .ok_or(DecodeError::InvalidReasonCode(code))?;
        return Ok((packet_id, reason_code));
    }
    Ok((packet_id, ReasonCode::Success))
}

/// The ack of the fields [`decode_fixed`] read, without properties.
#[inline]
pub(super) fn fixed((packet_id, reason_code): (PacketId, ReasonCode)) -> Ack {
    Ack {
        packet_id,
        reason_code,
        properties: Default::default(),
    }
}

/// Remaining Length and property length of an ack in `version`.
pub(super) fn measure(ack: &Ack, version: ProtocolVersion) -> Result<(usize, usize), EncodeError> {
    if !version.is_v5() {
        return Ok((2, 0));
    }
    if ack.properties.is_empty() {
        // The short forms that Mosquitto and the spec's examples use.
        let len = if ack.reason_code == ReasonCode::Success {
            2
        } else {
            3
        };
        return Ok((len, 0));
    }
    let props = properties::measure(&ack.properties)?;
    Ok((3 + properties::wire_len(props), props))
}

pub(super) fn write(ack: &Ack, remaining: usize, props: usize, out: &mut BytesMut) {
    out.put_u16(ack.packet_id.get());
    if remaining > 2 {
        out.put_u8(ack.reason_code.as_u8());
    }
    if remaining > 3 {
        properties::write(&ack.properties, props, out);
    }
}

/// The reason codes each packet allows: spec 3.4.2.1, 3.5.2.1, 3.6.2.1 and 3.7.2.1.
pub(super) fn allows(kind: PacketType, code: ReasonCode) -> bool {
    use ReasonCode::*;
    match kind {
        PacketType::PubAck | PacketType::PubRec => matches!(
            code,
            Success
                | NoMatchingSubscribers
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicNameInvalid
                | PacketIdentifierInUse
                | QuotaExceeded
                | PayloadFormatInvalid
        ),
        PacketType::PubRel | PacketType::PubComp => {
            matches!(code, Success | PacketIdentifierNotFound)
        }
        _ => false,
    }
}

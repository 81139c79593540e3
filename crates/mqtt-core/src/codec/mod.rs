//! The wire format: bytes to [`Packet`] and back, for MQTT 3.1, 3.1.1 and 5.0.
//!
//! [`decode`] is incremental and zero-copy: it takes one complete packet off the front of the
//! caller's `BytesMut` (`Ok(None)` if the packet has not fully arrived), and the topic, payload
//! and binary fields of the result are slices of those bytes. The size limit is checked on the
//! fixed header, before the body is waited for. Every rule of the specs that can be checked
//! on one packet is checked, and each failure maps to the 5.0 reason code the receiver sends
//! ([`DecodeError::reason_code`]).
//!
//! [`encode`] appends one packet to a caller-owned `BytesMut`; [`encode_publish_header`] writes
//! a PUBLISH without its payload so that fan-out can share one payload `Bytes` between many
//! subscribers.
//!
//! CONNECT carries its own protocol level and is decoded whatever `version` says; every other
//! packet is decoded in the version the connection agreed on.

mod ack;
mod connect;
mod control;
mod error;
mod frame;
mod primitives;
mod properties;
mod publish;
mod subscribe;

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use error::{DecodeError, EncodeError};
pub use frame::{parse_header, FixedHeader};
pub use publish::encode_header as encode_publish_header;

use crate::packet::{Packet, PacketType, ProtocolVersion, ReasonCode};
use primitives::{put_varint, varint_len, Cursor, Reader, VARINT_MAX};

/// Limits applied while decoding, before any memory is committed to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest packet accepted, counting the fixed header: 5.0's Maximum Packet Size.
    pub max_packet_size: u32,
}

impl DecodeLimits {
    /// The largest packet the protocol can express: a 5-byte fixed header and a Remaining
    /// Length of 268,435,455.
    pub const PROTOCOL_MAX: u32 = VARINT_MAX + 5;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_packet_size: Self::PROTOCOL_MAX,
        }
    }
}

/// How much `decode` reserves ahead for a partial packet: enough that a typical packet
/// arrives in one read, never so much that a peer announcing a huge packet commits memory.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Takes one packet off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not hold a whole packet yet; nothing is consumed then,
/// and `buf` has been given room for (part of) the rest. On `Ok(Some(_))` the packet's bytes
/// are gone from `buf` and any bytes after it stay. An `Err` means the peer broke the
/// protocol: close the connection, in 5.0 after sending [`DecodeError::reason_code`]. What
/// is left in `buf` after an error is unspecified (a packet refused for its body has been
/// taken out, one refused for its header has not); nothing more should be decoded from it.
#[inline]
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    limits: &DecodeLimits,
) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = parse_header(buf, version, limits)? else {
        return Ok(None);
    };
    let len = header.packet_len();
    if buf.len() < len {
        buf.reserve((len - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    }
    // PINGREQ, the keep-alive of every idle client, is answered before the other types:
    // through `decode_in_place` it cost twice as much, its `Packet` being copied out in
    // pieces of other sizes than it was written in, each copy waiting for the stores before
    // it. The header check has passed its flags; a Remaining Length other than 0 goes on to
    // `decode_in_place`, which refuses it (spec 3.12.1).
    if header.packet_type == PacketType::PingReq && header.remaining_len == 0 {
        buf.advance(len);
        return Ok(Some(Packet::PingReq));
    }
    if header.packet_type == PacketType::Publish {
        if let Some(publish) =
            publish::decode_split(header.flags, buf, header.header_len, len, version)
        {
            return publish.map(|p| Some(Packet::Publish(p)));
        }
    }
    let body = buf.get(header.header_len..len).unwrap_or_default();
    // A packet that keeps no part of the input is read where it lies and skipped: taking
    // its bytes out as a shared handle would cost more than decoding it.
    if let Some(packet) = decode_in_place(&header, body, version) {
        buf.advance(len);
        return packet.map(Some);
    }
    // Left whole, header included: the body is read from `header_len` on, and moving a
    // handle just after changing it stalls on the store.
    let frame = buf.split_to(len).freeze();
    decode_frame(&header, frame, header.header_len, version).map(Some)
}

/// Decodes the packets whose body is nothing but fixed-size fields (PINGREQ, PINGRESP, and
/// acks, DISCONNECT and AUTH without properties) from borrowed bytes; `None` for any other
/// packet. The same functions as in [`decode_body`] read the fields, so the rules are those.
#[inline]
fn decode_in_place(
    header: &FixedHeader,
    body: &[u8],
    version: ProtocolVersion,
) -> Option<Result<Packet, DecodeError>> {
    let mut c = Cursor::new(body);
    let fixed_ack = body.len() <= ack::FIXED_LEN;
    let fixed_control = body.len() <= control::FIXED_LEN;
    let packet = match header.packet_type {
        PacketType::PubAck if fixed_ack => ack::decode_fixed(&mut c, version, PacketType::PubAck)
            .map(|f| Packet::PubAck(ack::fixed(f))),
        PacketType::PubRec if fixed_ack => ack::decode_fixed(&mut c, version, PacketType::PubRec)
            .map(|f| Packet::PubRec(ack::fixed(f))),
        PacketType::PubRel if fixed_ack => ack::decode_fixed(&mut c, version, PacketType::PubRel)
            .map(|f| Packet::PubRel(ack::fixed(f))),
        PacketType::PubComp if fixed_ack => ack::decode_fixed(&mut c, version, PacketType::PubComp)
            .map(|f| Packet::PubComp(ack::fixed(f))),
        PacketType::PingReq => Ok(Packet::PingReq),
        PacketType::PingResp => Ok(Packet::PingResp),
        PacketType::Disconnect if fixed_control => {
            control::decode_disconnect_fixed(&mut c, version)
                .map(|d| Packet::Disconnect(Box::new(d)))
        }
        PacketType::Auth if fixed_control => {
            control::decode_auth_fixed(&mut c).map(|a| Packet::Auth(Box::new(a)))
        }
        _ => return None,
    };
    // Every byte of the Remaining Length must belong to a field (spec 2.1.4).
    Some(packet.and_then(|p| c.finish().map(|()| p)))
}

/// Decodes the body of a packet whose fixed header was already parsed: for callers that
/// frame packets themselves. `body` must be exactly `header.remaining_len` bytes.
#[inline]
pub fn decode_body(
    header: &FixedHeader,
    body: Bytes,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    if body.len() != header.remaining_len as usize {
        return Err(DecodeError::LengthMismatch);
    }
    decode_frame(header, body, 0, version)
}

/// Decodes the packet whose body starts `body_at` bytes into `frame` and runs to its end.
#[inline]
fn decode_frame(
    header: &FixedHeader,
    frame: Bytes,
    body_at: usize,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let mut r = Reader::at(&frame, body_at)?;
    let packet = match header.packet_type {
        // The payload is the rest of the body, so no byte is left for `finish` to find:
        // returning here builds the packet in place instead of moving it out of `packet`.
        PacketType::Publish => {
            return publish::decode(header.flags, frame, body_at, version).map(Packet::Publish)
        }
        PacketType::PubAck => Packet::PubAck(ack::decode(&mut r, version, PacketType::PubAck)?),
        PacketType::PubRec => Packet::PubRec(ack::decode(&mut r, version, PacketType::PubRec)?),
        PacketType::PubRel => Packet::PubRel(ack::decode(&mut r, version, PacketType::PubRel)?),
        PacketType::PubComp => Packet::PubComp(ack::decode(&mut r, version, PacketType::PubComp)?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Connect => Packet::Connect(Box::new(connect::decode_connect(&mut r)?)),
        PacketType::ConnAck => Packet::ConnAck(Box::new(connect::decode_connack(&mut r, version)?)),
        PacketType::Subscribe => Packet::Subscribe(subscribe::decode_subscribe(&mut r, version)?),
        PacketType::SubAck => Packet::SubAck(subscribe::decode_suback(&mut r, version)?),
        PacketType::Unsubscribe => {
            Packet::Unsubscribe(subscribe::decode_unsubscribe(&mut r, version)?)
        }
        PacketType::UnsubAck => Packet::UnsubAck(subscribe::decode_unsuback(&mut r, version)?),
        PacketType::Disconnect => {
            Packet::Disconnect(Box::new(control::decode_disconnect(&mut r, version)?))
        }
        PacketType::Auth => Packet::Auth(Box::new(control::decode_auth(&mut r)?)),
    };
    // Every byte of the Remaining Length must belong to a field (spec 2.1.4).
    r.finish()?;
    Ok(packet)
}

/// Appends `packet`, coded for `version`, to `out`.
///
/// Fields that `version` does not have (properties and reason codes before 5.0) are left
/// out; a CONNECT is coded in its own `protocol_version`. Fails only on a packet that cannot
/// exist on the wire, which is the caller's mistake, not a peer's; `out` is then unchanged.
#[inline]
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Publish(p) => publish::encode(p, version, out),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            let (remaining, props) = ack::measure(a, version)?;
            header(out, packet.packet_type(), remaining);
            ack::write(a, remaining, props, out);
            Ok(())
        }
        Packet::PingReq | Packet::PingResp => {
            header(out, packet.packet_type(), 0);
            Ok(())
        }
        Packet::Connect(c) => {
            let lens = connect::measure_connect(c)?;
            check_len(lens.remaining)?;
            header(out, PacketType::Connect, lens.remaining);
            connect::write_connect(c, &lens, out);
            Ok(())
        }
        Packet::ConnAck(c) => {
            let (remaining, props) = connect::measure_connack(c, version)?;
            check_len(remaining)?;
            header(out, PacketType::ConnAck, remaining);
            connect::write_connack(c, version, props, out);
            Ok(())
        }
        Packet::Subscribe(s) => {
            let (remaining, props) = subscribe::measure_subscribe(s, version)?;
            check_len(remaining)?;
            header(out, PacketType::Subscribe, remaining);
            subscribe::write_subscribe(s, version, props, out);
            Ok(())
        }
        Packet::SubAck(s) => {
            let (remaining, props) = subscribe::measure_suback(s, version)?;
            check_len(remaining)?;
            header(out, PacketType::SubAck, remaining);
            subscribe::write_suback(s, version, props, out);
            Ok(())
        }
        Packet::Unsubscribe(u) => {
            let (remaining, props) = subscribe::measure_unsubscribe(u, version)?;
            check_len(remaining)?;
            header(out, PacketType::Unsubscribe, remaining);
            subscribe::write_unsubscribe(u, version, props, out);
            Ok(())
        }
        Packet::UnsubAck(u) => {
            let (remaining, props) = subscribe::measure_unsuback(u, version)?;
            check_len(remaining)?;
            header(out, PacketType::UnsubAck, remaining);
            subscribe::write_unsuback(u, version, props, out);
            Ok(())
        }
        Packet::Disconnect(d) => {
            let (remaining, props) = if version.is_v5() {
                control::measure_tail(d.reason_code, &d.properties)?
            } else {
                (0, 0)
            };
            check_len(remaining)?;
            header(out, PacketType::Disconnect, remaining);
            control::write_tail(d.reason_code, &d.properties, remaining, props, out);
            Ok(())
        }
        Packet::Auth(a) => {
            if !version.is_v5() {
                return Err(EncodeError::NotInVersion(PacketType::Auth));
            }
            let (remaining, props) = control::measure_tail(a.reason_code, &a.properties)?;
            check_len(remaining)?;
            header(out, PacketType::Auth, remaining);
            control::write_tail(a.reason_code, &a.properties, remaining, props, out);
            Ok(())
        }
    }
}

/// Whether the 5.0 spec allows `code` in a packet of type `packet_type`: the per-packet
/// reason code tables of spec chapter 3. Packets without a reason code allow none.
pub fn reason_code_allowed(packet_type: PacketType, code: ReasonCode) -> bool {
    match packet_type {
        PacketType::ConnAck => connect::connack_allows(code),
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            ack::allows(packet_type, code)
        }
        PacketType::SubAck => subscribe::suback_allows(code),
        PacketType::UnsubAck => subscribe::unsuback_allows(code),
        PacketType::Disconnect => control::disconnect_allows(code),
        PacketType::Auth => control::auth_allows(code),
        _ => false,
    }
}

fn check_len(remaining: usize) -> Result<(), EncodeError> {
    if remaining > VARINT_MAX as usize {
        Err(EncodeError::PacketTooLarge)
    } else {
        Ok(())
    }
}

/// Writes a fixed header with the flags the packet type requires, and reserves room for
/// the body so that writing it never reallocates.
#[inline]
fn header(out: &mut BytesMut, packet_type: PacketType, remaining: usize) {
    out.reserve(1 + varint_len(remaining as u32) + remaining);
    let flags = match packet_type {
        // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
        _ => 0,
    };
    out.put_u8((packet_type as u8) << 4 | flags);
    put_varint(out, remaining as u32);
}

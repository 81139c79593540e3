//! The fixed header (spec 2.1): packet type, flags and Remaining Length. It is checked, and
//! the size limit enforced, before anything else about a packet is read or buffered.

use super::error::DecodeError;
use super::primitives::parse_varint;
use super::DecodeLimits;
use crate::packet::{PacketType, ProtocolVersion};

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The low nibble of the first byte.
    pub flags: u8,
    /// Remaining Length: the bytes after the fixed header.
    pub remaining_len: u32,
    /// Length of the fixed header itself: 2 to 5 bytes.
    pub header_len: usize,
}

impl FixedHeader {
    /// Size of the whole packet on the wire.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len as usize
    }
}

/// Reads the fixed header at the start of `buf`. `Ok(None)` means more bytes are needed to
/// know the packet's size; a complete header is checked for type, flags and size limit even
/// if the body has not arrived yet, so an oversized packet is refused before it is buffered.
#[inline]
pub fn parse_header(
    buf: &[u8],
    version: ProtocolVersion,
    limits: &DecodeLimits,
) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let Some((remaining_len, len_bytes)) = parse_varint(rest)? else {
        // Check the type early, so garbage is refused at the first byte.
        check_type_and_flags(first, version)?;
        return Ok(None);
    };
    let (packet_type, flags) = check_type_and_flags(first, version)?;
    let header_len = 1 + len_bytes;
    let size = header_len as u64 + u64::from(remaining_len);
    if size > u64::from(limits.max_packet_size) {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: limits.max_packet_size,
        });
    }
    Ok(Some(FixedHeader {
        packet_type,
        flags,
        remaining_len,
        header_len,
    }))
}

#[inline]
fn check_type_and_flags(
    first: u8,
    version: ProtocolVersion,
) -> Result<(PacketType, u8), DecodeError> {
    let flags = first & 0x0F;
    let packet_type = match PacketType::from_u8(first >> 4) {
        // [MQTT-2.1.3-1] type 0 is reserved; 15 is AUTH in 5.0 and reserved before.
        Some(PacketType::Auth) if !version.is_v5() => {
            return Err(DecodeError::ReservedPacketType(15))
        }
        Some(t) => t,
        None => return Err(DecodeError::ReservedPacketType(first >> 4)),
    };
    let valid = match packet_type {
        // DUP, QoS and RETAIN are checked by the PUBLISH decoder, which knows what they mean.
        PacketType::Publish => true,
        // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] these carry 0b0010. MQTT 3.1 let a
        // client set DUP on their retries, so that bit is tolerated there.
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => {
            flags == 0b0010 || (version == ProtocolVersion::V31 && flags == 0b1010)
        }
        // [MQTT-2.2.2-2] every other packet has its flags reserved as zero.
        _ => flags == 0,
    };
    if valid {
        Ok((packet_type, flags))
    } else {
        Err(DecodeError::InvalidFlags { packet_type, flags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V5: ProtocolVersion = ProtocolVersion::V5;
    const V311: ProtocolVersion = ProtocolVersion::V311;

    #[test]
    fn headers() {
        let limits = DecodeLimits::default();
        assert_eq!(parse_header(&[], V5, &limits), Ok(None));
        assert_eq!(parse_header(&[0x30], V5, &limits), Ok(None));
        assert_eq!(parse_header(&[0x30, 0x80], V5, &limits), Ok(None));
        let h = parse_header(&[0x30, 0x80, 0x01], V5, &limits)
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.remaining_len, h.header_len, h.packet_len()),
            (128, 3, 131)
        );
        assert_eq!(
            parse_header(&[0x00, 0x00], V5, &limits),
            Err(DecodeError::ReservedPacketType(0))
        );
        assert_eq!(
            parse_header(&[0x00], V5, &limits),
            Err(DecodeError::ReservedPacketType(0))
        );
        assert_eq!(
            parse_header(&[0xF0, 0x00], V311, &limits),
            Err(DecodeError::ReservedPacketType(15))
        );
        assert!(parse_header(&[0xF0, 0x00], V5, &limits).is_ok());
        assert!(matches!(
            parse_header(&[0x62, 0x02], V311, &limits),
            Ok(Some(_))
        ));
        assert!(matches!(
            parse_header(&[0x60, 0x02], V311, &limits),
            Err(DecodeError::InvalidFlags { .. })
        ));
        assert!(matches!(
            parse_header(&[0xC1, 0x00], V311, &limits),
            Err(DecodeError::InvalidFlags { .. })
        ));
        assert_eq!(
            parse_header(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], V5, &limits),
            Err(DecodeError::MalformedVarInt)
        );
    }

    #[test]
    fn size_limit_is_checked_from_the_header_alone() {
        let limits = DecodeLimits {
            max_packet_size: 100,
        };
        // 3-byte header + 128 = 131 > 100, with no body present.
        assert_eq!(
            parse_header(&[0x30, 0x80, 0x01], V5, &limits),
            Err(DecodeError::PacketTooLarge {
                size: 131,
                max: 100
            })
        );
        assert!(parse_header(&[0x30, 98], V5, &limits).unwrap().is_some());
        assert!(parse_header(&[0x30, 99], V5, &limits).is_err());
    }
}

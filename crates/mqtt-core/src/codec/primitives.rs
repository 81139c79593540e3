//! The data representations of spec 1.5: integers, Variable Byte Integers, UTF-8 strings and
//! binary data, read zero-copy from a `Bytes` and written into a caller's `BytesMut`.
//!
//! Hand-written over `bytes::Buf` rather than nom: every field is length-prefixed, so a cursor
//! with bounds checks is all the parsing there is, and it keeps slices of the input alive.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::error::{DecodeError, EncodeError};
use crate::packet::PacketId;

/// The largest value a Variable Byte Integer holds (spec 1.5.5).
pub(crate) const VARINT_MAX: u32 = 268_435_455;

/// A bounds-checked cursor over the body of one packet.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    #[inline]
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails unless every byte was consumed: lengths inside the packet must add up to its
    /// remaining length.
    #[inline]
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::LengthMismatch)
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.buf
            .try_get_u8()
            .map_err(|_| DecodeError::LengthMismatch)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.buf
            .try_get_u16()
            .map_err(|_| DecodeError::LengthMismatch)
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.buf
            .try_get_u32()
            .map_err(|_| DecodeError::LengthMismatch)
    }

    /// A Variable Byte Integer: at most four bytes, in its shortest form.
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match parse_varint(&self.buf)? {
            Some((value, len)) => {
                self.buf.advance(len);
                Ok(value)
            }
            None => Err(DecodeError::LengthMismatch),
        }
    }

    /// Takes a Variable Byte Integer of 0 off the front, if that is what comes next: the
    /// property length of a packet without properties. Zero has only one encoding, the byte
    /// 0 (spec 1.5.5), so `false` leaves anything else, malformed or not, to [`Self::varint`].
    #[inline]
    pub(crate) fn zero_varint(&mut self) -> bool {
        let zero = self.buf.first() == Some(&0);
        if zero {
            self.buf.advance(1);
        }
        zero
    }

    #[inline]
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        // [MQTT-2.2.1-3] a packet identifier is never zero.
        PacketId::new(self.u16()?).ok_or(DecodeError::PacketIdZero)
    }

    /// The next `len` bytes as a slice of the input.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if len > self.buf.len() {
            return Err(DecodeError::LengthMismatch);
        }
        Ok(self.buf.split_to(len))
    }

    /// All that is left.
    #[inline]
    pub(crate) fn rest(&mut self) -> Bytes {
        core::mem::take(&mut self.buf)
    }

    /// Binary Data: a two-byte length and that many bytes (spec 1.5.6).
    #[inline]
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String (spec 1.5.4).
    #[inline]
    pub(crate) fn string(&mut self) -> Result<ByteString, DecodeError> {
        utf8(self.binary()?)
    }
}

/// Checks that `bytes` is a well-formed UTF-8 string as MQTT defines it, without copying.
#[inline]
pub(crate) fn utf8(bytes: Bytes) -> Result<ByteString, DecodeError> {
    // [MQTT-1.5.4-2] U+0000 is forbidden; checking the byte is enough because UTF-8 never
    // encodes anything else with a zero byte. A fold without early exit vectorizes; it is
    // several times cheaper than `contains` (a `memchr` call) on the short strings of MQTT.
    if bytes.iter().fold(false, |null, &b| null | (b == 0)) {
        return Err(DecodeError::NullCharacter);
    }
    // [MQTT-1.5.4-1] ill-formed UTF-8, including encoded surrogates, is malformed:
    // `str::from_utf8` rejects both.
    ByteString::try_from(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

/// Parses a Variable Byte Integer at the start of `buf`: `Ok(None)` if it is not complete
/// yet, else the value and how many bytes it took.
#[inline]
pub(crate) fn parse_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // The encoding must be the shortest one: a last byte of zero after a
            // continuation adds nothing (spec 1.5.5, "the minimum number of bytes").
            if byte == 0 && i > 0 {
                return Err(DecodeError::MalformedVarInt);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        // A fifth byte is never allowed.
        Err(DecodeError::MalformedVarInt)
    } else {
        Ok(None)
    }
}

/// How many bytes `value` takes as a Variable Byte Integer.
#[inline]
pub(crate) const fn varint_len(value: u32) -> usize {
    if value < 128 {
        1
    } else if value < 16_384 {
        2
    } else if value < 2_097_152 {
        3
    } else {
        4
    }
}

/// Writes a Variable Byte Integer; the caller keeps `value` within [`VARINT_MAX`].
#[inline]
pub(crate) fn put_varint(out: &mut BytesMut, mut value: u32) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// Length of Binary Data or a string, checked against the two-byte prefix.
#[inline]
pub(crate) fn field_len(len: usize) -> Result<usize, EncodeError> {
    if len > usize::from(u16::MAX) {
        Err(EncodeError::FieldTooLong)
    } else {
        Ok(2 + len)
    }
}

/// Writes Binary Data or a string; the caller has checked the length with [`field_len`].
#[inline]
pub(crate) fn put_binary(out: &mut BytesMut, data: &[u8]) {
    // Truncation cannot happen: every size was checked by `field_len` first.
    out.put_u16(data.len() as u16);
    out.put_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for (value, bytes) in [
            (0u32, &[0x00][..]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (VARINT_MAX, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            assert_eq!(parse_varint(bytes), Ok(Some((value, bytes.len()))));
            let mut out = BytesMut::new();
            put_varint(&mut out, value);
            assert_eq!(&out[..], bytes);
            assert_eq!(varint_len(value), bytes.len());
        }
        assert_eq!(parse_varint(&[0x80, 0x80]), Ok(None));
        assert_eq!(
            parse_varint(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::MalformedVarInt)
        );
        assert_eq!(
            parse_varint(&[0x80, 0x00]),
            Err(DecodeError::MalformedVarInt)
        );
    }

    #[test]
    fn strings() {
        assert_eq!(
            utf8(Bytes::from_static(b"a\0b")),
            Err(DecodeError::NullCharacter)
        );
        // An encoded surrogate (U+D800) is ill-formed UTF-8.
        assert_eq!(
            utf8(Bytes::from_static(&[0xED, 0xA0, 0x80])),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(utf8(Bytes::from_static("ü".as_bytes())).unwrap(), "ü");
        let mut r = Reader::new(Bytes::from_static(&[0, 3, b'a']));
        assert_eq!(r.string(), Err(DecodeError::LengthMismatch));
    }
}

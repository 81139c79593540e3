//! The data representations of spec 1.5: integers, Variable Byte Integers, UTF-8 strings and
//! binary data, read zero-copy from a `Bytes` and written into a caller's `BytesMut`.
//!
//! Hand-written over `bytes::Buf` rather than nom: every field is length-prefixed, so a cursor
//! with bounds checks is all the parsing there is, and it keeps slices of the input alive.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::error::{DecodeError, EncodeError};
use crate::packet::PacketId;
use crate::topic::contains_any;

/// The largest value a Variable Byte Integer holds (spec 1.5.5).
pub(crate) const VARINT_MAX: u32 = 268_435_455;

/// A bounds-checked cursor over borrowed bytes: the fixed-size fields (integers, Variable
/// Byte Integers, packet identifiers). It makes no handle on the input, so the packets that
/// are nothing but such fields are read in place, without taking their bytes out of the
/// caller's buffer first.
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    /// What is left to read.
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
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
        let (&b, rest) = self.buf.split_first().ok_or(DecodeError::LengthMismatch)?;
        self.buf = rest;
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let (b, rest) = self
            .buf
            .split_first_chunk()
            .ok_or(DecodeError::LengthMismatch)?;
        self.buf = rest;
        Ok(u16::from_be_bytes(*b))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let (b, rest) = self
            .buf
            .split_first_chunk()
            .ok_or(DecodeError::LengthMismatch)?;
        self.buf = rest;
        Ok(u32::from_be_bytes(*b))
    }

    /// A Variable Byte Integer: at most four bytes, in its shortest form.
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match parse_varint(self.buf)? {
            Some((value, len)) => {
                self.bytes(len)?;
                Ok(value)
            }
            None => Err(DecodeError::LengthMismatch),
        }
    }

    /// [`Self::varint`] for one that is most often a single byte, such as a property
    /// identifier or a short property length: that byte is read here, in line, and only a
    /// longer integer goes to the general decoder.
    #[inline]
    pub(crate) fn short_varint(&mut self) -> Result<u32, DecodeError> {
        match self.buf.split_first() {
            // A byte without the continuation bit is a whole integer in its shortest form.
            Some((&byte, rest)) if byte < 0x80 => {
                self.buf = rest;
                Ok(u32::from(byte))
            }
            _ => self.varint(),
        }
    }

    /// Takes a Variable Byte Integer of 0 off the front, if that is what comes next: the
    /// property length of a packet without properties. Zero has only one encoding, the byte
    /// 0 (spec 1.5.5), so `false` leaves anything else, malformed or not, to [`Self::varint`].
    #[inline]
    pub(crate) fn zero_varint(&mut self) -> bool {
        match self.buf.split_first() {
            Some((0, rest)) => {
                self.buf = rest;
                true
            }
            _ => false,
        }
    }

    #[inline]
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        packet_id(self.u16()?)
    }

    /// The next `len` bytes.
    #[inline]
    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let (taken, rest) = self
            .buf
            .split_at_checked(len)
            .ok_or(DecodeError::LengthMismatch)?;
        self.buf = rest;
        Ok(taken)
    }
}

/// A [`Cursor`] over (part of) the body of one packet that also cuts the variable-length
/// fields out of it as reference-counted handles, copying nothing.
pub(crate) struct Reader<'a> {
    cur: Cursor<'a>,
    /// The body the bytes of `cur` belong to; every handle is a slice of it.
    frame: &'a Bytes,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(frame: &'a Bytes) -> Self {
        Self {
            cur: Cursor::new(frame),
            frame,
        }
    }

    /// A reader of `frame` from byte `at` on.
    #[inline]
    pub(crate) fn at(frame: &'a Bytes, at: usize) -> Result<Self, DecodeError> {
        let mut r = Self::new(frame);
        r.cur.bytes(at)?;
        Ok(r)
    }

    /// A copy of the cursor, to look ahead without reading.
    #[inline]
    pub(crate) fn cursor(&self) -> Cursor<'a> {
        self.cur
    }

    /// How far into the body this reader has read.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.offset(self.cur.buf)
    }

    /// The next `len` bytes as a reader of their own: a length-prefixed section.
    #[inline]
    pub(crate) fn section(&mut self, len: usize) -> Result<Self, DecodeError> {
        Ok(Self {
            cur: Cursor::new(self.cur.bytes(len)?),
            frame: self.frame,
        })
    }

    /// The next `len` bytes as a slice of the input.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        let bytes = self.cur.bytes(len)?;
        Ok(self.handle(bytes))
    }

    /// Binary Data: a two-byte length and that many bytes (spec 1.5.6).
    #[inline]
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.cur.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String (spec 1.5.4).
    #[inline]
    pub(crate) fn string(&mut self) -> Result<ByteString, DecodeError> {
        let len = self.cur.u16()?;
        let bytes = self.cur.bytes(usize::from(len))?;
        no_null(bytes)?;
        utf8(self.handle(bytes))
    }

    /// Where `bytes`, a part of the frame, starts in it.
    #[inline]
    fn offset(&self, bytes: &[u8]) -> usize {
        bytes.as_ptr() as usize - self.frame.as_ptr() as usize
    }

    /// `bytes`, a part of the frame, as a handle on it.
    #[inline]
    fn handle(&self, bytes: &[u8]) -> Bytes {
        let start = self.offset(bytes);
        // invariant: the cursor only ever holds parts of `frame`, so the range is in bounds
        // (`slice` would panic otherwise).
        self.frame.slice(start..start + bytes.len())
    }
}

impl<'a> core::ops::Deref for Reader<'a> {
    type Target = Cursor<'a>;

    #[inline]
    fn deref(&self) -> &Cursor<'a> {
        &self.cur
    }
}

impl core::ops::DerefMut for Reader<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cur
    }
}

/// A Packet Identifier read as a two-byte integer.
#[inline]
pub(crate) fn packet_id(value: u16) -> Result<PacketId, DecodeError> {
    // [MQTT-2.2.1-3] a packet identifier is never zero.
    PacketId::new(value).ok_or(DecodeError::PacketIdZero)
}

/// The first check of a UTF-8 Encoded String, made on the borrowed bytes before a handle on
/// them is: no U+0000. [`utf8`] makes the second.
#[inline]
pub(crate) fn no_null(bytes: &[u8]) -> Result<(), DecodeError> {
    // [MQTT-1.5.4-2] U+0000 is forbidden; checking the byte is enough because UTF-8 never
    // encodes anything else with a zero byte.
    if contains_any(bytes, [0]) {
        return Err(DecodeError::NullCharacter);
    }
    Ok(())
}

/// The second check of a UTF-8 Encoded String, after [`no_null`], on its handle.
#[inline]
pub(crate) fn utf8(bytes: Bytes) -> Result<ByteString, DecodeError> {
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
            let mut c = Cursor::new(bytes);
            assert_eq!(c.short_varint(), Ok(value));
            assert!(c.is_empty());
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
        assert_eq!(
            Cursor::new(&[0x80, 0x00]).short_varint(),
            Err(DecodeError::MalformedVarInt)
        );
        assert_eq!(
            Cursor::new(&[0x80]).short_varint(),
            Err(DecodeError::LengthMismatch)
        );
    }

    fn string(bytes: &'static [u8]) -> Result<ByteString, DecodeError> {
        let frame = Bytes::from_static(bytes);
        let mut r = Reader::new(&frame);
        let s = r.string()?;
        r.finish()?;
        Ok(s)
    }

    #[test]
    fn strings() {
        assert_eq!(string(b"\0\x03a\0b"), Err(DecodeError::NullCharacter));
        // An encoded surrogate (U+D800) is ill-formed UTF-8.
        assert_eq!(
            string(&[0, 3, 0xED, 0xA0, 0x80]),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(string(&[0, 2, 0xC3, 0xBC]).unwrap(), "ü");
        assert_eq!(string(&[0, 3, b'a']), Err(DecodeError::LengthMismatch));
    }

    #[test]
    fn handles_are_slices_of_the_frame() {
        let frame = Bytes::from_static(b"\0\x02ab\0\x01cxyz");
        let mut r = Reader::new(&frame);
        assert_eq!(r.binary().unwrap(), "ab");
        let mut section = r.section(3).unwrap();
        assert_eq!(section.binary().unwrap(), "c");
        assert!(section.is_empty());
        assert_eq!(r.position(), 7);
        assert_eq!(r.take(3).unwrap(), "xyz");
        assert_eq!(r.position(), 10);
        assert_eq!(r.take(1), Err(DecodeError::LengthMismatch));
    }
}

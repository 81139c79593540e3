//! Encode a valid arbitrary packet, decode it: the same packet comes back, and nothing is left.
//!
//! `mqtt_core::arbitrary::packet` (feature `_arbitrary`) builds a packet that is valid for the
//! protocol version it picks; inputs it cannot build one from are rejected from the corpus.

#![no_main]
#![forbid(unsafe_code)]

use bytes::BytesMut;
use libfuzzer_sys::{fuzz_target, Corpus};
use mqtt_core::codec::{decode, encode, DecodeLimits};

fuzz_target!(|data: &[u8]| -> Corpus {
    let mut u = arbitrary::Unstructured::new(data);
    let Ok((version, packet)) = mqtt_core::arbitrary::packet(&mut u) else {
        return Corpus::Reject;
    };
    let mut buf = BytesMut::new();
    encode(&packet, version, &mut buf)
        .unwrap_or_else(|e| panic!("a valid packet must encode: {e:?}\n{packet:?}"));
    let decoded = match decode(&mut buf, version, &DecodeLimits::default()) {
        Ok(Some(decoded)) => decoded,
        other => panic!("an encoded packet must decode: {other:?}\n{packet:?}"),
    };
    assert_eq!(packet, decoded, "decode(encode(p)) != p");
    assert!(buf.is_empty(), "decode left {} bytes", buf.len());
    Corpus::Keep
});

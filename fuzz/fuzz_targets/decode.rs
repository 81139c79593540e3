//! Decode arbitrary bytes: never panic, and every packet decoded must re-encode stably.
//!
//! The first byte picks the protocol version (protocol level `b % 3 + 3`: 0 is 3.1, 1 is 3.1.1,
//! 2 is 5.0; `cargo xtask fuzz-seed` writes the seeds that way). The rest is fed to the decoder
//! packet after packet until it needs more bytes or reports an error. Each packet it returns is
//! encoded, decoded again and encoded again: the packet and the bytes must not change.

#![no_main]
#![forbid(unsafe_code)]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqtt_core::codec::{decode, encode, DecodeLimits};
use mqtt_core::ProtocolVersion;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let version = match first % 3 {
        0 => ProtocolVersion::V31,
        1 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    };
    let limits = DecodeLimits::default();
    let mut buf = BytesMut::from(rest);
    loop {
        let before = buf.len();
        let packet = match decode(&mut buf, version, &limits) {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(_) => break,
        };
        assert!(buf.len() < before, "a decoded packet must consume bytes");

        let mut wire = BytesMut::new();
        encode(&packet, version, &mut wire)
            .unwrap_or_else(|e| panic!("a decoded packet must encode: {e:?}\n{packet:?}"));
        let first_encoding = wire.clone().freeze();
        let again = match decode(&mut wire, version, &limits) {
            Ok(Some(again)) => again,
            other => panic!("re-encoded packet must decode: {other:?}\n{packet:?}"),
        };
        assert!(wire.is_empty(), "re-decode left {} bytes", wire.len());
        assert_eq!(packet, again, "decode(encode(p)) != p");

        let mut second = BytesMut::new();
        encode(&again, version, &mut second)
            .unwrap_or_else(|e| panic!("re-decoded packet must encode: {e:?}\n{again:?}"));
        assert_eq!(first_encoding, second.freeze(), "re-encoding is not stable");
    }
});

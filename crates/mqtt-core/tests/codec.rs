//! Property tests of the codec: every packet type in every version survives encode then
//! decode; no input makes the decoder panic; decoding is the same however the bytes arrive.
//! Packets come from the same generator the fuzz targets use, fed with proptest's bytes.

use arbitrary::Unstructured;
use bytes::BytesMut;
use mqtt_core::codec::{decode, encode, DecodeError, DecodeLimits};
use mqtt_core::{Packet, ProtocolVersion};
use proptest::prelude::*;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V31,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// Packets valid in their version, from raw seed bytes.
fn packets(seed: &[u8]) -> Vec<(ProtocolVersion, Packet)> {
    let mut u = Unstructured::new(seed);
    let mut out = Vec::new();
    while let Ok(p) = mqtt_core::arbitrary::packet(&mut u) {
        out.push(p);
        if u.is_empty() {
            break;
        }
    }
    out
}

fn encoded(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).expect("generated packets are encodable");
    out
}

/// Decodes everything in `buf`, failing on leftovers.
fn decode_all(mut buf: BytesMut, version: ProtocolVersion) -> Result<Vec<Packet>, DecodeError> {
    let mut out = Vec::new();
    while let Some(p) = decode(&mut buf, version, &limits())? {
        out.push(p);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity(seed in proptest::collection::vec(any::<u8>(), 0..4096)) {
        for (version, packet) in packets(&seed) {
            let bytes = encoded(&packet, version);
            let mut buf = bytes.clone();
            let decoded = decode(&mut buf, version, &limits());
            prop_assert_eq!(decoded, Ok(Some(packet.clone())), "{} {:?}", version, bytes);
            prop_assert!(buf.is_empty());
            // A second encode of the decoded packet gives the same bytes.
            prop_assert_eq!(encoded(&packet, version), bytes);
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        v in 0usize..3,
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        // Bounded: each successful step consumes at least two bytes.
        for _ in 0..bytes.len() {
            match decode(&mut buf, VERSIONS[v], &limits()) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn mutated_packets_never_panic_and_reencode_stably(
        seed in proptest::collection::vec(any::<u8>(), 0..2048),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        for (version, packet) in packets(&seed) {
            let mut bytes = encoded(&packet, version).to_vec();
            for (at, value, kind) in &edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at % bytes.len();
                match kind {
                    0 => bytes[i] = *value,
                    1 => bytes[i] ^= 1 << (value % 8),
                    2 => { bytes.remove(i); }
                    _ => bytes.insert(i, *value),
                }
            }
            let mut buf = BytesMut::from(&bytes[..]);
            if let Ok(Some(p)) = decode(&mut buf, version, &limits()) {
                // Whatever the decoder accepts, it must be able to write back and read again.
                let again = encoded(&p, version);
                let mut again_buf = again.clone();
                prop_assert_eq!(decode(&mut again_buf, version, &limits()), Ok(Some(p)));
            }
        }
    }

    #[test]
    fn a_stream_cut_anywhere_decodes_the_same(
        seed in proptest::collection::vec(any::<u8>(), 0..4096),
        v in 0usize..3,
        cuts in proptest::collection::vec(1usize..64, 1..64),
    ) {
        let version = VERSIONS[v];
        let mut u = Unstructured::new(&seed);
        let mut stream = BytesMut::new();
        let mut expected = Vec::new();
        while let Ok(p) = mqtt_core::arbitrary::packet_for(&mut u, version) {
            stream.extend_from_slice(&encoded(&p, version));
            expected.push(p);
            if u.is_empty() {
                break;
            }
        }
        let whole = decode_all(stream.clone(), version);
        prop_assert_eq!(whole.as_ref(), Ok(&expected));

        // Chunked by the generated sizes.
        let mut got = Vec::new();
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < stream.len() {
            let n = (*cut.next().unwrap_or(&1)).min(stream.len() - at);
            buf.extend_from_slice(&stream[at..at + n]);
            at += n;
            while let Some(p) = decode(&mut buf, version, &limits()).expect("valid stream") {
                got.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&got, &expected);
    }
}

/// Every boundary, exhaustively: a stream of one packet of each type, fed one byte at a time
/// and split in two at every offset.
#[test]
fn every_byte_boundary_of_a_stream() {
    for version in VERSIONS {
        let seed: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut u = Unstructured::new(&seed);
        let mut stream = BytesMut::new();
        let mut expected = Vec::new();
        let mut kinds = std::collections::HashSet::new();
        while let Ok(p) = mqtt_core::arbitrary::packet_for(&mut u, version) {
            kinds.insert(p.packet_type());
            stream.extend_from_slice(&encoded(&p, version));
            expected.push(p);
            if expected.len() > 60 {
                break;
            }
        }
        assert!(
            kinds.len() >= 12,
            "{version}: only {} packet types",
            kinds.len()
        );
        for split in 0..=stream.len() {
            let mut buf = BytesMut::from(&stream[..split]);
            let mut got = Vec::new();
            while let Some(p) = decode(&mut buf, version, &limits()).unwrap() {
                got.push(p);
            }
            buf.extend_from_slice(&stream[split..]);
            while let Some(p) = decode(&mut buf, version, &limits()).unwrap() {
                got.push(p);
            }
            assert_eq!(got, expected, "{version} split at {split}");
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in stream.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(p) = decode(&mut buf, version, &limits()).unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got, expected, "{version} byte by byte");
    }
}

/// The generator reaches every packet type of every version, so the roundtrip property covers
/// them all.
#[test]
fn generator_covers_every_packet_type() {
    for version in VERSIONS {
        let mut seen = std::collections::HashSet::new();
        for i in 0..400u32 {
            let seed: Vec<u8> = (0..512u32)
                .map(|j| ((i * 7919 + j).wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect();
            let mut u = Unstructured::new(&seed);
            if let Ok(p) = mqtt_core::arbitrary::packet_for(&mut u, version) {
                seen.insert(p.packet_type() as u8);
            }
        }
        let want = if version.is_v5() { 15 } else { 14 };
        assert_eq!(seen.len(), want, "{version}: {seen:?}");
    }
}

/// Replays the fuzz corpus kept in the repository: every input must decode without panicking,
/// and whatever decodes must re-encode to something that decodes the same.
#[test]
fn fuzz_corpus_replays() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut files = 0;
    for target in ["decode", "roundtrip"] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in dir.flatten() {
            let data = std::fs::read(entry.path()).unwrap();
            files += 1;
            if target == "decode" {
                let Some((&v, rest)) = data.split_first() else {
                    continue;
                };
                let version = VERSIONS[usize::from(v % 3)];
                let mut buf = BytesMut::from(rest);
                while let Ok(Some(p)) = decode(&mut buf, version, &limits()) {
                    let mut again = encoded(&p, version);
                    assert_eq!(decode(&mut again, version, &limits()), Ok(Some(p)));
                }
            } else {
                for (version, packet) in packets(&data) {
                    let mut buf = encoded(&packet, version);
                    assert_eq!(decode(&mut buf, version, &limits()), Ok(Some(packet)));
                }
            }
        }
    }
    eprintln!("replayed {files} corpus files");
}

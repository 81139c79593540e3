//! The "real bytes" test: packets and whole connections captured from Mosquitto 2.0.11, its
//! client tools, paho-mqtt and paho.mqtt.testing (`shared/vectors`, see its README) are decoded
//! and compared field by field with the manifest, re-encoded, and replayed as TCP streams, in
//! the chunks the capturing proxy saw and byte by byte.
//!
//! Every key of a manifest entry's `decoded` object must be read by a check ([`Obj`] fails on
//! any key left unread), so a field the manifest has can never go unchecked silently.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::num::{NonZeroU16, NonZeroU32};
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use mqtt_core::codec::{decode, encode, parse_header, DecodeError, DecodeLimits};
use mqtt_core::packet::{
    Ack, AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, PacketType, PublishProperties, SubAck,
    Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck, Unsubscribe,
    UnsubscribeProperties, UserProperty, WillProperties,
};
use mqtt_core::topic::{TopicError, TopicName};
use mqtt_core::{Packet, ProtocolVersion, Publish, ReasonCode};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Vectors our strict decoder is right to refuse, each with the exact error and the rule the
/// packet breaks; every other vector must decode. Checked against the 3.1.1 and 5.0 specs.
const EXPECTED_REJECTS: &[(&str, DecodeError)] = &[
    // paho-mqtt 2.2.0 sent `$share/grp/so/f` with No Local set (options 0x05), and mosquitto
    // 2.0.11 granted it. 5.0 3.8.3.1: "It is a Protocol Error to set the No Local bit to 1 on
    // a Shared Subscription" [MQTT-3.8.3-4].
    (
        "v5-client-subscribe-012.bin",
        DecodeError::NoLocalOnSharedSubscription,
    ),
    // paho.mqtt.testing, on purpose: `a/#/b` and `a/b#`. A `#` must be alone in the last level
    // of a filter: 5.0 [MQTT-4.7.1-1], 3.1.1 [MQTT-4.7.1-2]. Mosquitto answers the 5.0 ones
    // with DISCONNECT 0x81 and closes the 3.1.1 connection.
    (
        "v5-client-subscribe-013.bin",
        DecodeError::InvalidTopicFilter(TopicError::InvalidWildcard),
    ),
    (
        "v5-client-subscribe-014.bin",
        DecodeError::InvalidTopicFilter(TopicError::InvalidWildcard),
    ),
    (
        "v311-client-subscribe-009.bin",
        DecodeError::InvalidTopicFilter(TopicError::InvalidWildcard),
    ),
];

#[test]
fn manifest_describes_the_files() {
    let vectors = load_vectors();
    assert_eq!(vectors.len(), 278, "vectors.json should have 278 entries");
    let mut per_version = BTreeMap::new();
    for v in &vectors {
        *per_version.entry(v.version.as_str()).or_insert(0) += 1;
    }
    let expected = BTreeMap::from([("3.1", 62), ("3.1.1", 71), ("5.0", 145)]);
    assert_eq!(per_version, expected, "vectors per version (README table)");

    let listed: BTreeSet<&str> = vectors.iter().map(|v| v.file.as_str()).collect();
    assert_eq!(listed.len(), vectors.len(), "a file is listed twice");
    let on_disk: BTreeSet<String> = std::fs::read_dir(vectors_dir())
        .expect("read the vectors directory")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .filter(|n| n.ends_with(".bin") && !n.starts_with("stream-"))
        .collect();
    let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(listed, on_disk, "manifest and .bin files differ");

    for_each_vector(&vectors, |v, raw| {
        assert_eq!(raw.len(), v.length, "length");
        assert_eq!(
            hex::encode(Sha256::digest(raw)),
            v.sha256,
            "sha256 of the file"
        );
        match &v.hex {
            Some(h) => {
                assert!(v.length <= 1024, "hex given for a packet over 1024 bytes");
                assert_eq!(h, &hex::encode(raw), "hex");
            }
            None => assert!(
                v.length > 1024,
                "hex missing for a packet of 1024 bytes or less"
            ),
        }
        let prefix = match v.protocol_version() {
            ProtocolVersion::V31 => "v31-",
            ProtocolVersion::V311 => "v311-",
            ProtocolVersion::V5 => "v5-",
        };
        let side = match v.direction.as_str() {
            "client->server" => "client",
            "server->client" => "server",
            other => panic!("unknown direction {other:?}"),
        };
        let stem = format!("{prefix}{side}-{}-", v.packet_type.to_lowercase());
        assert!(
            v.file.starts_with(&stem),
            "file name should start with {stem}"
        );
        assert!(v.directions_seen.contains(&v.direction), "directions_seen");
        assert_eq!(
            v.decoded["packet_type"], v.packet_type,
            "decoded.packet_type"
        );
        assert!(["A", "B", "C", "T"].contains(&v.broker_instance.as_str()));
        assert!(v.occurrences >= 1);
        assert!(!v.description.is_empty() && !v.connection.is_empty());
    });
}

#[test]
fn every_vector_decodes_to_its_manifest_entry() {
    let vectors = load_vectors();
    let rejects: BTreeMap<&str, &DecodeError> =
        EXPECTED_REJECTS.iter().map(|(f, e)| (*f, e)).collect();
    for_each_vector(&vectors, |v, raw| {
        let version = v.protocol_version();
        let mut buf = BytesMut::from(raw);
        let result = decode(&mut buf, version, &DecodeLimits::default());
        if let Some(expected) = rejects.get(v.file.as_str()) {
            assert_eq!(
                result.as_ref().err(),
                Some(*expected),
                "allow-listed reject"
            );
            return;
        }
        let packet = result
            .unwrap_or_else(|e| panic!("decode failed: {e:?}"))
            .expect("a whole packet is there, yet decode asks for more");
        assert!(buf.is_empty(), "{} bytes left after the packet", buf.len());
        check_packet(v, raw, &packet);
    });
    eprintln!(
        "vectors: {} decoded and matched their manifest entry, {} rejected as allow-listed",
        vectors.len() - rejects.len(),
        rejects.len()
    );
}

#[test]
fn every_vector_reencodes_to_its_bytes_or_an_allowed_choice() {
    let vectors = load_vectors();
    let rejects: BTreeSet<&str> = EXPECTED_REJECTS.iter().map(|(f, _)| *f).collect();
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut orders = Vec::new();
    for_each_vector(&vectors, |v, raw| {
        if rejects.contains(v.file.as_str()) {
            return;
        }
        let outcome = reencode(v, raw);
        let t = tally.entry(v.version.clone()).or_default();
        match outcome {
            Reencoded::Identical => t.identical += 1,
            Reencoded::ShortForm => t.short_form += 1,
            Reencoded::PropertyOrder { captured, ours } => {
                t.property_order += 1;
                orders.push(format!(
                    "  {} ({}): captured {} / ours {}",
                    v.file,
                    v.producer.split(" (").next().unwrap_or(&v.producer),
                    ids(&captured),
                    ids(&ours),
                ));
            }
        }
    });
    for (version, t) in &tally {
        eprintln!(
            "re-encode {version}: {} identical, {} equal content ({} shorter ack/DISCONNECT \
             form, {} property order only)",
            t.identical,
            t.short_form + t.property_order,
            t.short_form,
            t.property_order,
        );
    }
    if !orders.is_empty() {
        eprintln!("property order, captured vs ours:\n{}", orders.join("\n"));
    }
}

#[test]
fn streams_decode_in_their_tcp_chunks_and_byte_by_byte() {
    let streams: Vec<Stream> = serde_json::from_slice(&read("streams.json")).expect("streams.json");
    assert_eq!(
        streams.len(),
        10,
        "streams.json should describe 10 connections"
    );
    let vectors: BTreeMap<String, Vector> = load_vectors()
        .into_iter()
        .map(|v| (v.file.clone(), v))
        .collect();
    let listed: BTreeSet<&str> = streams
        .iter()
        .flat_map(|s| [s.c2s.file.as_str(), s.s2c.file.as_str()])
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(vectors_dir())
        .expect("read the vectors directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("stream-"))
        .collect();
    let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(
        listed, on_disk,
        "streams.json and stream-*.bin files differ"
    );
    let (mut packets, mut rejected) = (0, 0);
    for s in &streams {
        assert!(!s.scenario.is_empty() && !s.connection.is_empty());
        assert!(!s.client_producer.is_empty() && !s.server_producer.is_empty());
        let version = parse_version(&s.version);
        for (side, dir) in [("c2s", &s.c2s), ("s2c", &s.s2c)] {
            let ctx = format!("stream {} {side} ({})", s.name, dir.file);
            assert_eq!(dir.file, format!("stream-{}-{side}.bin", s.name), "{ctx}");
            let bytes = read(&dir.file);
            assert_eq!(bytes.len(), dir.length, "{ctx}: length");
            let sizes: Vec<usize> = dir.tcp_chunks.iter().map(|&(_, n)| n).collect();
            assert_eq!(
                sizes.iter().sum::<usize>(),
                bytes.len(),
                "{ctx}: chunk sizes"
            );
            assert!(
                dir.tcp_chunks.windows(2).all(|w| w[0].0 <= w[1].0),
                "{ctx}: chunk times go backwards"
            );
            let chunked = replay(&bytes, &sizes, version, &ctx);
            let bytewise = replay(&bytes, &vec![1; bytes.len()], version, &ctx);
            assert!(
                chunked == bytewise,
                "{ctx}: chunked and byte-by-byte decodes differ"
            );
            assert_eq!(
                chunked.len(),
                dir.packets.len(),
                "{ctx}: packet count: got {:?}",
                chunked
                    .iter()
                    .map(|p| type_name(p.packet_type))
                    .collect::<Vec<_>>()
            );
            for (i, (got, want)) in chunked.iter().zip(&dir.packets).enumerate() {
                let at = format!("{ctx}: packet {i}");
                let (offset, len) = (got.offset, got.len);
                assert_eq!(
                    (offset, len),
                    (want.offset, want.length),
                    "{at}: offset, length"
                );
                assert_eq!(type_name(got.packet_type), want.packet_type, "{at}: type");
                let packet = match &got.packet {
                    Ok(packet) => packet,
                    Err(e) => {
                        // Only an allow-listed vector may be refused, with its own error.
                        let file = want.vector_file.as_deref().unwrap_or("(no vector file)");
                        let expected = EXPECTED_REJECTS.iter().find(|(f, _)| *f == file);
                        assert_eq!(expected.map(|(_, e)| e), Some(e), "{at}: {file} refused");
                        rejected += 1;
                        continue;
                    }
                };
                if let Packet::Connect(c) = packet {
                    assert_eq!(c.protocol_version, version, "{at}: CONNECT version");
                }
                let Some(file) = &want.vector_file else {
                    continue;
                };
                let v = vectors
                    .get(file)
                    .unwrap_or_else(|| panic!("{at}: {file} not in vectors.json"));
                assert_eq!(
                    v.protocol_version(),
                    version,
                    "{at}: {file} is in another version"
                );
                let raw = read(file);
                assert!(
                    bytes[offset..offset + len] == raw[..],
                    "{at}: bytes of {file}"
                );
                let mut buf = BytesMut::from(&raw[..]);
                let alone = decode(&mut buf, version, &DecodeLimits::default())
                    .unwrap_or_else(|e| panic!("{at}: {file}: {e:?}"));
                assert!(buf.is_empty(), "{at}: {file} has bytes after its packet");
                assert_eq!(alone.as_ref(), Some(packet), "{at}: differs from {file}");
            }
            packets += chunked.len();
        }
    }
    eprintln!(
        "streams: 10 connections, 20 directions, {packets} packets (of which {rejected} \
         allow-listed rejects), each decoded in its TCP chunks and byte by byte"
    );
}

// ---- the manifest ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    file: String,
    version: String,
    direction: String,
    packet_type: String,
    description: String,
    length: usize,
    sha256: String,
    hex: Option<String>,
    producer: String,
    scenario: String,
    connection: String,
    broker_instance: String,
    occurrences: u32,
    directions_seen: Vec<String>,
    decoded: Value,
}

impl Vector {
    fn protocol_version(&self) -> ProtocolVersion {
        parse_version(&self.version)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stream {
    name: String,
    version: String,
    scenario: String,
    connection: String,
    client_producer: String,
    server_producer: String,
    c2s: StreamDirection,
    s2c: StreamDirection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamDirection {
    file: String,
    length: usize,
    packets: Vec<StreamPacket>,
    /// `[seconds_since_connect, bytes]` per `recv()` of the proxy.
    tcp_chunks: Vec<(f64, usize)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamPacket {
    offset: usize,
    length: usize,
    packet_type: String,
    vector_file: Option<String>,
}

fn parse_version(v: &str) -> ProtocolVersion {
    match v {
        "3.1" => ProtocolVersion::V31,
        "3.1.1" => ProtocolVersion::V311,
        "5.0" => ProtocolVersion::V5,
        other => panic!("unknown protocol version {other:?}"),
    }
}

/// `shared/vectors`, beside the repository checkout.
fn vectors_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    assert!(
        dir.join("vectors.json").is_file(),
        "the captured MQTT vectors are missing: expected {} (the `shared` folder beside the \
         repository checkout, which CI always has); this test does not skip without them",
        dir.display()
    );
    dir
}

fn read(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn load_vectors() -> Vec<Vector> {
    serde_json::from_slice(&read("vectors.json")).expect("vectors.json does not parse")
}

/// Runs `check` on every vector and its bytes, and fails at the end with the list of every
/// vector that failed, rather than at the first.
fn for_each_vector(vectors: &[Vector], mut check: impl FnMut(&Vector, &[u8])) {
    let mut failures = Vec::new();
    for v in vectors {
        let raw = read(&v.file);
        let result = panic::catch_unwind(AssertUnwindSafe(|| check(v, &raw)));
        if let Err(payload) = result {
            let message = panic_message(&*payload);
            failures.push(format!("{} [{}]: {message}", v.file, v.scenario));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "(non-string panic)".to_owned()
    }
}

/// A JSON object of the manifest whose keys are ticked off as checks read them. Dropping it
/// with a key left unread fails, so every field must be compared with something.
struct Obj<'a> {
    what: String,
    map: &'a Map<String, Value>,
    read: BTreeSet<&'a str>,
}

impl<'a> Obj<'a> {
    fn new(what: impl Into<String>, value: &'a Value) -> Self {
        let what = what.into();
        let map = value
            .as_object()
            .unwrap_or_else(|| panic!("{what}: not a JSON object: {value}"));
        Self {
            what,
            map,
            read: BTreeSet::new(),
        }
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.what)
    }

    fn opt(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.map.get_key_value(key)?;
        self.read.insert(k.as_str());
        Some(v)
    }

    fn get(&mut self, key: &str) -> &'a Value {
        self.opt(key)
            .unwrap_or_else(|| panic!("{}: missing", self.at(key)))
    }

    fn obj(&mut self, key: &str) -> Self {
        let what = self.at(key);
        Self::new(what, self.get(key))
    }

    fn list(&mut self, key: &str) -> &'a [Value] {
        let what = self.at(key);
        self.get(key)
            .as_array()
            .unwrap_or_else(|| panic!("{what}: not a list"))
    }

    fn eq_u64(&mut self, key: &str, actual: impl Into<u64>) {
        let what = self.at(key);
        assert_eq!(uint(self.get(key), &what), actual.into(), "{what}");
    }

    fn eq_bool(&mut self, key: &str, actual: bool) {
        let what = self.at(key);
        assert_eq!(boolean(self.get(key), &what), actual, "{what}");
    }

    fn eq_str(&mut self, key: &str, actual: &str) {
        let what = self.at(key);
        assert_eq!(text(self.get(key), &what), actual, "{what}");
    }

    /// A byte written as `"0x1F"`.
    fn eq_hex_byte(&mut self, key: &str, actual: u8) {
        let what = self.at(key);
        assert_eq!(hex_byte(self.get(key), &what), actual, "{what}");
    }
}

impl Drop for Obj<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let unread: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.read.contains(k.as_str()))
            .collect();
        assert!(
            unread.is_empty(),
            "{}: keys no check compares: {unread:?}",
            self.what
        );
    }
}

fn uint(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what}: not an unsigned integer: {v}"))
}

fn boolean(v: &Value, what: &str) -> bool {
    v.as_bool()
        .unwrap_or_else(|| panic!("{what}: not a boolean: {v}"))
}

fn text<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"))
}

fn hex_bytes(v: &Value, what: &str) -> Vec<u8> {
    hex::decode(text(v, what)).unwrap_or_else(|e| panic!("{what}: bad hex: {e}"))
}

fn hex_byte(v: &Value, what: &str) -> u8 {
    let s = text(v, what);
    let byte = s
        .strip_prefix("0x")
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| panic!("{what}: not a byte like 0x1F: {s:?}"));
    assert_eq!(s, format!("0x{byte:02X}"), "{what}: not in the form 0x1F");
    byte
}

// ---- decoded fields, one check per packet family ----

/// Compares every field of the manifest's `decoded` object with `packet`.
fn check_packet(v: &Vector, raw: &[u8], packet: &Packet) {
    let version = v.protocol_version();
    let mut d = Obj::new(format!("{}: decoded", v.file), &v.decoded);
    let header_len = check_fixed_header(&mut d, raw, packet, version);
    let remaining = raw.len() - header_len;
    let sections = property_sections(packet, raw, header_len, version);
    let main = sections.main.clone().map(|r| &raw[r]);
    match packet {
        Packet::Connect(c) => {
            let will = sections.will.clone().map(|r| &raw[r]);
            check_connect(&mut d, c, version, main, will);
        }
        Packet::ConnAck(c) => check_connack(&mut d, c, version, raw[header_len], main),
        Packet::Publish(p) => check_publish(&mut d, p, version, main),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            check_ack(&mut d, a, version, remaining, main);
        }
        Packet::Subscribe(s) => check_subscribe(&mut d, s, version, main),
        Packet::SubAck(s) => check_suback(&mut d, s, version, main),
        Packet::Unsubscribe(u) => check_unsubscribe(&mut d, u, version, main),
        Packet::UnsubAck(u) => check_unsuback(&mut d, u, version, main),
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(x) => check_disconnect(&mut d, x, version, remaining, main),
        Packet::Auth(a) => check_auth(&mut d, a, remaining, main),
    }
}

/// The fixed header, recomputed from the raw bytes; returns its length.
fn check_fixed_header(d: &mut Obj, raw: &[u8], packet: &Packet, version: ProtocolVersion) -> usize {
    let first = raw[0];
    let (remaining, len_bytes) = varint(&raw[1..]);
    let header_len = 1 + len_bytes;
    assert_eq!(
        header_len + remaining as usize,
        raw.len(),
        "Remaining Length"
    );
    d.eq_str("packet_type", type_name(packet.packet_type()));
    d.eq_hex_byte("fixed_header_byte", first);
    d.eq_u64("flags", first & 0x0F);
    d.eq_u64("remaining_length", remaining);
    d.eq_u64("remaining_length_bytes", len_bytes as u64);
    let header = parse_header(raw, version, &DecodeLimits::default())
        .expect("header parses")
        .expect("header complete");
    assert_eq!(
        (header.packet_type, header.flags),
        (packet.packet_type(), first & 0x0F)
    );
    assert_eq!(
        (header.remaining_len, header.header_len),
        (remaining, header_len)
    );
    // The flags say what the packet holds.
    let flags = match packet {
        Packet::Publish(p) => u8::from(p.dup) << 3 | p.qos.as_u8() << 1 | u8::from(p.retain),
        Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
        _ => 0,
    };
    assert_eq!(first & 0x0F, flags, "fixed header flags vs decoded packet");
    header_len
}

fn check_connect(
    d: &mut Obj,
    c: &Connect,
    version: ProtocolVersion,
    props: Option<&[u8]>,
    will_props: Option<&[u8]>,
) {
    assert_eq!(c.protocol_version, version, "CONNECT protocol version");
    d.eq_str("protocol_name", version.protocol_name());
    d.eq_u64("protocol_level", version.level());
    d.eq_hex_byte("connect_flags", connect_flags(c));
    let clean = if version.is_v5() {
        "clean_start"
    } else {
        "clean_session"
    };
    d.eq_bool(clean, c.clean_start);
    d.eq_bool("will_flag", c.will.is_some());
    d.eq_u64("will_qos", c.will.as_ref().map_or(0, |w| w.qos.as_u8()));
    d.eq_bool("will_retain", c.will.as_ref().is_some_and(|w| w.retain));
    d.eq_bool("username_flag", c.username.is_some());
    d.eq_bool("password_flag", c.password.is_some());
    // The decoder refuses a CONNECT with the reserved flag set [MQTT-3.1.2-3].
    d.eq_u64("reserved_flag", 0u8);
    d.eq_u64("keep_alive", c.keep_alive);
    check_properties(
        d,
        "properties",
        "property_order",
        &c.properties,
        props,
        connect_prop,
    );
    d.eq_str("client_id", &c.client_id);
    if let Some(w) = &c.will {
        check_properties(
            d,
            "will_properties",
            "will_property_order",
            &w.properties,
            will_props,
            will_prop,
        );
        d.eq_str("will_topic", w.topic.as_str());
        check_binary(d, "will_payload", &w.payload);
    }
    // Absent fields must be absent from the manifest too: an unread key fails.
    if let Some(u) = &c.username {
        d.eq_str("username", u);
    }
    if let Some(p) = &c.password {
        check_binary(d, "password", p);
    }
}

fn check_connack(
    d: &mut Obj,
    c: &ConnAck,
    version: ProtocolVersion,
    ack_flags: u8,
    props: Option<&[u8]>,
) {
    d.eq_u64("ack_flags", ack_flags);
    d.eq_bool("session_present", c.session_present);
    if version.is_v5() {
        check_reason(d, c.reason_code);
    } else {
        let (code, name) = V3_CONNACK
            .iter()
            .find(|(_, rc, _)| *rc == c.reason_code)
            .map(|(code, _, name)| (*code, *name))
            .unwrap_or_else(|| panic!("{:?} has no 3.x return code", c.reason_code));
        d.eq_u64("return_code", code);
        d.eq_str("return_code_name", name);
    }
    check_properties(
        d,
        "properties",
        "property_order",
        &c.properties,
        props,
        connack_prop,
    );
}

fn check_publish(d: &mut Obj, p: &Publish, version: ProtocolVersion, props: Option<&[u8]>) {
    d.eq_bool("dup", p.dup);
    d.eq_u64("qos", p.qos.as_u8());
    d.eq_bool("retain", p.retain);
    d.eq_str("topic", p.topic.as_str());
    assert_eq!(
        p.packet_id.is_some(),
        p.qos.as_u8() > 0,
        "packet id iff QoS > 0"
    );
    if let Some(id) = p.packet_id {
        d.eq_u64("packet_id", id.get());
    }
    if !version.is_v5() {
        assert!(p.properties.is_empty(), "properties before 5.0");
    }
    check_properties(
        d,
        "properties",
        "property_order",
        &*p.properties,
        props,
        publish_prop,
    );
    check_binary(d, "payload", &p.payload);
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP.
fn check_ack(
    d: &mut Obj,
    a: &Ack,
    version: ProtocolVersion,
    remaining: usize,
    props: Option<&[u8]>,
) {
    d.eq_u64("packet_id", a.packet_id.get());
    if version.is_v5() {
        check_reason(d, a.reason_code);
        // Remaining Length 2: the reason code is left out and means Success.
        let omitted = d.opt("reason_code_omitted").map(|v| boolean(v, "omitted"));
        assert_eq!(
            omitted,
            (remaining == 2).then_some(true),
            "reason_code_omitted"
        );
    } else {
        assert_eq!(
            a.reason_code,
            ReasonCode::Success,
            "3.x acks carry no reason code"
        );
    }
    check_properties(
        d,
        "properties",
        "property_order",
        &a.properties,
        props,
        ack_prop,
    );
}

fn check_subscribe(d: &mut Obj, s: &Subscribe, version: ProtocolVersion, props: Option<&[u8]>) {
    d.eq_u64("packet_id", s.packet_id.get());
    check_properties(
        d,
        "properties",
        "property_order",
        &s.properties,
        props,
        subscribe_prop,
    );
    let list = d.list("subscriptions");
    assert_eq!(list.len(), s.subscriptions.len(), "number of subscriptions");
    for (i, (entry, sub)) in list.iter().zip(&s.subscriptions).enumerate() {
        let mut e = Obj::new(d.at(&format!("subscriptions[{i}]")), entry);
        let o = &sub.options;
        e.eq_str("topic_filter", sub.filter.as_str());
        e.eq_hex_byte("options_byte", options_byte(o, version));
        e.eq_u64("qos", o.qos.as_u8());
        if version.is_v5() {
            e.eq_bool("no_local", o.no_local);
            e.eq_bool("retain_as_published", o.retain_as_published);
            e.eq_u64("retain_handling", o.retain_handling as u8);
        } else {
            let v3 = SubscriptionOptions {
                qos: o.qos,
                ..Default::default()
            };
            assert_eq!(*o, v3, "5.0 subscription options before 5.0");
        }
    }
}

fn check_suback(d: &mut Obj, s: &SubAck, version: ProtocolVersion, props: Option<&[u8]>) {
    d.eq_u64("packet_id", s.packet_id.get());
    check_properties(
        d,
        "properties",
        "property_order",
        &s.properties,
        props,
        ack_prop,
    );
    let key = if version.is_v5() {
        "reason_codes"
    } else {
        "return_codes"
    };
    let list = d.list(key);
    assert_eq!(list.len(), s.reason_codes.len(), "number of {key}");
    for (i, (entry, code)) in list.iter().zip(&s.reason_codes).enumerate() {
        let mut e = Obj::new(d.at(&format!("{key}[{i}]")), entry);
        if version.is_v5() {
            check_reason(&mut e, *code);
        } else {
            let (byte, meaning) = V3_SUBACK
                .iter()
                .find(|(_, rc, _)| rc == code)
                .map(|(b, _, m)| (*b, *m))
                .unwrap_or_else(|| panic!("{code:?} is no 3.x SUBACK return code"));
            e.eq_u64("return_code", byte);
            e.eq_hex_byte("return_code_hex", byte);
            e.eq_str("meaning", meaning);
        }
    }
}

fn check_unsubscribe(d: &mut Obj, u: &Unsubscribe, version: ProtocolVersion, props: Option<&[u8]>) {
    d.eq_u64("packet_id", u.packet_id.get());
    if !version.is_v5() {
        assert_eq!(u.properties, UnsubscribeProperties::default());
    }
    check_properties(
        d,
        "properties",
        "property_order",
        &u.properties,
        props,
        unsubscribe_prop,
    );
    let what = d.at("topic_filters");
    let filters: Vec<&str> = d
        .list("topic_filters")
        .iter()
        .map(|f| text(f, &what))
        .collect();
    let ours: Vec<&str> = u.filters.iter().map(|f| f.as_str()).collect();
    assert_eq!(filters, ours, "{what}");
}

fn check_unsuback(d: &mut Obj, u: &UnsubAck, version: ProtocolVersion, props: Option<&[u8]>) {
    d.eq_u64("packet_id", u.packet_id.get());
    check_properties(
        d,
        "properties",
        "property_order",
        &u.properties,
        props,
        ack_prop,
    );
    if !version.is_v5() {
        assert!(
            u.reason_codes.is_empty(),
            "3.x UNSUBACK has no reason codes"
        );
        return;
    }
    let list = d.list("reason_codes");
    assert_eq!(list.len(), u.reason_codes.len(), "number of reason codes");
    for (i, (entry, code)) in list.iter().zip(&u.reason_codes).enumerate() {
        check_reason(
            &mut Obj::new(d.at(&format!("reason_codes[{i}]")), entry),
            *code,
        );
    }
}

fn check_disconnect(
    d: &mut Obj,
    x: &Disconnect,
    version: ProtocolVersion,
    remaining: usize,
    props: Option<&[u8]>,
) {
    if !version.is_v5() {
        assert_eq!(*x, Disconnect::default(), "3.x DISCONNECT is empty");
        return;
    }
    check_reason(d, x.reason_code);
    let omitted = d.opt("reason_code_omitted").map(|v| boolean(v, "omitted"));
    assert_eq!(
        omitted,
        (remaining == 0).then_some(true),
        "reason_code_omitted"
    );
    check_properties(
        d,
        "properties",
        "property_order",
        &x.properties,
        props,
        disconnect_prop,
    );
}

fn check_auth(d: &mut Obj, a: &Auth, remaining: usize, props: Option<&[u8]>) {
    check_reason(d, a.reason_code);
    let omitted = d.opt("reason_code_omitted").map(|v| boolean(v, "omitted"));
    assert_eq!(
        omitted,
        (remaining == 0).then_some(true),
        "reason_code_omitted"
    );
    check_properties(
        d,
        "properties",
        "property_order",
        &a.properties,
        props,
        auth_prop,
    );
}

/// A 5.0 reason code: its value, its hex form and its spec name.
fn check_reason(d: &mut Obj, actual: ReasonCode) {
    d.eq_u64("reason_code", actual.as_u8());
    d.eq_hex_byte("reason_code_hex", actual.as_u8());
    d.eq_str("reason", reason_name(actual));
}

/// Binary data as the manifest writes it: `{length, hex, utf8?}`, or `{length, sha256,
/// head_hex}` past 512 bytes.
fn check_binary(d: &mut Obj, key: &str, actual: &[u8]) {
    let mut b = d.obj(key);
    b.eq_u64("length", actual.len() as u64);
    if actual.len() > 512 {
        b.eq_str("sha256", &hex::encode(Sha256::digest(actual)));
        let what = b.at("head_hex");
        let head = hex_bytes(b.get("head_hex"), &what);
        assert!(!head.is_empty() && actual.starts_with(&head), "{what}");
        return;
    }
    let what = b.at("hex");
    assert_eq!(hex_bytes(b.get("hex"), &what), actual, "{what}");
    let utf8 = b.opt("utf8").map(|v| text(v, "utf8"));
    assert_eq!(utf8, std::str::from_utf8(actual).ok(), "{}", b.at("utf8"));
}

/// Compares the manifest's `key` properties with ours, and its `order_key` id list with the
/// ids in the captured bytes `section` (length prefix included). With no section (3.x, or a
/// 5.0 packet short enough to leave the properties out) the manifest must have neither key.
fn check_properties<P: Default + PartialEq + Debug>(
    d: &mut Obj,
    key: &str,
    order_key: &str,
    actual: &P,
    section: Option<&[u8]>,
    apply: fn(&mut P, &str, &Value) -> bool,
) {
    let Some(section) = section else {
        assert_eq!(
            *actual,
            P::default(),
            "properties without a property section"
        );
        return;
    };
    let what = d.at(key);
    let map = d
        .get(key)
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object"));
    let mut expected = P::default();
    let mut from_names = Vec::new();
    for (name, value) in map {
        let known = apply(&mut expected, name, value);
        assert!(
            known,
            "{what}: property {name:?} has no field in this packet"
        );
        let id = property_id(name);
        // User Property and PUBLISH's Subscription Identifier are lists, one id per entry.
        let count = value.as_array().map_or(1, Vec::len);
        from_names.extend(std::iter::repeat_n(id, count));
    }
    assert_eq!(*actual, expected, "{what}");

    let what = d.at(order_key);
    let order: Vec<u8> = d
        .list(order_key)
        .iter()
        .map(|id| hex_byte(id, &what))
        .collect();
    let wire: Vec<u8> = property_items(section).iter().map(|(id, _)| *id).collect();
    assert_eq!(order, wire, "{what} vs the captured bytes");
    let mut sorted = order;
    sorted.sort_unstable();
    from_names.sort_unstable();
    assert_eq!(sorted, from_names, "{what} vs the properties listed");
}

// ---- property names to our typed fields ----

fn connect_prop(p: &mut ConnectProperties, name: &str, v: &Value) -> bool {
    match name {
        "Session Expiry Interval" => p.session_expiry_interval = Some(u32v(v)),
        "Receive Maximum" => p.receive_maximum = Some(nz16(v)),
        "Maximum Packet Size" => p.maximum_packet_size = Some(nz32(v)),
        "Topic Alias Maximum" => p.topic_alias_maximum = Some(u16v(v)),
        "Request Response Information" => p.request_response_information = Some(flag(v)),
        "Request Problem Information" => p.request_problem_information = Some(flag(v)),
        "Authentication Method" => p.authentication_method = Some(string(v)),
        "Authentication Data" => p.authentication_data = Some(data(v)),
        "User Property" => p.user_properties = users(v),
        _ => return false,
    }
    true
}

fn will_prop(p: &mut WillProperties, name: &str, v: &Value) -> bool {
    match name {
        "Will Delay Interval" => p.will_delay_interval = Some(u32v(v)),
        "Payload Format Indicator" => p.payload_format_indicator = Some(flag(v)),
        "Message Expiry Interval" => p.message_expiry_interval = Some(u32v(v)),
        "Content Type" => p.content_type = Some(string(v)),
        "Response Topic" => p.response_topic = Some(topic(v)),
        "Correlation Data" => p.correlation_data = Some(data(v)),
        "User Property" => p.user_properties = users(v),
        _ => return false,
    }
    true
}

fn connack_prop(p: &mut ConnAckProperties, name: &str, v: &Value) -> bool {
    match name {
        "Session Expiry Interval" => p.session_expiry_interval = Some(u32v(v)),
        "Receive Maximum" => p.receive_maximum = Some(nz16(v)),
        "Maximum QoS" => {
            p.maximum_qos = Some(match uint(v, name) {
                0 => mqtt_core::QoS::AtMostOnce,
                1 => mqtt_core::QoS::AtLeastOnce,
                other => panic!("Maximum QoS {other}"),
            });
        }
        "Retain Available" => p.retain_available = Some(flag(v)),
        "Maximum Packet Size" => p.maximum_packet_size = Some(nz32(v)),
        "Assigned Client Identifier" => p.assigned_client_identifier = Some(string(v)),
        "Topic Alias Maximum" => p.topic_alias_maximum = Some(u16v(v)),
        "Reason String" => p.reason_string = Some(string(v)),
        "User Property" => p.user_properties = users(v),
        "Wildcard Subscription Available" => p.wildcard_subscription_available = Some(flag(v)),
        "Subscription Identifier Available" => {
            p.subscription_identifiers_available = Some(flag(v));
        }
        "Shared Subscription Available" => p.shared_subscription_available = Some(flag(v)),
        "Server Keep Alive" => p.server_keep_alive = Some(u16v(v)),
        "Response Information" => p.response_information = Some(string(v)),
        "Server Reference" => p.server_reference = Some(string(v)),
        "Authentication Method" => p.authentication_method = Some(string(v)),
        "Authentication Data" => p.authentication_data = Some(data(v)),
        _ => return false,
    }
    true
}

fn publish_prop(p: &mut PublishProperties, name: &str, v: &Value) -> bool {
    match name {
        "Payload Format Indicator" => p.payload_format_indicator = Some(flag(v)),
        "Message Expiry Interval" => p.message_expiry_interval = Some(u32v(v)),
        "Topic Alias" => p.topic_alias = Some(nz16(v)),
        "Response Topic" => p.response_topic = Some(topic(v)),
        "Correlation Data" => p.correlation_data = Some(data(v)),
        "User Property" => p.user_properties = users(v),
        // A list in PUBLISH: one per matching subscription.
        "Subscription Identifier" => {
            let list = v
                .as_array()
                .expect("Subscription Identifier is a list in PUBLISH");
            p.subscription_identifiers = list.iter().map(nz32).collect();
        }
        "Content Type" => p.content_type = Some(string(v)),
        _ => return false,
    }
    true
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
fn ack_prop(p: &mut AckProperties, name: &str, v: &Value) -> bool {
    match name {
        "Reason String" => p.reason_string = Some(string(v)),
        "User Property" => p.user_properties = users(v),
        _ => return false,
    }
    true
}

fn subscribe_prop(p: &mut SubscribeProperties, name: &str, v: &Value) -> bool {
    match name {
        // An integer in SUBSCRIBE: it may appear once.
        "Subscription Identifier" => p.subscription_identifier = Some(nz32(v)),
        "User Property" => p.user_properties = users(v),
        _ => return false,
    }
    true
}

fn unsubscribe_prop(p: &mut UnsubscribeProperties, name: &str, v: &Value) -> bool {
    match name {
        "User Property" => p.user_properties = users(v),
        _ => return false,
    }
    true
}

fn disconnect_prop(p: &mut DisconnectProperties, name: &str, v: &Value) -> bool {
    match name {
        "Session Expiry Interval" => p.session_expiry_interval = Some(u32v(v)),
        "Reason String" => p.reason_string = Some(string(v)),
        "User Property" => p.user_properties = users(v),
        "Server Reference" => p.server_reference = Some(string(v)),
        _ => return false,
    }
    true
}

fn auth_prop(p: &mut AuthProperties, name: &str, v: &Value) -> bool {
    match name {
        "Authentication Method" => p.authentication_method = Some(string(v)),
        "Authentication Data" => p.authentication_data = Some(data(v)),
        "Reason String" => p.reason_string = Some(string(v)),
        "User Property" => p.user_properties = users(v),
        _ => return false,
    }
    true
}

/// Property identifiers by spec name (5.0 table 2-4).
fn property_id(name: &str) -> u8 {
    match name {
        "Payload Format Indicator" => 0x01,
        "Message Expiry Interval" => 0x02,
        "Content Type" => 0x03,
        "Response Topic" => 0x08,
        "Correlation Data" => 0x09,
        "Subscription Identifier" => 0x0B,
        "Session Expiry Interval" => 0x11,
        "Assigned Client Identifier" => 0x12,
        "Server Keep Alive" => 0x13,
        "Authentication Method" => 0x15,
        "Authentication Data" => 0x16,
        "Request Problem Information" => 0x17,
        "Will Delay Interval" => 0x18,
        "Request Response Information" => 0x19,
        "Response Information" => 0x1A,
        "Server Reference" => 0x1C,
        "Reason String" => 0x1F,
        "Receive Maximum" => 0x21,
        "Topic Alias Maximum" => 0x22,
        "Topic Alias" => 0x23,
        "Maximum QoS" => 0x24,
        "Retain Available" => 0x25,
        "User Property" => 0x26,
        "Maximum Packet Size" => 0x27,
        "Wildcard Subscription Available" => 0x28,
        "Subscription Identifier Available" => 0x29,
        "Shared Subscription Available" => 0x2A,
        other => panic!("unknown property name {other:?}"),
    }
}

fn u32v(v: &Value) -> u32 {
    u32::try_from(uint(v, "property")).expect("four-byte integer")
}

fn u16v(v: &Value) -> u16 {
    u16::try_from(uint(v, "property")).expect("two-byte integer")
}

fn nz16(v: &Value) -> NonZeroU16 {
    NonZeroU16::new(u16v(v)).expect("non-zero")
}

fn nz32(v: &Value) -> NonZeroU32 {
    NonZeroU32::new(u32v(v)).expect("non-zero")
}

/// A Byte property used as a boolean: written as 0 or 1.
fn flag(v: &Value) -> bool {
    match uint(v, "property") {
        0 => false,
        1 => true,
        other => panic!("boolean property of {other}"),
    }
}

fn string(v: &Value) -> ByteString {
    ByteString::from(text(v, "property"))
}

fn topic(v: &Value) -> TopicName {
    TopicName::new(text(v, "property")).expect("a valid topic name")
}

/// Binary Data, written as hex.
fn data(v: &Value) -> Bytes {
    Bytes::from(hex_bytes(v, "property"))
}

/// User Properties: a list of `[name, value]` in wire order.
fn users(v: &Value) -> Vec<UserProperty> {
    let list = v.as_array().expect("User Property is a list");
    list.iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([name, value]) => UserProperty::new(text(name, "name"), text(value, "value")),
            _ => panic!("User Property entry is not [name, value]: {pair}"),
        })
        .collect()
}

// ---- codes and names ----

/// 3.x CONNACK return codes (3.1.1 table 3.1) and the reason codes they map to.
const V3_CONNACK: [(u8, ReasonCode, &str); 6] = [
    (0, ReasonCode::Success, "Connection Accepted"),
    (
        1,
        ReasonCode::UnsupportedProtocolVersion,
        "Connection Refused, unacceptable protocol version",
    ),
    (
        2,
        ReasonCode::ClientIdentifierNotValid,
        "Connection Refused, identifier rejected",
    ),
    (
        3,
        ReasonCode::ServerUnavailable,
        "Connection Refused, Server unavailable",
    ),
    (
        4,
        ReasonCode::BadUserNameOrPassword,
        "Connection Refused, bad user name or password",
    ),
    (
        5,
        ReasonCode::NotAuthorized,
        "Connection Refused, not authorized",
    ),
];

/// 3.x SUBACK return codes; 0x80 (Failure) is our Unspecified error.
const V3_SUBACK: [(u8, ReasonCode, &str); 4] = [
    (0x00, ReasonCode::Success, "Success - Maximum QoS 0"),
    (0x01, ReasonCode::GrantedQoS1, "Success - Maximum QoS 1"),
    (0x02, ReasonCode::GrantedQoS2, "Success - Maximum QoS 2"),
    (0x80, ReasonCode::UnspecifiedError, "Failure"),
];

/// The spec's names of the reason codes (5.0 table 2-6); the manifest calls 0x00 "Success"
/// in every packet.
fn reason_name(code: ReasonCode) -> &'static str {
    use ReasonCode::*;
    match code {
        Success => "Success",
        GrantedQoS1 => "Granted QoS 1",
        GrantedQoS2 => "Granted QoS 2",
        DisconnectWithWill => "Disconnect with Will Message",
        NoMatchingSubscribers => "No matching subscribers",
        NoSubscriptionExisted => "No subscription existed",
        ContinueAuthentication => "Continue authentication",
        ReAuthenticate => "Re-authenticate",
        UnspecifiedError => "Unspecified error",
        MalformedPacket => "Malformed Packet",
        ProtocolError => "Protocol Error",
        ImplementationSpecificError => "Implementation specific error",
        UnsupportedProtocolVersion => "Unsupported Protocol Version",
        ClientIdentifierNotValid => "Client Identifier not valid",
        BadUserNameOrPassword => "Bad User Name or Password",
        NotAuthorized => "Not authorized",
        ServerUnavailable => "Server unavailable",
        ServerBusy => "Server busy",
        Banned => "Banned",
        ServerShuttingDown => "Server shutting down",
        BadAuthenticationMethod => "Bad authentication method",
        KeepAliveTimeout => "Keep Alive timeout",
        SessionTakenOver => "Session taken over",
        TopicFilterInvalid => "Topic Filter invalid",
        TopicNameInvalid => "Topic Name invalid",
        PacketIdentifierInUse => "Packet Identifier in use",
        PacketIdentifierNotFound => "Packet Identifier not found",
        ReceiveMaximumExceeded => "Receive Maximum exceeded",
        TopicAliasInvalid => "Topic Alias invalid",
        PacketTooLarge => "Packet too large",
        MessageRateTooHigh => "Message rate too high",
        QuotaExceeded => "Quota exceeded",
        AdministrativeAction => "Administrative action",
        PayloadFormatInvalid => "Payload format invalid",
        RetainNotSupported => "Retain not supported",
        QoSNotSupported => "QoS not supported",
        UseAnotherServer => "Use another server",
        ServerMoved => "Server moved",
        SharedSubscriptionsNotSupported => "Shared Subscriptions not supported",
        ConnectionRateExceeded => "Connection rate exceeded",
        MaximumConnectTime => "Maximum connect time",
        SubscriptionIdentifiersNotSupported => "Subscription Identifiers not supported",
        WildcardSubscriptionsNotSupported => "Wildcard Subscriptions not supported",
        other => panic!("no name for {other:?}"),
    }
}

fn type_name(t: PacketType) -> &'static str {
    match t {
        PacketType::Connect => "CONNECT",
        PacketType::ConnAck => "CONNACK",
        PacketType::Publish => "PUBLISH",
        PacketType::PubAck => "PUBACK",
        PacketType::PubRec => "PUBREC",
        PacketType::PubRel => "PUBREL",
        PacketType::PubComp => "PUBCOMP",
        PacketType::Subscribe => "SUBSCRIBE",
        PacketType::SubAck => "SUBACK",
        PacketType::Unsubscribe => "UNSUBSCRIBE",
        PacketType::UnsubAck => "UNSUBACK",
        PacketType::PingReq => "PINGREQ",
        PacketType::PingResp => "PINGRESP",
        PacketType::Disconnect => "DISCONNECT",
        PacketType::Auth => "AUTH",
    }
}

/// The CONNECT flags byte a decoded CONNECT stands for (3.1.2.3).
fn connect_flags(c: &Connect) -> u8 {
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(w) = &c.will {
        flags |= 0x04 | w.qos.as_u8() << 3 | u8::from(w.retain) << 5;
    }
    flags | u8::from(c.password.is_some()) << 6 | u8::from(c.username.is_some()) << 7
}

/// The Subscription Options byte (3.8.3.1); only the QoS before 5.0.
fn options_byte(o: &SubscriptionOptions, version: ProtocolVersion) -> u8 {
    let mut byte = o.qos.as_u8();
    if version.is_v5() {
        byte |= u8::from(o.no_local) << 2
            | u8::from(o.retain_as_published) << 3
            | (o.retain_handling as u8) << 4;
    }
    byte
}

// ---- the wire, read independently of the codec ----

/// A Variable Byte Integer at the start of `b`: its value and length.
fn varint(b: &[u8]) -> (u32, usize) {
    let mut value = 0u32;
    for (i, &byte) in b.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("bad Variable Byte Integer {b:02x?}")
}

fn be16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

/// Where the 5.0 property sections of a packet sit in its bytes, length prefix included.
#[derive(Debug, Default)]
struct Sections {
    /// The packet's properties.
    main: Option<Range<usize>>,
    /// CONNECT's Will Properties.
    will: Option<Range<usize>>,
}

fn property_sections(
    packet: &Packet,
    raw: &[u8],
    header_len: usize,
    version: ProtocolVersion,
) -> Sections {
    let section = |at: usize| {
        let (len, n) = varint(&raw[at..]);
        at..at + n + len as usize
    };
    let mut s = Sections::default();
    if !version.is_v5() {
        return s;
    }
    let body = header_len;
    let remaining = raw.len() - body;
    s.main = match packet {
        Packet::Connect(c) => {
            // Protocol Name, Protocol Level, Connect Flags, Keep Alive.
            let props = section(body + 2 + be16(&raw[body..]) + 4);
            if c.will.is_some() {
                // After the properties comes the Client Identifier, then the will's.
                s.will = Some(section(props.end + 2 + be16(&raw[props.end..])));
            }
            Some(props)
        }
        Packet::ConnAck(_) => Some(section(body + 2)),
        Packet::Publish(p) => {
            let id = if p.packet_id.is_some() { 2 } else { 0 };
            Some(section(body + 2 + p.topic.len() + id))
        }
        Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
            (remaining > 3).then(|| section(body + 3))
        }
        Packet::Subscribe(_) | Packet::SubAck(_) | Packet::Unsubscribe(_) | Packet::UnsubAck(_) => {
            Some(section(body + 2))
        }
        Packet::Disconnect(_) | Packet::Auth(_) => (remaining > 1).then(|| section(body + 1)),
        Packet::PingReq | Packet::PingResp => None,
    };
    s
}

/// Splits a property section (length prefix included) into its properties, each as its id
/// and its bytes, id included.
fn property_items(section: &[u8]) -> Vec<(u8, &[u8])> {
    let (len, n) = varint(section);
    let mut rest = &section[n..];
    assert_eq!(rest.len(), len as usize, "property length");
    let mut items = Vec::new();
    while let Some(&id) = rest.first() {
        let value = &rest[1..];
        let size = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
            0x13 | 0x21 | 0x22 | 0x23 => 2,
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0B => varint(value).1,
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => 2 + be16(value),
            0x26 => {
                let name = 2 + be16(value);
                name + 2 + be16(&value[name..])
            }
            other => panic!("unknown property id {other:#04x}"),
        };
        items.push((id, &rest[..1 + size]));
        rest = &rest[1 + size..];
    }
    items
}

fn ids(order: &[u8]) -> String {
    let ids: Vec<String> = order.iter().map(|id| format!("{id:02X}")).collect();
    ids.join(" ")
}

// ---- re-encoding ----

#[derive(Debug, Default)]
struct Tally {
    identical: usize,
    short_form: usize,
    property_order: usize,
}

/// How our encoding of a decoded vector compares with the captured bytes.
#[derive(Debug)]
enum Reencoded {
    /// The same bytes.
    Identical,
    /// A 5.0 ack, DISCONNECT or AUTH whose trailing Success reason code and/or empty property
    /// length we leave out, as the spec allows (3.4.2.1, 3.14.2.1, ...).
    ShortForm,
    /// The same properties in another order: the spec sets no order. The ids, per section.
    PropertyOrder { captured: Vec<u8>, ours: Vec<u8> },
}

fn reencode(v: &Vector, raw: &[u8]) -> Reencoded {
    let version = v.protocol_version();
    let packet = decode(&mut BytesMut::from(raw), version, &DecodeLimits::default())
        .expect("decodes")
        .expect("complete");
    let mut out = BytesMut::new();
    encode(&packet, version, &mut out).expect("a decoded packet encodes");
    let mut again = out.clone();
    let back = decode(&mut again, version, &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("our bytes {} do not decode: {e:?}", hex::encode(&out)))
        .expect("our bytes hold a whole packet");
    assert!(again.is_empty(), "our bytes have a tail");
    assert_eq!(back, packet, "our bytes decode to another packet");
    let ours = &out[..];
    if ours == raw {
        return Reencoded::Identical;
    }
    let differ = || {
        format!(
            "re-encoding differs beyond what the spec leaves open:\n  captured {}\n  ours     {}",
            hex::encode(raw),
            hex::encode(ours)
        )
    };

    let (_, raw_n) = varint(&raw[1..]);
    let (_, our_n) = varint(&ours[1..]);
    let (raw_body, our_body) = (&raw[1 + raw_n..], &ours[1 + our_n..]);
    let short_form_packet = matches!(
        packet,
        Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_)
            | Packet::Disconnect(_)
            | Packet::Auth(_)
    );
    if short_form_packet && version.is_v5() && ours[0] == raw[0] && our_body.len() < raw_body.len()
    {
        // What we leave out must be a Success reason code and/or a zero property length.
        let (kept, dropped) = raw_body.split_at(our_body.len());
        assert!(
            kept == our_body && dropped.iter().all(|&b| b == 0),
            "{}",
            differ()
        );
        return Reencoded::ShortForm;
    }

    assert!(ours.len() == raw.len(), "{}", differ());
    let header_len = 1 + raw_n;
    let theirs = property_sections(&packet, raw, header_len, version);
    let mine = property_sections(&packet, ours, header_len, version);
    let sections: Vec<Range<usize>> = [theirs.main, theirs.will].into_iter().flatten().collect();
    let mine: Vec<Range<usize>> = [mine.main, mine.will].into_iter().flatten().collect();
    assert!(sections == mine, "{}", differ());
    let (mut captured, mut our_order) = (Vec::new(), Vec::new());
    let mut at = 0;
    for r in &sections {
        assert!(raw[at..r.start] == ours[at..r.start], "{}", differ());
        let mut a = property_items(&raw[r.clone()]);
        let mut b = property_items(&ours[r.clone()]);
        captured.extend(a.iter().map(|(id, _)| *id));
        our_order.extend(b.iter().map(|(id, _)| *id));
        a.sort_unstable();
        b.sort_unstable();
        assert!(a == b, "{}", differ());
        at = r.end;
    }
    assert!(
        raw[at..] == ours[at..] && captured != our_order,
        "{}",
        differ()
    );
    Reencoded::PropertyOrder {
        captured,
        ours: our_order,
    }
}

// ---- streams ----

/// One packet found in a stream: where it is, and what decoding it gave.
#[derive(Debug, PartialEq)]
struct Found {
    offset: usize,
    len: usize,
    packet_type: PacketType,
    packet: Result<Packet, DecodeError>,
}

/// Feeds `bytes` to the decoder in pieces of `sizes`, decoding after each piece until it
/// asks for more. A packet the decoder refuses is recorded and stepped over, so that the rest
/// of the stream is still checked.
fn replay(bytes: &[u8], sizes: &[usize], version: ProtocolVersion, ctx: &str) -> Vec<Found> {
    let limits = DecodeLimits::default();
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut found = Vec::new();
    for &size in sizes {
        buf.extend_from_slice(&bytes[fed..fed + size]);
        fed += size;
        loop {
            let before = buf.len();
            let offset = fed - before;
            let header = parse_header(&buf, version, &limits)
                .unwrap_or_else(|e| panic!("{ctx}: fixed header at offset {offset}: {e:?}"));
            let result = decode(&mut buf, version, &limits);
            let Some(header) = header.filter(|h| h.packet_len() <= before) else {
                assert_eq!(
                    result,
                    Ok(None),
                    "{ctx}: at offset {offset}, packet incomplete"
                );
                assert_eq!(buf.len(), before, "{ctx}: Ok(None) consumed bytes");
                break;
            };
            let len = header.packet_len();
            let packet = match result {
                Ok(Some(p)) => Ok(p),
                Ok(None) => panic!("{ctx}: at offset {offset}, whole packet but Ok(None)"),
                Err(e) => {
                    // Step over the refused packet, whether or not decode consumed it.
                    let consumed = before - buf.len();
                    assert!(consumed == 0 || consumed == len, "{ctx}: partial consume");
                    let _ = buf.split_to(len - consumed);
                    Err(e)
                }
            };
            assert_eq!(
                before - buf.len(),
                len,
                "{ctx}: at offset {offset}, bytes consumed"
            );
            found.push(Found {
                offset,
                len,
                packet_type: header.packet_type,
                packet,
            });
        }
    }
    assert!(buf.is_empty(), "{ctx}: {} bytes left undecoded", buf.len());
    found
}

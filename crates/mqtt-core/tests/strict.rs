//! One test per rule the decoder enforces: the exact error, and the 5.0 reason code a
//! receiver sends for it.

use bytes::BytesMut;
use mqtt_core::codec::{decode, parse_header, DecodeError, DecodeLimits};
use mqtt_core::packet::PacketType;
use mqtt_core::topic::TopicError;
use mqtt_core::{Packet, ProtocolVersion, ReasonCode};

use ProtocolVersion::{V31, V311, V5};

/// A packet from its first byte and a hex body; the Remaining Length is computed.
fn pkt(first: u8, body: &str) -> Vec<u8> {
    let body: Vec<u8> = hex::decode(body.replace(' ', "")).expect("test hex");
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.extend(body);
    out
}

fn text(s: &str) -> String {
    format!("{:04x}{}", s.len(), hex::encode(s))
}

fn dec(v: ProtocolVersion, bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    decode(&mut BytesMut::from(bytes), v, &DecodeLimits::default())
}

fn rejects(v: ProtocolVersion, bytes: &[u8], err: DecodeError, code: ReasonCode) {
    let got = dec(v, bytes);
    assert_eq!(got, Err(err.clone()), "{v} {}", hex::encode(bytes));
    assert_eq!(err.reason_code(), code, "{err:?}");
}

fn accepts(v: ProtocolVersion, bytes: &[u8]) -> Packet {
    match dec(v, bytes) {
        Ok(Some(p)) => p,
        other => panic!("{v} {}: {other:?}", hex::encode(bytes)),
    }
}

/// A 3.1.1/5.0 CONNECT with `flags`, keep alive 60, client id "a", v5 properties `props`
/// (hex, with their length) and the rest of the payload `tail`.
fn connect(level: u8, flags: u8, props: &str, tail: &str) -> Vec<u8> {
    let props = if level == 5 { props } else { "" };
    pkt(
        0x10,
        &format!(
            "{}{level:02x}{flags:02x}003c{props}{}{tail}",
            text("MQTT"),
            text("a")
        ),
    )
}

#[test]
fn reserved_packet_types() {
    // [MQTT-2.1.3-1] type 0 is reserved in every version; 15 is AUTH in 5.0 only.
    for v in [V31, V311, V5] {
        rejects(
            v,
            &[0x00, 0x00],
            DecodeError::ReservedPacketType(0),
            ReasonCode::MalformedPacket,
        );
    }
    rejects(
        V311,
        &[0xF0, 0x00],
        DecodeError::ReservedPacketType(15),
        ReasonCode::MalformedPacket,
    );
    assert!(matches!(accepts(V5, &[0xF0, 0x00]), Packet::Auth(_)));
}

#[test]
fn reserved_fixed_header_flags_for_every_packet_type() {
    let limits = DecodeLimits::default();
    for t in 1u8..=14 {
        for flags in 0u8..16 {
            let first = t << 4 | flags;
            let res = parse_header(&[first, 0x00], V311, &limits);
            let expected_ok = match t {
                3 => true,
                6 | 8 | 10 => flags == 0b0010,
                _ => flags == 0,
            };
            assert_eq!(res.is_ok(), expected_ok, "type {t} flags {flags:04b}");
            if !expected_ok {
                let err = res.unwrap_err();
                assert!(matches!(err, DecodeError::InvalidFlags { .. }));
                assert_eq!(err.reason_code(), ReasonCode::MalformedPacket);
            }
        }
    }
    rejects(
        V311,
        &[0x41, 0x02, 0x00, 0x01],
        DecodeError::InvalidFlags {
            packet_type: PacketType::PubAck,
            flags: 1,
        },
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn remaining_length_longer_than_four_bytes_or_not_minimal() {
    rejects(
        V5,
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        DecodeError::MalformedVarInt,
        ReasonCode::MalformedPacket,
    );
    // PINGREQ with a Remaining Length of 0 written in two bytes.
    rejects(
        V311,
        &[0xC0, 0x80, 0x00],
        DecodeError::MalformedVarInt,
        ReasonCode::MalformedPacket,
    );
    rejects(
        V5,
        &[0x30, 0x81, 0x80, 0x00],
        DecodeError::MalformedVarInt,
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn strings_with_invalid_utf8_surrogates_or_nul() {
    for (bytes, err) in [
        ("0003 61ff62", DecodeError::InvalidUtf8),
        // U+D800 encoded as UTF-8 is a surrogate: ill-formed [MQTT-1.5.4-1].
        ("0003 eda080", DecodeError::InvalidUtf8),
        // An overlong encoding of '/'.
        ("0002 c0af", DecodeError::InvalidUtf8),
        ("0003 610062", DecodeError::NullCharacter),
    ] {
        rejects(V311, &pkt(0x30, bytes), err, ReasonCode::MalformedPacket);
    }
    // The same rule inside a property: a user property name with U+0000.
    rejects(
        V5,
        &pkt(0x30, "0001 61 07 26 0001 00 0001 62"),
        DecodeError::NullCharacter,
        ReasonCode::MalformedPacket,
    );
    // And in a CONNECT client identifier.
    rejects(
        V311,
        &pkt(0x10, &format!("{}04 02 003c 0002 61ff", text("MQTT"))),
        DecodeError::InvalidUtf8,
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn qos_3_and_dup_on_qos_0() {
    // [MQTT-3.3.1-4]
    rejects(
        V311,
        &pkt(0x36, "0001 61 0001"),
        DecodeError::InvalidQoS,
        ReasonCode::MalformedPacket,
    );
    // [MQTT-3.3.1-2]
    rejects(
        V311,
        &pkt(0x38, "0001 61"),
        DecodeError::DupOnQoS0,
        ReasonCode::MalformedPacket,
    );
    assert!(matches!(accepts(V311, &pkt(0x3A, "0001 61 0001")), Packet::Publish(p) if p.dup));
}

#[test]
fn topic_names_without_wildcards_and_not_empty_without_alias() {
    for name in ["a/+", "#", "a/b#"] {
        rejects(
            V5,
            &pkt(0x30, &format!("{}00", text(name))),
            DecodeError::InvalidTopicName(TopicError::WildcardInName),
            ReasonCode::TopicNameInvalid,
        );
    }
    rejects(
        V5,
        &pkt(0x30, "0000 00"),
        DecodeError::EmptyTopicWithoutAlias,
        ReasonCode::ProtocolError,
    );
    rejects(
        V311,
        &pkt(0x30, "0000"),
        DecodeError::InvalidTopicName(TopicError::Empty),
        ReasonCode::TopicNameInvalid,
    );
    let Packet::Publish(p) = accepts(V5, &pkt(0x30, "0000 03 230001 ff")) else {
        panic!("not a publish");
    };
    assert!(p.topic.is_empty());
    assert_eq!(p.properties.topic_alias.map(|a| a.get()), Some(1));
}

#[test]
fn packet_id_zero() {
    // [MQTT-2.2.1-3]
    for bytes in [
        pkt(0x40, "0000"),
        pkt(0x62, "0000"),
        pkt(0x32, "0001 61 0000"),
        pkt(0x82, &format!("0000{}00", text("a"))),
    ] {
        rejects(
            V311,
            &bytes,
            DecodeError::PacketIdZero,
            ReasonCode::ProtocolError,
        );
    }
}

#[test]
fn connect_flag_rules() {
    assert!(matches!(
        accepts(V311, &connect(4, 0x02, "", "")),
        Packet::Connect(_)
    ));
    // [MQTT-3.1.2-3] reserved bit.
    rejects(
        V311,
        &connect(4, 0x03, "", ""),
        DecodeError::InvalidConnectFlags("reserved bit set"),
        ReasonCode::MalformedPacket,
    );
    // [MQTT-3.1.2-13] Will QoS, [MQTT-3.1.2-15] Will Retain without the Will Flag.
    for flags in [0x0A, 0x12, 0x22] {
        rejects(
            V311,
            &connect(4, flags, "", ""),
            DecodeError::InvalidConnectFlags("will QoS or retain without will"),
            ReasonCode::MalformedPacket,
        );
    }
    // [MQTT-3.1.2-14] Will QoS 3.
    rejects(
        V5,
        &connect(5, 0x1E, "00", ""),
        DecodeError::InvalidConnectFlags("will QoS 3"),
        ReasonCode::MalformedPacket,
    );
    // [MQTT-3.1.2-22] a password without a user name, before 5.0 only.
    rejects(
        V311,
        &connect(4, 0x42, "", "0001 70"),
        DecodeError::InvalidConnectFlags("password without user name"),
        ReasonCode::MalformedPacket,
    );
    let Packet::Connect(c) = accepts(V5, &connect(5, 0x42, "00", "0001 70")) else {
        panic!()
    };
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
    assert_eq!(c.username, None);
    // A will topic is a topic name.
    rejects(
        V311,
        &connect(4, 0x06, "", &format!("{}0000", text("a/#"))),
        DecodeError::InvalidTopicName(TopicError::WildcardInName),
        ReasonCode::TopicNameInvalid,
    );
}

#[test]
fn protocol_name_and_level() {
    rejects(
        V311,
        &pkt(0x10, &format!("{}04 02 003c {}", text("MQTX"), text("a"))),
        DecodeError::InvalidProtocolName,
        ReasonCode::UnsupportedProtocolVersion,
    );
    rejects(
        V311,
        &connect(6, 0x02, "", ""),
        DecodeError::UnsupportedProtocolVersion(6),
        ReasonCode::UnsupportedProtocolVersion,
    );
    rejects(
        V311,
        &pkt(0x10, &format!("{}04 02 003c {}", text("MQIsdp"), text("a"))),
        DecodeError::UnsupportedProtocolVersion(4),
        ReasonCode::UnsupportedProtocolVersion,
    );
    // CONNECT carries its own version, whatever the connection assumed so far.
    let Packet::Connect(c) = accepts(
        V5,
        &pkt(0x10, &format!("{}03 02 003c {}", text("MQIsdp"), text("a"))),
    ) else {
        panic!()
    };
    assert_eq!(c.protocol_version, V31);
}

#[test]
fn a_property_twice_where_that_is_forbidden() {
    rejects(
        V5,
        &pkt(0x30, "0001 61 0a 0200000001 0200000002"),
        DecodeError::DuplicateProperty(0x02),
        ReasonCode::ProtocolError,
    );
    rejects(
        V5,
        &pkt(0x40, "0001 00 08 1f0001 61 1f0001 62"),
        DecodeError::DuplicateProperty(0x1F),
        ReasonCode::ProtocolError,
    );
    // User Property may repeat, and so may Subscription Identifier in PUBLISH.
    let Packet::Publish(p) = accepts(
        V5,
        &pkt(
            0x30,
            "0001 61 12 26 0001 6b 0001 76 26 0001 6b 0001 77 0b01 0b02",
        ),
    ) else {
        panic!()
    };
    assert_eq!(p.properties.user_properties.len(), 2);
    assert_eq!(p.properties.subscription_identifiers.len(), 2);
    // But not in SUBSCRIBE.
    rejects(
        V5,
        &pkt(0x82, &format!("0001 04 0b01 0b02 {}00", text("a"))),
        DecodeError::DuplicateProperty(0x0B),
        ReasonCode::ProtocolError,
    );
}

#[test]
fn a_property_not_allowed_on_that_packet() {
    // Session Expiry Interval on PUBLISH, Topic Alias on PUBACK, an unknown identifier.
    for (first, body, id) in [
        (0x30, "0001 61 05 1100000001", 0x11),
        (0x40, "0001 00 03 230001", 0x23),
        (0x30, "0001 61 02 7f00", 0x7F),
        (0xE0, "00 05 0200000001", 0x02),
    ] {
        rejects(
            V5,
            &pkt(first, body),
            DecodeError::PropertyNotAllowed(id),
            ReasonCode::MalformedPacket,
        );
    }
}

#[test]
fn property_values_the_spec_forbids() {
    for (props, id) in [
        ("03 210000", 0x21),     // Receive Maximum 0
        ("05 2700000000", 0x27), // Maximum Packet Size 0
        ("02 1702", 0x17),       // Request Problem Information 2
        ("02 1902", 0x19),       // Request Response Information 2
    ] {
        rejects(
            V5,
            &connect(5, 0x02, props, ""),
            DecodeError::InvalidPropertyValue(id),
            ReasonCode::ProtocolError,
        );
    }
    // [MQTT-3.3.2-8] Topic Alias 0.
    rejects(
        V5,
        &pkt(0x30, "0001 61 03 230000"),
        DecodeError::InvalidPropertyValue(0x23),
        ReasonCode::ProtocolError,
    );
    // Subscription Identifier 0, in SUBSCRIBE and in PUBLISH.
    rejects(
        V5,
        &pkt(0x82, &format!("0001 02 0b00 {}00", text("a"))),
        DecodeError::InvalidPropertyValue(0x0B),
        ReasonCode::ProtocolError,
    );
    rejects(
        V5,
        &pkt(0x30, "0001 61 02 0b00"),
        DecodeError::InvalidPropertyValue(0x0B),
        ReasonCode::ProtocolError,
    );
    // Maximum QoS 2 in CONNACK; a response topic with a wildcard.
    rejects(
        V5,
        &pkt(0x20, "00 00 02 2402"),
        DecodeError::InvalidPropertyValue(0x24),
        ReasonCode::ProtocolError,
    );
    rejects(
        V5,
        &pkt(0x30, &format!("0001 61 06 08{}", text("r/#"))),
        DecodeError::InvalidPropertyValue(0x08),
        ReasonCode::ProtocolError,
    );
}

#[test]
fn subscribe_or_unsubscribe_without_filters() {
    for (v, sub, unsub) in [
        (V311, pkt(0x82, "0001"), pkt(0xA2, "0001")),
        (V5, pkt(0x82, "0001 00"), pkt(0xA2, "0001 00")),
    ] {
        for bytes in [sub, unsub] {
            rejects(
                v,
                &bytes,
                DecodeError::NoTopicFilters,
                ReasonCode::ProtocolError,
            );
        }
    }
}

#[test]
fn subscription_options() {
    let a = text("a");
    // 3.1.1: only the QoS bits exist [MQTT-3.8.3-4].
    rejects(
        V311,
        &pkt(0x82, &format!("0001 {a}04")),
        DecodeError::InvalidSubscriptionOptions(0x04),
        ReasonCode::MalformedPacket,
    );
    // 5.0: bits 6 and 7 reserved, Retain Handling 3 [MQTT-3.8.3-5], QoS 3.
    for opts in [0x40u8, 0x80, 0x30, 0x03] {
        rejects(
            V5,
            &pkt(0x82, &format!("0001 00 {a}{opts:02x}")),
            DecodeError::InvalidSubscriptionOptions(opts),
            ReasonCode::MalformedPacket,
        );
    }
    // [MQTT-3.8.3-4] No Local on a shared subscription.
    rejects(
        V5,
        &pkt(0x82, &format!("0001 00 {}04", text("$share/g/a"))),
        DecodeError::NoLocalOnSharedSubscription,
        ReasonCode::ProtocolError,
    );
    // Filters follow the wildcard and share rules.
    for (f, e) in [
        ("a/#/b", TopicError::InvalidWildcard),
        ("a/b#", TopicError::InvalidWildcard),
        ("$share/g", TopicError::InvalidSharedSubscription),
    ] {
        rejects(
            V5,
            &pkt(0x82, &format!("0001 00 {}00", text(f))),
            DecodeError::InvalidTopicFilter(e),
            ReasonCode::TopicFilterInvalid,
        );
    }
    let Packet::Subscribe(s) = accepts(V5, &pkt(0x82, &format!("0001 00 {a}2e"))) else {
        panic!()
    };
    let o = s.subscriptions[0].options;
    assert!(o.no_local && o.retain_as_published);
    assert_eq!(o.qos, mqtt_core::QoS::ExactlyOnce);
}

#[test]
fn lengths_inside_the_packet_disagree_with_remaining_length() {
    for (v, bytes) in [
        // Topic length runs past the end.
        (V311, pkt(0x30, "0005 61")),
        // Bytes left over.
        (V311, pkt(0x40, "0001 00")),
        (V311, pkt(0xC0, "00")),
        (V311, pkt(0xE0, "00")),
        // A property length longer than what follows.
        (V5, pkt(0x40, "0001 00 05 1f")),
        // A string inside the properties that runs past the property length.
        (V5, pkt(0x30, "0001 61 03 030005 61")),
        // CONNECT cut short inside the will.
        (V311, connect(4, 0x06, "", "0001")),
    ] {
        rejects(
            v,
            &bytes,
            DecodeError::LengthMismatch,
            ReasonCode::MalformedPacket,
        );
    }
}

#[test]
fn reason_codes_not_allowed_in_the_packet() {
    for (first, body, code) in [
        (0x40, "0001 92", 0x92), // PUBACK cannot say "packet id not found"
        (0x62, "0001 10", 0x10), // PUBREL cannot say "no matching subscribers"
        (0xE0, "05", 0x05),      // undefined
        (0xF0, "87", 0x87),      // AUTH: only 0x00, 0x18, 0x19
        (0x20, "00 04", 0x04),   // CONNACK
        (0x90, "0001 00 11", 0x11),
        (0xB0, "0001 00 01", 0x01),
    ] {
        rejects(
            V5,
            &pkt(first, body),
            DecodeError::InvalidReasonCode(code),
            ReasonCode::MalformedPacket,
        );
    }
    rejects(
        V311,
        &pkt(0x20, "00 06"),
        DecodeError::InvalidReasonCode(6),
        ReasonCode::MalformedPacket,
    );
    rejects(
        V311,
        &pkt(0x90, "0001 03"),
        DecodeError::InvalidReasonCode(3),
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn connack_flags() {
    // [MQTT-3.2.2-1] reserved bits; a refusal with a session present.
    rejects(
        V311,
        &pkt(0x20, "02 00"),
        DecodeError::InvalidConnAckFlags,
        ReasonCode::MalformedPacket,
    );
    rejects(
        V311,
        &pkt(0x20, "01 05"),
        DecodeError::InvalidConnAckFlags,
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn size_limit_before_the_body_arrives() {
    let limits = DecodeLimits {
        max_packet_size: 64,
    };
    // The header of a 16,387-byte packet; none of its body.
    let mut buf = BytesMut::from(&[0x30u8, 0x80, 0x80, 0x01][..]);
    let err = decode(&mut buf, V5, &limits).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 16_388,
            max: 64
        }
    );
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
    // A packet of exactly the limit is fine.
    let body = format!("0001 61{}", "00".repeat(64 - 2 - 3));
    assert!(decode(&mut BytesMut::from(&pkt(0x30, &body)[..]), V5, &limits).is_ok());
    let body = format!("0001 61{}", "00".repeat(64 - 2 - 2));
    assert!(decode(&mut BytesMut::from(&pkt(0x30, &body)[..]), V5, &limits).is_err());
}

#[test]
fn a_huge_announced_length_commits_no_memory() {
    // 268 MB announced, 4 bytes sent: need more, and the buffer did not grow to the claim.
    let mut buf = BytesMut::from(&[0x30u8, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(decode(&mut buf, V5, &DecodeLimits::default()), Ok(None));
    assert!(buf.capacity() <= 128 * 1024, "{}", buf.capacity());
    assert_eq!(buf.len(), 5);
}

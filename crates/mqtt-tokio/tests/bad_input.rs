//! Bad input over real sockets: whatever one client sends, only that client's connection is
//! closed, a 5.0 client first hears DISCONNECT with the spec's reason code, a 3.1.1 client
//! just sees its socket close, and the broker keeps serving everyone else.
//!
//! Every test starts its own `Server` on 127.0.0.1:0 with a *control* pair on it: a 3.1.1
//! subscriber to `ctl/#` and a publisher. After the bad client is closed, the control
//! publisher's message must still reach the control subscriber ([`Harness::finish`]).
//!
//! The cases, in order: every decoder rule of `mqtt-core/tests/strict.rs` sent by a connected
//! 5.0 client (one `#[test]` each, from the [`malformed_v5!`] table) and a few by a 3.1.1
//! client; protocol errors the broker itself finds (topic aliases, Receive Maximum, packet
//! size, PUBREL for an unknown id, CONNECT timing); a subscriber that never reads its socket
//! while a publisher floods (memory stays bounded); and 1,000 garbage connections in a row.
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps to wait for something. The only sleeps
//! are a bad client's deliberate stall, and those tests still wait on the broker's close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_core::broker::{BrokerConfig, Limits};
use mqtt_core::codec::{decode, encode, DecodeLimits};
use mqtt_core::packet::{
    Ack, ConnAck, Connect, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode};
use mqtt_tokio::broker::{RunningServer, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

use ProtocolVersion::{V31, V311, V5};

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(10);
/// The `connect_timeout` of the tests about sockets that do not finish their CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

// ---- malformed packets from a connected client: one test per decoder rule ----

/// One `#[tokio::test]` per line: a connected 5.0 client sends the bytes, hears DISCONNECT
/// with the reason code, and its socket closes.
macro_rules! malformed_v5 {
    ($($(#[$attr:meta])* $name:ident: $bytes:expr => $code:ident;)*) => {$(
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            disconnects_v5($bytes, ReasonCode::$code).await;
        }
    )*};
}

/// One `#[tokio::test]` per line: a connected 3.1.1 client sends the bytes and its socket
/// closes without a word (3.1.1 has no server DISCONNECT).
macro_rules! malformed_v311 {
    ($($(#[$attr:meta])* $name:ident: $bytes:expr;)*) => {$(
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            closes_v311($bytes).await;
        }
    )*};
}

malformed_v5! {
    /// [MQTT-2.1.3-1] packet type 0 is reserved.
    reserved_packet_type_0: hex("00 00") => MalformedPacket;
    /// [MQTT-2.2.2-2] PUBACK with a flag bit set.
    reserved_flags_on_puback: hex("41 02 0001") => MalformedPacket;
    /// [MQTT-3.6.1-1] PUBREL must carry 0b0010.
    reserved_flags_on_pubrel: hex("60 02 0001") => MalformedPacket;
    /// [MQTT-3.8.1-1] SUBSCRIBE must carry 0b0010.
    reserved_flags_on_subscribe:
        pkt(0x80, &format!("0001 00 {}00", text("a"))) => MalformedPacket;
    /// A Remaining Length in five bytes.
    remaining_length_of_five_bytes: hex("30 ffffffff01") => MalformedPacket;
    /// PINGREQ with a Remaining Length of 0 written in two bytes.
    remaining_length_not_minimal_pingreq: hex("c0 8000") => MalformedPacket;
    /// PUBLISH with a Remaining Length of 1 written in three bytes.
    remaining_length_not_minimal_publish: hex("30 818000") => MalformedPacket;
    /// [MQTT-1.5.4-1] a topic that is not UTF-8.
    invalid_utf8_in_topic: pkt(0x30, "0003 61ff62 00") => MalformedPacket;
    /// [MQTT-1.5.4-1] an overlong encoding of '/'.
    overlong_utf8_in_topic: pkt(0x30, "0002 c0af 00") => MalformedPacket;
    /// [MQTT-1.5.4-1] U+D800 encoded as UTF-8: a surrogate.
    surrogate_in_topic: pkt(0x30, "0003 eda080 00") => MalformedPacket;
    /// [MQTT-1.5.4-2] U+0000 in a topic.
    nul_in_topic: pkt(0x30, "0003 610062 00") => MalformedPacket;
    /// [MQTT-1.5.4-2] U+0000 in a user property name.
    nul_in_user_property: pkt(0x30, "0001 61 07 26 0001 00 0001 62") => MalformedPacket;
    /// [MQTT-3.3.1-4] PUBLISH with QoS 3.
    publish_qos_3: pkt(0x36, "0001 61 0001 00") => MalformedPacket;
    /// [MQTT-3.3.1-2] DUP on a QoS 0 PUBLISH.
    dup_on_qos_0: pkt(0x38, "0001 61 00") => MalformedPacket;
    /// [MQTT-3.3.2-2] a `+` in a topic name.
    single_level_wildcard_in_topic_name:
        pkt(0x30, &format!("{}00", text("a/+"))) => TopicNameInvalid;
    /// [MQTT-3.3.2-2] a `#` in a topic name.
    multi_level_wildcard_in_topic_name:
        pkt(0x30, &format!("{}00", text("a/b#"))) => TopicNameInvalid;
    /// An empty topic name without a Topic Alias.
    empty_topic_without_alias: pkt(0x30, "0000 00") => ProtocolError;
    /// [MQTT-2.2.1-3] a QoS 1 PUBLISH with packet id 0.
    packet_id_zero_in_publish: pkt(0x32, "0001 61 0000 00") => ProtocolError;
    /// [MQTT-2.2.1-3] PUBACK for packet id 0.
    packet_id_zero_in_puback: pkt(0x40, "0000") => ProtocolError;
    /// [MQTT-2.2.1-3] PUBREL for packet id 0.
    packet_id_zero_in_pubrel: pkt(0x62, "0000") => ProtocolError;
    /// [MQTT-2.2.1-3] SUBSCRIBE with packet id 0.
    packet_id_zero_in_subscribe: pkt(0x82, &format!("0000 00 {}00", text("a"))) => ProtocolError;
    /// Message Expiry Interval twice in PUBLISH.
    duplicate_property_in_publish: pkt(0x30, "0001 61 0a 0200000001 0200000002") => ProtocolError;
    /// Reason String twice in PUBACK.
    duplicate_property_in_puback: pkt(0x40, "0001 00 08 1f0001 61 1f0001 62") => ProtocolError;
    /// Subscription Identifier twice in SUBSCRIBE (PUBLISH may repeat it, SUBSCRIBE not).
    duplicate_subscription_identifier_in_subscribe:
        pkt(0x82, &format!("0001 04 0b01 0b02 {}00", text("a"))) => ProtocolError;
    /// Session Expiry Interval is not a PUBLISH property.
    property_not_allowed_in_publish: pkt(0x30, "0001 61 05 1100000001") => MalformedPacket;
    /// Topic Alias is not a PUBACK property.
    property_not_allowed_in_puback: pkt(0x40, "0001 00 03 230001") => MalformedPacket;
    /// Property identifier 0x7F does not exist.
    unknown_property_identifier: pkt(0x30, "0001 61 02 7f00") => MalformedPacket;
    /// Message Expiry Interval is not a DISCONNECT property.
    property_not_allowed_in_disconnect: pkt(0xE0, "00 05 0200000001") => MalformedPacket;
    /// [MQTT-3.3.2-8] Topic Alias 0.
    topic_alias_0: pkt(0x30, "0001 61 03 230000") => ProtocolError;
    /// Subscription Identifier 0 in SUBSCRIBE.
    subscription_identifier_0_in_subscribe:
        pkt(0x82, &format!("0001 02 0b00 {}00", text("a"))) => ProtocolError;
    /// Subscription Identifier 0 in PUBLISH.
    subscription_identifier_0_in_publish: pkt(0x30, "0001 61 02 0b00") => ProtocolError;
    /// A Response Topic is a topic name: no wildcards.
    wildcard_in_response_topic:
        pkt(0x30, &format!("0001 61 06 08{}", text("r/#"))) => ProtocolError;
    /// SUBSCRIBE without a topic filter.
    subscribe_without_filters: pkt(0x82, "0001 00") => ProtocolError;
    /// UNSUBSCRIBE without a topic filter.
    unsubscribe_without_filters: pkt(0xA2, "0001 00") => ProtocolError;
    /// [MQTT-3.8.3-5] subscription option bit 6 is reserved.
    subscription_option_bit_6: pkt(0x82, &format!("0001 00 {}40", text("a"))) => MalformedPacket;
    /// [MQTT-3.8.3-5] subscription option bit 7 is reserved.
    subscription_option_bit_7: pkt(0x82, &format!("0001 00 {}80", text("a"))) => MalformedPacket;
    /// [MQTT-3.8.3-5] Retain Handling 3.
    retain_handling_3: pkt(0x82, &format!("0001 00 {}30", text("a"))) => MalformedPacket;
    /// A subscription asking for QoS 3.
    subscription_qos_3: pkt(0x82, &format!("0001 00 {}03", text("a"))) => MalformedPacket;
    /// [MQTT-3.8.3-4] No Local on a shared subscription.
    no_local_on_shared_subscription:
        pkt(0x82, &format!("0001 00 {}04", text("$share/g/a"))) => ProtocolError;
    /// `#` not last in a topic filter.
    multi_level_wildcard_not_last_in_filter:
        pkt(0x82, &format!("0001 00 {}00", text("a/#/b"))) => TopicFilterInvalid;
    /// A shared subscription without a topic filter after its share name.
    shared_subscription_without_filter:
        pkt(0x82, &format!("0001 00 {}00", text("$share/g"))) => TopicFilterInvalid;
    /// A topic length that runs past the end of the packet.
    topic_length_past_the_end: pkt(0x30, "0005 61") => MalformedPacket;
    /// A property length longer than what follows.
    property_length_past_the_end: pkt(0x40, "0001 00 05 1f") => MalformedPacket;
    /// A string inside the properties that runs past the property length.
    string_past_the_property_length: pkt(0x30, "0001 61 03 030005 61") => MalformedPacket;
    /// PINGREQ with a byte left over.
    bytes_left_over_in_pingreq: pkt(0xC0, "00") => MalformedPacket;
    /// PUBACK with a byte left over after its properties.
    bytes_left_over_in_puback: pkt(0x40, "0001 00 00 ff") => MalformedPacket;
    /// PUBACK cannot say "packet identifier not found".
    invalid_reason_code_in_puback: pkt(0x40, "0001 92") => MalformedPacket;
    /// PUBREL cannot say "no matching subscribers".
    invalid_reason_code_in_pubrel: pkt(0x62, "0001 10") => MalformedPacket;
    /// DISCONNECT reason code 0x05 is undefined.
    invalid_reason_code_in_disconnect: pkt(0xE0, "05") => MalformedPacket;
    /// AUTH allows only 0x00, 0x18 and 0x19.
    invalid_reason_code_in_auth: pkt(0xF0, "87") => MalformedPacket;

    // Packets that decode but break the protocol.

    /// [MQTT-3.1.0-2] a second CONNECT.
    second_connect: connect(5, 0x02, "00", "") => ProtocolError;
    /// [MQTT-3.1.2-3] a second CONNECT that is also malformed: its reserved flag is set.
    second_connect_with_reserved_flag: connect(5, 0x03, "00", "") => MalformedPacket;
    /// [MQTT-3.1.0-2] a second CONNECT naming a protocol level nobody speaks: a protocol
    /// error still. DISCONNECT cannot carry 0x84 (Unsupported Protocol Version): it is not
    /// one of the DISCONNECT reason codes (spec 3.14.2.1).
    second_connect_with_unsupported_level: connect(6, 0x02, "", "") => ProtocolError;
    /// [MQTT-3.1.0-2] the same with a protocol name that is not MQTT.
    second_connect_with_invalid_protocol_name:
        pkt(0x10, &format!("{}05 02 003c 00 {}", text("MQTX"), text("a"))) => ProtocolError;
    /// CONNACK is sent by servers only.
    connack_from_a_client: pkt(0x20, "00 00 00") => ProtocolError;
    /// SUBACK is sent by servers only.
    suback_from_a_client: pkt(0x90, "0001 00 00") => ProtocolError;
    /// UNSUBACK is sent by servers only.
    unsuback_from_a_client: pkt(0xB0, "0001 00 00") => ProtocolError;
    /// PINGRESP is sent by servers only.
    pingresp_from_a_client: hex("d0 00") => ProtocolError;
    /// AUTH from a client whose CONNECT named no authentication method.
    auth_without_authentication_method: hex("f0 00") => ProtocolError;
}

malformed_v311! {
    /// [MQTT-3.3.1-4] QoS 3.
    v311_publish_qos_3: pkt(0x36, "0001 61 0001");
    /// [MQTT-2.1.3-1] AUTH (type 15) does not exist before 5.0.
    v311_auth_is_a_reserved_type: hex("f0 00");
    /// [MQTT-3.8.3-4] 3.1.1 subscription options have only the QoS bits.
    v311_subscription_option_bits: pkt(0x82, &format!("0001 {}04", text("a")));
    /// [MQTT-4.7.3-1] an empty topic name (3.1.1 has no aliases).
    v311_empty_topic: pkt(0x30, "0000");
    /// [MQTT-3.1.0-2] a second CONNECT.
    v311_second_connect: connect(4, 0x02, "", "");
    /// PINGRESP is sent by servers only.
    v311_pingresp_from_a_client: hex("d0 00");
}

// ---- protocol errors the broker finds ----

#[tokio::test]
async fn first_packet_not_connect_closes_without_connack() {
    let h = Harness::start(BrokerConfig::default()).await;
    let mut bad = Peer::open(h.addr, V311).await;
    // [MQTT-3.1.0-1] PINGREQ first: no CONNACK, no PINGRESP, just the close.
    bad.send_bytes(&hex("c0 00")).await;
    bad.expect_closed().await;
    h.finish().await;
}

#[tokio::test]
async fn packets_after_a_malformed_one_in_the_same_read_are_not_answered() {
    let h = Harness::start(BrokerConfig::default()).await;
    let (mut bad, _) = h.connect(V5, "bad").await;
    // A PINGREQ, a PUBLISH with QoS 3, and a PINGREQ, in one write: only the first is
    // answered, then DISCONNECT 0x81 and the close.
    let mut bytes = hex("c0 00");
    bytes.extend(pkt(0x36, "0001 61 0001 00"));
    bytes.extend(hex("c0 00"));
    bad.send_bytes(&bytes).await;
    assert_eq!(bad.recv().await, Packet::PingResp);
    bad.expect_disconnect(ReasonCode::MalformedPacket).await;
    h.finish().await;
}

#[tokio::test]
async fn a_connect_with_an_unsupported_level_gets_connack_0x84_then_the_close() {
    let h = Harness::start(BrokerConfig::default()).await;
    // [MQTT-3.1.2-2] level 6: answered in the 5.0 format, the newest the broker speaks.
    let mut bad = Peer::open(h.addr, V5).await;
    bad.send_bytes(&connect(6, 0x02, "00", "")).await;
    match bad.recv().await {
        Packet::ConnAck(a) => {
            assert_eq!(a.reason_code, ReasonCode::UnsupportedProtocolVersion);
            assert!(!a.session_present);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    bad.expect_closed().await;
    h.finish().await;
}

#[tokio::test]
async fn topic_alias_over_the_announced_maximum_is_0x94() {
    let h = Harness::start(BrokerConfig::default()).await;
    let (mut bad, ack) = h.connect(V5, "bad").await;
    let max = ack
        .properties
        .topic_alias_maximum
        .expect("CONNACK announces Topic Alias Maximum");
    assert!(max > 0);
    // [MQTT-3.3.2-9] an alias above what the CONNACK allowed.
    let alias = u32::from(max) + 1;
    bad.send_bytes(&pkt(0x30, &format!("0001 61 03 23{alias:04x} ff")))
        .await;
    bad.expect_disconnect(ReasonCode::TopicAliasInvalid).await;
    h.finish().await;
}

#[tokio::test]
async fn unknown_topic_alias_with_an_empty_topic_is_0x82() {
    let h = Harness::start(BrokerConfig::default()).await;
    let (mut bad, _) = h.connect(V5, "bad").await;
    // Alias 1 was never set up with a topic name.
    bad.send_bytes(&pkt(0x30, "0000 03 230001 ff")).await;
    bad.expect_disconnect(ReasonCode::ProtocolError).await;
    h.finish().await;
}

#[tokio::test]
async fn more_unacknowledged_qos2_than_receive_maximum_is_0x93() {
    const RECEIVE_MAXIMUM: u16 = 2;
    let config = BrokerConfig {
        limits: Limits {
            receive_maximum: RECEIVE_MAXIMUM,
            ..Limits::default()
        },
        ..BrokerConfig::default()
    };
    let h = Harness::start(config).await;
    let (mut bad, ack) = h.connect(V5, "bad").await;
    assert_eq!(
        ack.properties.receive_maximum.map(|r| r.get()),
        Some(RECEIVE_MAXIMUM)
    );
    // [MQTT-3.3.4-7] QoS 2 PUBLISH without ever sending PUBREL: each id stays unacknowledged.
    for id in 1..=RECEIVE_MAXIMUM {
        bad.send(&publish("q2", "x", QoS::ExactlyOnce, id)).await;
        match bad.recv().await {
            Packet::PubRec(a) => assert_eq!(a.packet_id, pid(id)),
            other => panic!("expected PUBREC {id}, got {other:?}"),
        }
    }
    bad.send(&publish("q2", "x", QoS::ExactlyOnce, RECEIVE_MAXIMUM + 1))
        .await;
    bad.expect_disconnect(ReasonCode::ReceiveMaximumExceeded)
        .await;
    h.finish().await;
}

#[tokio::test]
async fn a_packet_over_the_maximum_size_is_refused_from_its_fixed_header() {
    const MAX: u32 = 1024;
    let config = BrokerConfig {
        limits: Limits {
            max_packet_size: MAX,
            ..Limits::default()
        },
        ..BrokerConfig::default()
    };
    let h = Harness::start(config).await;
    let (mut bad, ack) = h.connect(V5, "bad").await;
    assert_eq!(
        ack.properties.maximum_packet_size.map(|m| m.get()),
        Some(MAX)
    );
    // The fixed header of a PUBLISH announcing 2 MB; none of the body is ever sent.
    bad.send_bytes(&hex("30 ffff7f")).await;
    bad.expect_disconnect(ReasonCode::PacketTooLarge).await;
    h.finish().await;
}

#[tokio::test]
async fn a_packet_over_the_maximum_size_sent_whole_still_gets_its_disconnect() {
    const MAX: u32 = 1024;
    let config = BrokerConfig {
        limits: Limits {
            max_packet_size: MAX,
            ..Limits::default()
        },
        ..BrokerConfig::default()
    };
    let h = Harness::start(config).await;
    let (bad, _) = h.connect(V5, "bad").await;
    let Peer {
        stream,
        mut rx,
        version,
    } = bad;
    let (mut reader, mut writer) = stream.into_split();
    // A 4 MB PUBLISH, body and all: the broker stops reading after its header, so the write
    // may never finish; it runs on its own task while the answer is read.
    let big = publish("big", vec![0u8; 4 << 20], QoS::AtMostOnce, 0);
    let mut wire = BytesMut::new();
    encode(&big, V5, &mut wire).unwrap();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&wire).await;
        writer
    });
    let answer = within("DISCONNECT", async {
        loop {
            if let Some(p) = decode(&mut rx, version, &DecodeLimits::default()).unwrap() {
                return Some(p);
            }
            match reader.read_buf(&mut rx).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await;
    match answer {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, ReasonCode::PacketTooLarge),
        other => panic!("expected DISCONNECT 0x95, got {other:?}"),
    }
    // Then the close (a reset, as the broker leaves the body unread), with nothing after.
    within("close", async {
        while let Ok(n) = reader.read_buf(&mut rx).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(rx.is_empty(), "bytes after DISCONNECT: {rx:02x?}");
    write.abort();
    h.finish().await;
}

#[tokio::test]
async fn pubrel_for_an_unknown_id_is_answered_pubcomp_0x92_and_the_connection_lives() {
    let mut h = Harness::start(BrokerConfig::default()).await;
    let (mut client, _) = h.connect(V5, "client").await;
    client.send(&Packet::PubRel(Ack::new(pid(7)))).await;
    match client.recv().await {
        Packet::PubComp(a) => {
            assert_eq!(a.packet_id, pid(7));
            assert_eq!(a.reason_code, ReasonCode::PacketIdentifierNotFound);
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    // Still usable: a ping, and a QoS 1 message through to the control subscriber.
    client.send(&Packet::PingReq).await;
    assert_eq!(client.recv().await, Packet::PingResp);
    client
        .send(&publish("ctl/pubrel", "from client", QoS::AtLeastOnce, 8))
        .await;
    match client.recv().await {
        Packet::PubAck(a) => {
            assert_eq!((a.packet_id, a.reason_code), (pid(8), ReasonCode::Success))
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    h.control.expect("ctl/pubrel", "from client").await;
    h.finish().await;
}

#[tokio::test]
async fn a_connect_announcing_a_huge_length_is_refused_at_once() {
    // A connect timeout far beyond `WAIT`: a close seen within `WAIT` is the size check.
    let config = BrokerConfig {
        connect_timeout: WAIT * 3,
        ..BrokerConfig::default()
    };
    let h = Harness::start(config).await;
    let mut bad = Peer::open(h.addr, V311).await;
    // A CONNECT header claiming 200,000,000 bytes (over the 1 MiB default), then a stall.
    let mut header = vec![0x10];
    header.extend(varint(200_000_000));
    bad.send_bytes(&header).await;
    bad.expect_closed().await;
    h.finish().await;
}

#[tokio::test]
async fn a_connect_stalled_under_the_limit_is_closed_after_connect_timeout() {
    let h = Harness::start(connect_timeout_config()).await;
    let opened = Instant::now();
    let mut bad = Peer::open(h.addr, V311).await;
    // A CONNECT header announcing 500 bytes, the first few of them, and then nothing.
    let mut start = vec![0x10];
    start.extend(varint(500));
    start.extend(hex(&format!("{}05", text("MQTT"))));
    bad.send_bytes(&start).await;
    bad.expect_closed().await;
    assert_closed_by_connect_timeout(opened.elapsed());
    h.finish().await;
}

#[tokio::test]
async fn a_socket_that_never_sends_connect_is_closed_after_connect_timeout() {
    let h = Harness::start(connect_timeout_config()).await;
    let opened = Instant::now();
    let mut bad = Peer::open(h.addr, V311).await;
    bad.expect_closed().await;
    assert_closed_by_connect_timeout(opened.elapsed());
    h.finish().await;
}

#[tokio::test]
async fn a_stall_within_connect_timeout_is_not_punished() {
    // A longer timeout than the other tests': the stall must stay well inside it.
    const TIMEOUT: Duration = Duration::from_secs(1);
    let config = BrokerConfig {
        connect_timeout: TIMEOUT,
        ..BrokerConfig::default()
    };
    let h = Harness::start(config).await;
    let opened = tokio::time::Instant::now();
    let mut slow = Peer::open(h.addr, V5).await;
    // Half a CONNECT, a deliberate stall, then the rest.
    let mut wire = BytesMut::new();
    encode(&connect_packet(V5, "slow"), V5, &mut wire).unwrap();
    let (first, rest) = wire.split_at(wire.len() / 2);
    slow.send_bytes(first).await;
    tokio::time::sleep(TIMEOUT / 10).await;
    slow.send_bytes(rest).await;
    assert!(
        matches!(slow.recv().await, Packet::ConnAck(a) if a.reason_code == ReasonCode::Success)
    );
    // Connected: the connect timer no longer applies. The client idles (a deliberate stall)
    // past it, and is still served.
    tokio::time::sleep_until(opened + TIMEOUT + TIMEOUT / 5).await;
    slow.send(&Packet::PingReq).await;
    assert_eq!(slow.recv().await, Packet::PingResp);
    h.finish().await;
}

// ---- a subscriber that never reads ----

/// Two 3.1.1 subscribers to `flood/#`, at QoS 0 and at QoS 1, never read their sockets while
/// a publisher sends 40,000 QoS 1 messages of 4 KiB (160 MiB). What the design bounds:
///
/// - per stalled connection, bytes handed to its writer but not yet written: the core stops
///   at `max_pending_write_bytes` (1 MiB here) plus the one message that crossed it; QoS 0
///   copies past that are dropped, QoS 1 copies wait in the session queue;
/// - the QoS 1 session queue: `max_queued_messages` (1,000 × 4 KiB = 4 MiB) plus the
///   in-flight window (`max_inflight`, 64 messages); later copies are dropped;
/// - the router's inbox: 1,024 decoded packets (4 MiB);
/// - each held payload is a zero-copy slice of the read buffer it arrived in and keeps that
///   buffer alive (the 8 KiB read chunk or the decoder's 64 KiB reserve, shared with the
///   packets read next to it), so the memory behind the above may be a few times larger.
///
/// That is about 10 MiB of messages, a few times that with buffer slack (about 15 MiB was
/// measured), against more than 200 MiB measured with those limits lifted. The bound checked
/// is 64 MiB plus the configured `max_pending_write_bytes`: room for the allocator, the
/// runtime and the tests of this binary running alongside (RSS is the whole process's), yet
/// far below a broker that keeps the flood. Bytes in the kernel's socket buffers are not RSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_costs_bounded_memory() {
    const MESSAGES: usize = 40_000;
    const PAYLOAD: usize = 4096;
    const BATCH: usize = 1000;
    const MAX_PENDING_WRITE: usize = 1024 * 1024;
    let config = BrokerConfig {
        sys_interval: Some(Duration::from_millis(200)),
        limits: Limits {
            max_pending_write_bytes: MAX_PENDING_WRITE,
            ..Limits::default()
        },
        ..BrokerConfig::default()
    };
    let mut h = Harness::start(config).await;
    let mut stalled = Vec::new();
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce].into_iter().enumerate() {
        let (mut sub, _) = h.connect(V311, &format!("stalled-{i}")).await;
        sub.subscribe("flood/#", qos).await;
        stalled.push(sub);
    }
    let (mut sys, _) = h.connect(V311, "sys").await;
    sys.subscribe("$SYS/broker/messages/dropped", QoS::AtMostOnce)
        .await;
    let (publisher, _) = h.connect(V311, "flood").await;
    let (mut reader, mut writer) = publisher.stream.into_split();
    let rss_before = rss_bytes();

    // Counts the publisher's PUBACKs as they come.
    let acks = tokio::spawn(async move {
        let mut rx = publisher.rx;
        let mut acked = 0;
        while acked < MESSAGES {
            match decode(&mut rx, V311, &DecodeLimits::default()).unwrap() {
                Some(Packet::PubAck(_)) => acked += 1,
                Some(other) => panic!("publisher got {other:?}"),
                None => {
                    if within("read", reader.read_buf(&mut rx)).await.unwrap() == 0 {
                        break;
                    }
                }
            }
        }
        acked
    });
    // Writes the flood, reporting after each batch.
    let (progress_tx, mut progress) = mpsc::channel(1);
    let flood = tokio::spawn(async move {
        let payload = Bytes::from(vec![0xA5; PAYLOAD]);
        let mut wire = BytesMut::new();
        for batch in 0..MESSAGES / BATCH {
            for i in 0..BATCH {
                let n = batch * BATCH + i;
                let id = (n % 65_535 + 1) as u16;
                let p = publish(
                    &format!("flood/{}", n % 8),
                    payload.clone(),
                    QoS::AtLeastOnce,
                    id,
                );
                encode(&p, V311, &mut wire).unwrap();
                if wire.len() >= 64 * 1024 {
                    within("write", writer.write_all(&wire)).await.unwrap();
                    wire.clear();
                }
            }
            within("write", writer.write_all(&wire)).await.unwrap();
            wire.clear();
            if within("progress", progress_tx.send(batch)).await.is_err() {
                break;
            }
        }
        writer
    });

    // While the flood goes on, the control pair keeps working, and memory is sampled.
    let mut peak = rss_before;
    while let Some(batch) = within("flood progress", progress.recv()).await {
        h.control
            .still_served(&format!("during batch {batch}"))
            .await;
        peak = peak.max(rss_bytes());
    }
    let _writer = within("flood writer", flood).await.unwrap();
    let acked = within("PUBACKs", acks).await.unwrap();
    assert_eq!(acked, MESSAGES, "every QoS 1 publish is acknowledged");
    peak = peak.max(rss_bytes());

    let growth = peak.saturating_sub(rss_before);
    let bound = 64 * 1024 * 1024 + MAX_PENDING_WRITE;
    assert!(
        growth <= bound,
        "RSS grew by {} MiB (bound {} MiB)",
        growth >> 20,
        bound >> 20
    );
    // The broker says it dropped copies for the stalled subscribers.
    within("$SYS/broker/messages/dropped > 0", async {
        loop {
            let Packet::Publish(p) = sys.recv().await else {
                panic!("expected $SYS PUBLISH");
            };
            let dropped: u64 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
            if dropped > 0 {
                return;
            }
        }
    })
    .await;
    // The stalled sockets go first, so that shutting down has nothing left to write.
    drop(stalled);
    h.finish().await;
}

// ---- garbage ----

#[tokio::test]
async fn a_thousand_garbage_connections_leave_the_broker_serving() {
    let config = BrokerConfig {
        connect_timeout: CONNECT_TIMEOUT,
        sys_interval: Some(Duration::from_millis(100)),
        ..BrokerConfig::default()
    };
    let mut h = Harness::start(config).await;
    let (mut sys, _) = h.connect(V311, "sys").await;
    let mut rng = Rng(0x5eed);
    let mut refused_v5 = 0;
    for i in 0..1000 {
        let version = [V31, V311, V5][i % 3];
        let mut peer = Peer::open(h.addr, V311).await;
        let connected = i % 2 == 1;
        if connected {
            // Garbage after a valid CONNECT, in that connection's version.
            peer.version = version;
            peer.connect(&format!("garbage-{i}")).await;
        }
        let bytes = garbage(&mut rng, version);
        // The broker may have closed already (and reset the socket): that is fine.
        let _ = within("write", peer.stream.write_all(&bytes)).await;
        // Garbage that happens to be valid so far would wait: the peer hangs up.
        let _ = within("shutdown", peer.stream.shutdown()).await;
        let mut answer = BytesMut::new();
        while let Ok(n) = within("close", peer.stream.read_buf(&mut answer)).await {
            if n == 0 {
                break;
            }
        }
        if !connected {
            assert!(
                answer.is_empty(),
                "{i}: answered before CONNECT: {answer:02x?}"
            );
        }
        // What the broker answered decodes; a 5.0 client refused hears why.
        while let Some(p) = decode(&mut answer, version, &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{i}: undecodable answer: {e}"))
        {
            if let Packet::Disconnect(d) = p {
                assert!(d.reason_code.is_error(), "{i}: {d:?}");
                refused_v5 += 1;
            }
        }
        if i % 100 == 0 {
            h.control.still_served(&format!("during {i}")).await;
        }
    }
    // Of the 167 connected 5.0 clients, most garbage breaks a rule before the peer hangs up.
    assert!(
        refused_v5 > 100,
        "only {refused_v5} refused with DISCONNECT"
    );
    h.control.still_served("after the garbage").await;
    // No stray connection is left: the control pair and the `$SYS` watcher only.
    sys.subscribe("$SYS/broker/connections/count", QoS::AtMostOnce)
        .await;
    within("$SYS/broker/connections/count = 3", async {
        loop {
            let Packet::Publish(p) = sys.recv().await else {
                panic!("expected $SYS PUBLISH");
            };
            if &p.payload[..] == b"3" {
                return;
            }
        }
    })
    .await;
    h.finish().await;
}

/// Random bytes, or valid packets of `version` with a few bytes changed.
fn garbage(rng: &mut Rng, version: ProtocolVersion) -> Vec<u8> {
    let len = 1 + (rng.next() % 64) as usize;
    if rng.next() & 1 == 0 {
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut wire = BytesMut::new();
    let sub = Subscribe {
        packet_id: pid(2),
        subscriptions: vec![Subscription {
            filter: TopicFilter::new("a/+").unwrap(),
            options: SubscriptionOptions::default(),
        }],
        properties: SubscribeProperties::default(),
    };
    for p in [
        publish("t/x", "payload", QoS::AtLeastOnce, 3),
        Packet::Subscribe(sub),
        Packet::PubRel(Ack::new(pid(5))),
        Packet::PingReq,
    ] {
        encode(&p, version, &mut wire).unwrap();
    }
    let mut bytes = wire.to_vec();
    for _ in 0..1 + rng.next() % 4 {
        let i = (rng.next() as usize) % bytes.len();
        bytes[i] = rng.next() as u8;
    }
    bytes
}

// ---- support ----

/// Connected 5.0 client sends `bytes`: DISCONNECT `code`, then the socket closes.
async fn disconnects_v5(bytes: Vec<u8>, code: ReasonCode) {
    let h = Harness::start(BrokerConfig::default()).await;
    let (mut bad, _) = h.connect(V5, "bad").await;
    bad.send_bytes(&bytes).await;
    bad.expect_disconnect(code).await;
    h.finish().await;
}

/// Connected 3.1.1 client sends `bytes`: the socket closes, nothing is sent.
async fn closes_v311(bytes: Vec<u8>) {
    let h = Harness::start(BrokerConfig::default()).await;
    let (mut bad, _) = h.connect(V311, "bad").await;
    bad.send_bytes(&bytes).await;
    bad.expect_closed().await;
    h.finish().await;
}

fn connect_timeout_config() -> BrokerConfig {
    BrokerConfig {
        connect_timeout: CONNECT_TIMEOUT,
        ..BrokerConfig::default()
    }
}

/// The close came from the connect timer: not before it (the timer starts when the broker
/// accepts, after `elapsed` began), and not from `WAIT` running out.
#[track_caller]
fn assert_closed_by_connect_timeout(elapsed: Duration) {
    assert!(elapsed >= CONNECT_TIMEOUT, "closed after {elapsed:?}");
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A running broker and its control pair.
struct Harness {
    server: RunningServer,
    addr: SocketAddr,
    control: Control,
}

impl Harness {
    async fn start(config: BrokerConfig) -> Self {
        let server = Server::new(config).listen_tcp(([127, 0, 0, 1], 0).into());
        let server = within("start", server.start()).await.unwrap();
        let addr = server.tcp_addr().unwrap();
        let control = Control::new(addr).await;
        Self {
            server,
            addr,
            control,
        }
    }

    /// A client connected as `client_id`, and its CONNACK.
    async fn connect(&self, version: ProtocolVersion, client_id: &str) -> (Peer, ConnAck) {
        let mut peer = Peer::open(self.addr, version).await;
        let ack = peer.connect(client_id).await;
        (peer, ack)
    }

    /// The control pair still works; then the server shuts down.
    async fn finish(mut self) {
        self.control.still_served("after the bad client").await;
        within("shutdown", self.server.shutdown()).await.unwrap();
    }
}

/// A 3.1.1 subscriber to `ctl/#` and a 3.1.1 publisher: the clients that must not notice
/// anything.
struct Control {
    sub: Peer,
    publisher: Peer,
    next_id: u16,
}

impl Control {
    async fn new(addr: SocketAddr) -> Self {
        let mut sub = Peer::open(addr, V311).await;
        sub.connect("ctl-sub").await;
        sub.subscribe("ctl/#", QoS::AtLeastOnce).await;
        let mut publisher = Peer::open(addr, V311).await;
        publisher.connect("ctl-pub").await;
        Self {
            sub,
            publisher,
            next_id: 0,
        }
    }

    /// A QoS 1 message from the control publisher is acknowledged and reaches the control
    /// subscriber.
    async fn still_served(&mut self, payload: &str) {
        self.next_id = self.next_id % 65_535 + 1;
        let id = self.next_id;
        self.publisher
            .send(&publish(
                "ctl/check",
                payload.to_string(),
                QoS::AtLeastOnce,
                id,
            ))
            .await;
        match self.publisher.recv().await {
            Packet::PubAck(a) => assert_eq!(a.packet_id, pid(id)),
            other => panic!("control publisher: expected PUBACK, got {other:?}"),
        }
        self.expect("ctl/check", payload).await;
    }

    /// The control subscriber receives `payload` on `topic` (acknowledging what it gets).
    async fn expect(&mut self, topic: &str, payload: &str) {
        match self.sub.recv().await {
            Packet::Publish(p) => {
                if let Some(id) = p.packet_id {
                    self.sub.send(&Packet::PubAck(Ack::new(id))).await;
                }
                assert_eq!(
                    (p.topic.as_str(), &p.payload[..]),
                    (topic, payload.as_bytes())
                );
            }
            other => panic!("control subscriber: expected PUBLISH, got {other:?}"),
        }
    }
}

/// A raw MQTT client over TCP: sends packets or any bytes, decodes what comes back.
struct Peer {
    stream: TcpStream,
    rx: BytesMut,
    version: ProtocolVersion,
}

impl Peer {
    async fn open(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = within("connect", TcpStream::connect(addr)).await.unwrap();
        Self {
            stream,
            rx: BytesMut::new(),
            version,
        }
    }

    /// CONNECT as `client_id` (clean start, keep alive 60); expects success.
    async fn connect(&mut self, client_id: &str) -> ConnAck {
        self.send(&connect_packet(self.version, client_id)).await;
        match self.recv().await {
            Packet::ConnAck(ack) => {
                assert_eq!(ack.reason_code, ReasonCode::Success);
                *ack
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        let sub = Subscribe {
            packet_id: pid(1),
            subscriptions: vec![Subscription {
                filter: TopicFilter::new(filter).unwrap(),
                options: SubscriptionOptions {
                    qos,
                    ..Default::default()
                },
            }],
            properties: SubscribeProperties::default(),
        };
        self.send(&Packet::Subscribe(sub)).await;
        match self.recv().await {
            Packet::SubAck(ack) => assert_eq!(ack.reason_codes.len(), 1),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    async fn send(&mut self, packet: &Packet) {
        let mut buf = BytesMut::new();
        encode(packet, self.version, &mut buf).unwrap();
        self.send_bytes(&buf).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        within("write", self.stream.write_all(bytes)).await.unwrap();
    }

    /// The next packet, or `None` once the broker closed the socket (end of stream, or a
    /// reset). What the broker sends must decode.
    async fn next(&mut self) -> Option<Packet> {
        loop {
            match decode(&mut self.rx, self.version, &DecodeLimits::default()) {
                Ok(Some(p)) => return Some(p),
                Ok(None) => {}
                Err(e) => panic!("the broker sent an undecodable packet: {e}"),
            }
            let n = within("read", self.stream.read_buf(&mut self.rx))
                .await
                .unwrap_or(0);
            if n == 0 {
                assert!(self.rx.is_empty(), "closed inside a packet");
                return None;
            }
        }
    }

    async fn recv(&mut self) -> Packet {
        self.next().await.expect("connection closed")
    }

    /// DISCONNECT with `code`, then the socket closes.
    async fn expect_disconnect(&mut self, code: ReasonCode) {
        match self.next().await {
            Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, code, "{d:?}"),
            other => panic!("expected DISCONNECT {code:?}, got {other:?}"),
        }
        self.expect_closed().await;
    }

    /// The socket closes with nothing (more) sent.
    async fn expect_closed(&mut self) {
        if let Some(p) = self.next().await {
            panic!("expected the socket to close, got {p:?}");
        }
    }
}

fn connect_packet(version: ProtocolVersion, client_id: &str) -> Packet {
    Packet::Connect(Box::new(Connect::new(version, client_id)))
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn publish(topic: &str, payload: impl Into<Bytes>, qos: QoS, id: u16) -> Packet {
    let mut p = Publish::new(TopicName::new(topic).unwrap(), payload);
    p.qos = qos;
    p.packet_id = (qos != QoS::AtMostOnce).then(|| pid(id));
    Packet::Publish(p)
}

/// Bytes from hex, spaces ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| (b as char).to_digit(16).expect("test hex") as u8)
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd hex: {s}");
    digits.chunks(2).map(|d| d[0] << 4 | d[1]).collect()
}

/// A Variable Byte Integer.
fn varint(mut n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        out.push(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            return out;
        }
    }
}

/// A packet from its first byte and a hex body; the Remaining Length is computed.
fn pkt(first: u8, body: &str) -> Vec<u8> {
    let body = hex(body);
    let mut out = vec![first];
    out.extend(varint(body.len() as u32));
    out.extend(body);
    out
}

/// A UTF-8 string field, as hex.
fn text(s: &str) -> String {
    let mut out = format!("{:04x}", s.len());
    for b in s.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A CONNECT at protocol `level` with `flags`, keep alive 60, client id "a", 5.0 properties
/// `props` (hex, with their length) and the rest of the payload `tail`.
fn connect(level: u8, flags: u8, props: &str, tail: &str) -> Vec<u8> {
    pkt(
        0x10,
        &format!(
            "{}{level:02x}{flags:02x}003c{props}{}{tail}",
            text("MQTT"),
            text("a")
        ),
    )
}

/// This process's resident set size, from /proc/self/status.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// xorshift64*: garbage that is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

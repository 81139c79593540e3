//! Ending connections: the server's DISCONNECT, the client's, and malformed input.

use std::time::Duration;

use mqtt_core::client::{ClientEvent, ClientOptions, CommandError, DisconnectReason};
use mqtt_core::packet::{Disconnect, DisconnectProperties};
use mqtt_core::{Packet, ProtocolVersion, QoS, ReasonCode};

use crate::peer::Scripted;

#[test]
fn server_disconnect_surfaces_code_and_server_reference() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    s.send(Packet::Disconnect(Box::new(Disconnect {
        reason_code: ReasonCode::ServerMoved,
        properties: DisconnectProperties {
            server_reference: Some("new.example:8883".into()),
            reason_string: Some("maintenance".into()),
            ..Default::default()
        },
    })));
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::Server {
                reason_code: ReasonCode::ServerMoved,
                server_reference: Some("new.example:8883".into()),
                reason_string: Some("maintenance".into()),
            }
        }]
    );
    assert_eq!(
        s.sent(),
        vec![],
        "nothing is sent after the server's DISCONNECT"
    );
    assert!(!s.client.is_connected());
    // Bytes after it are dropped; `handle_disconnect` then reports nothing more.
    s.send(Packet::PingResp);
    s.lose_link();
    assert_eq!(s.events(), vec![]);
}

#[test]
fn client_disconnect_carries_reason_code_and_session_expiry() {
    let mut o = ClientOptions::new("c");
    o.connect_properties.session_expiry_interval = Some(60);
    let mut s = Scripted::connected(o);
    s.publish("t", "last words", QoS::AtMostOnce);
    s.client
        .disconnect(s.now, ReasonCode::DisconnectWithWill, Some(0))
        .unwrap();
    s.drain();
    let sent = s.sent();
    assert!(matches!(sent[0], Packet::Publish(_)), "{sent:?}");
    assert_eq!(
        sent[1..],
        [Packet::Disconnect(Box::new(Disconnect {
            reason_code: ReasonCode::DisconnectWithWill,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                ..Default::default()
            },
        }))]
    );
    assert_eq!(
        s.events().last(),
        Some(&ClientEvent::Disconnected {
            reason: DisconnectReason::Local {
                reason_code: ReasonCode::DisconnectWithWill
            }
        })
    );
    // Nothing after DISCONNECT [MQTT-3.14.4-1].
    s.publish("t", "later", QoS::AtMostOnce);
    s.advance(Duration::from_secs(3600));
    assert_eq!(s.sent(), vec![]);
    assert_eq!(
        s.client.disconnect(s.now, ReasonCode::Success, None),
        Err(CommandError::NotConnected)
    );
}

#[test]
fn disconnect_refuses_what_the_spec_forbids() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    let now = s.now;
    // CONNECT said no session expiry: DISCONNECT cannot add one.
    assert_eq!(
        s.client.disconnect(now, ReasonCode::Success, Some(10)),
        Err(CommandError::SessionExpiryWasZero)
    );
    assert_eq!(
        s.client.disconnect(now, ReasonCode::GrantedQoS1, None),
        Err(CommandError::ReasonCodeNotAllowed(ReasonCode::GrantedQoS1))
    );
    assert!(s.client.is_connected());
    s.client
        .disconnect(now, ReasonCode::Success, Some(0))
        .unwrap();
    s.drain();
    assert_eq!(
        s.sent(),
        vec![Packet::Disconnect(Box::new(Disconnect {
            reason_code: ReasonCode::Success,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                ..Default::default()
            }
        }))]
    );
}

#[test]
fn v311_disconnect_is_two_bytes() {
    let mut o = ClientOptions::new("c");
    o.version = ProtocolVersion::V311;
    let mut s = Scripted::connected(o);
    s.client
        .disconnect(s.now, ReasonCode::Success, None)
        .unwrap();
    let mut raw = bytes::BytesMut::new();
    s.client.poll_transmit(s.now, &mut raw);
    assert_eq!(&raw[..], b"\xe0\x00");
}

#[test]
fn malformed_input_is_disconnect_with_its_reason_code() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    // PUBLISH QoS 3.
    s.send_bytes(b"\x36\x05\x00\x01t\x00\x01");
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ProtocolError(ReasonCode::MalformedPacket)
        }]
    );
    assert_eq!(
        s.sent(),
        vec![Packet::Disconnect(Box::new(Disconnect {
            reason_code: ReasonCode::MalformedPacket,
            properties: Default::default()
        }))]
    );
}

#[test]
fn v311_malformed_input_closes_without_a_word() {
    let mut o = ClientOptions::new("c");
    o.version = ProtocolVersion::V311;
    let mut s = Scripted::connected(o);
    s.send_bytes(b"\x00\x00"); // reserved packet type 0
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ProtocolError(ReasonCode::MalformedPacket)
        }]
    );
    assert_eq!(s.sent(), vec![]);
}

#[test]
fn garbage_never_panics() {
    // Every input from a peer is an output, never a panic: a deterministic sweep.
    let mut x: u64 = 0x1234_5678;
    for _ in 0..300 {
        let mut o = ClientOptions::new("c");
        o.manual_acks = x & 1 == 0;
        o.connect_properties.topic_alias_maximum = Some(4);
        let mut s = Scripted::connected(o);
        let mut bytes = Vec::new();
        for _ in 0..64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bytes.push((x >> 56) as u8);
        }
        s.send_bytes(&bytes);
        s.advance_secs(200);
        s.events();
        s.sent();
    }
}

//! CONNECT and CONNACK: return codes per version, assigned identifiers, what comes before
//! CONNECT and after it, the connect timeout and the connection limit.

use std::time::Duration;

use mqtt_core::broker::CloseReason;
use mqtt_core::{ProtocolVersion, ReasonCode};

use crate::script::*;
use crate::world::World;

#[test]
fn v311_connack_accepted_is_the_four_bytes_of_the_spec() {
    let mut w = World::new(config());
    let p = w.open(ProtocolVersion::V311);
    w.send(p, v311("c").keep_alive(60));
    let r = w.recv(p).expect("a CONNACK");
    assert_eq!(&r.raw[..], b"\x20\x02\x00\x00");
    w.expect_idle(p);
}

#[test]
fn v31_empty_client_id_is_refused_with_0x02() {
    let mut w = World::new(config());
    let p = w.open(ProtocolVersion::V31);
    w.send(p, v31(""));
    let r = w.recv(p).expect("a CONNACK");
    // 3.1 has no Session Present; return code 2 is "identifier rejected".
    assert_eq!(&r.raw[..], b"\x20\x02\x00\x02");
    assert_eq!(
        w.expect_closed(p),
        CloseReason::ConnectRefused(ReasonCode::ClientIdentifierNotValid)
    );
    assert_eq!(w.broker.sessions(), 0);
}

#[test]
fn v311_empty_client_id_needs_a_clean_session() {
    let mut w = World::new(config());
    let (p, ack) = w.connect_ack(v311("").clean(false));
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(!ack.session_present);
    w.expect_closed(p);

    // With Clean Session the broker makes an identifier up, and says nothing of it in 3.1.1.
    let (p, ack) = w.connect_ack(v311(""));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(ack.properties.assigned_client_identifier, None);
    w.expect_idle(p);
    assert_eq!(w.broker.sessions(), 1);
}

#[test]
fn v5_empty_client_id_gets_an_assigned_client_identifier() {
    let mut w = World::new(config());
    let (p, ack) = w.connect_ack(v5("").clean(false).expiry(60));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let id = ack
        .properties
        .assigned_client_identifier
        .expect("Assigned Client Identifier [MQTT-3.2.2-16]");
    assert!(!id.is_empty());
    w.send(p, disconnect());
    w.expect_closed(p);

    // The identifier names a real session: connecting with it resumes that session.
    let (p, ack) = w.connect_ack(v5(&id).clean(false).expiry(60));
    assert!(ack.session_present);
    assert_eq!(ack.properties.assigned_client_identifier, None);
    w.expect_idle(p);

    // Two clients without an identifier get two different ones.
    let (_, a) = w.connect_ack(v5(""));
    let (_, b) = w.connect_ack(v5(""));
    assert_ne!(
        a.properties.assigned_client_identifier,
        b.properties.assigned_client_identifier
    );
}

#[test]
fn unsupported_protocol_level_is_answered_then_closed() {
    let mut w = World::new(config());
    // "MQTT" at level 3: a 3.x broker answers with return code 1 [MQTT-3.1.2-2].
    let p = w.open(ProtocolVersion::V311);
    let body = [&text("MQTT")[..], &[3, 0x02, 0, 60], &text("c")[..]].concat();
    w.send_bytes(p, &raw(0x10, &body));
    let r = w.recv(p).expect("a CONNACK");
    assert_eq!(&r.raw[..], b"\x20\x02\x00\x01");
    assert_eq!(
        w.expect_closed(p),
        CloseReason::ConnectRefused(ReasonCode::UnsupportedProtocolVersion)
    );

    // Level 6: answered as 5.0 would, 0x84.
    let p = w.open(ProtocolVersion::V5);
    let body = [&text("MQTT")[..], &[6, 0x02, 0, 60, 0], &text("c")[..]].concat();
    w.send_bytes(p, &raw(0x10, &body));
    let ack = w.expect_connack(p);
    assert_eq!(ack.reason_code, ReasonCode::UnsupportedProtocolVersion);
    assert!(!ack.session_present);
    w.expect_closed(p);
    assert_eq!(w.broker.connections(), 0);
    assert_eq!(w.broker.sessions(), 0);
}

#[test]
fn first_packet_not_connect_closes_without_an_answer() {
    let mut w = World::new(config());
    for first in [
        pingreq(),
        publish("a", "x").into(),
        subscribe(1, &[("a", 0)]).into(),
    ] {
        // Before CONNECT the broker reads packets as 3.1.1.
        let p = w.open(ProtocolVersion::V311);
        w.send(p, first);
        assert_eq!(
            w.expect_closed(p),
            CloseReason::ProtocolViolation(ReasonCode::ProtocolError),
            "[MQTT-3.1.0-1]"
        );
    }
    assert_eq!(w.broker.connections(), 0);
}

#[test]
fn second_connect_is_a_protocol_error() {
    let mut w = World::new(config());
    // 5.0: DISCONNECT 0x82, then close [MQTT-3.1.0-2].
    let p = w.connect(v5("five"));
    w.send(p, v5("five"));
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::ProtocolError
    );
    assert_eq!(
        w.expect_closed(p),
        CloseReason::ProtocolViolation(ReasonCode::ProtocolError)
    );

    // 3.1.1: closed with nothing sent.
    let p = w.connect(v311("four"));
    w.send(p, v311("four"));
    w.expect_closed(p);
    assert_eq!(w.broker.connections(), 0);
}

#[test]
fn connect_timeout_closes_a_silent_socket() {
    let mut w = World::new(config());
    let silent = w.open(ProtocolVersion::V311);
    // Half a CONNECT does not count as one.
    let half = w.open(ProtocolVersion::V311);
    w.send_bytes(half, &[0x10, 0x0d, 0x00, 0x04, b'M']);
    let ok = w.connect(v311("ok"));

    w.advance(Duration::from_millis(9_999));
    assert!(w.is_open(silent) && w.is_open(half));
    w.advance(Duration::from_millis(1));
    assert_eq!(w.expect_closed(silent), CloseReason::ConnectTimeout);
    assert_eq!(w.expect_closed(half), CloseReason::ConnectTimeout);
    w.expect_idle(ok);
    assert_eq!(w.broker.connections(), 1);
}

#[test]
fn max_connections_refuses_with_server_busy() {
    let mut w = World::new(config_with(|l| l.max_connections = 2));
    let a = w.connect(v5("a"));
    let _b = w.connect(v311("b"));

    let (c, ack) = w.connect_ack(v5("c"));
    assert_eq!(ack.reason_code, ReasonCode::ServerBusy);
    assert_eq!(
        w.expect_closed(c),
        CloseReason::ConnectRefused(ReasonCode::ServerBusy)
    );
    // 3.1.1 has no "busy": return code 3, server unavailable.
    let d = w.open(ProtocolVersion::V311);
    w.send(d, v311("d"));
    assert_eq!(&w.recv(d).expect("a CONNACK").raw[..], b"\x20\x02\x00\x03");
    w.expect_closed(d);

    // A slot frees up when a client leaves.
    w.send(a, disconnect());
    w.connect(v5("e"));
}

#[test]
fn session_present_only_for_a_kept_session() {
    let mut w = World::new(config());
    let (p, ack) = w.connect_ack(v311("c").clean(false));
    assert!(!ack.session_present, "no session yet [MQTT-3.2.2-3]");
    w.send(p, disconnect());
    let (p, ack) = w.connect_ack(v311("c").clean(false));
    assert!(ack.session_present, "[MQTT-3.2.2-2]");
    w.send(p, disconnect());
    let (_, ack) = w.connect_ack(v311("c").clean(true));
    assert!(
        !ack.session_present,
        "Clean Session discards it [MQTT-3.2.2-1]"
    );
}

//! Bad input: whatever a peer sends, only that peer is closed, with the right reason code,
//! and the broker keeps serving everyone else.

use bytes::BytesMut;
use mqtt_core::broker::CloseReason;
use mqtt_core::codec;
use mqtt_core::packet::{ConnAck, SubAck, UnsubAck};
use mqtt_core::{Packet, ProtocolVersion, ReasonCode};

use crate::script::*;
use crate::world::{Peer, Rng, World};

/// A subscriber to `t` and a publisher, to show the broker still serves.
fn control(w: &mut World) -> (Peer, Peer) {
    let s = w.connect(v311("control-sub"));
    w.send(s, subscribe(1, &[("t", 1)]));
    w.expect_suback(s);
    let p = w.connect(v5("control-pub"));
    (s, p)
}

#[track_caller]
fn still_served(w: &mut World, (s, p): (Peer, Peer), payload: &str) {
    w.send(p, publish("t", payload).qos1(1));
    w.expect_puback(p);
    let m = w.expect_message(s, "t", payload);
    w.send(s, puback(m.packet_id.map_or(0, |i| i.get())));
}

#[test]
fn a_malformed_packet_closes_only_its_sender() {
    let mut w = World::new(config());
    let ctl = control(&mut w);
    // PUBLISH with QoS 3 [MQTT-3.3.1-4].
    let qos3 = raw(0x36, &[&text("t")[..], &[0, 1], b"x"].concat());
    let bad5 = w.connect(v5("bad5"));
    w.send_bytes(bad5, &qos3);
    assert_eq!(
        w.expect_disconnect(bad5).reason_code,
        ReasonCode::MalformedPacket
    );
    assert_eq!(
        w.expect_closed(bad5),
        CloseReason::ProtocolViolation(ReasonCode::MalformedPacket)
    );
    let bad4 = w.connect(v311("bad4"));
    // Followed by a valid PINGREQ in the same read: never answered.
    w.send_bytes(bad4, &[&qos3[..], &[0xC0, 0x00]].concat());
    w.expect_closed(bad4);
    still_served(&mut w, ctl, "after");
    assert_eq!(w.broker.connections(), 2);
}

#[test]
fn invalid_topics_are_refused_with_their_codes() {
    let mut w = World::new(config());
    let ctl = control(&mut w);
    let cases: [(&[u8], ReasonCode); 3] = [
        // A wildcard in a Topic Name [MQTT-3.3.2-2].
        (b"a/+", ReasonCode::TopicNameInvalid),
        // Not UTF-8 [MQTT-1.5.4-1].
        (b"\xc3\x28", ReasonCode::MalformedPacket),
        // U+0000 [MQTT-1.5.4-2].
        (b"a\x00b", ReasonCode::MalformedPacket),
    ];
    for (t, code) in cases {
        let p = w.connect(v5("bad"));
        let mut body = (t.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(t);
        body.push(0);
        body.extend_from_slice(b"payload");
        w.send_bytes(p, &raw(0x30, &body));
        assert_eq!(w.expect_disconnect(p).reason_code, code, "{t:?}");
        w.expect_closed(p);
    }
    still_served(&mut w, ctl, "after");
}

#[test]
fn server_only_packets_from_a_client_close_it() {
    let mut w = World::new(config());
    let ctl = control(&mut w);
    let server_only = [
        Packet::ConnAck(Box::new(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties: Default::default(),
        })),
        Packet::SubAck(SubAck {
            packet_id: pid(1),
            reason_codes: vec![ReasonCode::Success],
            properties: Default::default(),
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: pid(1),
            reason_codes: vec![ReasonCode::Success],
            properties: Default::default(),
        }),
        Packet::PingResp,
    ];
    for packet in server_only {
        let p = w.connect(v5("five"));
        w.send(p, packet.clone());
        assert_eq!(
            w.expect_disconnect(p).reason_code,
            ReasonCode::ProtocolError,
            "{packet:?}"
        );
        w.expect_closed(p);
        let p = w.connect(v311("four"));
        w.send(p, packet);
        assert_eq!(
            w.expect_closed(p),
            CloseReason::ProtocolViolation(ReasonCode::ProtocolError)
        );
    }
    // AUTH does not exist before 5.0: a reserved packet type there.
    let p = w.connect(v311("four"));
    w.send_bytes(p, &[0xF0, 0x00]);
    assert_eq!(
        w.expect_closed(p),
        CloseReason::ProtocolViolation(ReasonCode::MalformedPacket)
    );
    still_served(&mut w, ctl, "after");
}

#[test]
fn an_oversized_packet_is_refused_from_its_fixed_header() {
    let mut w = World::new(config_with(|l| l.max_packet_size = 1024));
    let ctl = control(&mut w);
    let p = w.connect(v5("big"));
    // A PUBLISH announcing 2 MB: refused before any of the body is sent.
    w.send_bytes(p, &[0x30, 0xFF, 0xFF, 0x7F]);
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::PacketTooLarge
    );
    w.expect_closed(p);
    still_served(&mut w, ctl, "after");
}

/// Random bytes, or a valid packet sequence with some bytes changed.
fn garbage(rng: &mut Rng, version: ProtocolVersion) -> Vec<u8> {
    let len = 1 + (rng.next() % 64) as usize;
    if rng.next() & 1 == 0 {
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut wire = BytesMut::new();
    let packets: [Packet; 4] = [
        publish("t/x", "payload").qos1(3).into(),
        subscribe(2, &[("a/+", 1)]).into(),
        unsubscribe(4, &["a/+"]),
        pubrel(5),
    ];
    for p in &packets {
        codec::encode(p, version, &mut wire).expect("valid packets encode");
    }
    let mut bytes = wire.to_vec();
    for _ in 0..1 + rng.next() % 4 {
        let i = (rng.next() as usize) % bytes.len();
        bytes[i] = rng.next() as u8;
    }
    bytes
}

#[test]
fn a_thousand_garbage_connections_leave_the_broker_serving() {
    let mut w = World::new(config());
    let ctl = control(&mut w);
    let mut rng = Rng(7);
    let mut closed_by_broker = 0;
    for i in 0..1000 {
        let version = [
            ProtocolVersion::V31,
            ProtocolVersion::V311,
            ProtocolVersion::V5,
        ][i % 3];
        let p = if i % 2 == 0 {
            // Before CONNECT the broker reads 3.1.1.
            w.open(ProtocolVersion::V311)
        } else {
            let c = match version {
                ProtocolVersion::V31 => v31("garbage"),
                ProtocolVersion::V311 => v311("garbage"),
                _ => v5("garbage"),
            };
            w.connect(c)
        };
        let bytes = garbage(&mut rng, version);
        w.send_bytes(p, &bytes);
        if w.is_open(p) {
            // Garbage that happens to be valid so far: the peer hangs up.
            w.drop_link(p);
        } else {
            closed_by_broker += 1;
        }
        while w.recv(p).is_some() {}
        if i % 100 == 0 {
            still_served(&mut w, ctl, &format!("during {i}"));
        }
    }
    assert!(closed_by_broker > 500, "only {closed_by_broker} refused");
    assert_eq!(w.broker.connections(), 2, "no stray connections");
    assert_eq!(w.broker.sessions(), 2, "no stray sessions");
    still_served(&mut w, ctl, "after");
    // The timers of all those connections fire harmlessly.
    w.advance_secs(3600);
    still_served(&mut w, ctl, "an hour later");
}

//! Sessions over lost connections: resending with DUP [MQTT-4.4.0-1], and starting over when
//! the server kept nothing [MQTT-3.2.2-5].

use mqtt_core::client::{ClientEvent, ClientOptions};
use mqtt_core::packet::Ack;
use mqtt_core::{Packet, QoS, ReasonCode};

use crate::peer::Scripted;
use crate::{ack, pid};

/// A client with three messages in flight: QoS 1 id 1 unacknowledged, QoS 2 id 2 released
/// (PUBREC received, PUBREL sent), QoS 2 id 3 unacknowledged; then the link is lost.
fn three_in_flight() -> (Scripted, [mqtt_core::client::PublishId; 3]) {
    let mut o = ClientOptions::new("c");
    o.connect_properties.session_expiry_interval = Some(300);
    let mut s = Scripted::connected(o);
    let a = s.publish("t/a", "a", QoS::AtLeastOnce);
    let b = s.publish("t/b", "b", QoS::ExactlyOnce);
    let c = s.publish("t/c", "c", QoS::ExactlyOnce);
    s.send(Packet::PubRec(Ack::new(pid(2))));
    let sent = s.sent();
    assert_eq!(sent.len(), 4, "{sent:?}");
    s.lose_link();
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: mqtt_core::client::DisconnectReason::TransportClosed
        }]
    );
    (s, [a, b, c])
}

#[test]
fn resumed_session_resends_publish_with_dup_and_pubrel_in_order() {
    let (mut s, [a, b, c]) = three_in_flight();
    let connect = s.open();
    assert!(
        !connect.clean_start,
        "a reconnect asks to resume the session"
    );
    assert_eq!(connect.properties.session_expiry_interval, Some(300));
    s.send_bytes(b"\x20\x03\x01\x00\x00"); // CONNACK, session present
    assert!(matches!(
        s.events().as_slice(),
        [ClientEvent::Connected {
            session_present: true,
            ..
        }]
    ));
    let resent: Vec<_> = s
        .sent()
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => (
                "PUBLISH",
                p.packet_id.unwrap().get(),
                p.dup,
                p.topic.to_string(),
            ),
            Packet::PubRel(a) => ("PUBREL", a.packet_id.get(), false, String::new()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        resent,
        vec![
            ("PUBLISH", 1, true, "t/a".to_owned()),
            ("PUBREL", 2, false, String::new()),
            ("PUBLISH", 3, true, "t/c".to_owned()),
        ]
    );
    s.send(Packet::PubAck(Ack::new(pid(1))));
    s.send(Packet::PubComp(Ack::new(pid(2))));
    s.send(Packet::PubRec(Ack::new(pid(3))));
    s.send(Packet::PubComp(Ack::new(pid(3))));
    assert_eq!(
        s.events(),
        [a, b, c]
            .into_iter()
            .map(|id| ClientEvent::Published {
                id,
                reason_code: ReasonCode::Success
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn lost_session_restarts_unacknowledged_messages_as_new() {
    let (mut s, [a, b, c]) = three_in_flight();
    s.open();
    s.send_bytes(b"\x20\x03\x00\x00\x00"); // CONNACK, no session
    let events = s.events();
    assert!(matches!(
        events[0],
        ClientEvent::Connected {
            session_present: false,
            ..
        }
    ));
    // The released message is the server's: complete. The others start over.
    assert_eq!(
        events[1..],
        [ClientEvent::Published {
            id: b,
            reason_code: ReasonCode::Success
        }]
    );
    let sent: Vec<_> = s
        .sent()
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => (p.topic.to_string(), p.dup, p.packet_id.map(|i| i.get())),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent.iter()
            .map(|(t, dup, _)| (t.as_str(), *dup))
            .collect::<Vec<_>>(),
        vec![("t/a", false), ("t/c", false)]
    );
    assert_eq!(s.client.inflight(), 2);
    let (id_a, id_c) = (sent[0].2.unwrap(), sent[1].2.unwrap());
    s.send(Packet::PubAck(Ack::new(pid(id_a))));
    s.send(Packet::PubRec(ack(id_c, ReasonCode::Success)));
    s.send(Packet::PubComp(Ack::new(pid(id_c))));
    let done: Vec<_> = s
        .events()
        .into_iter()
        .map(|e| match e {
            ClientEvent::Published { id, .. } => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(done, vec![a, c]);
}

#[test]
fn incoming_qos2_state_survives_a_resumed_session() {
    let mut o = ClientOptions::new("c");
    o.connect_properties.session_expiry_interval = Some(300);
    let mut s = Scripted::connected(o);
    let p = crate::server_publish("t", "x", QoS::ExactlyOnce, Some(5));
    s.send(p.clone());
    assert_eq!(s.events().len(), 1);
    s.sent();
    s.lose_link();
    s.events();
    s.open();
    s.send_bytes(b"\x20\x03\x01\x00\x00");
    s.events();
    // The server resends it with DUP: PUBREC again, not a second delivery.
    let mut dup = p;
    dup.dup = true;
    s.send(dup);
    assert_eq!(s.events(), vec![]);
    assert_eq!(s.sent(), vec![Packet::PubRec(Ack::new(pid(5)))]);
}

#[test]
fn a_resumed_session_beyond_the_new_window_resends_the_rest_as_slots_free() {
    let mut o = ClientOptions::new("c");
    o.connect_properties.session_expiry_interval = Some(300);
    let mut s = Scripted::connected(o);
    for t in ["t/1", "t/2", "t/3"] {
        s.publish(t, "m", QoS::AtLeastOnce);
    }
    assert_eq!(s.sent().len(), 3);
    s.lose_link();
    s.events();
    s.open();
    // CONNACK: session present, Receive Maximum 1.
    s.send_bytes(b"\x20\x06\x01\x00\x03\x21\x00\x01");
    s.events();
    let mut resent = Vec::new();
    for id in 1..=3u16 {
        let sent = s.sent();
        assert_eq!(sent.len(), 1, "one at a time in a window of 1: {sent:?}");
        if let Packet::Publish(p) = &sent[0] {
            resent.push((p.packet_id.map(|i| i.get()), p.dup));
        }
        s.send(Packet::PubAck(Ack::new(pid(id))));
    }
    assert_eq!(
        resent,
        vec![(Some(1), true), (Some(2), true), (Some(3), true)]
    );
    s.publish("t/4", "m", QoS::AtLeastOnce);
    assert!(
        matches!(s.sent().as_slice(), [Packet::Publish(p)] if !p.dup),
        "a new message goes out once the resumed ones are done"
    );
}

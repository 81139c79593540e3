//! Incoming messages: automatic acknowledgements, exactly-once delivery of QoS 2, and manual
//! acknowledgements sent in receive order.

use mqtt_core::client::{AckError, AckToken, ClientEvent, ClientOptions};
use mqtt_core::packet::Ack;
use mqtt_core::{Packet, QoS, ReasonCode};

use crate::peer::Scripted;
use crate::{ack, pid, server_publish};

/// The messages among `events`, with their tokens.
fn messages(events: Vec<ClientEvent>) -> Vec<(String, Option<AckToken>)> {
    events
        .into_iter()
        .map(|e| match e {
            ClientEvent::Message { publish, ack } => {
                (String::from_utf8(publish.payload.to_vec()).unwrap(), ack)
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn qos0_and_qos1_are_delivered_and_qos1_acked_at_once() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    s.send(server_publish("t", "zero", QoS::AtMostOnce, None));
    s.send(server_publish("t", "one", QoS::AtLeastOnce, Some(7)));
    assert_eq!(
        messages(s.events()),
        vec![("zero".into(), None), ("one".into(), None)]
    );
    assert_eq!(s.sent(), vec![Packet::PubAck(Ack::new(pid(7)))]);
}

#[test]
fn qos2_is_delivered_once_until_pubrel() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    let p = server_publish("t", "two", QoS::ExactlyOnce, Some(3));
    s.send(p.clone());
    assert_eq!(messages(s.events()), vec![("two".into(), None)]);
    assert_eq!(s.sent(), vec![Packet::PubRec(Ack::new(pid(3)))]);
    // [MQTT-4.3.3-10] again before PUBREL: PUBREC again, no second delivery.
    let mut dup = p.clone();
    dup.dup = true;
    s.send(dup);
    assert_eq!(s.events(), vec![]);
    assert_eq!(s.sent(), vec![Packet::PubRec(Ack::new(pid(3)))]);
    s.send(Packet::PubRel(Ack::new(pid(3))));
    assert_eq!(s.sent(), vec![Packet::PubComp(Ack::new(pid(3)))]);
    // After PUBCOMP the id names a new message.
    s.send(p);
    assert_eq!(messages(s.events()), vec![("two".into(), None)]);
}

#[test]
fn pubrel_for_an_unknown_id_is_answered_not_found() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    s.send(Packet::PubRel(Ack::new(pid(4))));
    assert_eq!(
        s.sent(),
        vec![Packet::PubComp(ack(
            4,
            ReasonCode::PacketIdentifierNotFound
        ))]
    );
}

#[test]
fn manual_acks_out_of_order_are_sent_in_receive_order() {
    let mut o = ClientOptions::new("c");
    o.manual_acks = true;
    let mut s = Scripted::connected(o);
    s.send(server_publish("t", "a", QoS::AtLeastOnce, Some(1)));
    s.send(server_publish("t", "b", QoS::ExactlyOnce, Some(2)));
    s.send(server_publish("t", "q0", QoS::AtMostOnce, None));
    s.send(server_publish("t", "c", QoS::AtLeastOnce, Some(3)));
    let mut got = messages(s.events());
    assert_eq!(
        s.sent(),
        vec![],
        "nothing acknowledged before the application says so"
    );
    let (_, c) = got.pop().unwrap();
    let (_, q0) = got.pop().unwrap();
    assert_eq!(q0, None, "QoS 0 has nothing to acknowledge");
    let (_, b) = got.pop().unwrap();
    let (_, a) = got.pop().unwrap();
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());

    s.client.ack(s.now, c).unwrap();
    s.drain();
    assert_eq!(s.sent(), vec![], "c waits for a and b [MQTT-4.6.0-2]");
    s.client.ack(s.now, a).unwrap();
    s.drain();
    assert_eq!(s.sent(), vec![Packet::PubAck(Ack::new(pid(1)))]);
    s.client.ack(s.now, b).unwrap();
    s.drain();
    assert_eq!(
        s.sent(),
        vec![
            Packet::PubRec(Ack::new(pid(2))),
            Packet::PubAck(Ack::new(pid(3)))
        ]
    );
    s.send(Packet::PubRel(Ack::new(pid(2))));
    assert_eq!(s.sent(), vec![Packet::PubComp(Ack::new(pid(2)))]);
}

#[test]
fn manual_ack_qos2_repeated_before_ack_is_neither_delivered_nor_acked() {
    let mut o = ClientOptions::new("c");
    o.manual_acks = true;
    let mut s = Scripted::connected(o);
    let p = server_publish("t", "b", QoS::ExactlyOnce, Some(2));
    s.send(p.clone());
    let (_, token) = messages(s.events()).pop().unwrap();
    s.send(p);
    assert_eq!(s.events(), vec![]);
    assert_eq!(s.sent(), vec![]);
    s.client.ack(s.now, token.unwrap()).unwrap();
    s.drain();
    assert_eq!(s.sent(), vec![Packet::PubRec(Ack::new(pid(2)))]);
}

#[test]
fn tokens_of_a_discarded_session_are_not_pending() {
    let mut o = ClientOptions::new("c");
    o.manual_acks = true;
    let mut s = Scripted::connected(o);
    s.send(server_publish("t", "a", QoS::AtLeastOnce, Some(1)));
    let (_, token) = messages(s.events()).pop().unwrap();
    s.lose_link();
    s.events();
    s.open();
    // The server kept no session: neither does the client [MQTT-3.2.2-5].
    s.send_bytes(b"\x20\x03\x00\x00\x00");
    s.events();
    assert_eq!(
        s.client.ack(s.now, token.unwrap()),
        Err(AckError::NotPending)
    );
    s.drain();
    assert_eq!(s.sent(), vec![]);
}

#[test]
fn manual_acks_held_over_a_lost_link_go_out_on_the_resumed_session() {
    let mut o = ClientOptions::new("c");
    o.manual_acks = true;
    o.connect_properties.session_expiry_interval = Some(60);
    let mut s = Scripted::connected(o);
    s.send(server_publish("t", "a", QoS::AtLeastOnce, Some(1)));
    let (_, token) = messages(s.events()).pop().unwrap();
    s.lose_link();
    s.events();
    // Acknowledged while there is no connection: held.
    s.client.ack(s.now, token.unwrap()).unwrap();
    s.drain();
    s.open();
    s.send_bytes(b"\x20\x03\x01\x00\x00");
    s.events();
    assert_eq!(s.sent(), vec![Packet::PubAck(Ack::new(pid(1)))]);
}

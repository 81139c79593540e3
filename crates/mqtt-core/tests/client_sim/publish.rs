//! Outgoing messages: the QoS 0/1/2 flows and their completions, and refused commands.

use core::num::NonZeroU32;

use mqtt_core::client::{ClientEvent, ClientOptions, PublishError, PublishRequest};
use mqtt_core::packet::{Ack, ConnAckProperties, PublishProperties};
use mqtt_core::{Packet, ProtocolVersion, QoS, ReasonCode};

use crate::peer::Scripted;
use crate::{ack, pid, topic};

fn published(id: mqtt_core::client::PublishId, reason_code: ReasonCode) -> ClientEvent {
    ClientEvent::Published { id, reason_code }
}

#[test]
fn qos0_completes_when_written() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    let id = s
        .client
        .publish(s.now, PublishRequest::new(topic("t"), "x"))
        .unwrap();
    // Not complete until the bytes are handed out.
    assert_eq!(s.client.poll_event(), None);
    s.drain();
    assert_eq!(s.events(), vec![published(id, ReasonCode::Success)]);
    match s.sent().as_slice() {
        [Packet::Publish(p)] => {
            assert_eq!((p.qos, p.packet_id, p.dup), (QoS::AtMostOnce, None, false));
            assert_eq!(p.topic.as_str(), "t");
            assert_eq!(&p.payload[..], b"x");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn qos1_completes_on_puback_with_its_reason_code() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    let a = s.publish("t", "a", QoS::AtLeastOnce);
    let b = s.publish("t", "b", QoS::AtLeastOnce);
    let sent = s.sent();
    let ids: Vec<_> = sent
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => (p.qos, p.packet_id, p.dup),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (QoS::AtLeastOnce, Some(pid(1)), false),
            (QoS::AtLeastOnce, Some(pid(2)), false)
        ]
    );
    assert_eq!(s.events(), vec![]);
    s.send(Packet::PubAck(ack(2, ReasonCode::NotAuthorized)));
    s.send(Packet::PubAck(ack(1, ReasonCode::NoMatchingSubscribers)));
    assert_eq!(
        s.events(),
        vec![
            published(b, ReasonCode::NotAuthorized),
            published(a, ReasonCode::NoMatchingSubscribers)
        ]
    );
    assert_eq!(s.client.inflight(), 0);
    // A PUBACK for nothing in flight changes nothing.
    s.send(Packet::PubAck(Ack::new(pid(1))));
    assert_eq!(s.events(), vec![]);
    assert_eq!(s.sent(), vec![]);
}

#[test]
fn qos2_completes_on_pubcomp_after_pubrel() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    let id = s.publish("t", "x", QoS::ExactlyOnce);
    assert!(matches!(s.sent().as_slice(), [Packet::Publish(p)] if p.qos == QoS::ExactlyOnce));
    s.send(Packet::PubRec(Ack::new(pid(1))));
    assert_eq!(s.sent(), vec![Packet::PubRel(Ack::new(pid(1)))]);
    assert_eq!(s.events(), vec![]);
    // A repeated PUBREC is answered with PUBREL again.
    s.send(Packet::PubRec(Ack::new(pid(1))));
    assert_eq!(s.sent(), vec![Packet::PubRel(Ack::new(pid(1)))]);
    s.send(Packet::PubComp(Ack::new(pid(1))));
    assert_eq!(s.events(), vec![published(id, ReasonCode::Success)]);
    assert_eq!(s.client.inflight(), 0);
}

#[test]
fn qos2_failed_pubrec_ends_the_flow_without_pubrel() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    let id = s.publish("t", "x", QoS::ExactlyOnce);
    s.sent();
    s.send(Packet::PubRec(ack(1, ReasonCode::QuotaExceeded)));
    assert_eq!(s.sent(), vec![]);
    assert_eq!(s.events(), vec![published(id, ReasonCode::QuotaExceeded)]);
    // Nothing is left in flight: the window slot is free again.
    assert_eq!(s.client.inflight(), 0);
    s.publish("t", "y", QoS::AtLeastOnce);
    assert!(matches!(s.sent().as_slice(), [Packet::Publish(p)] if p.packet_id == Some(pid(2))));
}

#[test]
fn pubrec_for_an_unknown_id_is_answered_not_found() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    s.send(Packet::PubRec(Ack::new(pid(9))));
    assert_eq!(
        s.sent(),
        vec![Packet::PubRel(ack(9, ReasonCode::PacketIdentifierNotFound))]
    );
}

#[test]
fn publish_refuses_what_the_server_ruled_out() {
    let mut s = Scripted::connected_with(
        ClientOptions::new("c"),
        ConnAckProperties {
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            ..Default::default()
        },
    );
    let now = s.now;
    let req = |q| PublishRequest::new(topic("t"), "x").with_qos(q);
    assert_eq!(
        s.client.publish(now, req(QoS::ExactlyOnce)),
        Err(PublishError::QoSNotSupported {
            maximum: QoS::AtLeastOnce
        })
    );
    assert_eq!(
        s.client
            .publish(now, req(QoS::AtMostOnce).with_retain(true)),
        Err(PublishError::RetainNotSupported)
    );
    let with_sub_id = req(QoS::AtMostOnce).with_properties(PublishProperties {
        subscription_identifiers: vec![NonZeroU32::new(1).unwrap()],
        ..Default::default()
    });
    assert_eq!(
        s.client.publish(now, with_sub_id),
        Err(PublishError::SubscriptionIdentifier)
    );
    assert_eq!(
        s.client.publish(
            now,
            PublishRequest::new(mqtt_core::topic::TopicName::empty(), "x")
        ),
        Err(PublishError::EmptyTopic)
    );
    assert!(s.client.publish(now, req(QoS::AtLeastOnce)).is_ok());
    s.drain();
    assert_eq!(s.sent().len(), 1);
}

#[test]
fn v311_publish_has_no_properties_on_the_wire() {
    let mut o = ClientOptions::new("c");
    o.version = ProtocolVersion::V311;
    let mut s = Scripted::connected(o);
    let id = s.publish("a/b", "hello", QoS::AtLeastOnce);
    match s.sent().as_slice() {
        [Packet::Publish(p)] => assert_eq!(p.properties, PublishProperties::default()),
        other => panic!("{other:?}"),
    }
    s.send_bytes(b"\x40\x02\x00\x01");
    assert_eq!(s.events(), vec![published(id, ReasonCode::Success)]);
}

#[test]
fn publishes_before_connack_wait_for_it() {
    let mut s = Scripted::new(ClientOptions::new("c"));
    let a = s.publish("t", "a", QoS::AtMostOnce);
    let b = s.publish("t", "b", QoS::AtLeastOnce);
    assert_eq!(s.client.queued(), 2);
    s.open();
    assert_eq!(s.client.queued(), 2);
    s.send_bytes(b"\x20\x03\x00\x00\x00");
    let events = s.events();
    assert!(matches!(events[0], ClientEvent::Connected { .. }));
    assert_eq!(events[1..], [published(a, ReasonCode::Success)]);
    let payloads: Vec<_> = s
        .sent()
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => p.payload,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(payloads, vec!["a", "b"]);
    s.send(Packet::PubAck(Ack::new(pid(1))));
    assert_eq!(s.events(), vec![published(b, ReasonCode::Success)]);
}

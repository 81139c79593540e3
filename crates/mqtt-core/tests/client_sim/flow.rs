//! 5.0 flow control: Receive Maximum both ways, topic aliases both ways, Maximum Packet Size
//! both ways, and back-pressure from the bounded queue.

use core::num::{NonZeroU16, NonZeroU32};

use mqtt_core::client::{
    ClientEvent, ClientOptions, DisconnectReason, PublishError, PublishRequest,
};
use mqtt_core::packet::{Ack, ConnAckProperties};
use mqtt_core::{Packet, QoS, ReasonCode};

use crate::peer::Scripted;
use crate::{pid, server_publish, topic};

/// The packet ids of the PUBLISHes among `packets`.
fn publish_ids(packets: &[Packet]) -> Vec<u16> {
    packets
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => p.packet_id.map_or(0, |i| i.get()),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn disconnected_with(s: &mut Scripted, code: ReasonCode) {
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ProtocolError(code)
        }]
    );
    match s.sent().as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, code),
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_receive_maximum_caps_the_window() {
    let mut o = ClientOptions::new("c");
    o.max_inflight = 10;
    let mut s = Scripted::connected_with(
        o,
        ConnAckProperties {
            receive_maximum: NonZeroU16::new(2),
            ..Default::default()
        },
    );
    let ids: Vec<_> = (0..4)
        .map(|i| s.publish("t", &i.to_string(), QoS::AtLeastOnce))
        .collect();
    assert_eq!(publish_ids(&s.sent()), vec![1, 2]);
    assert_eq!((s.client.inflight(), s.client.queued()), (2, 2));
    // A QoS 0 message behind them waits too: messages go out in order.
    s.publish("t", "q0", QoS::AtMostOnce);
    assert_eq!(s.sent(), vec![]);
    s.send(Packet::PubAck(Ack::new(pid(1))));
    assert_eq!(publish_ids(&s.sent()), vec![3]);
    s.send(Packet::PubAck(Ack::new(pid(2))));
    assert_eq!(publish_ids(&s.sent()), vec![4, 0]);
    assert_eq!(
        s.events()[..2],
        [
            ClientEvent::Published {
                id: ids[0],
                reason_code: ReasonCode::Success
            },
            ClientEvent::Published {
                id: ids[1],
                reason_code: ReasonCode::Success
            }
        ]
    );
}

#[test]
fn queue_full_is_back_pressure_and_a_completion_frees_a_place() {
    let mut o = ClientOptions::new("c");
    o.max_inflight = 1;
    o.max_queued = 1;
    let mut s = Scripted::connected(o);
    let now = s.now;
    let req = || PublishRequest::new(topic("t"), "x").with_qos(QoS::AtLeastOnce);
    s.client.publish(now, req()).unwrap();
    s.client.publish(now, req()).unwrap();
    assert_eq!(s.client.publish(now, req()), Err(PublishError::QueueFull));
    assert_eq!(
        s.client
            .publish(now, PublishRequest::new(topic("t"), "qos0")),
        Err(PublishError::QueueFull),
        "QoS 0 behind a full queue waits too"
    );
    s.drain();
    assert_eq!(publish_ids(&s.sent()), vec![1]);
    s.send(Packet::PubAck(Ack::new(pid(1))));
    assert_eq!(publish_ids(&s.sent()), vec![2]);
    assert!(s.client.publish(s.now, req()).is_ok());
    assert_eq!(s.client.publish(s.now, req()), Err(PublishError::QueueFull));
}

#[test]
fn client_receive_maximum_exceeded_is_disconnect_0x93() {
    let mut o = ClientOptions::new("c");
    o.manual_acks = true;
    o.connect_properties.receive_maximum = NonZeroU16::new(2);
    let mut s = Scripted::connected(o);
    s.send(server_publish("t", "a", QoS::AtLeastOnce, Some(1)));
    s.send(server_publish("t", "b", QoS::ExactlyOnce, Some(2)));
    assert_eq!(s.events().len(), 2);
    // [MQTT-3.3.4-9] a third unacknowledged message.
    s.send(server_publish("t", "c", QoS::AtLeastOnce, Some(3)));
    disconnected_with(&mut s, ReasonCode::ReceiveMaximumExceeded);
}

#[test]
fn qos2_awaiting_pubrel_counts_against_the_clients_receive_maximum() {
    let mut o = ClientOptions::new("c");
    o.connect_properties.receive_maximum = NonZeroU16::new(1);
    let mut s = Scripted::connected(o);
    s.send(server_publish("t", "a", QoS::ExactlyOnce, Some(1)));
    s.sent();
    // QoS 1 acknowledged at once does not count; QoS 2 until PUBREL does.
    s.send(Packet::PubRel(Ack::new(pid(1))));
    s.send(server_publish("t", "b", QoS::ExactlyOnce, Some(2)));
    assert_eq!(s.events().len(), 2);
    s.send(server_publish("t", "c", QoS::ExactlyOnce, Some(3)));
    s.events();
    let sent = s.sent();
    assert!(
        matches!(sent.last(), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::ReceiveMaximumExceeded),
        "{sent:?}"
    );
}

#[test]
fn outgoing_aliases_are_assigned_reused_and_run_out() {
    let mut o = ClientOptions::new("c");
    o.topic_alias_maximum_out = 5;
    let mut s = Scripted::connected_with(
        o,
        ConnAckProperties {
            topic_alias_maximum: Some(2),
            ..Default::default()
        },
    );
    for t in ["a/1", "a/1", "b/2", "c/3", "b/2", "c/3"] {
        s.publish(t, "x", QoS::AtMostOnce);
    }
    let wire: Vec<_> = s
        .sent()
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => (
                p.topic.to_string(),
                p.properties.topic_alias.map(|a| a.get()),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<(String, Option<u16>)> = vec![
        ("a/1".into(), Some(1)),
        ("".into(), Some(1)),
        ("b/2".into(), Some(2)),
        // The table (min(5, 2)) is full: sent plainly.
        ("c/3".into(), None),
        ("".into(), Some(2)),
        ("c/3".into(), None),
    ];
    assert_eq!(wire, expected);
    // Aliases do not carry over to the next connection [MQTT-3.3.2-7].
    s.lose_link();
    s.open();
    s.send(Packet::ConnAck(Box::new(mqtt_core::packet::ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            topic_alias_maximum: Some(2),
            ..Default::default()
        },
    })));
    s.publish("b/2", "x", QoS::AtMostOnce);
    assert!(matches!(s.sent().as_slice(), [Packet::Publish(p)]
        if p.topic.as_str() == "b/2" && p.properties.topic_alias == NonZeroU16::new(1)));
}

#[test]
fn no_aliases_when_the_server_takes_none() {
    let mut o = ClientOptions::new("c");
    o.topic_alias_maximum_out = 5;
    let mut s = Scripted::connected(o);
    s.publish("a", "x", QoS::AtMostOnce);
    s.publish("a", "x", QoS::AtMostOnce);
    for p in s.sent() {
        assert!(
            matches!(p, Packet::Publish(p) if p.topic.as_str() == "a" && p.properties.topic_alias.is_none())
        );
    }
}

fn aliased(t: &str, alias: u16) -> mqtt_core::Publish {
    let mut p = server_publish("placeholder", "x", QoS::AtMostOnce, None);
    p.topic = if t.is_empty() {
        mqtt_core::topic::TopicName::empty()
    } else {
        topic(t)
    };
    p.properties.topic_alias = NonZeroU16::new(alias);
    p
}

#[test]
fn incoming_aliases_are_resolved() {
    let mut o = ClientOptions::new("c");
    o.connect_properties.topic_alias_maximum = Some(3);
    let mut s = Scripted::connected(o);
    s.send(aliased("x/y", 3));
    s.send(aliased("", 3));
    let topics: Vec<_> = s
        .events()
        .into_iter()
        .map(|e| match e {
            ClientEvent::Message { publish, .. } => publish.topic.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(topics, vec!["x/y", "x/y"]);
}

#[test]
fn incoming_alias_above_the_maximum_is_disconnect_0x94() {
    let mut o = ClientOptions::new("c");
    o.connect_properties.topic_alias_maximum = Some(3);
    let mut s = Scripted::connected(o);
    s.send(aliased("x/y", 4));
    disconnected_with(&mut s, ReasonCode::TopicAliasInvalid);
}

#[test]
fn incoming_unknown_alias_with_empty_topic_is_disconnect_0x82() {
    let mut o = ClientOptions::new("c");
    o.connect_properties.topic_alias_maximum = Some(3);
    let mut s = Scripted::connected(o);
    s.send(aliased("", 2));
    disconnected_with(&mut s, ReasonCode::ProtocolError);
}

#[test]
fn servers_maximum_packet_size_refuses_large_publishes() {
    let mut s = Scripted::connected_with(
        ClientOptions::new("c"),
        ConnAckProperties {
            maximum_packet_size: NonZeroU32::new(64),
            ..Default::default()
        },
    );
    let now = s.now;
    let big = "x".repeat(64);
    assert_eq!(
        s.client
            .publish(now, PublishRequest::new(topic("t"), big.clone())),
        Err(PublishError::PacketTooLarge {
            size: 1 + 1 + 3 + 1 + 64,
            max: 64
        })
    );
    assert!(matches!(
        s.client
            .publish(now, PublishRequest::new(topic("t"), "x".repeat(59))),
        Err(PublishError::PacketTooLarge { size: 65, max: 64 })
    ));
    // 1 + 1 + (2 + 1) + 1 + 58 = 64 bytes fits exactly.
    assert!(s
        .client
        .publish(now, PublishRequest::new(topic("t"), "x".repeat(58)))
        .is_ok());
    s.drain();
    assert_eq!(s.sent().len(), 1);
    // Requests are measured too.
    let long = "f".repeat(70);
    assert!(matches!(
        s.client.subscribe(
            now,
            vec![crate::sub(&long, QoS::AtMostOnce)],
            Default::default()
        ),
        Err(mqtt_core::client::RequestError::PacketTooLarge { max: 64, .. })
    ));
}

#[test]
fn clients_maximum_packet_size_is_disconnect_0x95() {
    let mut o = ClientOptions::new("c");
    o.connect_properties.maximum_packet_size = NonZeroU32::new(100);
    let mut s = Scripted::connected(o);
    s.send(server_publish("t", &"y".repeat(90), QoS::AtMostOnce, None));
    assert_eq!(s.events().len(), 1, "96 bytes fit");
    s.send(server_publish("t", &"y".repeat(95), QoS::AtMostOnce, None));
    disconnected_with(&mut s, ReasonCode::PacketTooLarge);
}

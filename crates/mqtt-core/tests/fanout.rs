//! Fan-out shares memory: every subscriber's copy of a message points at the one payload that
//! was received, and copies with the same wire form share one encoded header too.

use std::time::Instant;

use bytes::BytesMut;
use mqtt_core::broker::{Broker, BrokerConfig, ConnId, PeerInfo, Transmit};
use mqtt_core::codec::encode;
use mqtt_core::packet::{
    Connect, ConnectProperties, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, QoS};

fn send(broker: &mut Broker, now: Instant, conn: ConnId, v: ProtocolVersion, p: &Packet) {
    let mut buf = BytesMut::new();
    encode(p, v, &mut buf).unwrap();
    broker.handle_bytes(now, conn, &mut buf);
}

fn client(broker: &mut Broker, now: Instant, id: &str, v: ProtocolVersion) -> ConnId {
    let conn = broker.accept(
        now,
        PeerInfo {
            addr: None,
            tls: false,
        },
    );
    let connect = Connect {
        protocol_version: v,
        clean_start: true,
        keep_alive: 0,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    send(broker, now, conn, v, &Packet::Connect(Box::new(connect)));
    conn
}

fn drain(broker: &mut Broker) -> Vec<Transmit> {
    let mut out = Vec::new();
    while let Some(t) = broker.poll_transmit() {
        out.push(t);
    }
    while broker.poll_event().is_some() {}
    out
}

#[test]
// A base instant for the virtual clock: only offsets from it matter.
#[allow(clippy::disallowed_methods)]
fn copies_share_the_payload_and_one_header_per_wire_form() {
    let now = Instant::now();
    let mut broker = Broker::new(BrokerConfig::default());
    let subs: Vec<(ConnId, ProtocolVersion)> = [
        ProtocolVersion::V311,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
        ProtocolVersion::V5,
        ProtocolVersion::V31,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, v)| (client(&mut broker, now, &format!("s{i}"), v), v))
    .collect();
    for (conn, v) in &subs {
        let sub = Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            subscriptions: vec![Subscription {
                filter: TopicFilter::new("t/#").unwrap(),
                options: SubscriptionOptions::default(),
            }],
            properties: SubscribeProperties::default(),
        };
        send(&mut broker, now, *conn, *v, &Packet::Subscribe(sub));
    }
    let publisher = client(&mut broker, now, "p", ProtocolVersion::V311);
    drain(&mut broker);

    let mut publish = Publish::new(TopicName::new("t/1").unwrap(), vec![42u8; 1000]);
    publish.qos = QoS::AtMostOnce;
    send(
        &mut broker,
        now,
        publisher,
        ProtocolVersion::V311,
        &Packet::Publish(publish),
    );
    let out = drain(&mut broker);
    assert_eq!(out.len(), subs.len());
    let payload = out[0].payload.as_ptr();
    for t in &out {
        assert_eq!(t.payload.len(), 1000);
        assert_eq!(t.payload.as_ptr(), payload, "payload copied for {}", t.conn);
    }
    let header_of = |i: usize| {
        out.iter()
            .find(|t| t.conn == subs[i].0)
            .unwrap()
            .bytes
            .clone()
    };
    // Same version: the same header bytes, not equal copies.
    assert_eq!(header_of(0).as_ptr(), header_of(1).as_ptr());
    assert_eq!(header_of(2).as_ptr(), header_of(3).as_ptr());
    assert_ne!(header_of(0).as_ptr(), header_of(2).as_ptr());
    // 3.1 and 3.1.1 PUBLISH are the same bytes, but each version is its own form here.
    assert_eq!(header_of(4), header_of(0));
}

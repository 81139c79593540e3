//! The client against the real broker state machine, wired in memory.

use core::num::NonZeroU16;
use std::time::Duration;

use bytes::Bytes;
use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{
    ClientEvent, ClientOptions, DisconnectReason, PublishError, PublishId, PublishRequest,
};
use mqtt_core::packet::Will;
use mqtt_core::{Packet, ProtocolVersion, QoS, ReasonCode};

use crate::net::Net;
use crate::{sub, topic};

fn config() -> BrokerConfig {
    BrokerConfig {
        sys_interval: None,
        ..Default::default()
    }
}

fn opts(id: &str, version: ProtocolVersion) -> ClientOptions {
    let mut o = ClientOptions::new(id);
    o.version = version;
    o
}

/// Subscribes client `i` to `f` and waits for the SUBACK.
fn subscribe(net: &mut Net, i: usize, f: &str, qos: QoS) {
    net.with(i, |c, now| {
        c.subscribe(now, vec![sub(f, qos)], Default::default())
            .unwrap()
    });
    let events = net.events(i);
    assert!(
        matches!(events.as_slice(), [ClientEvent::Subscribed { reason_codes, .. }]
            if !reason_codes[0].is_error()),
        "{events:?}"
    );
}

fn publish(net: &mut Net, i: usize, t: &str, payload: &str, qos: QoS) -> PublishId {
    net.with(i, |c, now| {
        c.publish(
            now,
            PublishRequest::new(topic(t), payload.to_owned()).with_qos(qos),
        )
        .unwrap()
    })
}

/// The payloads of the messages among `events`, and what else there was.
fn payloads(events: Vec<ClientEvent>) -> (Vec<String>, Vec<ClientEvent>) {
    let mut msgs = Vec::new();
    let mut rest = Vec::new();
    for e in events {
        match e {
            ClientEvent::Message { publish, .. } => {
                msgs.push(String::from_utf8(publish.payload.to_vec()).unwrap())
            }
            other => rest.push(other),
        }
    }
    (msgs, rest)
}

#[test]
fn every_qos_end_to_end_in_every_version() {
    for (pv, sv) in [
        (ProtocolVersion::V5, ProtocolVersion::V5),
        (ProtocolVersion::V311, ProtocolVersion::V5),
        (ProtocolVersion::V5, ProtocolVersion::V31),
    ] {
        let mut net = Net::new(config());
        let publisher = net.connect(opts("pub", pv));
        let subscriber = net.connect(opts("sub", sv));
        subscribe(&mut net, subscriber, "t/#", QoS::ExactlyOnce);
        let ids: Vec<_> = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .map(|q| publish(&mut net, publisher, "t/x", &format!("{q:?}"), q))
            .collect();
        assert_eq!(
            net.events(publisher),
            ids.iter()
                .map(|&id| ClientEvent::Published {
                    id,
                    reason_code: ReasonCode::Success
                })
                .collect::<Vec<_>>(),
            "{pv} -> {sv}"
        );
        let (msgs, rest) = payloads(net.events(subscriber));
        assert_eq!(msgs, vec!["AtMostOnce", "AtLeastOnce", "ExactlyOnce"]);
        assert_eq!(rest, vec![]);
        // Every flow completed on both links.
        assert_eq!(net.nodes[publisher].client.inflight(), 0);
        assert!(net.nodes[subscriber]
            .sent
            .iter()
            .any(|p| matches!(p, Packet::PubComp(_))));
    }
}

#[test]
fn no_matching_subscribers_is_reported() {
    let mut net = Net::new(config());
    let c = net.connect(opts("c", ProtocolVersion::V5));
    let id = publish(&mut net, c, "nobody/listens", "x", QoS::AtLeastOnce);
    assert_eq!(
        net.events(c),
        vec![ClientEvent::Published {
            id,
            reason_code: ReasonCode::NoMatchingSubscribers
        }]
    );
}

#[test]
fn manual_acks_with_the_broker_and_a_receive_maximum_of_one() {
    let mut net = Net::new(config());
    let publisher = net.connect(opts("pub", ProtocolVersion::V5));
    let mut o = opts("sub", ProtocolVersion::V5);
    o.manual_acks = true;
    o.connect_properties.receive_maximum = NonZeroU16::new(1);
    let subscriber = net.connect(o);
    subscribe(&mut net, subscriber, "t", QoS::AtLeastOnce);
    for n in 0..3 {
        publish(&mut net, publisher, "t", &n.to_string(), QoS::AtLeastOnce);
    }
    // The broker respects the client's Receive Maximum: one at a time, each after its ack.
    let mut got = Vec::new();
    for _ in 0..3 {
        let events = net.events(subscriber);
        assert_eq!(events.len(), 1, "{events:?}");
        let Some(ClientEvent::Message { publish, ack }) = events.into_iter().next() else {
            panic!("not a message");
        };
        got.push(String::from_utf8(publish.payload.to_vec()).unwrap());
        net.with(subscriber, |c, now| c.ack(now, ack.unwrap()).unwrap());
    }
    assert_eq!(got, vec!["0", "1", "2"]);
    assert!(net.nodes[subscriber].client.is_connected());
}

#[test]
fn broker_receive_maximum_caps_the_clients_window() {
    let mut cfg = config();
    cfg.limits.receive_maximum = 2;
    let mut net = Net::new(cfg);
    let mut o = opts("c", ProtocolVersion::V5);
    o.max_inflight = 10;
    let c = net.connect(o);
    let client = &mut net.nodes[c].client;
    for n in 0..5 {
        client
            .publish(
                net.now,
                PublishRequest::new(topic("t"), n.to_string()).with_qos(QoS::ExactlyOnce),
            )
            .unwrap();
    }
    assert_eq!((client.inflight(), client.queued()), (2, 3));
    net.settle();
    let done = net
        .events(c)
        .iter()
        .filter(|e| matches!(e, ClientEvent::Published { .. }))
        .count();
    assert_eq!(done, 5);
    assert!(
        net.nodes[c].client.is_connected(),
        "never 0x93 from the broker"
    );
}

#[test]
fn topic_aliases_both_ways_with_the_broker() {
    let mut cfg = config();
    cfg.limits.topic_alias_maximum = 2;
    let mut net = Net::new(cfg);
    let mut po = opts("pub", ProtocolVersion::V5);
    po.topic_alias_maximum_out = 10;
    let publisher = net.connect(po);
    let mut so = opts("sub", ProtocolVersion::V5);
    so.connect_properties.topic_alias_maximum = Some(4);
    let subscriber = net.connect(so);
    subscribe(&mut net, subscriber, "#", QoS::AtMostOnce);
    let topics = ["a/1", "a/2", "a/3", "a/1", "a/2", "a/3"];
    for t in topics {
        publish(&mut net, publisher, t, "x", QoS::AtMostOnce);
    }
    // The publisher used aliases (capped at the broker's 2) ...
    let aliased = net.nodes[publisher]
        .sent
        .iter()
        .filter(|p| matches!(p, Packet::Publish(p) if p.topic.is_empty()))
        .count();
    assert_eq!(aliased, 2);
    // ... the broker used aliases towards the subscriber, who sees every topic in full.
    assert!(net.nodes[subscriber]
        .received
        .iter()
        .any(|p| matches!(p, Packet::Publish(p) if p.topic.is_empty())));
    let seen: Vec<_> = net
        .events(subscriber)
        .into_iter()
        .map(|e| match e {
            ClientEvent::Message { publish, .. } => publish.topic.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seen, topics);
}

#[test]
fn session_resume_resends_with_dup_through_the_broker() {
    let mut net = Net::new(config());
    let subscriber = net.connect(opts("sub", ProtocolVersion::V5));
    subscribe(&mut net, subscriber, "t", QoS::ExactlyOnce);
    let mut o = opts("pub", ProtocolVersion::V5);
    o.connect_properties.session_expiry_interval = Some(300);
    let publisher = net.connect(o);
    // Published, and the link drops before the bytes leave.
    let now = net.now;
    let id = net.nodes[publisher]
        .client
        .publish(
            now,
            PublishRequest::new(topic("t"), "once").with_qos(QoS::ExactlyOnce),
        )
        .unwrap();
    net.drop_link(publisher);
    assert_eq!(
        net.events(publisher),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::TransportClosed
        }]
    );
    net.advance_secs(5);
    net.open(publisher);
    let events = net.events(publisher);
    assert!(matches!(
        events.first(),
        Some(ClientEvent::Connected {
            session_present: true,
            ..
        })
    ));
    assert_eq!(
        events[1..],
        [ClientEvent::Published {
            id,
            reason_code: ReasonCode::Success
        }]
    );
    assert!(net.nodes[publisher]
        .sent
        .iter()
        .any(|p| matches!(p, Packet::Publish(p) if p.dup)));
    let (msgs, _) = payloads(net.events(subscriber));
    assert_eq!(msgs, vec!["once"]);
}

#[test]
fn offline_messages_arrive_on_the_resumed_session() {
    let mut net = Net::new(config());
    let mut o = opts("sub", ProtocolVersion::V311);
    o.clean_start = false;
    let subscriber = net.connect(o);
    subscribe(&mut net, subscriber, "t", QoS::AtLeastOnce);
    let publisher = net.connect(opts("pub", ProtocolVersion::V5));
    net.drop_link(subscriber);
    net.events(subscriber);
    for n in 0..3 {
        publish(&mut net, publisher, "t", &n.to_string(), QoS::AtLeastOnce);
    }
    net.open(subscriber);
    let (msgs, rest) = payloads(net.events(subscriber));
    assert!(matches!(
        rest.as_slice(),
        [ClientEvent::Connected {
            session_present: true,
            ..
        }]
    ));
    assert_eq!(msgs, vec!["0", "1", "2"]);
    assert_eq!(net.nodes[subscriber].client.subscriptions().count(), 1);
}

#[test]
fn keep_alive_holds_an_idle_link_for_hours() {
    let mut net = Net::new(config());
    let mut o = opts("c", ProtocolVersion::V5);
    o.keep_alive = Duration::from_secs(10);
    let c = net.connect(o);
    net.advance_secs(3 * 3600);
    assert_eq!(net.events(c), vec![]);
    assert!(net.nodes[c].client.is_connected() && net.is_linked(c));
    let pings = net.nodes[c]
        .sent
        .iter()
        .filter(|p| matches!(p, Packet::PingReq))
        .count();
    assert_eq!(pings, 3 * 360);
    assert_eq!(net.elapsed(), Duration::from_secs(3 * 3600));
}

#[test]
fn takeover_is_surfaced_as_a_server_disconnect() {
    let mut net = Net::new(config());
    let first = net.connect(opts("same", ProtocolVersion::V5));
    let _second = net.connect(opts("same", ProtocolVersion::V5));
    let events = net.events(first);
    assert!(
        matches!(
            events.as_slice(),
            [ClientEvent::Disconnected {
                reason: DisconnectReason::Server {
                    reason_code: ReasonCode::SessionTakenOver,
                    ..
                }
            }]
        ),
        "{events:?}"
    );
    assert!(!net.is_linked(first));
}

#[test]
fn brokers_maximum_packet_size_refuses_large_publishes() {
    let mut cfg = config();
    cfg.limits.max_packet_size = 128;
    let mut net = Net::new(cfg);
    let c = net.connect(opts("c", ProtocolVersion::V5));
    let r = net.with(c, |client, now| {
        client.publish(now, PublishRequest::new(topic("t"), "x".repeat(200)))
    });
    assert!(
        matches!(r, Err(PublishError::PacketTooLarge { max: 128, .. })),
        "{r:?}"
    );
    assert!(net.nodes[c].client.is_connected());
}

#[test]
fn disconnect_with_will_publishes_the_will() {
    let mut net = Net::new(config());
    let watcher = net.connect(opts("watcher", ProtocolVersion::V5));
    subscribe(&mut net, watcher, "status/#", QoS::AtLeastOnce);
    let mut o = opts("dev", ProtocolVersion::V5);
    o.will = Some(Will {
        topic: topic("status/dev"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    let dev = net.connect(o);
    net.with(dev, |c, now| {
        c.disconnect(now, ReasonCode::DisconnectWithWill, None)
            .unwrap()
    });
    assert!(!net.is_linked(dev));
    let (msgs, _) = payloads(net.events(watcher));
    assert_eq!(msgs, vec!["gone"]);
}

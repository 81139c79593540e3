//! A real broker with persistence on, its store batches written both to a `MemoryStore` (the
//! reference) and to the file: after a close and a reopen the file gives back exactly what
//! the reference holds, and a broker recovered from it serves the session again.

mod common;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_core::broker::store::{MemoryStore, StoreTicket};
use mqtt_core::broker::{Broker, BrokerConfig, BrokerEvent, ConnId, PeerInfo};
use mqtt_core::codec::{self, DecodeLimits};
use mqtt_core::packet::{
    Ack, Connect, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, UserProperty,
    Will,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, QoS};
use mqtt_store::{StoreAnswer, StoreHandle, StoreOptions};

use common::*;

struct Harness {
    broker: Broker,
    origin: Instant,
    now: Instant,
    reference: MemoryStore,
    store: StoreHandle,
    answers: std::sync::mpsc::Receiver<StoreAnswer>,
    inbox: HashMap<ConnId, (ProtocolVersion, BytesMut)>,
    batches: u64,
}

impl Harness {
    fn connect(&mut self, connect: Connect) -> ConnId {
        let version = connect.protocol_version;
        let conn = self.broker.accept(
            self.now,
            PeerInfo {
                addr: None,
                tls: false,
            },
        );
        self.inbox.insert(conn, (version, BytesMut::new()));
        self.send(conn, Packet::Connect(Box::new(connect)));
        match self.take(conn).as_slice() {
            [Packet::ConnAck(ack)] => assert_eq!(ack.reason_code, mqtt_core::ReasonCode::Success),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        conn
    }

    /// One packet in, as an adapter would: encoded, fed as bytes, every output drained.
    fn send(&mut self, conn: ConnId, packet: Packet) {
        let version = self.inbox[&conn].0;
        let mut buf = BytesMut::new();
        codec::encode(&packet, version, &mut buf).expect("encode");
        self.broker.handle_bytes(self.now, conn, &mut buf);
        self.drain();
    }

    fn close(&mut self, conn: ConnId) {
        self.broker.handle_closed(self.now, conn);
        self.inbox.remove(&conn);
        self.drain();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.broker.handle_timeout(self.now);
        self.drain();
    }

    /// Drains events and transmits; every store batch goes to both stores, and the broker
    /// hears "durable" only once the file says so.
    fn drain(&mut self) {
        loop {
            let mut last = None;
            while let Some(event) = self.broker.poll_event() {
                if let BrokerEvent::Store { ticket, ops, .. } = event {
                    for op in &ops {
                        self.reference.apply(op.clone());
                    }
                    self.store.submit(ticket, ops);
                    self.batches += 1;
                    last = Some(ticket);
                }
            }
            while let Some(t) = self.broker.poll_transmit() {
                if let Some((_, inbox)) = self.inbox.get_mut(&t.conn) {
                    inbox.extend_from_slice(&t.bytes);
                    inbox.extend_from_slice(&t.payload);
                }
            }
            match last {
                Some(ticket) => {
                    wait_durable(&self.answers, ticket);
                    self.broker.handle_stored(self.now, ticket);
                }
                None => return,
            }
        }
    }

    /// Packets received on `conn` so far.
    fn take(&mut self, conn: ConnId) -> Vec<Packet> {
        let (version, inbox) = self.inbox.get_mut(&conn).expect("open connection");
        let mut out = Vec::new();
        while let Some(p) =
            codec::decode(inbox, *version, &DecodeLimits::default()).expect("decode")
        {
            out.push(p);
        }
        out
    }
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero")
}

fn topic(s: &str) -> TopicName {
    TopicName::new(s).expect("topic")
}

fn persistent_v5(id: &str, expiry: u32) -> Connect {
    let mut c = Connect::new(ProtocolVersion::V5, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(expiry);
    c
}

fn subscribe(id: u16, filters: &[(&str, QoS)], sub_id: Option<u32>) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        subscriptions: filters
            .iter()
            .map(|(f, qos)| Subscription {
                filter: TopicFilter::new(*f).expect("filter"),
                options: SubscriptionOptions {
                    qos: *qos,
                    ..SubscriptionOptions::default()
                },
            })
            .collect(),
        properties: SubscribeProperties {
            subscription_identifier: sub_id.and_then(NonZeroU32::new),
            user_properties: Vec::new(),
        },
    })
}

fn publish(t: &str, payload: &'static str, qos: QoS, id: Option<u16>, retain: bool) -> Packet {
    let mut p = Publish::new(topic(t), Bytes::from_static(payload.as_bytes()));
    p.qos = qos;
    p.packet_id = id.map(pid);
    p.retain = retain;
    Packet::Publish(p)
}

fn publishes(packets: &[Packet]) -> Vec<Publish> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_broker_scenario_reloads_exactly_what_the_memory_store_holds() {
    let dir = scratch("roundtrip");
    let origin = Instant::now();
    let (store, state) = open_at(StoreOptions::new(&dir), origin, origin);
    assert!(state.sessions.is_empty() && state.retained.is_empty());
    let (store, answers) = start(store);
    let config = BrokerConfig {
        persistence: true,
        sys_interval: None,
        ..BrokerConfig::default()
    };
    let mut h = Harness {
        broker: Broker::new(config.clone()),
        origin,
        now: origin,
        reference: MemoryStore::new(),
        store,
        answers,
        inbox: HashMap::new(),
        batches: 0,
    };

    // A 5.0 subscriber with a kept session and subscription identifiers.
    let sub = h.connect(persistent_v5("sub", 3600));
    h.send(
        sub,
        subscribe(
            1,
            &[("t/#", QoS::ExactlyOnce), ("r/+", QoS::AtLeastOnce)],
            Some(7),
        ),
    );
    assert!(matches!(h.take(sub).as_slice(), [Packet::SubAck(_)]));
    // A 3.1.1 subscriber with Clean Session 0 that goes offline: its messages queue.
    let mut c = Connect::new(ProtocolVersion::V311, "offline");
    c.clean_start = false;
    let offline = h.connect(c);
    h.send(offline, subscribe(1, &[("t/#", QoS::AtLeastOnce)], None));
    h.take(offline);
    h.close(offline);
    // A clean-session client: it stores nothing.
    let clean = h.connect(Connect::new(ProtocolVersion::V311, "clean"));
    h.send(clean, subscribe(1, &[("t/#", QoS::AtLeastOnce)], None));
    // A persistent publisher with a delayed will.
    let mut c = persistent_v5("pub", 600);
    c.will = Some(Will {
        topic: topic("wills/pub"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: mqtt_core::packet::WillProperties {
            will_delay_interval: Some(30),
            user_properties: vec![UserProperty::new("k", "v")],
            ..Default::default()
        },
    });
    let publ = h.connect(c);

    h.advance(Duration::from_millis(1_250));
    // QoS 1 with 5.0 properties and an expiry.
    let mut p = Publish::new(topic("t/1"), Bytes::from_static(b"one"));
    p.qos = QoS::AtLeastOnce;
    p.packet_id = Some(pid(1));
    p.properties.message_expiry_interval = Some(900);
    p.properties.content_type = Some("text/plain".into());
    p.properties.user_properties = vec![UserProperty::new("a", "b")];
    p.properties.correlation_data = Some(Bytes::from_static(b"corr"));
    h.send(publ, Packet::Publish(p));
    // QoS 2, not released yet: its id is stored as received.
    h.send(
        publ,
        publish("t/2", "two", QoS::ExactlyOnce, Some(2), false),
    );
    // Retained messages: one kept, one set then cleared.
    h.send(
        publ,
        publish("r/a", "kept", QoS::AtLeastOnce, Some(3), true),
    );
    h.send(
        publ,
        publish("r/b", "cleared", QoS::AtLeastOnce, Some(4), true),
    );
    h.send(publ, publish("r/b", "", QoS::AtLeastOnce, Some(5), true));
    h.send(publ, publish("t/0", "qos0", QoS::AtMostOnce, None, false));
    let acks = h.take(publ);
    assert_eq!(acks.len(), 5, "{acks:?}");

    // The subscriber acknowledges the first, gets the QoS 2 one as far as PUBREL.
    let got = publishes(&h.take(sub));
    assert!(got.len() >= 4, "{got:?}");
    let one = got.iter().find(|p| p.topic.as_str() == "t/1").expect("t/1");
    h.send(sub, Packet::PubAck(Ack::new(one.packet_id.expect("QoS 1"))));
    let two = got.iter().find(|p| p.topic.as_str() == "t/2").expect("t/2");
    h.send(sub, Packet::PubRec(Ack::new(two.packet_id.expect("QoS 2"))));
    assert!(matches!(h.take(sub).as_slice(), [Packet::PubRel(_)]));

    // The publisher releases one QoS 2 id, sends another, and drops: its will waits.
    h.send(publ, Packet::PubRel(Ack::new(pid(2))));
    h.send(
        publ,
        publish("t/3", "three", QoS::ExactlyOnce, Some(6), false),
    );
    h.advance(Duration::from_millis(3_007));
    h.close(publ);
    h.send(clean, Packet::Disconnect(Box::default()));
    h.advance(Duration::from_secs(5));

    let reference = h.reference.state().clone();
    assert!(h.batches > 10, "{} batches", h.batches);
    assert_eq!(
        reference.sessions.keys().collect::<Vec<_>>(),
        ["offline", "pub", "sub"]
    );
    assert!(!reference.sessions["offline"].deliveries.is_empty());
    assert!(reference.sessions["pub"].session.pending_will.is_some());
    assert_eq!(reference.sessions["pub"].incoming_qos2, [pid(6)]);
    assert_eq!(
        reference.retained.keys().collect::<Vec<_>>(),
        ["r/a"],
        "the cleared one is gone"
    );
    let stats = h.store.stats();
    h.store.close().expect("close");
    assert_eq!(stats.batches, h.batches);

    // A later process: its own Instant origin and the same wall clock.
    let later = h.now + Duration::from_secs(2);
    let (store, loaded) = open_at(StoreOptions::new(&dir), h.origin, later);
    assert_eq!(normalized(loaded.clone()), normalized(reference));

    // A broker recovered from the file has the sessions and retained message back, and the
    // offline subscriber gets its queue.
    let mut broker = Broker::recover(config, loaded, later);
    assert_eq!(broker.sessions(), 3);
    assert_eq!(broker.retained_messages(), 1);
    assert!(broker.queued_messages("offline").is_some_and(|n| n > 0));
    let conn = broker.accept(
        later,
        PeerInfo {
            addr: None,
            tls: false,
        },
    );
    let mut c = Connect::new(ProtocolVersion::V311, "offline");
    c.clean_start = false;
    let mut buf = BytesMut::new();
    codec::encode(
        &Packet::Connect(Box::new(c)),
        ProtocolVersion::V311,
        &mut buf,
    )
    .unwrap();
    broker.handle_bytes(later, conn, &mut buf);
    let (handle, answers) = start(store);
    let mut inbox = BytesMut::new();
    loop {
        let mut last = None;
        while let Some(e) = broker.poll_event() {
            if let BrokerEvent::Store { ticket, ops, .. } = e {
                handle.submit(ticket, ops);
                last = Some(ticket);
            }
        }
        while let Some(t) = broker.poll_transmit() {
            inbox.extend_from_slice(&t.bytes);
            inbox.extend_from_slice(&t.payload);
        }
        let Some(ticket) = last else { break };
        wait_durable(&answers, ticket);
        broker.handle_stored(later, ticket);
    }
    let mut topics = Vec::new();
    while let Some(p) =
        codec::decode(&mut inbox, ProtocolVersion::V311, &DecodeLimits::default()).unwrap()
    {
        if let Packet::Publish(p) = p {
            topics.push(p.topic.as_str().to_owned());
        }
    }
    assert_eq!(topics, ["t/1", "t/2", "t/3"]);
    handle.close().expect("close");
    let _ = StoreTicket(0);
    std::fs::remove_dir_all(&dir).ok();
}

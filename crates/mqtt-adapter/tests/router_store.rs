//! The router and the store: the batches of a burst of inputs reach the store's writer as one
//! submission, and the acknowledgements they held go out once it is durable.

use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_adapter::broker::{ConnSink, Report, Router, StoreOptions};
use mqtt_core::broker::{BrokerConfig, ConnId, PeerInfo};
use mqtt_core::packet::{Connect, PacketId, Publish, Subscribe, Subscription, SubscriptionOptions};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, ProtocolVersion, QoS};
use mqtt_store::StoreAnswer;

const PUBACK: u8 = 0x40;

/// What the router wrote to one connection: the first byte of each packet.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn count(&self, first_byte: u8) -> usize {
        let written = self.0.lock().expect("sink");
        written.iter().filter(|&&b| b == first_byte).count()
    }
}

impl ConnSink for Sink {
    fn write(&self, bytes: Bytes, _payload: Bytes) {
        if let Some(&b) = bytes.first() {
            self.0.lock().expect("sink").push(b);
        }
    }

    fn close(&self) {}
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero")
}

/// A 3.1.1 client with a persistent session.
fn connect(router: &mut Router<Sink>, client_id: &str) -> (ConnId, Sink) {
    let now = Instant::now();
    let sink = Sink::default();
    let given = sink.clone();
    let peer = PeerInfo {
        addr: None,
        tls: false,
    };
    let conn = router.accept(now, peer, |_| given);
    let mut connect = Connect::new(ProtocolVersion::V311, client_id);
    connect.clean_start = false;
    router.handle(
        now,
        Report::Packet(conn, Packet::Connect(Box::new(connect)), 0),
    );
    router.drain(now);
    (conn, sink)
}

fn publish(conn: ConnId, n: u16) -> Report {
    let mut p = Publish::new(TopicName::new("t").expect("topic"), "m");
    p.qos = QoS::AtLeastOnce;
    p.packet_id = Some(id(n));
    Report::Packet(conn, Packet::Publish(p), 0)
}

/// Hands the store's answers to the router until `sink` has received `n` PUBACKs.
fn await_pubacks(
    router: &mut Router<Sink>,
    answers: &Receiver<StoreAnswer>,
    sink: &Sink,
    n: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.count(PUBACK) < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = answers.recv_timeout(left).unwrap_or_else(|e| {
            panic!("{} of {n} PUBACKs, then no answer: {e}", sink.count(PUBACK))
        });
        router.answer(Instant::now(), answer);
        router.drain(Instant::now());
    }
}

#[test]
fn a_burst_is_one_submission_and_its_acks_follow_the_commit() {
    let dir = std::env::temp_dir().join(format!("mqtt-adapter-router-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (tx, answers) = channel();
    let options = StoreOptions::new(&dir);
    let mut router = Router::open(
        BrokerConfig::default(),
        Some(options),
        Instant::now(),
        move |a| {
            let _ = tx.send(a);
        },
    )
    .expect("the store opens");

    // A persistent subscriber: each message to it is a stored delivery, and its PUBACK to
    // the publisher waits for the commit.
    let (sub, _) = connect(&mut router, "sub");
    let subscribe = Subscribe {
        packet_id: id(1),
        subscriptions: vec![Subscription {
            filter: TopicFilter::new("t").expect("filter"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        }],
        properties: Default::default(),
    };
    router.handle(
        Instant::now(),
        Report::Packet(sub, Packet::Subscribe(subscribe), 0),
    );
    router.drain(Instant::now());
    let (publisher, sink) = connect(&mut router, "pub");
    let before = router.store_stats().expect("a store").batches;

    let now = Instant::now();
    router.handle(now, publish(publisher, 1));
    router.drain_in_burst(now);
    router.handle(now, publish(publisher, 2));
    router.drain_in_burst(now);
    router.handle(now, publish(publisher, 3));
    assert_eq!(
        router.store_stats().expect("a store").batches,
        before,
        "nothing submitted within the burst"
    );
    router.drain(now);
    assert_eq!(
        router.store_stats().expect("a store").batches,
        before + 1,
        "the burst's three batches submitted as one"
    );
    assert_eq!(sink.count(PUBACK), 0, "the PUBACKs wait for the commit");
    // The merged batch is answered with the last ticket, which releases all three.
    await_pubacks(&mut router, &answers, &sink, 3);

    router.shutdown(Instant::now());
    mqtt_adapter::broker::close_store(router.take_store());
    let _ = std::fs::remove_dir_all(&dir);
}

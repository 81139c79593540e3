//! The client's store: what it emits, what waits for the answer, and a process restart from
//! what a [`ClientMemoryStore`] kept. The last test is a property: random publishes to its
//! own subscription, a store that pauses, crashes at random points, and restarts.

use std::collections::{BTreeMap, VecDeque};

use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::store::{ClientMemoryStore, ClientStoreOp, StoreTicket, StoredFlow};
use mqtt_core::client::{Client, ClientEvent, ClientOptions, PublishId, PublishRequest};
use mqtt_core::packet::{Ack, ConnAck, ConnAckProperties, SubscribeProperties};
use mqtt_core::{Packet, QoS, ReasonCode};
use proptest::prelude::*;

use crate::net::Net;
use crate::peer::Scripted;
use crate::{pid, server_publish, sub};

/// 5.0, a session that outlives the connection, persistence on.
fn persistent(id: &str) -> ClientOptions {
    let mut o = ClientOptions::new(id);
    o.connect_properties.session_expiry_interval = Some(3600);
    o.persistence = true;
    o
}

fn connack(session_present: bool) -> Packet {
    Packet::ConnAck(Box::new(ConnAck {
        session_present,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties::default(),
    }))
}

/// Splits `events` into store batches and the rest.
fn split(events: Vec<ClientEvent>) -> (Vec<(StoreTicket, Vec<ClientStoreOp>)>, Vec<ClientEvent>) {
    let mut batches = Vec::new();
    let mut rest = Vec::new();
    for e in events {
        match e {
            ClientEvent::Store { ticket, ops } => batches.push((ticket, ops)),
            other => rest.push(other),
        }
    }
    (batches, rest)
}

/// Applies every batch to `store` and answers it, until none comes; the other events.
fn answer_all(s: &mut Scripted, store: &mut ClientMemoryStore) -> Vec<ClientEvent> {
    let mut rest = Vec::new();
    loop {
        let (batches, others) = split(s.events());
        rest.extend(others);
        if batches.is_empty() {
            return rest;
        }
        for (ticket, ops) in batches {
            for op in ops {
                store.apply(op);
            }
            s.client.handle_stored(s.now, ticket);
        }
        s.drain();
    }
}

/// A persistent client connected to a scripted server, its store answering at once.
fn connected(store: &mut ClientMemoryStore) -> Scripted {
    let mut s = Scripted::new(persistent("c"));
    s.open();
    s.send(connack(false));
    let events = answer_all(&mut s, store);
    assert!(
        matches!(events.as_slice(), [ClientEvent::Connected { .. }]),
        "{events:?}"
    );
    assert_eq!(
        store.state().session.as_ref().map(|s| &*s.client_id),
        Some("c")
    );
    s
}

#[test]
fn publish_waits_for_its_record() {
    let mut store = ClientMemoryStore::new();
    let mut s = connected(&mut store);
    let id = s.publish("t", "a", QoS::AtLeastOnce);
    assert!(
        s.sent().is_empty(),
        "no PUBLISH before the record is durable"
    );
    assert_eq!(s.client.waiting_for_store(), 1);
    let (batches, rest) = split(s.events());
    assert!(rest.is_empty(), "{rest:?}");
    let [(ticket, ops)] = batches.as_slice() else {
        panic!("one batch: {batches:?}");
    };
    // Accepted and sent in the same input: one record, in flight with its packet id.
    let [ClientStoreOp::PutOutgoing { seq, message }] = ops.as_slice() else {
        panic!("{ops:?}");
    };
    assert_eq!(*seq, id.get());
    assert_eq!(message.inflight, Some((pid(1), StoredFlow::Published)));

    s.client.handle_stored(s.now, *ticket);
    s.drain();
    let sent = s.sent();
    assert!(
        matches!(sent.as_slice(), [Packet::Publish(p)] if p.packet_id == Some(pid(1)) && !p.dup),
        "{sent:?}"
    );
    // Completion deletes the record; nothing waits for that.
    s.send(Packet::PubAck(Ack::new(pid(1))));
    let (batches, rest) = split(s.events());
    assert_eq!(
        rest,
        vec![ClientEvent::Published {
            id,
            reason_code: ReasonCode::Success
        }]
    );
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0].1,
        vec![ClientStoreOp::DeleteOutgoing { seq: id.get() }]
    );
    // QoS 0 is never stored and waits for nothing.
    s.publish("t", "zero", QoS::AtMostOnce);
    assert_eq!(s.sent().len(), 1);
    assert!(split(s.events()).0.is_empty());
}

#[test]
fn pubrel_waits_for_the_released_record() {
    let mut store = ClientMemoryStore::new();
    let mut s = connected(&mut store);
    s.publish("t", "b", QoS::ExactlyOnce);
    answer_all(&mut s, &mut store);
    assert_eq!(s.sent().len(), 1);
    s.send(Packet::PubRec(Ack::new(pid(1))));
    assert!(
        s.sent().is_empty(),
        "no PUBREL before the release is durable"
    );
    answer_all(&mut s, &mut store);
    assert_eq!(s.sent(), vec![Packet::PubRel(Ack::new(pid(1)))]);
    assert_eq!(
        store.state().outgoing.values().next().map(|m| m.inflight),
        Some(Some((pid(1), StoredFlow::Released)))
    );
}

#[test]
fn pubrec_and_the_message_wait_for_the_received_id() {
    let mut store = ClientMemoryStore::new();
    let mut s = connected(&mut store);
    s.send(server_publish("t", "in", QoS::ExactlyOnce, Some(5)));
    assert!(s.sent().is_empty(), "no PUBREC before the id is durable");
    let (batches, rest) = split(s.events());
    assert!(
        rest.is_empty(),
        "the application hears of it once it is durable: {rest:?}"
    );
    assert_eq!(
        batches[0].1,
        vec![ClientStoreOp::PutIncomingQos2 { packet_id: pid(5) }]
    );
    // A QoS 1 message behind it keeps its place: its event waits too.
    s.send(server_publish("t", "one", QoS::AtLeastOnce, Some(6)));
    assert!(s.sent().is_empty());
    assert!(split(s.events()).1.is_empty());
    assert_eq!(s.client.waiting_for_store(), 3);

    s.client.handle_stored(s.now, batches[0].0);
    s.drain();
    assert_eq!(
        s.sent(),
        vec![
            Packet::PubRec(Ack::new(pid(5))),
            Packet::PubAck(Ack::new(pid(6)))
        ]
    );
    let payloads: Vec<_> = s
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Message { publish, .. } => Some(publish.payload),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, vec!["in", "one"]);
    // PUBREL: PUBCOMP at once, and the id is deleted.
    s.send(Packet::PubRel(Ack::new(pid(5))));
    assert_eq!(s.sent(), vec![Packet::PubComp(Ack::new(pid(5)))]);
    let (batches, _) = split(s.events());
    assert_eq!(
        batches[0].1,
        vec![ClientStoreOp::DeleteIncomingQos2 { packet_id: pid(5) }]
    );
}

#[test]
fn clean_sessions_and_persistence_off_pay_nothing() {
    let mut clean = ClientOptions::new("c");
    clean.persistence = true; // Clean Start, no Session Expiry: nothing to keep.
    let mut off = ClientOptions::new("c");
    off.connect_properties.session_expiry_interval = Some(3600);
    for options in [clean, off] {
        let mut s = Scripted::new(options);
        s.open();
        s.send(connack(false));
        s.publish("t", "a", QoS::AtLeastOnce);
        s.publish("t", "b", QoS::ExactlyOnce);
        s.send(server_publish("t", "in", QoS::ExactlyOnce, Some(5)));
        s.send(Packet::PubRec(Ack::new(pid(2))));
        let sent = s.sent();
        assert_eq!(
            sent.len(),
            4,
            "PUBLISH, PUBLISH, PUBREC, PUBREL at once: {sent:?}"
        );
        let (batches, _) = split(s.events());
        assert!(batches.is_empty(), "{batches:?}");
        assert_eq!(s.client.waiting_for_store(), 0);
    }
}

#[test]
fn a_failed_batch_is_rewritten_and_what_waited_waits_for_the_rewrite() {
    let mut store = ClientMemoryStore::new();
    let mut s = connected(&mut store);
    s.publish("t", "a", QoS::AtLeastOnce);
    let (batches, _) = split(s.events());
    s.client.handle_store_failed(s.now, batches[0].0);
    s.drain();
    assert!(s.sent().is_empty(), "the PUBLISH still waits");
    let (batches, _) = split(s.events());
    let [(ticket, ops)] = batches.as_slice() else {
        panic!("{batches:?}");
    };
    assert_eq!(ops[0], ClientStoreOp::Clear);
    assert!(ops
        .iter()
        .any(|op| matches!(op, ClientStoreOp::PutSession { .. })));
    assert!(ops.iter().any(|op| matches!(
        op,
        ClientStoreOp::PutOutgoing { message, .. } if message.inflight.is_some()
    )));
    for op in ops.clone() {
        store.apply(op);
    }
    s.client.handle_stored(s.now, *ticket);
    s.drain();
    assert_eq!(s.sent().len(), 1);
    assert_eq!(store.state().outgoing.len(), 1);
}

#[test]
fn a_restarted_process_resumes_from_the_store() {
    let mut store = ClientMemoryStore::new();
    let mut s = connected(&mut store);
    let a = s.publish("t/a", "a", QoS::AtLeastOnce);
    let b = s.publish("t/b", "b", QoS::ExactlyOnce);
    let c = s.publish("t/c", "c", QoS::ExactlyOnce);
    answer_all(&mut s, &mut store);
    s.send(Packet::PubRec(Ack::new(pid(2))));
    s.send(server_publish("t/in", "in", QoS::ExactlyOnce, Some(9)));
    let events = answer_all(&mut s, &mut store);
    assert_eq!(events.len(), 1, "the message, once: {events:?}");
    assert_eq!(s.sent().len(), 5, "3 PUBLISH, PUBREL 2, PUBREC 9");
    // A queued message, with no connection.
    s.lose_link();
    let d = s.publish("t/d", "d", QoS::AtLeastOnce);
    answer_all(&mut s, &mut store);

    // The process stops; a new one starts from what the store kept.
    let now = s.now;
    drop(s);
    let client = Client::recover(persistent("c"), store.state().clone(), now);
    assert_eq!(client.inflight(), 3);
    assert_eq!(client.queued(), 1);
    let mut s = Scripted::with_client(client, now);
    let connect = s.open();
    assert!(!connect.clean_start, "the stored session is resumed");
    s.send(connack(true));
    let events = answer_all(&mut s, &mut store);
    assert!(matches!(
        events.as_slice(),
        [ClientEvent::Connected {
            session_present: true,
            ..
        }]
    ));
    let resent: Vec<_> = s
        .sent()
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => ("PUBLISH", p.packet_id.map_or(0, |i| i.get()), p.dup),
            Packet::PubRel(a) => ("PUBREL", a.packet_id.get(), false),
            other => panic!("{other:?}"),
        })
        .collect();
    // [MQTT-4.4.0-1] in order, DUP and the same ids; then the queued one, new.
    assert_eq!(
        resent,
        vec![
            ("PUBLISH", 1, true),
            ("PUBREL", 2, false),
            ("PUBLISH", 3, true),
            ("PUBLISH", 4, false),
        ]
    );
    // The server sends the unreleased QoS 2 message again: PUBREC, not a second delivery.
    let mut again = server_publish("t/in", "in", QoS::ExactlyOnce, Some(9));
    again.dup = true;
    s.send(again);
    assert_eq!(s.sent(), vec![Packet::PubRec(Ack::new(pid(9)))]);
    assert!(answer_all(&mut s, &mut store).is_empty());
    s.send(Packet::PubRel(Ack::new(pid(9))));
    s.send(Packet::PubAck(Ack::new(pid(1))));
    s.send(Packet::PubComp(Ack::new(pid(2))));
    s.send(Packet::PubRec(Ack::new(pid(3))));
    s.send(Packet::PubAck(Ack::new(pid(4))));
    let mut events = answer_all(&mut s, &mut store);
    s.send(Packet::PubComp(Ack::new(pid(3))));
    events.extend(answer_all(&mut s, &mut store));
    // Completions name the ids the first process's `publish` returned.
    let mut done: Vec<PublishId> = events
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Published { id, reason_code } => {
                assert_eq!(reason_code, ReasonCode::Success);
                Some(id)
            }
            _ => None,
        })
        .collect();
    done.sort();
    assert_eq!(done, vec![a, b, c, d]);
    let state = store.state();
    assert!(
        state.outgoing.is_empty() && state.incoming_qos2.is_empty(),
        "{state:?}"
    );
}

#[test]
fn a_restart_whose_session_the_server_lost_sends_everything_again_as_new() {
    let mut store = ClientMemoryStore::new();
    let mut s = connected(&mut store);
    s.publish("t/a", "a", QoS::ExactlyOnce);
    answer_all(&mut s, &mut store);
    s.send(server_publish("t/in", "in", QoS::ExactlyOnce, Some(9)));
    answer_all(&mut s, &mut store);
    let now = s.now;
    drop(s);
    let client = Client::recover(persistent("c"), store.state().clone(), now);
    let mut s = Scripted::with_client(client, now);
    s.open();
    s.send(connack(false));
    answer_all(&mut s, &mut store);
    let sent = s.sent();
    assert!(
        matches!(sent.as_slice(), [Packet::Publish(p)] if !p.dup),
        "[MQTT-3.2.2-5] a new message: {sent:?}"
    );
    assert!(store.state().incoming_qos2.is_empty());
}

// ---- the property ----

#[derive(Debug, Clone)]
enum Action {
    Publish(QoS),
    PauseStore,
    ResumeStore,
    /// A paused store makes one batch durable.
    StoreOne,
    DropLink,
    /// The relay stops passing what the client sends (until the next link).
    Stall,
    Crash,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => prop_oneof![Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)].prop_map(Action::Publish),
        2 => Just(Action::PauseStore),
        2 => Just(Action::ResumeStore),
        2 => Just(Action::StoreOne),
        1 => Just(Action::DropLink),
        2 => Just(Action::Stall),
        2 => Just(Action::Crash),
    ]
}

/// One client subscribed to its own topic through the real broker (which keeps its session
/// in memory), its store a [`ClientMemoryStore`] that may pause, and a second subscriber that
/// never fails (its acknowledgements do not wait behind the first one's); what the
/// applications saw.
struct Model {
    net: Net,
    store: ClientMemoryStore,
    running: bool,
    /// Batches emitted and not yet applied: lost in a crash.
    pending: VecDeque<(StoreTicket, Vec<ClientStoreOp>)>,
    /// `PublishId` -> (payload, QoS) of the current process's view.
    by_seq: BTreeMap<u64, (String, QoS)>,
    /// Payloads whose record reached the store: `publish` accepted them and they were durable.
    durable: BTreeMap<String, QoS>,
    /// Every message `publish` accepted, by payload.
    published: BTreeMap<String, QoS>,
    /// Every message the application heard, by payload.
    delivered: BTreeMap<String, usize>,
    /// Every message the other subscriber heard, by payload.
    observed: BTreeMap<String, usize>,
    next: usize,
}

impl Model {
    fn new() -> Self {
        let mut net = Net::new(BrokerConfig::default());
        let mut options = persistent("me");
        // A small window: messages queue, and get their packet ids in later batches.
        options.max_inflight = 2;
        let i = net.add(options);
        assert_eq!(i, 0);
        let mut m = Self {
            net,
            store: ClientMemoryStore::new(),
            running: true,
            pending: VecDeque::new(),
            by_seq: BTreeMap::new(),
            durable: BTreeMap::new(),
            delivered: BTreeMap::new(),
            observed: BTreeMap::new(),
            published: BTreeMap::new(),
            next: 0,
        };
        m.net.open(0);
        m.net.with(0, |c, now| {
            c.subscribe(
                now,
                vec![sub("me/#", QoS::ExactlyOnce)],
                SubscribeProperties::default(),
            )
            .expect("subscribe")
        });
        let mut observer = ClientOptions::new("observer");
        observer.connect_properties.session_expiry_interval = Some(3600);
        let o = m.net.add(observer);
        m.net.open(o);
        m.net.with(o, |c, now| {
            c.subscribe(
                now,
                vec![sub("me/#", QoS::ExactlyOnce)],
                SubscribeProperties::default(),
            )
            .expect("subscribe")
        });
        m.settle();
        m
    }

    /// Moves everything until nothing moves: store batches are applied and answered while
    /// the store runs.
    fn settle(&mut self) {
        for _ in 0..1000 {
            self.net.settle();
            for e in self.net.nodes[1].events.drain(..) {
                if let ClientEvent::Message { publish, .. } = e {
                    let payload = String::from_utf8_lossy(&publish.payload).into_owned();
                    *self.observed.entry(payload).or_default() += 1;
                }
            }
            let events: Vec<_> = self.net.nodes[0].events.drain(..).collect();
            for e in events {
                match e {
                    ClientEvent::Store { ticket, ops } => self.pending.push_back((ticket, ops)),
                    ClientEvent::Message { publish, .. } => {
                        let payload = String::from_utf8_lossy(&publish.payload).into_owned();
                        *self.delivered.entry(payload).or_default() += 1;
                    }
                    ClientEvent::Disconnected { .. } => {}
                    _ => {}
                }
            }
            if !self.running || self.pending.is_empty() {
                return;
            }
            while self.store_one() {}
        }
        panic!("the store and the link never settle");
    }

    /// Makes the first pending batch durable and answers it; whether there was one.
    fn store_one(&mut self) -> bool {
        let Some((ticket, ops)) = self.pending.pop_front() else {
            return false;
        };
        for op in ops {
            if let ClientStoreOp::PutOutgoing { seq, .. } = &op {
                if let Some((payload, qos)) = self.by_seq.get(seq) {
                    self.durable.insert(payload.clone(), *qos);
                }
            }
            self.store.apply(op);
        }
        let now = self.net.now;
        self.net.nodes[0].client.handle_stored(now, ticket);
        true
    }

    fn reconnect(&mut self) {
        if !self.net.is_linked(0) {
            self.net.open(0);
        }
        self.settle();
    }

    fn run(&mut self, a: &Action) {
        match a {
            Action::Publish(qos) => {
                self.next += 1;
                let payload = format!("m{}", self.next);
                let request =
                    PublishRequest::new(crate::topic("me/t"), payload.clone()).with_qos(*qos);
                let result = self.net.with(0, |c, now| c.publish(now, request));
                if let Ok(id) = result {
                    self.published.insert(payload.clone(), *qos);
                    self.by_seq.insert(id.get(), (payload, *qos));
                }
                self.settle();
            }
            Action::PauseStore => self.running = false,
            Action::StoreOne => {
                self.store_one();
                self.settle();
            }
            Action::ResumeStore => {
                self.running = true;
                self.settle();
            }
            Action::DropLink => {
                self.net.drop_link(0);
                self.net.nodes[0].stall = false;
                self.reconnect();
            }
            Action::Stall => self.net.nodes[0].stall = true,
            Action::Crash => {
                // What the relay held is lost with the link.
                self.net.drop_link(0);
                self.net.nodes[0].stall = false;
                // What was not durable is lost with the process.
                self.pending.clear();
                let now = self.net.now;
                let state = self.store.state().clone();
                let mut options = persistent("me");
                options.max_inflight = 2;
                self.net.nodes[0].client = Client::recover(options, state, now);
                self.net.nodes[0].events.clear();
                self.by_seq.clear();
                self.reconnect();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every message `publish` accepted whose record became durable reaches the subscriber
    /// at least once (QoS 1) or exactly once (QoS 2), across any crashes; no QoS 2 message
    /// reaches the application twice.
    #[test]
    fn durable_messages_survive_crashes_and_qos2_arrives_once(
        actions in proptest::collection::vec(action(), 1..40)
    ) {
        let mut m = Model::new();
        for a in &actions {
            m.run(a);
            for (payload, n) in m.delivered.iter().chain(&m.observed) {
                let qos2 = m.published.get(payload) == Some(&QoS::ExactlyOnce);
                prop_assert!(!qos2 || *n == 1, "{} delivered {} times", payload, n);
            }
        }
        m.run(&Action::ResumeStore);
        m.net.nodes[0].stall = false;
        m.reconnect();
        prop_assert_eq!(m.net.nodes[0].client.inflight(), 0);
        prop_assert_eq!(m.net.nodes[0].client.queued(), 0);
        for (payload, qos) in &m.durable {
            for seen in [&m.delivered, &m.observed] {
                let n = seen.get(payload).copied().unwrap_or(0);
                match qos {
                    QoS::ExactlyOnce => prop_assert_eq!(n, 1, "{} (QoS 2)", payload),
                    _ => prop_assert!(n >= 1, "{} (QoS 1) lost", payload),
                }
            }
        }
        prop_assert!(m.store.state().outgoing.is_empty());
    }
}

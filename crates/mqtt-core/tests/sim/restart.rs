//! Property tests of restarts from the store.
//!
//! 1. Equivalence: a random script of publishes (QoS 0/1/2, retained or not), acknowledgements
//!    withheld or given, subscribers going and coming back, and time passing, run on two
//!    brokers. One never stops: at the cut every link just drops. The other crashes at the cut
//!    and restarts from what its store kept. Afterwards every client reconnects and the script
//!    goes on; every client must then see the same messages, in the same order, on both.
//! 2. Durability: with a store that answers late, the broker crashes at a random moment with
//!    batches unanswered. Publishers send again what was not acknowledged, as clients do. Then
//!    no acknowledged message is lost for a persistent subscriber, and no QoS 2 message reaches
//!    it twice.

use std::collections::{BTreeMap, BTreeSet};

use mqtt_core::packet::Ack;
use mqtt_core::{Packet, QoS};
use proptest::prelude::*;

use crate::script::*;
use crate::world::{Peer, World};

const TOPICS: [&str; 4] = ["a/1", "a/2", "b/1", "c"];
const FILTERS: [&[(&str, u8)]; 3] = [&[("a/#", 2)], &[("a/1", 1), ("b/+", 2)], &[("#", 1)]];

#[derive(Debug, Clone)]
enum Step {
    Publish {
        from: usize,
        topic: usize,
        qos: u8,
        retain: bool,
    },
    /// A subscriber takes and acknowledges what it has.
    Ack(usize),
    /// A subscriber's link drops; it comes back at its next step or at the cut.
    Drop(usize),
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..2usize, 0..TOPICS.len(), 0..3u8, prop::bool::weighted(0.2))
            .prop_map(|(from, topic, qos, retain)| Step::Publish { from, topic, qos, retain }),
        2 => (0..FILTERS.len()).prop_map(Step::Ack),
        1 => (0..FILTERS.len()).prop_map(Step::Drop),
        1 => (1..5u64).prop_map(Step::Advance),
    ]
}

/// One world with its clients: subscribers 0..3 (persistent), publishers 0..2 (persistent).
struct Run {
    w: World,
    subs: Vec<Option<Peer>>,
    pubs: Vec<Peer>,
    next_id: u16,
    /// What each subscriber saw: (topic, payload, QoS).
    seen: Vec<Vec<(String, String, QoS)>>,
}

impl Run {
    fn new() -> Self {
        let mut w = World::persistent(config());
        let mut subs = Vec::new();
        for (i, filters) in FILTERS.iter().enumerate() {
            let s = w.connect(v5(&format!("sub{i}")).clean(false).expiry(3600));
            w.send(s, subscribe(1, filters));
            w.expect_suback(s);
            subs.push(Some(s));
        }
        let pubs = (0..2)
            .map(|i| w.connect(v311(&format!("pub{i}")).clean(false)))
            .collect();
        Self {
            w,
            subs,
            pubs,
            next_id: 0,
            seen: vec![Vec::new(); FILTERS.len()],
        }
    }

    fn id(&mut self) -> u16 {
        self.next_id = self.next_id % 60_000 + 1;
        self.next_id
    }

    fn step(&mut self, s: &Step) {
        match *s {
            Step::Publish {
                from,
                topic,
                qos,
                retain,
            } => {
                let id = self.id();
                let payload = format!("m{id}");
                let mut p = publish(TOPICS[topic], &payload).qos(qos, id);
                if retain {
                    p = p.retain();
                }
                let publ = self.pubs[from];
                self.w.send(publ, p);
                self.finish_publisher_flows(publ);
            }
            Step::Ack(i) => self.take(i),
            Step::Drop(i) => match self.subs[i].take() {
                Some(s) => {
                    self.take(i);
                    self.w.drop_link(s);
                }
                None => self.reconnect(i),
            },
            Step::Advance(secs) => self.w.advance_secs(secs),
        }
    }

    /// The publisher answers PUBREC with PUBREL; everything it got is consumed.
    fn finish_publisher_flows(&mut self, publ: Peer) {
        while let Some(r) = self.w.recv(publ) {
            if let Packet::PubRec(a) = r.packet {
                self.w.send(publ, pubrel(a.packet_id.get()));
            }
        }
    }

    fn take(&mut self, i: usize) {
        let Some(s) = self.subs[i] else {
            return;
        };
        while let Some(r) = self.w.recv(s) {
            match r.packet {
                Packet::Publish(m) => {
                    match (m.qos, m.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => {
                            self.w.send(s, Packet::PubAck(Ack::new(id)))
                        }
                        (QoS::ExactlyOnce, Some(id)) => {
                            self.w.send(s, Packet::PubRec(Ack::new(id)))
                        }
                        _ => {}
                    }
                    let payload = String::from_utf8_lossy(&m.payload).into_owned();
                    self.seen[i].push((m.topic.as_str().to_owned(), payload, m.qos));
                }
                Packet::PubRel(a) => self.w.send(s, Packet::PubComp(Ack::new(a.packet_id))),
                _ => {}
            }
        }
    }

    fn reconnect(&mut self, i: usize) {
        let s = self
            .w
            .connect(v5(&format!("sub{i}")).clean(false).expiry(3600));
        self.subs[i] = Some(s);
    }

    /// Every client reconnects after the cut (the links are gone either way).
    fn reconnect_all(&mut self) {
        for i in 0..self.subs.len() {
            self.subs[i] = None;
            self.reconnect(i);
        }
        for i in 0..self.pubs.len() {
            self.pubs[i] = self.w.connect(v311(&format!("pub{i}")).clean(false));
            let publ = self.pubs[i];
            self.finish_publisher_flows(publ);
        }
    }

    fn drop_all(&mut self) {
        for i in 0..self.subs.len() {
            if let Some(s) = self.subs[i].take() {
                self.w.drop_link(s);
            }
        }
        for &p in &self.pubs {
            self.w.drop_link(p);
        }
    }

    fn take_all(&mut self) {
        for i in 0..self.subs.len() {
            self.take(i);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_restarted_broker_behaves_like_one_that_never_stopped(
        steps in prop::collection::vec(step(), 1..40),
        cut in 0usize..40,
        after in prop::collection::vec(step(), 0..15),
    ) {
        let cut = cut.min(steps.len());
        let mut kept = Run::new();
        let mut restarted = Run::new();
        for s in &steps[..cut] {
            kept.step(s);
            restarted.step(s);
        }
        // What the clients saw before the cut is the same: the same broker so far.
        prop_assert_eq!(&kept.seen, &restarted.seen);
        let before: Vec<usize> = kept.seen.iter().map(Vec::len).collect();
        kept.drop_all();
        restarted.w.crash_and_restart();
        kept.reconnect_all();
        restarted.reconnect_all();
        for s in steps[cut..].iter().chain(&after) {
            kept.step(s);
            restarted.step(s);
        }
        kept.take_all();
        restarted.take_all();
        for (i, n) in before.iter().enumerate() {
            prop_assert_eq!(
                &kept.seen[i][*n..],
                &restarted.seen[i][*n..],
                "subscriber {} after the cut",
                i
            );
        }
    }

    #[test]
    fn no_acknowledged_message_is_lost_and_no_qos2_one_is_duplicated(
        script in prop::collection::vec(
            (0..TOPICS.len(), 1..3u8, prop::bool::weighted(0.3), prop::bool::ANY, prop::bool::ANY),
            1..40,
        ),
        crash_at in 0usize..40,
        subscriber_online in prop::bool::ANY,
    ) {
        durability(&script, crash_at, subscriber_online)?;
    }
}

type Script = [(usize, u8, bool, bool, bool)];

/// The body of the durability property, callable with a known case.
fn durability(
    script: &Script,
    crash_at: usize,
    subscriber_online: bool,
) -> Result<(), TestCaseError> {
    let mut w = World::persistent(config());
    let mut sub = Subscriber::default();
    let s = w.connect(v311("sub").clean(false));
    w.send(s, subscribe(1, &[("#", 2)]));
    w.expect_suback(s);
    if subscriber_online {
        sub.peer = Some(s);
    } else {
        w.drop_link(s);
    }
    let publ = w.connect(v311("pub").clean(false));
    // id -> (topic, payload, QoS, acknowledged)
    let mut sent: BTreeMap<u16, (usize, String, u8, bool)> = BTreeMap::new();
    let crash_at = crash_at.min(script.len());
    for (n, (topic, qos, pause, resume, take)) in script.iter().enumerate() {
        if n == crash_at {
            break;
        }
        if *pause {
            w.pause_store();
        }
        let id = n as u16 + 1;
        let payload = format!("m{id}");
        w.send(publ, publish(TOPICS[*topic], &payload).qos(*qos, id));
        sent.insert(id, (*topic, payload, *qos, false));
        if *resume {
            w.resume_store();
        }
        settle(&mut w, &mut sent, publ);
        if *take {
            sub.take(&mut w);
        }
    }
    w.crash_and_restart();
    // The publisher sends again what it has no acknowledgement for.
    let publ = w.connect(v311("pub").clean(false));
    for (id, (topic, payload, qos, acked)) in sent.clone() {
        if !acked {
            w.send(publ, publish(TOPICS[topic], &payload).qos(qos, id).dup());
        }
    }
    settle(&mut w, &mut sent, publ);
    sub.peer = Some(w.connect(v311("sub").clean(false)));
    sub.take(&mut w);
    for (_, payload, qos, acked) in sent.values() {
        if *acked {
            prop_assert!(
                sub.got.contains_key(payload),
                "acknowledged {} lost; got {:?}",
                payload,
                sub.got
            );
        }
        let n = sub.got.get(payload).copied().unwrap_or(0);
        prop_assert!(
            *qos != 2 || n <= 1,
            "QoS 2 {} delivered {} times",
            payload,
            n
        );
    }
    Ok(())
}

#[test]
fn a_released_qos2_message_is_resumed_with_pubrel_not_publish() {
    let q1 = (0, 1, false, false, false);
    let mut script = vec![q1; 7];
    script.extend([
        (0, 2, false, false, false),
        (0, 1, true, false, false),
        (0, 1, false, false, true),
        q1,
        (0, 1, false, true, false),
    ]);
    durability(&script, 12, true).unwrap();
}

/// The publisher's side: acknowledgements noted, PUBREC answered with PUBREL.
fn settle(w: &mut World, sent: &mut BTreeMap<u16, (usize, String, u8, bool)>, publ: Peer) {
    while let Some(r) = w.recv(publ) {
        let rec = matches!(r.packet, Packet::PubRec(_));
        if let Packet::PubAck(a) | Packet::PubRec(a) = r.packet {
            if let Some(e) = sent.get_mut(&a.packet_id.get()) {
                e.3 = true;
            }
            if rec {
                w.send(publ, pubrel(a.packet_id.get()));
            }
        }
    }
}

/// A persistent subscriber that counts messages as a client must: a QoS 2 PUBLISH whose id
/// it holds (received, PUBREL not yet seen) is the same message again, not a new one.
#[derive(Default)]
struct Subscriber {
    peer: Option<Peer>,
    got: BTreeMap<String, usize>,
    held: BTreeSet<u16>,
}

impl Subscriber {
    fn take(&mut self, w: &mut World) {
        let Some(s) = self.peer else {
            return;
        };
        for _ in 0..10_000 {
            let Some(r) = w.recv(s) else {
                return;
            };
            match r.packet {
                Packet::Publish(m) => {
                    let new = match (m.qos, m.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => {
                            w.send(s, Packet::PubAck(Ack::new(id)));
                            true
                        }
                        (QoS::ExactlyOnce, Some(id)) => {
                            w.send(s, Packet::PubRec(Ack::new(id)));
                            self.held.insert(id.get())
                        }
                        _ => true,
                    };
                    if new {
                        let payload = String::from_utf8_lossy(&m.payload).into_owned();
                        *self.got.entry(payload).or_default() += 1;
                    }
                }
                Packet::PubRel(a) => {
                    self.held.remove(&a.packet_id.get());
                    w.send(s, Packet::PubComp(Ack::new(a.packet_id)));
                }
                _ => {}
            }
        }
    }
}

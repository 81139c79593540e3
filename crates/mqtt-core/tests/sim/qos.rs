//! QoS 0, 1 and 2 in both directions: the acknowledgement flows, exactly once, in-flight
//! windows, resending on resume, order, and flows cut by a lost connection.

use mqtt_core::broker::CloseReason;
use mqtt_core::{QoS, ReasonCode};

use crate::script::*;
use crate::world::{Peer, Rng, World};

fn id_of(m: &mqtt_core::Publish) -> u16 {
    m.packet_id
        .expect("a QoS 1/2 PUBLISH has a packet id")
        .get()
}

#[test]
fn qos0_goes_through_without_acknowledgements() {
    let mut w = World::new(config());
    let sub = w.connect(v311("sub"));
    w.send(sub, subscribe(1, &[("t", 2)]));
    w.expect_suback(sub);
    let publisher = w.connect(v311("pub"));
    w.send(publisher, publish("t", "hello"));
    w.expect_idle(publisher);
    let m = w.expect_message(sub, "t", "hello");
    assert_eq!(
        (m.qos, m.packet_id, m.dup, m.retain),
        (QoS::AtMostOnce, None, false, false)
    );
    w.expect_idle(sub);
}

#[test]
fn qos1_is_acknowledged_each_way() {
    let mut w = World::new(config());
    let sub = w.connect(v311("sub"));
    w.send(sub, subscribe(1, &[("t", 1)]));
    w.expect_suback(sub);
    let publisher = w.connect(v311("pub"));

    w.send(publisher, publish("t", "one").qos1(7));
    let ack = w.expect_puback(publisher);
    assert_eq!(ack.packet_id, pid(7), "[MQTT-4.3.2-4]");
    let m = w.expect_message(sub, "t", "one");
    assert_eq!((m.qos, m.dup), (QoS::AtLeastOnce, false));
    w.send(sub, puback(id_of(&m)));

    // The next message takes a new packet id, and the first is not sent again.
    w.send(publisher, publish("t", "two").qos1(8));
    w.expect_puback(publisher);
    let m2 = w.expect_message(sub, "t", "two");
    assert_ne!(id_of(&m2), id_of(&m));
    w.expect_idle(sub);
}

#[test]
fn delivery_qos_is_the_lower_of_message_and_subscription() {
    let mut w = World::new(config());
    let s0 = w.connect(v5("s0"));
    let s1 = w.connect(v5("s1"));
    let s2 = w.connect(v5("s2"));
    for (p, q) in [(s0, 0), (s1, 1), (s2, 2)] {
        w.send(p, subscribe(1, &[("t", q)]));
        w.expect_suback(p);
    }
    let publisher = w.connect(v5("pub"));
    w.send(publisher, publish("t", "q2").qos2(1));
    w.expect_pubrec(publisher);
    w.send(publisher, publish("t", "q1").qos1(2));
    w.expect_puback(publisher);

    let got =
        |w: &mut World, p: Peer| -> Vec<QoS> { w.publishes(p).iter().map(|m| m.qos).collect() };
    use QoS::*;
    assert_eq!(got(&mut w, s0), [AtMostOnce, AtMostOnce]);
    assert_eq!(got(&mut w, s1), [AtLeastOnce, AtLeastOnce]);
    assert_eq!(got(&mut w, s2), [ExactlyOnce, AtLeastOnce]);
}

#[test]
fn qos2_from_a_client_is_delivered_exactly_once() {
    let mut w = World::new(config());
    let sub = w.connect(v5("sub"));
    w.send(sub, subscribe(1, &[("t", 2)]));
    w.expect_suback(sub);
    let publisher = w.connect(v5("pub"));

    w.send(publisher, publish("t", "x").qos2(9));
    let rec = w.expect_pubrec(publisher);
    assert_eq!(
        (rec.packet_id, rec.reason_code),
        (pid(9), ReasonCode::Success)
    );
    assert_eq!(w.expect_message(sub, "t", "x").qos, QoS::ExactlyOnce);

    // The same PUBLISH again before PUBREL: PUBREC again, no second delivery [MQTT-4.3.3-9].
    w.send(publisher, publish("t", "x").qos2(9).dup());
    assert_eq!(w.expect_pubrec(publisher).packet_id, pid(9));
    w.send(publisher, pubrel(9));
    let comp = w.expect_pubcomp(publisher);
    assert_eq!(
        (comp.packet_id, comp.reason_code),
        (pid(9), ReasonCode::Success)
    );
    w.expect_idle(publisher);
    w.expect_idle(sub);

    // After PUBREL the id is free: a PUBLISH with it is a new message.
    w.send(publisher, publish("t", "y").qos2(9));
    w.expect_pubrec(publisher);
    w.expect_message(sub, "t", "y");
}

#[test]
fn qos2_to_a_client_holds_its_slot_until_pubcomp() {
    let mut w = World::new(config());
    let sub = w.connect(v5("sub").receive_max(1));
    w.send(sub, subscribe(1, &[("t", 2)]));
    w.expect_suback(sub);
    let publisher = w.connect(v5("pub"));
    w.send(publisher, publish("t", "a").qos2(1));
    w.send(publisher, publish("t", "b").qos2(2));

    let a = w.expect_message(sub, "t", "a");
    assert_eq!(a.qos, QoS::ExactlyOnce);
    w.expect_idle(sub);
    w.send(sub, pubrec(id_of(&a)));
    let rel = w.expect_pubrel(sub);
    assert_eq!(
        (rel.packet_id, rel.reason_code),
        (pid(id_of(&a)), ReasonCode::Success)
    );
    // Receive Maximum counts a message until PUBCOMP: "b" still waits.
    w.expect_idle(sub);
    w.send(sub, pubcomp(id_of(&a)));
    w.expect_message(sub, "t", "b");
    w.expect_idle(sub);
}

#[test]
fn pubrel_for_an_unknown_id_gets_pubcomp() {
    let mut w = World::new(config());
    let p5 = w.connect(v5("five"));
    w.send(p5, pubrel(42));
    let comp = w.expect_pubcomp(p5);
    assert_eq!(
        (comp.packet_id, comp.reason_code),
        (pid(42), ReasonCode::PacketIdentifierNotFound)
    );
    w.expect_idle(p5);

    let p4 = w.connect(v311("four"));
    w.send(p4, pubrel(42));
    let r = w.recv(p4).expect("a PUBCOMP");
    assert_eq!(&r.raw[..], b"\x70\x02\x00\x2a");
    w.expect_idle(p4);
}

#[test]
fn pubrec_for_an_unknown_id_gets_pubrel_not_found() {
    let mut w = World::new(config());
    let p = w.connect(v5("c"));
    w.send(p, pubrec(5));
    let rel = w.expect_pubrel(p);
    assert_eq!(
        (rel.packet_id, rel.reason_code),
        (pid(5), ReasonCode::PacketIdentifierNotFound)
    );
    w.expect_idle(p);
}

/// Publishes `n` QoS 1 messages "0".."n-1" on `t` from a fresh publisher.
fn publish_n(w: &mut World, t: &str, n: usize, q: u8) {
    let publisher = w.connect(v311("publisher"));
    for i in 0..n {
        w.send(publisher, publish(t, i.to_string()).qos(q, i as u16 + 1));
    }
    w.send(publisher, disconnect());
}

#[test]
fn in_flight_window_is_the_smaller_of_max_inflight_and_receive_maximum() {
    for (max_inflight, receive_max, window) in [(3, None, 3), (3, Some(2), 2), (2, Some(5), 2)] {
        let mut w = World::new(config_with(|l| l.max_inflight = max_inflight));
        let c = match receive_max {
            Some(r) => v5("sub").receive_max(r),
            None => v311("sub"),
        };
        let sub = w.connect(c);
        w.send(sub, subscribe(1, &[("t", 1)]));
        w.expect_suback(sub);
        publish_n(&mut w, "t", 6, 1);

        let mut outstanding: std::collections::VecDeque<_> = w.publishes(sub).into();
        assert_eq!(
            outstanding.len(),
            window,
            "window for {max_inflight}/{receive_max:?}"
        );
        assert_eq!(w.broker.queued_messages("sub"), Some(6 - window));
        // Each acknowledgement lets exactly one more through, in order.
        let mut next = window;
        while let Some(m) = outstanding.pop_front() {
            w.send(sub, puback(id_of(&m)));
            if next < 6 {
                outstanding.push_back(w.expect_message(sub, "t", &next.to_string()));
                next += 1;
            }
            w.expect_idle(sub);
        }
        assert_eq!(w.broker.queued_messages("sub"), Some(0));
        w.expect_idle(sub);
    }
}

#[test]
fn client_over_the_broker_receive_maximum_gets_disconnect_0x93() {
    let mut w = World::new(config_with(|l| l.receive_maximum = 2));
    let (p, ack) = w.connect_ack(v5("c"));
    assert_eq!(ack.properties.receive_maximum.map(|r| r.get()), Some(2));
    w.send(p, publish("t", "1").qos2(1));
    w.send(p, publish("t", "2").qos2(2));
    w.expect_pubrec(p);
    w.expect_pubrec(p);
    // QoS 1 is acknowledged at once, so it does not count against the window.
    w.send(p, publish("t", "q1").qos1(3));
    w.expect_puback(p);
    w.send(p, publish("t", "3").qos2(4));
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::ReceiveMaximumExceeded,
        "[MQTT-3.3.4-9]"
    );
    assert_eq!(
        w.expect_closed(p),
        CloseReason::ProtocolViolation(ReasonCode::ReceiveMaximumExceeded)
    );
}

#[test]
fn resume_resends_unacknowledged_publishes_with_dup_and_pubrel() {
    let mut w = World::new(config());
    let sub = w.connect(v311("sub").clean(false));
    w.send(sub, subscribe(1, &[("t", 2)]));
    w.expect_suback(sub);
    let publisher = w.connect(v311("pub"));
    w.send(publisher, publish("t", "q1").qos1(1));
    w.send(publisher, publish("t", "q2").qos2(2));
    w.send(publisher, publish("t", "q2-released").qos2(3));

    let m1 = w.expect_message(sub, "t", "q1");
    let m2 = w.expect_message(sub, "t", "q2");
    let m3 = w.expect_message(sub, "t", "q2-released");
    w.send(sub, pubrec(id_of(&m3)));
    w.expect_pubrel(sub);
    w.drop_link(sub);

    let (sub, ack) = w.connect_ack(v311("sub").clean(false));
    assert!(ack.session_present);
    // [MQTT-4.4.0-1]: the PUBREL again, and the PUBLISHes again with DUP, in order.
    assert_eq!(w.expect_pubrel(sub).packet_id, pid(id_of(&m3)));
    let r1 = w.expect_message(sub, "t", "q1");
    assert_eq!(
        (r1.dup, r1.packet_id, r1.qos),
        (true, m1.packet_id, QoS::AtLeastOnce)
    );
    let r2 = w.expect_message(sub, "t", "q2");
    assert_eq!(
        (r2.dup, r2.packet_id, r2.qos),
        (true, m2.packet_id, QoS::ExactlyOnce)
    );
    w.expect_idle(sub);

    w.send(sub, puback(id_of(&r1)));
    w.send(sub, pubrec(id_of(&r2)));
    w.expect_pubrel(sub);
    w.send(sub, pubcomp(id_of(&r2)));
    w.send(sub, pubcomp(id_of(&m3)));
    w.drop_link(sub);
    // All acknowledged: nothing to resend.
    let (sub, _) = w.connect_ack(v311("sub").clean(false));
    w.expect_idle(sub);
}

#[test]
fn an_ack_for_a_message_not_yet_resent_is_taken_as_it_comes() {
    let mut w = World::new(config());
    let sub = w.connect(v5("sub").clean(false).expiry(60));
    w.send(sub, subscribe(1, &[("t", 2)]));
    w.expect_suback(sub);
    let publisher = w.connect(v5("pub"));
    for (i, payload) in ["a", "b", "c"].iter().enumerate() {
        w.send(publisher, publish("t", payload).qos2(i as u16 + 1));
    }
    let ids: Vec<u16> = w.publishes(sub).iter().map(id_of).collect();
    w.drop_link(sub);

    // A window of two: "c" is not resent at first.
    let sub = w.connect(v5("sub").clean(false).expiry(60).receive_max(2));
    w.expect_message(sub, "t", "a");
    w.expect_message(sub, "t", "b");
    w.expect_idle(sub);
    // The client had "c" from before and answers it now: PUBREL, and its PUBLISH is never
    // sent again, even when a slot frees up.
    w.send(sub, pubrec(ids[2]));
    assert_eq!(w.expect_pubrel(sub).packet_id, pid(ids[2]));
    for id in &ids[..2] {
        w.send(sub, pubrec(*id));
        assert_eq!(w.expect_pubrel(sub).packet_id, pid(*id));
        w.send(sub, pubcomp(*id));
        w.expect_idle(sub);
    }
    w.send(sub, pubcomp(ids[2]));
    w.expect_idle(sub);
}

#[test]
fn order_is_kept_per_topic_through_the_window_and_the_queue() {
    let mut w = World::new(config_with(|l| l.max_inflight = 2));
    let sub = w.connect(v5("sub").clean(false).expiry(600));
    w.send(sub, subscribe(1, &[("t", 2)]));
    w.expect_suback(sub);
    let publisher = w.connect(v5("pub"));
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let mut got = Vec::new();
    for (i, e) in expected.iter().enumerate() {
        w.send(
            publisher,
            publish("t", e).qos(1 + (i % 2) as u8, i as u16 + 1),
        );
        if i == 10 {
            // Half way the subscriber goes away for a while, then comes back.
            w.drop_link(sub);
        }
    }
    let (sub, _) = w.connect_ack(v5("sub").clean(false).expiry(600));
    for _ in 0..100 {
        let more = w.take_and_ack(sub);
        if more.is_empty() {
            break;
        }
        got.extend(more);
    }
    // Before the drop the first messages were received (unacknowledged): they come again.
    let mut seen = Vec::new();
    for g in got {
        if !seen.contains(&g) {
            seen.push(g);
        }
    }
    assert_eq!(seen, expected);
}

#[test]
fn connection_lost_in_an_incoming_qos2_flow_completes_once() {
    let mut w = World::new(config());
    let sub = w.connect(v311("sub"));
    w.send(sub, subscribe(1, &[("t", 2)]));
    w.expect_suback(sub);

    // Lost after PUBREC: the client did not see it, and sends the PUBLISH again.
    let publisher = w.connect(v5("pub").clean(false).expiry(60));
    w.send(publisher, publish("t", "a").qos2(5));
    w.expect_pubrec(publisher);
    w.drop_link(publisher);
    let (publisher, ack) = w.connect_ack(v5("pub").clean(false).expiry(60));
    assert!(ack.session_present);
    w.send(publisher, publish("t", "a").qos2(5).dup());
    assert_eq!(w.expect_pubrec(publisher).packet_id, pid(5));
    w.send(publisher, pubrel(5));
    assert_eq!(w.expect_pubcomp(publisher).reason_code, ReasonCode::Success);

    // Lost after PUBREC again: this time the client saw it, and sends PUBREL.
    w.send(publisher, publish("t", "b").qos2(6));
    w.expect_pubrec(publisher);
    w.drop_link(publisher);
    let publisher = w.connect(v5("pub").clean(false).expiry(60));
    w.send(publisher, pubrel(6));
    let comp = w.expect_pubcomp(publisher);
    assert_eq!(
        (comp.packet_id, comp.reason_code),
        (pid(6), ReasonCode::Success)
    );

    assert_eq!(w.payloads(sub), ["a", "b"]);
}

#[test]
fn connection_lost_in_an_outgoing_qos2_flow_completes_once() {
    let mut w = World::new(config());
    let c = || v5("sub").clean(false).expiry(300);
    let sub = w.connect(c());
    w.send(sub, subscribe(1, &[("t", 2)]));
    w.expect_suback(sub);
    let publisher = w.connect(v311("pub"));
    w.send(publisher, publish("t", "m").qos2(1));

    // Lost before PUBREC: the PUBLISH comes again, with DUP and the same id.
    let m = w.expect_message(sub, "t", "m");
    w.drop_link(sub);
    let sub = w.connect(c());
    let again = w.expect_message(sub, "t", "m");
    assert_eq!((again.dup, again.packet_id), (true, m.packet_id));
    w.send(sub, pubrec(id_of(&m)));
    w.expect_pubrel(sub);

    // Lost before PUBCOMP: only the PUBREL comes again [MQTT-4.4.0-1].
    w.drop_link(sub);
    let sub = w.connect(c());
    assert_eq!(w.expect_pubrel(sub).packet_id, pid(id_of(&m)));
    w.expect_idle(sub);
    w.send(sub, pubcomp(id_of(&m)));

    w.drop_link(sub);
    let sub = w.connect(c());
    w.expect_idle(sub);
}

/// A scripted publisher with a session, as a real client keeps it: each message not yet
/// completed, as `(packet id, payload, QoS, released)`.
#[derive(Default)]
struct Sender {
    inflight: Vec<(u16, String, u8, bool)>,
    next: usize,
}

impl Sender {
    /// After a reconnect: every PUBLISH not acknowledged again with DUP, and PUBRELs again.
    fn resend(&self, w: &mut World, p: Peer) {
        for (id, payload, q, released) in &self.inflight {
            if *released {
                w.send(p, pubrel(*id));
            } else {
                w.send(p, publish("t", payload).qos(*q, *id).dup());
            }
        }
    }

    /// Handles one packet from the broker.
    fn handle(&mut self, w: &mut World, p: Peer, packet: mqtt_core::Packet, seed: u64) {
        use mqtt_core::Packet::*;
        match packet {
            PubAck(a) | PubComp(a) => self.inflight.retain(|f| f.0 != a.packet_id.get()),
            PubRec(a) => {
                let id = a.packet_id.get();
                if let Some(f) = self.inflight.iter_mut().find(|f| f.0 == id) {
                    f.3 = true;
                }
                w.send(p, pubrel(id));
            }
            other => panic!("seed {seed}: publisher got {other:?}"),
        }
    }
}

/// A scripted subscriber with a session: QoS 2 ids received and not yet released (it
/// delivers on PUBLISH, "method B"), and every message it delivered, in order.
#[derive(Default)]
struct Receiver {
    held: Vec<u16>,
    delivered: Vec<String>,
}

impl Receiver {
    fn handle(&mut self, w: &mut World, p: Peer, packet: mqtt_core::Packet, seed: u64) {
        use mqtt_core::Packet::*;
        match packet {
            Publish(m) => {
                let id = id_of(&m);
                let payload = String::from_utf8_lossy(&m.payload).into_owned();
                match m.qos {
                    QoS::AtLeastOnce => {
                        self.delivered.push(payload);
                        w.send(p, puback(id));
                    }
                    QoS::ExactlyOnce => {
                        if self.held.contains(&id) {
                            assert!(m.dup, "seed {seed}: id {id} again without DUP");
                        } else {
                            self.held.push(id);
                            self.delivered.push(payload);
                        }
                        w.send(p, pubrec(id));
                    }
                    QoS::AtMostOnce => panic!("seed {seed}: QoS 0 {m:?}"),
                }
            }
            PubRel(a) => {
                self.held.retain(|h| *h != a.packet_id.get());
                w.send(p, pubcomp(a.packet_id.get()));
            }
            other => panic!("seed {seed}: subscriber got {other:?}"),
        }
    }
}

#[test]
fn qos1_at_least_once_and_qos2_exactly_once_in_order_whatever_links_drop() {
    const MESSAGES: usize = 16;
    for seed in 0..200u64 {
        let mut rng = Rng(seed);
        let mut w = World::seeded(config_with(|l| l.max_inflight = 3), seed);
        // The subscriber comes back with a different Receive Maximum each time.
        let sub_c = |r: u64| {
            v5("sub")
                .clean(false)
                .expiry(3600)
                .receive_max(1 + (r % 4) as u16)
        };
        let pub_c = || v5("pub").clean(false).expiry(3600);
        let mut sub = w.connect(sub_c(rng.next()));
        w.send(sub, subscribe(1, &[("t", 2)]));
        w.expect_suback(sub);
        let mut publisher = w.connect(pub_c());
        let mut sender = Sender::default();
        let mut receiver = Receiver::default();
        let mut qos_of = Vec::new();

        for _step in 0..1000 {
            let done = sender.next == MESSAGES && sender.inflight.is_empty();
            if done && w.peer(sub).inbox.is_empty() && w.peer(publisher).inbox.is_empty() {
                break;
            }
            match rng.next() % 12 {
                0 => {
                    w.drop_link(publisher);
                    publisher = w.connect(pub_c());
                    sender.resend(&mut w, publisher);
                }
                1 => {
                    w.drop_link(sub);
                    sub = w.connect(sub_c(rng.next()));
                }
                2..=5 if sender.next < MESSAGES && sender.inflight.len() < 4 => {
                    let payload = sender.next.to_string();
                    let id = sender.next as u16 + 1;
                    let q = 1 + (rng.next() % 2) as u8;
                    sender.next += 1;
                    qos_of.push(q);
                    sender.inflight.push((id, payload.clone(), q, false));
                    w.send(publisher, publish("t", &payload).qos(q, id));
                }
                _ => {}
            }
            // Each side handles one packet it received, if any.
            if let Some(r) = w.recv(publisher) {
                sender.handle(&mut w, publisher, r.packet, seed);
            }
            // The subscriber is the slower one, so that its window fills up.
            if rng.next().is_multiple_of(3) || done {
                if let Some(r) = w.recv(sub) {
                    receiver.handle(&mut w, sub, r.packet, seed);
                }
            }
        }
        assert!(
            sender.inflight.is_empty() && sender.next == MESSAGES,
            "seed {seed}: did not finish: {:?}",
            sender.inflight
        );
        // Every message, first copies in order; QoS 1 may come twice, QoS 2 never does.
        let mut first = Vec::new();
        for d in &receiver.delivered {
            if !first.contains(d) {
                first.push(d.clone());
            }
        }
        let expected: Vec<String> = (0..MESSAGES).map(|i| i.to_string()).collect();
        assert_eq!(first, expected, "seed {seed}: {:?}", receiver.delivered);
        for (i, q) in qos_of.iter().enumerate() {
            let copies = receiver
                .delivered
                .iter()
                .filter(|d| **d == i.to_string())
                .count();
            if *q == 2 {
                assert_eq!(
                    copies, 1,
                    "seed {seed}: QoS 2 message {i}: {:?}",
                    receiver.delivered
                );
            }
        }
        assert!(receiver.held.is_empty(), "seed {seed}: {:?}", receiver.held);
        assert_eq!(w.broker.queued_messages("sub"), Some(0), "seed {seed}");
    }
}

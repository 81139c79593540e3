//! Persistence: acknowledgements that promise durability wait for the store, clean sessions
//! wait for nothing, and a broker restarted from its store (after a crash: nothing but what
//! the store made durable) brings back sessions, queued and in-flight messages both ways,
//! received QoS 2 ids, retained messages, delayed wills and expiry.

use mqtt_core::broker::store::StoreOp;
use mqtt_core::ReasonCode;

use crate::script::*;
use crate::world::World;

/// A persistent subscriber to `t/#` at QoS 2 and a clean publisher.
fn subscriber_and_publisher(w: &mut World) -> (crate::world::Peer, crate::world::Peer) {
    let sub = w.connect(v311("sub").clean(false));
    w.send(sub, subscribe(1, &[("t/#", 2)]));
    w.expect_suback(sub);
    let publ = w.connect(v311("pub"));
    (sub, publ)
}

#[test]
fn puback_waits_for_the_store_when_a_persistent_session_takes_the_message() {
    let mut w = World::persistent(config());
    let (sub, publ) = subscriber_and_publisher(&mut w);
    w.drop_link(sub);
    w.pause_store();
    w.send(publ, publish("t/1", "kept").qos1(1));
    w.expect_nothing(publ);
    assert_eq!(w.store_pending(), 1);
    w.resume_store();
    assert_eq!(w.expect_puback(publ).packet_id, pid(1));
    assert_eq!(w.store.state().sessions["sub"].deliveries.len(), 1);
}

#[test]
fn clean_session_traffic_waits_for_nothing_and_stores_nothing() {
    let mut w = World::persistent(config());
    w.pause_store();
    let (sub, ack) = w.connect_ack(v311("clean"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    w.send(sub, subscribe(1, &[("c/#", 1)]));
    w.expect_suback(sub);
    let publ = w.connect(v5("p"));
    w.send(publ, publish("c/1", "x").qos1(1));
    w.expect_puback(publ);
    w.expect_message(sub, "c/1", "x");
    assert_eq!(
        w.store_pending(),
        0,
        "clean sessions emit no store operation"
    );
}

#[test]
fn connack_and_suback_of_a_persistent_session_wait_for_the_store() {
    let mut w = World::persistent(config());
    w.pause_store();
    let p = w.open(mqtt_core::ProtocolVersion::V5);
    w.send(p, v5("durable").expiry(3600));
    w.expect_nothing(p);
    w.resume_store();
    w.expect_connack(p);
    w.pause_store();
    w.send(p, subscribe(1, &[("a", 1)]));
    w.expect_nothing(p);
    w.resume_store();
    w.expect_suback(p);
    let stored = &w.store.state().sessions["durable"].session;
    assert_eq!(stored.expiry_interval, 3600);
    assert_eq!(stored.subscriptions.len(), 1);
}

#[test]
fn acknowledgements_keep_their_order_behind_one_that_waits() {
    let mut w = World::persistent(config());
    let (sub, publ) = subscriber_and_publisher(&mut w);
    w.drop_link(sub);
    w.pause_store();
    w.send(publ, publish("t/1", "kept").qos1(1));
    // Nobody subscribes to this one: nothing to store, but its PUBACK may not overtake.
    w.send(publ, publish("other", "x").qos1(2));
    w.send(publ, pingreq());
    w.expect_nothing(publ);
    w.resume_store();
    assert_eq!(w.expect_puback(publ).packet_id, pid(1));
    assert_eq!(w.expect_puback(publ).packet_id, pid(2));
    w.expect_pingresp(publ);
}

#[test]
fn restart_brings_back_sessions_queues_and_retained_messages() {
    let mut w = World::persistent(config());
    let (sub, publ) = subscriber_and_publisher(&mut w);
    w.drop_link(sub);
    w.send(publ, publish("t/1", "one").qos1(1));
    w.expect_puback(publ);
    w.send(publ, publish("t/2", "two").qos2(2));
    w.expect_pubrec(publ);
    w.send(publ, pubrel(2));
    w.expect_pubcomp(publ);
    w.send(publ, publish("t/r", "retained").qos1(3).retain());
    w.expect_puback(publ);
    w.send(publ, publish("t/0", "qos0 offline is not kept"));

    w.crash_and_restart();
    assert_eq!(w.broker.sessions(), 1);
    assert_eq!(w.broker.retained_messages(), 1);
    let (sub, ack) = w.connect_ack(v311("sub").clean(false));
    assert!(ack.session_present);
    assert_eq!(w.take_and_ack(sub), ["one", "two", "retained"]);
    w.expect_nothing(sub);
    // The subscription came back too.
    let publ = w.connect(v311("pub2"));
    w.send(publ, publish("t/3", "after").qos1(1));
    w.expect_puback(publ);
    assert_eq!(w.take_and_ack(sub), ["after"]);
    // And the retained message, for a new subscriber.
    let other = w.connect(v311("other"));
    w.send(other, subscribe(1, &[("t/r", 0)]));
    w.expect_suback(other);
    w.expect_message(other, "t/r", "retained");
}

#[test]
fn messages_in_flight_are_sent_again_with_dup_and_their_ids() {
    let mut w = World::persistent(config());
    let (sub, publ) = subscriber_and_publisher(&mut w);
    w.send(publ, publish("t/1", "q1").qos1(1));
    w.expect_puback(publ);
    w.send(publ, publish("t/2", "q2").qos2(2));
    w.expect_pubrec(publ);
    w.send(publ, pubrel(2));
    w.expect_pubcomp(publ);
    let first = w.expect_message(sub, "t/1", "q1");
    let second = w.expect_message(sub, "t/2", "q2");
    // The QoS 2 one gets as far as PUBREL.
    let id2 = second.packet_id.expect("QoS 2 has an id");
    w.send(
        sub,
        mqtt_core::Packet::PubRec(mqtt_core::packet::Ack::new(id2)),
    );
    w.expect_pubrel(sub);

    w.crash_and_restart();
    let (sub, ack) = w.connect_ack(v311("sub").clean(false));
    assert!(ack.session_present);
    // [MQTT-4.4.0-1] PUBREL again for the released one, the other PUBLISH again with DUP.
    let rel = w.expect_pubrel(sub);
    assert_eq!(rel.packet_id, id2);
    let again = w.expect_message(sub, "t/1", "q1");
    assert!(again.dup);
    assert_eq!(again.packet_id, first.packet_id);
}

#[test]
fn a_received_qos2_message_is_not_forwarded_twice_after_a_restart() {
    let mut w = World::persistent(config());
    let (sub, _) = subscriber_and_publisher(&mut w);
    let publ = w.connect(v311("qos2-pub").clean(false));
    w.send(publ, publish("t/x", "once").qos2(9));
    w.expect_pubrec(publ);
    assert_eq!(w.take_and_ack(sub), ["once"]);

    w.crash_and_restart();
    let sub = w.connect(v311("sub").clean(false));
    let publ = w.connect(v311("qos2-pub").clean(false));
    // The publisher did not see PUBCOMP: it sends the PUBLISH again, with DUP.
    w.send(publ, publish("t/x", "once").qos2(9).dup());
    w.expect_pubrec(publ);
    w.send(publ, pubrel(9));
    w.expect_pubcomp(publ);
    w.expect_nothing(sub);
}

#[test]
fn a_qos2_forward_waits_until_the_received_id_is_durable() {
    let mut w = World::persistent(config());
    let (sub, _) = subscriber_and_publisher(&mut w);
    let publ = w.connect(v311("qos2-pub").clean(false));
    w.pause_store();
    w.send(publ, publish("t/x", "once").qos2(9));
    w.expect_nothing(publ);
    w.expect_nothing(sub);
    // The broker dies before the store answered: the message went nowhere.
    w.crash_and_restart();
    let sub = w.connect(v311("sub").clean(false));
    let publ = w.connect(v311("qos2-pub").clean(false));
    w.send(publ, publish("t/x", "once").qos2(9).dup());
    w.expect_pubrec(publ);
    assert_eq!(w.take_and_ack(sub), ["once"], "exactly once");
}

#[test]
fn a_message_not_yet_durable_is_not_acknowledged_and_comes_again() {
    let mut w = World::persistent(config());
    let (sub, publ) = subscriber_and_publisher(&mut w);
    w.drop_link(sub);
    let publ_sess = w.connect(v311("pub-p").clean(false));
    let _ = publ;
    w.pause_store();
    w.send(publ_sess, publish("t/1", "unsure").qos1(4));
    w.expect_nothing(publ_sess);
    w.crash_and_restart();
    // Not acknowledged, so the publisher still has it and sends it again.
    let publ = w.connect(v311("pub-p").clean(false));
    w.send(publ, publish("t/1", "unsure").qos1(4).dup());
    w.expect_puback(publ);
    let sub = w.connect(v311("sub").clean(false));
    assert_eq!(w.take_and_ack(sub), ["unsure"]);
}

#[test]
fn a_delayed_will_and_session_expiry_survive_a_restart() {
    let mut w = World::persistent(config());
    let watcher = w.connect(v5("watcher").expiry(3600));
    w.send(watcher, subscribe(1, &[("will/#", 1)]));
    w.expect_suback(watcher);
    let dying = w.connect(
        v5("dying")
            .expiry(100)
            .will(will("will/dying", "gone").delay(30)),
    );
    w.drop_link(dying);
    w.advance_secs(10);

    w.crash_and_restart();
    let watcher = w.connect(v5("watcher").expiry(3600).clean(false));
    w.advance_secs(19);
    w.expect_nothing(watcher);
    w.advance_secs(2);
    w.expect_message(watcher, "will/dying", "gone");
    assert!(w.broker.queued_messages("dying").is_some());
    w.advance_secs(100);
    assert!(
        w.broker.queued_messages("dying").is_none(),
        "its expiry ran from the disconnection, across the restart"
    );
    let ops = w.store.state().sessions.contains_key("dying");
    assert!(!ops, "the expired session left the store");
}

#[test]
fn cleaning_a_session_deletes_it_from_the_store() {
    let mut w = World::persistent(config());
    let s = w.connect(v311("c").clean(false));
    w.send(s, subscribe(1, &[("a", 1)]));
    w.expect_suback(s);
    assert!(w.store.state().sessions.contains_key("c"));
    w.send(s, disconnect());
    let s = w.connect(v311("c"));
    w.send(s, disconnect());
    assert!(w.store.state().sessions.is_empty());
    let _ = StoreOp::DeleteSession {
        client_id: "c".into(),
    };
}

#[test]
fn a_store_that_cannot_write_gets_refusals_not_acknowledgements() {
    let mut w = World::persistent(config());
    let (sub, _) = subscriber_and_publisher(&mut w);
    w.drop_link(sub);
    let v5p = w.connect(v5("p5"));
    let v3p = w.connect(v311("p3"));
    w.pause_store();
    w.send(v5p, publish("t/1", "a").qos1(1));
    w.send(v5p, publish("t/2", "b").qos2(2));
    w.send(v3p, publish("t/3", "c").qos1(3));
    w.fail_store();
    let ack = w.expect_puback(v5p);
    assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded, "0x97 for 5.0");
    let rec = w.expect_pubrec(v5p);
    assert_eq!(rec.reason_code, ReasonCode::QuotaExceeded);
    w.expect_nothing(v3p);
    // The 3.1.1 client sends it again once the store works: now it is acknowledged.
    w.send(v3p, publish("t/3", "c").qos1(3).dup());
    assert_eq!(w.expect_puback(v3p).reason_code, ReasonCode::Success);
    // And the refused QoS 2 id is free again for a new flow.
    w.send(v5p, publish("t/2", "b").qos2(2));
    assert_eq!(w.expect_pubrec(v5p).reason_code, ReasonCode::Success);
}

#[test]
fn a_qos2_id_pipelined_behind_the_connect_that_creates_the_session_is_stored() {
    let mut w = World::persistent(config());
    let p = w.open(mqtt_core::ProtocolVersion::V311);
    let mut wire = bytes::BytesMut::new();
    let connect: mqtt_core::Packet = v311("pipelined").clean(false).into();
    mqtt_core::codec::encode(&connect, mqtt_core::ProtocolVersion::V311, &mut wire).unwrap();
    let publish: mqtt_core::Packet = publish("t/1", "x").qos2(5).into();
    mqtt_core::codec::encode(&publish, mqtt_core::ProtocolVersion::V311, &mut wire).unwrap();
    w.send_bytes(p, &wire);
    w.expect_connack(p);
    w.expect_pubrec(p);
    let stored = &w.store.state().sessions["pipelined"];
    assert_eq!(stored.incoming_qos2, [pid(5)]);
}

#[test]
fn a_subscribers_next_qos1_message_does_not_wait_for_the_store_but_a_qos2_one_does() {
    for qos in [1, 2] {
        let mut w = World::persistent(config_with(|l| l.max_inflight = 1));
        let sub = w.connect(v311("sub").clean(false));
        w.send(sub, subscribe(1, &[("t/#", qos)]));
        w.expect_suback(sub);
        let publ = w.connect(v311("pub"));
        for (id, payload) in [(1, "first"), (2, "second")] {
            let p = publish(&format!("t/{id}"), payload);
            w.send(publ, if qos == 1 { p.qos1(id) } else { p.qos2(id) });
        }
        let first = w.expect_message(sub, "t/1", "first");
        // The window of one is full: "second" is queued until "first" is acknowledged.
        w.expect_nothing(sub);
        w.pause_store();
        let id = first.packet_id.expect("QoS 1 or 2 has an id");
        if qos == 1 {
            w.send(sub, puback(id.get()));
            // Its deletion is not durable yet, and need not be: a restart before it could
            // only send "first" again, which QoS 1 allows.
            w.expect_message(sub, "t/2", "second");
        } else {
            w.send(sub, pubrec(id.get()));
            // The PUBREL promises the broker knows the flow moved on: it waits.
            w.expect_nothing(sub);
            w.resume_store();
            w.expect_pubrel(sub);
            w.pause_store();
            w.send(sub, pubcomp(id.get()));
            // "second" takes a QoS 2 packet id, which must be durable before it is used.
            w.expect_nothing(sub);
            w.resume_store();
            w.expect_message(sub, "t/2", "second");
        }
    }
}

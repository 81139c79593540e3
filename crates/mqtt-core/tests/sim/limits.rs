//! Limits: what a client can make the broker hold is bounded, and each bound does what
//! `Limits` says when it is hit.

use mqtt_core::broker::{CloseReason, QueueFullPolicy};
use mqtt_core::ReasonCode;

use crate::script::*;
use crate::world::World;

/// Five QoS 1 messages "0".."4" to an offline subscriber whose queue holds three.
fn queue_overflow(policy: QueueFullPolicy) -> Vec<String> {
    let mut w = World::new(config_with(|l| {
        l.max_queued_messages = 3;
        l.queue_full = policy;
    }));
    let s = w.connect(v311("s").clean(false));
    w.send(s, subscribe(1, &[("t", 1)]));
    w.expect_suback(s);
    w.drop_link(s);
    let p = w.connect(v311("pub"));
    for i in 0..5u16 {
        w.send(p, publish("t", i.to_string()).qos1(i + 1));
        // The publisher is acknowledged either way: the drop is the subscriber's.
        assert_eq!(w.expect_puback(p).packet_id, pid(i + 1));
    }
    assert_eq!(w.broker.queued_messages("s"), Some(3));
    let s = w.connect(v311("s").clean(false));
    w.take_and_ack(s)
}

#[test]
fn full_queue_drops_the_newest_by_default() {
    assert_eq!(queue_overflow(QueueFullPolicy::DropNewest), ["0", "1", "2"]);
}

#[test]
fn full_queue_can_drop_the_oldest_instead() {
    assert_eq!(queue_overflow(QueueFullPolicy::DropOldest), ["2", "3", "4"]);
}

#[test]
fn queued_bytes_are_bounded_too() {
    let mut w = World::new(config_with(|l| l.max_queued_bytes = 10));
    let s = w.connect(v311("s").clean(false));
    w.send(s, subscribe(1, &[("t", 1)]));
    w.expect_suback(s);
    w.drop_link(s);
    let p = w.connect(v311("pub"));
    for (i, payload) in ["aaaa", "bbbb", "cccc", "d"].iter().enumerate() {
        w.send(p, publish("t", payload).qos1(i as u16 + 1));
    }
    let s = w.connect(v311("s").clean(false));
    assert_eq!(w.take_and_ack(s), ["aaaa", "bbbb", "d"]);
}

#[test]
fn a_subscriber_that_never_acknowledges_cannot_grow_its_session() {
    let mut w = World::new(config_with(|l| {
        l.max_inflight = 5;
        l.max_queued_messages = 20;
    }));
    let s = w.connect(v5("slow"));
    w.send(s, subscribe(1, &[("t", 2)]));
    w.expect_suback(s);
    let p = w.connect(v5("pub"));
    for i in 0..500u16 {
        w.send(p, publish("t", "x").qos(1 + (i % 2) as u8, i % 100 + 1));
        if i % 2 == 1 {
            w.expect_pubrec(p);
            w.send(p, pubrel(i % 100 + 1));
            w.expect_pubcomp(p);
        } else {
            w.expect_puback(p);
        }
        assert!(w.broker.queued_messages("slow").is_some_and(|n| n <= 20));
    }
    assert_eq!(w.broker.queued_messages("slow"), Some(20));
    // Five in flight, never acknowledged; the rest dropped.
    assert_eq!(w.publishes(s).len(), 5);
}

#[test]
fn a_slow_reader_loses_qos0_but_keeps_qos1_until_it_catches_up() {
    let mut w = World::new(config_with(|l| l.max_pending_write_bytes = 100));
    let s = w.connect(v311("s"));
    w.send(s, subscribe(1, &[("t", 1)]));
    w.expect_suback(s);
    w.stall(s);
    let p = w.connect(v311("pub"));
    let payload = "x".repeat(40);
    for i in 0..4u16 {
        w.send(p, publish("t", &payload));
        w.send(p, publish("t", &payload).qos1(i + 1));
    }
    // 100 bytes of room: QoS 0 takes 45 bytes, QoS 1 47; the third message is sent with 92
    // bytes pending, and after it the QoS 0 ones are dropped and the QoS 1 ones wait.
    let before: Vec<_> = w.publishes(s).iter().map(|m| m.qos as u8).collect();
    assert_eq!(before, [0, 1, 0]);
    assert_eq!(w.broker.queued_messages("s"), Some(3));
    w.unstall(s);
    let after: Vec<_> = w.publishes(s).iter().map(|m| m.qos as u8).collect();
    assert_eq!(after, [1, 1, 1]);
}

#[test]
fn long_client_identifiers_are_refused() {
    let mut w = World::new(config_with(|l| l.max_client_id_len = 8));
    w.connect(v5("12345678"));
    let (p, ack) = w.connect_ack(v5("123456789"));
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    w.expect_closed(p);
}

#[test]
fn deep_topics_are_refused() {
    let mut w = World::new(config_with(|l| l.max_topic_levels = 3));
    let p = w.connect(v5("c"));
    w.send(p, publish("a/b/c", "ok"));
    w.expect_idle(p);
    w.send(p, publish("a/b/c/d", "too deep"));
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(
        w.expect_closed(p),
        CloseReason::ProtocolViolation(ReasonCode::TopicNameInvalid)
    );
    let (p, ack) = w.connect_ack(v5("d").will(will("a/b/c/d", "x")));
    assert_eq!(ack.reason_code, ReasonCode::TopicNameInvalid);
    w.expect_closed(p);
}

#[test]
fn expired_retained_messages_do_not_count_against_the_limit() {
    // $SYS is off, so nothing sweeps the store on a timer.
    let mut w = World::new(config_with(|l| l.max_retained_messages = 1));
    let p = w.connect(v5("pub"));
    w.send(p, publish("a", "short").retain().expiry(1));
    w.advance_secs(2);
    w.send(p, publish("b", "new").retain());
    assert_eq!(w.broker.retained_payload("b").as_deref(), Some(&b"new"[..]));
    assert_eq!(w.broker.retained_messages(), 1);
}

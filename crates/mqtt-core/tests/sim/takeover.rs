//! Client-identifier takeover [MQTT-3.1.4-3]: a second connection with the same client id
//! closes the first and takes its session.

use mqtt_core::broker::CloseReason;
use mqtt_core::ReasonCode;

use crate::script::*;
use crate::world::World;

#[test]
fn takeover_closes_the_old_connection_and_hands_over_the_session() {
    let mut w = World::new(config());
    let old = w.connect(v311("c").clean(false));
    w.send(old, subscribe(1, &[("t", 1)]));
    w.expect_suback(old);
    let p = w.connect(v311("pub"));
    w.send(p, publish("t", "in flight").qos1(1));
    let m = w.expect_message(old, "t", "in flight");

    let (new, ack) = w.connect_ack(v311("c").clean(false));
    assert!(ack.session_present);
    // 3.1.1 has no DISCONNECT from the server: the socket just closes.
    assert_eq!(w.expect_closed(old), CloseReason::SessionTakenOver);
    let again = w.expect_message(new, "t", "in flight");
    assert_eq!((again.dup, again.packet_id), (true, m.packet_id));
    w.send(new, puback(again.packet_id.map_or(0, |i| i.get())));

    w.send(p, publish("t", "after").qos1(2));
    w.expect_message(new, "t", "after");
    assert_eq!(w.broker.connections(), 2);
    assert_eq!(w.broker.sessions(), 2);
}

#[test]
fn v5_old_connection_is_told_session_taken_over() {
    let mut w = World::new(config());
    let old = w.connect(v5("c").clean(false).expiry(60));
    w.send(old, subscribe(1, &[("t", 0)]));
    w.expect_suback(old);
    // The new connection may speak another version.
    let (new, ack) = w.connect_ack(v311("c").clean(false));
    assert!(ack.session_present);
    assert_eq!(
        w.expect_disconnect(old).reason_code,
        ReasonCode::SessionTakenOver
    );
    assert_eq!(w.expect_closed(old), CloseReason::SessionTakenOver);

    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "x"));
    w.expect_message(new, "t", "x");
}

#[test]
fn takeover_with_clean_start_starts_afresh() {
    let mut w = World::new(config());
    let old = w.connect(v5("c").clean(false).expiry(60));
    w.send(old, subscribe(1, &[("t", 0)]));
    w.expect_suback(old);
    let (new, ack) = w.connect_ack(v5("c").clean(true));
    assert!(!ack.session_present);
    w.expect_disconnect(old);
    w.expect_closed(old);
    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "x"));
    w.expect_idle(new);
}

#[test]
fn takeover_publishes_the_old_will_unless_delayed() {
    let mut w = World::new(config());
    let watcher = w.connect(v5("watcher"));
    w.send(watcher, subscribe(1, &[("will/+", 0)]));
    w.expect_suback(watcher);

    // No delay: the old connection ended without DISCONNECT, so its will goes.
    let old = w.connect(v311("a").clean(false).will(will("will/a", "a")));
    w.connect(v311("a").clean(false));
    w.expect_closed(old);
    w.expect_message(watcher, "will/a", "a");

    // With a Will Delay, the new connection comes in time and cancels it [MQTT-3.1.3-9].
    let old = w.connect(
        v5("b")
            .clean(false)
            .expiry(60)
            .will(will("will/b", "b").delay(5)),
    );
    w.connect(v5("b").clean(false).expiry(60));
    w.expect_disconnect(old);
    w.expect_closed(old);
    w.advance_secs(10);
    w.expect_idle(watcher);
}

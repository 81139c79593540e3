//! Sessions: clean against persistent, what survives a disconnection, and v5 session expiry.

use mqtt_core::broker::{BrokerConfig, CloseReason};
use mqtt_core::ReasonCode;

use crate::script::*;
use crate::world::World;

#[test]
fn clean_session_forgets_subscriptions() {
    let mut w = World::new(config());
    let sub = w.connect(v311("sub"));
    w.send(sub, subscribe(1, &[("t", 1)]));
    w.expect_suback(sub);
    w.send(sub, disconnect());
    assert_eq!(w.broker.sessions(), 0, "[MQTT-3.1.2-6]");

    let (sub, ack) = w.connect_ack(v311("sub"));
    assert!(!ack.session_present);
    let p = w.connect(v311("pub"));
    w.send(p, publish("t", "x").qos1(1));
    w.expect_idle(sub);
}

#[test]
fn persistent_session_keeps_subscriptions() {
    let mut w = World::new(config());
    let sub = w.connect(v311("sub").clean(false));
    w.send(sub, subscribe(1, &[("a", 1), ("b/#", 0)]));
    w.expect_suback(sub);
    w.send(sub, disconnect());
    assert_eq!(w.broker.sessions(), 1);

    let (sub, ack) = w.connect_ack(v311("sub").clean(false));
    assert!(ack.session_present, "[MQTT-3.2.2-2]");
    let p = w.connect(v311("pub"));
    w.send(p, publish("a", "1"));
    w.send(p, publish("b/c", "2"));
    assert_eq!(w.payloads(sub), ["1", "2"]);
}

#[test]
fn messages_queued_offline_arrive_in_order_on_reconnect() {
    let mut w = World::new(config());
    let sub = w.connect(v311("sub").clean(false));
    w.send(sub, subscribe(1, &[("t/+", 2)]));
    w.expect_suback(sub);
    w.drop_link(sub);

    let p = w.connect(v311("pub"));
    w.send(p, publish("t/a", "1").qos1(1));
    w.send(p, publish("t/b", "2").qos2(2));
    w.send(p, pubrel(2));
    // QoS 0 is not kept for an offline session.
    w.send(p, publish("t/a", "qos0"));
    w.send(p, publish("t/b", "3").qos1(3));
    w.send(p, publish("t/a", "4").qos2(4));
    assert_eq!(w.broker.queued_messages("sub"), Some(4));

    let (sub, ack) = w.connect_ack(v311("sub").clean(false));
    assert!(ack.session_present);
    let got = w.publishes(sub);
    let seen: Vec<_> = got
        .iter()
        .map(|m| (m.topic.as_str(), &m.payload[..], m.qos as u8, m.dup))
        .collect();
    assert_eq!(
        seen,
        [
            ("t/a", &b"1"[..], 1, false),
            ("t/b", b"2", 2, false),
            ("t/b", b"3", 1, false),
            ("t/a", b"4", 2, false),
        ]
    );
    assert_eq!(w.broker.queued_messages("sub"), Some(0));
}

#[test]
fn v5_session_ends_after_its_expiry_interval() {
    let mut w = World::new(config());
    let (sub, ack) = w.connect_ack(v5("sub").clean(false).expiry(30));
    assert_eq!(
        ack.properties.session_expiry_interval, None,
        "granted as asked"
    );
    w.send(sub, subscribe(1, &[("t", 1)]));
    w.expect_suback(sub);
    w.send(sub, disconnect());

    w.advance_secs(29);
    assert_eq!(w.broker.sessions(), 1);
    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "kept").qos1(1));
    assert_eq!(w.broker.queued_messages("sub"), Some(1));
    w.advance_secs(1);
    assert_eq!(w.broker.sessions(), 1, "only pub's");
    assert_eq!(w.broker.queued_messages("sub"), None);

    let (sub, ack) = w.connect_ack(v5("sub").clean(false).expiry(30));
    assert!(!ack.session_present);
    w.send(p, publish("t", "gone").qos1(2));
    w.expect_idle(sub);
}

#[test]
fn v5_session_survives_a_reconnect_within_its_interval() {
    let mut w = World::new(config());
    let sub = w.connect(v5("sub").clean(false).expiry(30));
    w.send(sub, subscribe(1, &[("t", 1)]));
    w.expect_suback(sub);
    w.drop_link(sub);
    w.advance_secs(29);
    let (sub, ack) = w.connect_ack(v5("sub").clean(false).expiry(30));
    assert!(ack.session_present);
    // The old expiry timer fires, but the session is in use again.
    w.advance_secs(10);
    assert_eq!(w.broker.sessions(), 1);
    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "x"));
    w.expect_message(sub, "t", "x");
}

#[test]
fn v5_disconnect_can_shorten_the_expiry() {
    let mut w = World::new(config());
    let sub = w.connect(v5("sub").clean(false).expiry(300));
    w.send(sub, disconnect_expiry(10));
    assert_eq!(w.expect_closed(sub), CloseReason::ClientDisconnected);
    w.advance_secs(9);
    assert_eq!(w.broker.sessions(), 1);
    w.advance_secs(1);
    assert_eq!(w.broker.sessions(), 0);
}

#[test]
fn v5_disconnect_setting_an_expiry_after_zero_is_a_protocol_error() {
    let mut w = World::new(config());
    let watcher = w.connect(v5("watcher"));
    w.send(watcher, subscribe(1, &[("will", 0)]));
    w.expect_suback(watcher);
    let c = w.connect(v5("c").will(will("will", "c died")));
    w.send(c, disconnect_expiry(60));
    assert_eq!(
        w.expect_disconnect(c).reason_code,
        ReasonCode::ProtocolError,
        "[MQTT-3.14.2-2]"
    );
    assert_eq!(
        w.expect_closed(c),
        CloseReason::ProtocolViolation(ReasonCode::ProtocolError)
    );
    // Not a normal disconnection: the will goes out, and the session ends as agreed.
    w.expect_message(watcher, "will", "c died");
    assert_eq!(w.broker.queued_messages("c"), None);
}

#[test]
fn v5_expiry_zero_ends_the_session_with_the_connection() {
    let mut w = World::new(config());
    let c = w.connect(v5("c").clean(false));
    w.send(c, subscribe(1, &[("t", 1)]));
    w.expect_suback(c);
    w.drop_link(c);
    assert_eq!(w.broker.sessions(), 0);
    let (_, ack) = w.connect_ack(v5("c").clean(false));
    assert!(!ack.session_present);
}

#[test]
fn v311_persistent_session_does_not_expire() {
    let mut w = World::new(config());
    let c = w.connect(v311("c").clean(false));
    w.drop_link(c);
    w.advance_secs(365 * 24 * 3600);
    let (_, ack) = w.connect_ack(v311("c").clean(false));
    assert!(ack.session_present);
}

#[test]
fn session_expiry_is_capped_by_the_broker() {
    let mut w = World::new(BrokerConfig {
        max_session_expiry: 60,
        ..config()
    });
    let (c, ack) = w.connect_ack(v5("c").clean(false).expiry(3600));
    assert_eq!(ack.properties.session_expiry_interval, Some(60));
    w.drop_link(c);
    w.advance_secs(60);
    assert_eq!(w.broker.sessions(), 0);
}

#[test]
fn v5_clean_start_discards_the_old_session_but_keeps_the_new_one() {
    let mut w = World::new(config());
    let c = w.connect(v5("c").clean(false).expiry(60));
    w.send(c, subscribe(1, &[("old", 1)]));
    w.expect_suback(c);
    w.drop_link(c);
    let (c, ack) = w.connect_ack(v5("c").clean(true).expiry(60));
    assert!(!ack.session_present, "[MQTT-3.1.2-4]");
    w.drop_link(c);
    let (c, ack) = w.connect_ack(v5("c").clean(false).expiry(60));
    assert!(ack.session_present);
    let p = w.connect(v5("pub"));
    w.send(p, publish("old", "x"));
    w.expect_idle(c);
}

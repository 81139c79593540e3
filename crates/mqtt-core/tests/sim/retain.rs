//! Retained messages: set, replace and clear; delivered on subscribe with RETAIN set; v5
//! Retain Handling and Retain As Published; limits and the feature switch.

use mqtt_core::broker::BrokerConfig;
use mqtt_core::{QoS, ReasonCode};

use crate::script::*;
use crate::world::{Peer, World};

/// Subscribes `p` to `f` with options `s` and takes the SUBACK.
fn subscribed(w: &mut World, p: Peer, s: SubB) {
    w.send(p, subscribe_with(1, vec![s]));
    assert!(!w.expect_suback(p).reason_codes[0].is_error());
}

#[test]
fn retained_message_is_set_replaced_and_cleared() {
    let mut w = World::new(config());
    let p = w.connect(v311("pub"));
    w.send(p, publish("r", "v1").retain());
    assert_eq!(w.broker.retained_messages(), 1);

    let a = w.connect(v311("a"));
    subscribed(&mut w, a, sub("r").qos(1));
    let m = w.expect_message(a, "r", "v1");
    assert!(m.retain, "[MQTT-3.3.1-8]");

    // [MQTT-3.3.1-5] a new retained message replaces the old one.
    w.send(p, publish("r", "v2").retain());
    assert!(
        !w.expect_message(a, "r", "v2").retain,
        "live: RETAIN cleared [MQTT-3.3.1-9]"
    );
    let b = w.connect(v311("b"));
    subscribed(&mut w, b, sub("#"));
    assert!(w.expect_message(b, "r", "v2").retain);
    w.expect_idle(b);

    // [MQTT-3.3.1-6] an empty retained message clears the topic; it is still delivered to
    // the subscribers there are [MQTT-3.3.1-7] (3.1.1 wording).
    w.send(p, publish("r", "").retain());
    assert_eq!(w.expect_message(a, "r", "").payload.len(), 0);
    w.expect_message(b, "r", "");
    assert_eq!(w.broker.retained_messages(), 0);
    let c = w.connect(v311("c"));
    subscribed(&mut w, c, sub("r"));
    w.expect_idle(c);
}

#[test]
fn retained_messages_match_wildcards_and_take_the_lower_qos() {
    let mut w = World::new(config());
    let p = w.connect(v5("pub"));
    w.send(p, publish("s/1", "one").qos2(1).retain());
    w.send(p, publish("s/2", "two").qos1(2).retain());
    w.send(p, publish("s/2/x", "deeper").retain());
    w.send(p, publish("other", "no").retain());

    let s = w.connect(v5("s"));
    subscribed(&mut w, s, sub("s/+").qos(1));
    let mut got: Vec<_> = w
        .publishes(s)
        .into_iter()
        .map(|m| (m.topic.to_string(), m.qos, m.retain))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("s/1".to_string(), QoS::AtLeastOnce, true),
            ("s/2".to_string(), QoS::AtLeastOnce, true),
        ]
    );
}

#[test]
fn retain_handling_0_1_2() {
    let mut w = World::new(config());
    let p = w.connect(v5("pub"));
    w.send(p, publish("r", "kept").retain());
    let s = w.connect(v5("s"));

    // 0: at every SUBSCRIBE, even one that replaces a subscription.
    for _ in 0..2 {
        subscribed(&mut w, s, sub("r").rh(0));
        w.expect_message(s, "r", "kept");
    }
    // 1: only when the subscription is new [MQTT-3.3.1-10].
    subscribed(&mut w, s, sub("r/#").rh(1));
    w.expect_message(s, "r", "kept");
    subscribed(&mut w, s, sub("r/#").rh(1));
    w.expect_idle(s);
    // 2: never [MQTT-3.3.1-11].
    subscribed(&mut w, s, sub("+").rh(2));
    w.expect_idle(s);
}

#[test]
fn retain_as_published_keeps_the_flag_on_live_messages() {
    let mut w = World::new(config());
    let rap = w.connect(v5("rap"));
    subscribed(&mut w, rap, sub("t").rap());
    let plain = w.connect(v5("plain"));
    subscribed(&mut w, plain, sub("t"));
    let old = w.connect(v311("old"));
    subscribed(&mut w, old, sub("t"));

    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "r").retain());
    w.send(p, publish("t", "n"));
    let flags =
        |w: &mut World, s: Peer| -> Vec<bool> { w.publishes(s).iter().map(|m| m.retain).collect() };
    assert_eq!(flags(&mut w, rap), [true, false], "[MQTT-3.3.1-12]");
    assert_eq!(flags(&mut w, plain), [false, false], "[MQTT-3.3.1-13]");
    assert_eq!(flags(&mut w, old), [false, false]);
}

#[test]
fn retained_messages_are_not_sent_to_shared_subscriptions() {
    let mut w = World::new(config());
    let p = w.connect(v5("pub"));
    w.send(p, publish("r", "kept").retain());
    let s = w.connect(v5("s"));
    subscribed(&mut w, s, sub("$share/g/r"));
    w.expect_idle(s);
}

#[test]
fn retained_limit_refuses_new_topics_but_allows_replacing() {
    let mut w = World::new(config_with(|l| l.max_retained_messages = 2));
    let p = w.connect(v311("pub"));
    w.send(p, publish("a", "1").retain());
    w.send(p, publish("b", "1").retain());
    w.send(p, publish("c", "1").retain());
    assert_eq!(w.broker.retained_messages(), 2);
    assert_eq!(w.broker.retained_payload("c"), None);
    w.send(p, publish("a", "2").retain());
    assert_eq!(w.broker.retained_payload("a").as_deref(), Some(&b"2"[..]));
    w.send(p, publish("b", "").retain());
    w.send(p, publish("c", "1").retain());
    assert_eq!(w.broker.retained_messages(), 2);
    assert_eq!(w.broker.retained_payload("c").as_deref(), Some(&b"1"[..]));
}

#[test]
fn retain_not_available_is_announced_and_enforced() {
    let mut w = World::new(BrokerConfig {
        retain_available: false,
        ..config()
    });
    let (p, ack) = w.connect_ack(v5("pub"));
    assert_eq!(ack.properties.retain_available, Some(false));
    w.send(p, publish("r", "x").retain());
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::RetainNotSupported,
        "[MQTT-3.3.1-?] RETAIN when Retain Available is 0"
    );
    w.expect_closed(p);
    assert_eq!(w.broker.retained_messages(), 0);

    // A will asking to be retained is refused at CONNECT [MQTT-3.2.2-13].
    let (c, ack) = w.connect_ack(v5("c").will(will("w", "x").retain()));
    assert_eq!(ack.reason_code, ReasonCode::RetainNotSupported);
    w.expect_closed(c);
}

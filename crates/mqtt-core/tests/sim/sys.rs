//! `$SYS`: the broker's statistics, published at the configured interval as retained
//! messages, out of reach of leading wildcards and of clients' own publications.

use std::time::Duration;

use mqtt_core::broker::BrokerConfig;
use mqtt_core::ReasonCode;

use crate::script::*;
use crate::world::World;

fn with_sys() -> World {
    World::new(BrokerConfig {
        sys_interval: Some(Duration::from_secs(10)),
        version: "sim 1.0".into(),
        ..config()
    })
}

#[test]
fn sys_topics_are_published_at_start_then_at_the_interval() {
    let mut w = with_sys();
    let sys = w.connect(v311("sys"));
    // The first publication is due at the broker's first input, retained.
    w.advance(Duration::ZERO);
    w.send(sys, subscribe(1, &[("$SYS/#", 0)]));
    w.expect_suback(sys);
    let value = |ms: &[mqtt_core::Publish], t: &str| -> String {
        let m = ms
            .iter()
            .find(|m| m.topic.as_str() == t)
            .unwrap_or_else(|| panic!("no {t} in {ms:?}"));
        String::from_utf8_lossy(&m.payload).into_owned()
    };
    let at_start = w.publishes(sys);
    assert_eq!(at_start.len(), 12);
    assert!(at_start.iter().all(|m| m.retain), "retained on subscribe");
    assert_eq!(value(&at_start, "$SYS/broker/version"), "sim 1.0");
    assert_eq!(value(&at_start, "$SYS/broker/uptime"), "0 seconds");
    assert_eq!(value(&at_start, "$SYS/broker/clients/connected"), "1");

    let all = w.connect(v311("all"));
    w.send(all, subscribe(1, &[("#", 0)]));
    w.expect_suback(all);
    w.advance(Duration::from_millis(9_999));
    w.expect_idle(sys);
    w.advance(Duration::from_millis(1));
    let first = w.publishes(sys);
    assert_eq!(first.len(), 12);
    assert_eq!(value(&first, "$SYS/broker/uptime"), "10 seconds");
    assert_eq!(value(&first, "$SYS/broker/clients/connected"), "2");
    assert_eq!(value(&first, "$SYS/broker/subscriptions/count"), "2");
    assert!(
        value(&first, "$SYS/broker/bytes/received")
            .parse::<u64>()
            .unwrap()
            > 0,
        "bytes received are counted"
    );

    w.advance_secs(10);
    let second = w.publishes(sys);
    assert_eq!(second.len(), 12);
    assert_eq!(value(&second, "$SYS/broker/uptime"), "20 seconds");
    // [MQTT-4.7.2-1] "#" does not match "$SYS/...".
    w.expect_idle(all);

    // Retained: a new subscriber gets the latest values at once.
    let late = w.connect(v311("late"));
    w.send(late, subscribe(1, &[("$SYS/broker/uptime", 0)]));
    w.expect_suback(late);
    let m = w.expect_message(late, "$SYS/broker/uptime", "20 seconds");
    assert!(m.retain);
}

#[test]
fn clients_cannot_publish_into_sys() {
    let mut w = with_sys();
    let sys = w.connect(v5("sys"));
    w.send(sys, subscribe(1, &[("$SYS/#", 0)]));
    w.expect_suback(sys);
    // $SYS is published at the broker's first input, then every 10 s.
    w.advance_secs(10);
    assert_eq!(w.publishes(sys).len(), 24);

    let p = w.connect(v5("pub"));
    w.send(p, publish("$SYS/broker/version", "fake").qos1(1).retain());
    assert_eq!(
        w.expect_puback(p).reason_code,
        ReasonCode::NoMatchingSubscribers
    );
    w.expect_idle(sys);
    assert_eq!(
        w.broker.retained_payload("$SYS/broker/version").as_deref(),
        Some(&b"sim 1.0"[..]),
        "a client's retained message must not replace the broker's"
    );
}

#[test]
fn a_will_cannot_go_into_sys_either() {
    let mut w = with_sys();
    let sys = w.connect(v5("sys"));
    w.send(sys, subscribe(1, &[("$SYS/#", 0)]));
    w.expect_suback(sys);
    // $SYS is published at the broker's first input, then every 10 s.
    w.advance_secs(10);
    assert_eq!(w.publishes(sys).len(), 24);

    let c = w.connect(v311("c").will(will("$SYS/broker/version", "fake").retain()));
    w.drop_link(c);
    w.expect_idle(sys);
    assert_eq!(
        w.broker.retained_payload("$SYS/broker/version").as_deref(),
        Some(&b"sim 1.0"[..])
    );
}

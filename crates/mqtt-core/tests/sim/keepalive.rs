//! Keep alive: enforced at one and a half times the interval [MQTT-3.1.2-24], reset by any
//! packet, and in 5.0 overridden by Server Keep Alive.

use std::time::Duration;

use mqtt_core::broker::{BrokerConfig, CloseReason};
use mqtt_core::ReasonCode;

use crate::script::*;
use crate::world::World;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn closed_after_one_and_a_half_intervals_of_silence_not_before() {
    let mut w = World::new(config());
    let c = w.connect(v311("c").keep_alive(10));
    w.advance(ms(14_999));
    w.expect_idle(c);
    w.advance(ms(1));
    assert_eq!(w.expect_closed(c), CloseReason::KeepAliveTimeout);
    assert_eq!(w.broker.connections(), 0);
}

#[test]
fn any_packet_restarts_the_keep_alive() {
    let mut w = World::new(config());
    let c = w.connect(v311("c").keep_alive(10));
    w.advance_secs(10);
    w.send(c, pingreq());
    w.expect_pingresp(c);
    w.advance_secs(14);
    w.send(c, publish("t", "x"));
    w.advance(ms(14_999));
    w.expect_idle(c);
    w.advance(ms(1));
    assert_eq!(w.expect_closed(c), CloseReason::KeepAliveTimeout);
    assert_eq!(w.elapsed(), Duration::from_secs(10 + 14 + 15));
}

#[test]
fn a_partial_packet_does_not_count() {
    let mut w = World::whole(config());
    let c = w.connect(v311("c").keep_alive(10));
    w.advance_secs(10);
    // The first byte of a PINGREQ only.
    w.send_bytes(c, &[0xC0]);
    w.advance_secs(5);
    assert_eq!(w.expect_closed(c), CloseReason::KeepAliveTimeout);
}

#[test]
fn v5_client_is_told_keep_alive_timeout() {
    let mut w = World::new(config());
    let c = w.connect(v5("c").keep_alive(4));
    w.advance_secs(6);
    assert_eq!(
        w.expect_disconnect(c).reason_code,
        ReasonCode::KeepAliveTimeout
    );
    assert_eq!(w.expect_closed(c), CloseReason::KeepAliveTimeout);
}

#[test]
fn keep_alive_zero_is_never_enforced_before_5_0() {
    let mut w = World::new(config());
    let c = w.connect(v311("c"));
    w.advance_secs(24 * 3600);
    w.expect_idle(c);
}

#[test]
fn v5_client_over_max_keep_alive_is_given_server_keep_alive() {
    let mut w = World::new(BrokerConfig {
        max_keep_alive: 30,
        ..config()
    });
    let (over, ack) = w.connect_ack(v5("over").keep_alive(60));
    assert_eq!(
        ack.properties.server_keep_alive,
        Some(30),
        "[MQTT-3.2.2-21]"
    );
    let (zero, ack) = w.connect_ack(v5("zero"));
    assert_eq!(ack.properties.server_keep_alive, Some(30));
    let (under, ack) = w.connect_ack(v5("under").keep_alive(20));
    assert_eq!(ack.properties.server_keep_alive, None);
    // 3.1.1 has no way to be told: its own keep alive holds.
    let old = w.connect(v311("old").keep_alive(60));

    w.advance_secs(29);
    w.expect_idle(under);
    w.advance_secs(1);
    w.expect_disconnect(under);
    assert_eq!(w.expect_closed(under), CloseReason::KeepAliveTimeout);
    w.advance(ms(14_999));
    w.expect_idle(over);
    w.expect_idle(zero);
    w.advance(ms(1));
    for p in [over, zero] {
        assert_eq!(
            w.expect_disconnect(p).reason_code,
            ReasonCode::KeepAliveTimeout
        );
        w.expect_closed(p);
    }
    w.advance_secs(44);
    w.expect_idle(old);
    w.advance_secs(1);
    assert_eq!(w.expect_closed(old), CloseReason::KeepAliveTimeout);
}

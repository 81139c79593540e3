//! Wills: published when a connection ends without a normal DISCONNECT [MQTT-3.1.2-8], kept
//! when they ask to be retained, and in 5.0 delayed by the Will Delay Interval.

use std::time::Duration;

use mqtt_core::broker::CloseReason;
use mqtt_core::{ProtocolVersion, QoS, ReasonCode};

use crate::script::*;
use crate::world::{Peer, World};

/// A world with a client subscribed to `will/#` at QoS 2.
fn watched() -> (World, Peer) {
    let mut w = World::new(config());
    let watcher = w.connect(v5("watcher"));
    w.send(watcher, subscribe(1, &[("will/#", 2)]));
    w.expect_suback(watcher);
    (w, watcher)
}

#[test]
fn will_is_published_when_the_link_drops() {
    let (mut w, watcher) = watched();
    let c = w.connect(v311("c").will(will("will/c", "gone").qos(1)));
    w.drop_link(c);
    let m = w.expect_message(watcher, "will/c", "gone");
    assert_eq!((m.qos, m.retain), (QoS::AtLeastOnce, false));
    w.expect_idle(watcher);
}

#[test]
fn will_is_published_on_keep_alive_timeout() {
    let (mut w, watcher) = watched();
    let c = w.connect(v311("c").keep_alive(2).will(will("will/c", "silent")));
    w.advance_secs(3);
    assert_eq!(w.expect_closed(c), CloseReason::KeepAliveTimeout);
    w.expect_message(watcher, "will/c", "silent");
}

#[test]
fn will_is_published_on_a_protocol_error() {
    let (mut w, watcher) = watched();
    let c = w.connect(v5("c").will(will("will/c", "broken")));
    w.send(
        c,
        mqtt_core::Packet::SubAck(mqtt_core::packet::SubAck {
            packet_id: pid(1),
            reason_codes: vec![ReasonCode::Success],
            properties: Default::default(),
        }),
    );
    assert_eq!(
        w.expect_disconnect(c).reason_code,
        ReasonCode::ProtocolError
    );
    w.expect_closed(c);
    w.expect_message(watcher, "will/c", "broken");
}

#[test]
fn no_will_after_a_normal_disconnect() {
    let (mut w, watcher) = watched();
    for c in [v311("a"), v5("b")] {
        let c = w.connect(c.will(will("will/x", "should not")));
        w.send(c, disconnect());
        assert_eq!(w.expect_closed(c), CloseReason::ClientDisconnected);
    }
    w.advance_secs(100);
    w.expect_idle(watcher);
}

#[test]
fn v5_disconnect_with_will_message_publishes_it() {
    let (mut w, watcher) = watched();
    let c = w.connect(v5("c").will(will("will/c", "on purpose")));
    w.send(c, disconnect_code(ReasonCode::DisconnectWithWill));
    assert_eq!(w.expect_closed(c), CloseReason::ClientDisconnected);
    w.expect_message(watcher, "will/c", "on purpose");
}

#[test]
fn retained_will_is_kept_for_later_subscribers() {
    let (mut w, watcher) = watched();
    let c = w.connect(v311("c").will(will("will/c", "offline").retain()));
    w.drop_link(c);
    // Live: RETAIN is cleared for an existing subscription without Retain As Published.
    assert!(!w.expect_message(watcher, "will/c", "offline").retain);
    assert_eq!(
        w.broker.retained_payload("will/c").as_deref(),
        Some(&b"offline"[..])
    );

    let late = w.connect(v311("late"));
    w.send(late, subscribe(1, &[("will/+", 0)]));
    w.expect_suback(late);
    assert!(w.expect_message(late, "will/c", "offline").retain);
}

#[test]
fn will_delay_publishes_after_the_delay() {
    let (mut w, watcher) = watched();
    let c = w.connect(v5("c").expiry(60).will(will("will/c", "late").delay(10)));
    w.drop_link(c);
    w.advance(Duration::from_millis(9_999));
    w.expect_idle(watcher);
    w.advance(Duration::from_millis(1));
    w.expect_message(watcher, "will/c", "late");
    w.advance_secs(100);
    w.expect_idle(watcher);
}

#[test]
fn will_delay_is_cancelled_by_a_reconnect_in_time() {
    let (mut w, watcher) = watched();
    let c = w.connect(
        v5("c")
            .clean(false)
            .expiry(60)
            .will(will("will/c", "x").delay(10)),
    );
    w.drop_link(c);
    w.advance_secs(9);
    let c = w.connect(v5("c").clean(false).expiry(60));
    w.advance_secs(60);
    w.expect_idle(watcher);
    w.expect_idle(c);
}

#[test]
fn will_delay_is_cut_short_when_the_session_ends_first() {
    let (mut w, watcher) = watched();
    let c = w.connect(v5("c").expiry(10).will(will("will/c", "expired").delay(30)));
    w.drop_link(c);
    w.advance(Duration::from_millis(9_999));
    w.expect_idle(watcher);
    w.advance(Duration::from_millis(1));
    w.expect_message(watcher, "will/c", "expired");
    assert_eq!(w.broker.sessions(), 1, "only the watcher's");

    // A session that ends with its connection sends the will at once.
    let c = w.connect(v5("d").will(will("will/d", "now").delay(30)));
    w.drop_link(c);
    w.expect_message(watcher, "will/d", "now");
}

#[test]
fn will_delay_is_cut_short_by_a_disconnect_that_ends_the_session() {
    let (mut w, watcher) = watched();
    let c = w.connect(v5("c").expiry(60).will(will("will/c", "bye").delay(30)));
    // DISCONNECT 0x04 with Session Expiry 0: the session ends now, and with it the delay.
    let mut d = mqtt_core::packet::Disconnect {
        reason_code: ReasonCode::DisconnectWithWill,
        ..Default::default()
    };
    d.properties.session_expiry_interval = Some(0);
    w.send(c, mqtt_core::Packet::Disconnect(Box::new(d)));
    w.expect_closed(c);
    w.expect_message(watcher, "will/c", "bye");
    assert_eq!(w.peer(watcher).version, ProtocolVersion::V5);
}

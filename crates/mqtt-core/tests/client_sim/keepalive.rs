//! Keep alive: PINGREQ when idle [MQTT-3.1.2-20], a dead link when it goes unanswered.

use std::time::Duration;

use mqtt_core::client::{ClientEvent, ClientOptions, DisconnectReason};
use mqtt_core::packet::ConnAckProperties;
use mqtt_core::{Packet, QoS};

use crate::peer::Scripted;

fn with_keep_alive(secs: u64) -> ClientOptions {
    let mut o = ClientOptions::new("c");
    o.keep_alive = Duration::from_secs(secs);
    o
}

#[test]
fn pingreq_after_keep_alive_idle_and_pingresp_keeps_the_link() {
    let mut s = Scripted::connected(with_keep_alive(10));
    let start = s.elapsed();
    assert_eq!(
        s.client.poll_timeout(),
        Some(s.now + Duration::from_secs(10))
    );
    // An early timeout is a no-op.
    s.client.handle_timeout(s.now + Duration::from_secs(9));
    s.drain();
    assert_eq!(s.sent(), vec![]);
    s.advance_secs(10);
    assert_eq!(s.sent(), vec![Packet::PingReq]);
    assert_eq!(s.elapsed() - start, Duration::from_secs(10));
    s.advance_secs(3);
    s.send(Packet::PingResp);
    // Next ping a keep alive after the PINGREQ was sent (the last send).
    s.advance_secs(6);
    assert_eq!(s.sent(), vec![]);
    s.advance_secs(1);
    assert_eq!(s.sent(), vec![Packet::PingReq]);
    assert_eq!(s.events(), vec![]);
    assert!(s.client.is_connected());
}

#[test]
fn unanswered_pingreq_is_a_dead_link() {
    let mut s = Scripted::connected(with_keep_alive(10));
    s.advance_secs(10);
    assert_eq!(s.sent(), vec![Packet::PingReq]);
    s.advance_secs(9);
    assert_eq!(s.events(), vec![]);
    s.advance_secs(1);
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::KeepAliveTimeout
        }]
    );
    // Nothing is sent to a dead link, and no timer runs any more.
    assert_eq!(s.sent(), vec![]);
    assert_eq!(s.client.poll_timeout(), None);
}

#[test]
fn sending_alone_does_not_hide_a_silent_server() {
    let mut s = Scripted::connected(with_keep_alive(10));
    // QoS 0 every 4 s: the client is never idle in sending, but hears nothing back.
    for _ in 0..3 {
        s.advance_secs(4);
        s.publish("t", "x", QoS::AtMostOnce);
    }
    let sent = s.sent();
    assert!(sent.contains(&Packet::PingReq), "{sent:?}");
    s.advance_secs(20);
    assert!(s.events().contains(&ClientEvent::Disconnected {
        reason: DisconnectReason::KeepAliveTimeout
    }));
}

#[test]
fn server_keep_alive_replaces_the_clients() {
    let mut s = Scripted::connected_with(
        with_keep_alive(60),
        ConnAckProperties {
            server_keep_alive: Some(5),
            ..Default::default()
        },
    );
    s.advance_secs(5);
    assert_eq!(s.sent(), vec![Packet::PingReq]);
}

#[test]
fn keep_alive_zero_runs_no_timer() {
    let mut s = Scripted::connected(with_keep_alive(0));
    assert_eq!(s.client.poll_timeout(), None);
    s.advance_secs(3600);
    assert_eq!(s.sent(), vec![]);
    assert!(s.client.is_connected());
}

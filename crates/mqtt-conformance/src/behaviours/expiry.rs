//! 5.0 expiry: the Session Expiry Interval (granted, capped, changed at DISCONNECT) and the
//! Message Expiry Interval (queued and retained messages, counted down on delivery).

use super::prelude::*;
use crate::harness::{marker, MARKER};

/// Options for a 5.0 session with `expiry` seconds.
fn expiring(id: &str, expiry: u32) -> mqtt_core::client::ClientOptions {
    let mut o = persistent(id, V5);
    o.connect_properties.session_expiry_interval = Some(expiry);
    o
}

/// A session is discarded once its Session Expiry Interval has passed after the connection
/// ended [MQTT-3.1.2-23]: reconnecting then finds no session.
pub fn session_expires_after_its_interval(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(expiring("s", 1))?;
    s.subscribe("t", QoS::AtLeastOnce)?;
    s.disconnect()?;
    std::thread::sleep(Duration::from_millis(1600));
    let mut s = cx.client(expiring("s", 1))?;
    ensure!(
        !s.session_present,
        "session still present 1.6 s after a 1 s expiry"
    );
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("t", "x", QoS::AtLeastOnce)?;
    marker(&mut publisher, &mut s).map_err(|f| f.context("the expired subscription"))?;
    cx.finish()
}

/// A reconnection within the interval finds the session, subscriptions and all.
pub fn session_survives_a_reconnect_within_its_interval(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(expiring("s", 2))?;
    s.subscribe("t", QoS::AtLeastOnce)?;
    s.disconnect()?;
    let mut s = cx.client(expiring("s", 2))?;
    ensure!(s.session_present, "session gone within its 2 s expiry");
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("t", "x", QoS::AtLeastOnce)?;
    s.expect_message("t", "x")?;
    cx.finish()
}

/// DISCONNECT may change the Session Expiry Interval (spec 3.14.2.2.2): both sessions
/// have 300 s at CONNECT; the one given 1 s at DISCONNECT is gone after 1.6 s, the other
/// is kept.
pub fn disconnect_can_shorten_the_session_expiry(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let short = cx.client(expiring("short", 300))?;
    short.disconnect_with(ReasonCode::Success, Some(1))?;
    let kept = cx.client(expiring("kept", 300))?;
    kept.disconnect()?;
    std::thread::sleep(Duration::from_millis(1600));
    let short = cx.client(expiring("short", 300))?;
    ensure!(
        !short.session_present,
        "the session outlived the expiry set at DISCONNECT"
    );
    short.disconnect()?;
    let kept = cx.client(expiring("kept", 300))?;
    ensure!(
        kept.session_present,
        "the session left at 300 s did not survive 1.6 s"
    );
    kept.disconnect()?;
    cx.finish()
}

/// A broker with a maximum session expiry says the one it grants in CONNACK
/// (spec 3.2.2.3.2).
pub fn session_expiry_is_capped_by_the_broker(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cfg = BrokerConfig {
        max_session_expiry: 1,
        ..config()
    };
    let cx = Ctx::start(b, c, cfg)?;
    let mut connect = raw::connect(V5, "s");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(3600);
    let (peer, ack) = cx.raw(connect.clone())?;
    ensure_eq!(
        ack.properties.session_expiry_interval,
        Some(1),
        "CONNACK Session Expiry Interval"
    );
    peer.disconnect()?;
    std::thread::sleep(Duration::from_millis(1600));
    let (peer, ack) = cx.raw(connect)?;
    ensure!(
        !ack.session_present,
        "the session outlived the broker's 1 s cap"
    );
    peer.disconnect()?;
    cx.finish()
}

/// A client whose session had expiry 0 may not set one at DISCONNECT: protocol error
/// [MQTT-3.14.2-2].
pub fn disconnect_cannot_set_an_expiry_after_zero(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut peer = cx.raw_as(V5, "c")?;
    let mut d = mqtt_core::packet::Disconnect::default();
    d.properties.session_expiry_interval = Some(60);
    peer.send(&Packet::Disconnect(Box::new(d)))?;
    peer.expect_disconnect(ReasonCode::ProtocolError)?;
    cx.finish()
}

/// A queued message whose Message Expiry Interval passed while the subscriber was offline
/// is not delivered [MQTT-3.3.2-5]; one without expiry is.
pub fn expired_queued_messages_are_dropped(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(expiring("s", 60))?;
    s.subscribe("t", QoS::AtLeastOnce)?;
    s.disconnect()?;
    let mut publisher = cx.client(options("pub", V5))?;
    let short = PublishProperties {
        message_expiry_interval: Some(1),
        ..PublishProperties::default()
    };
    publisher.publish_with("t", "short", QoS::AtLeastOnce, short)?;
    publisher.send("t", "forever", QoS::AtLeastOnce)?;
    std::thread::sleep(Duration::from_millis(1600));
    let mut s = cx.client(expiring("s", 60))?;
    ensure!(s.session_present, "session not present");
    s.expect_message("t", "forever")
        .map_err(|f| f.context("the expired message must be dropped, the other delivered"))?;
    cx.finish()
}

/// The Message Expiry Interval a subscriber receives is what is left of it [MQTT-3.3.2-6].
pub fn message_expiry_is_counted_down(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut live = cx.client(options("live", V5))?;
    live.subscribe("t", QoS::AtLeastOnce)?;
    let mut s = cx.client(expiring("s", 60))?;
    s.subscribe("t", QoS::AtLeastOnce)?;
    s.disconnect()?;
    let mut publisher = cx.client(options("pub", V5))?;
    let props = PublishProperties {
        message_expiry_interval: Some(10),
        ..PublishProperties::default()
    };
    publisher.publish_with("t", "x", QoS::AtLeastOnce, props)?;
    let now = live.expect_message("t", "x")?;
    ensure!(
        now.properties
            .message_expiry_interval
            .is_some_and(|e| (9..=10).contains(&e)),
        "live delivery: expiry {:?}, expected 10 (or 9)",
        now.properties.message_expiry_interval
    );
    std::thread::sleep(Duration::from_millis(2100));
    let mut s = cx.client(expiring("s", 60))?;
    let later = s.expect_message("t", "x")?;
    ensure!(
        later
            .properties
            .message_expiry_interval
            .is_some_and(|e| e <= 8),
        "after 2 s queued: expiry {:?}, expected at most 8",
        later.properties.message_expiry_interval
    );
    cx.finish()
}

/// A retained message expires too: delivered with what is left before, not at all after.
pub fn retained_message_expires(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    let props = PublishProperties {
        message_expiry_interval: Some(1),
        ..PublishProperties::default()
    };
    let request = msg("r", "brief", QoS::AtLeastOnce)?
        .with_retain(true)
        .with_properties(props);
    publisher.publish_request(request)?;
    let mut early = cx.client(options("early", V5))?;
    early.subscribe("r", QoS::AtLeastOnce)?;
    let got = early.expect_message("r", "brief")?;
    ensure!(
        got.properties
            .message_expiry_interval
            .is_some_and(|e| e <= 1),
        "retained expiry {:?}, expected at most 1",
        got.properties.message_expiry_interval
    );
    std::thread::sleep(Duration::from_millis(1600));
    let mut late = cx.client(options("late", V5))?;
    late.subscribe(MARKER, QoS::AtLeastOnce)?;
    late.subscribe("r", QoS::AtLeastOnce)?;
    marker(&mut publisher, &mut late).map_err(|f| f.context("an expired retained message"))?;
    cx.finish()
}

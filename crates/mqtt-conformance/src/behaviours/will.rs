//! Wills: published when a connection ends without a normal DISCONNECT [MQTT-3.1.2-8],
//! dropped after one [MQTT-3.1.2-10], retained when asked, kept QoS and properties, and the
//! 5.0 Will Delay Interval with what cancels or shortens it.

use super::prelude::*;
use crate::harness::{marker, MARKER};

/// A will on `topic` with `payload`.
fn will(topic: &str, payload: &str, qos: QoS, retain: bool) -> Result<Will, Failure> {
    Ok(Will {
        topic: raw::topic_of(topic)?,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        properties: WillProperties::default(),
    })
}

/// A watcher subscribed to `will/#` at QoS 2 and to the marker topic.
fn watcher(cx: &Ctx<'_>) -> Result<Client, Failure> {
    let mut w = cx.client(options("watcher", V5))?;
    w.subscribe("will/#", QoS::ExactlyOnce)?;
    w.subscribe(MARKER, QoS::AtLeastOnce)?;
    Ok(w)
}

/// A link lost without DISCONNECT publishes the will [MQTT-3.1.2-8], in both versions.
pub fn will_is_published_when_the_link_is_lost(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    for version in [V311, V5] {
        let mut o = options(&format!("dies-{version}"), version);
        o.will = Some(will("will/x", "gone", QoS::AtLeastOnce, false)?);
        let client = cx.severable(o)?;
        client.kill()?;
        let got = w
            .expect_message("will/x", "gone")
            .map_err(|f| f.context(format!("{version}: the will")))?;
        ensure_eq!(got.qos, QoS::AtLeastOnce, "{version}: will QoS");
        ensure!(!got.retain, "{version}: will delivered with RETAIN");
    }
    cx.finish()
}

/// A normal DISCONNECT deletes the will [MQTT-3.1.2-10], in both versions.
pub fn no_will_after_a_normal_disconnect(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    let mut publisher = cx.client(options("pub", V5))?;
    for version in [V311, V5] {
        let mut o = options(&format!("polite-{version}"), version);
        o.will = Some(will("will/x", "should not", QoS::AtLeastOnce, false)?);
        cx.client(o)?.disconnect()?;
    }
    marker(&mut publisher, &mut w).map_err(|f| f.context("a will after a normal DISCONNECT"))?;
    cx.finish()
}

/// 5.0 DISCONNECT 0x04 (Disconnect with Will Message) publishes the will.
pub fn disconnect_with_will_message_publishes_it(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    let mut o = options("leaver", V5);
    o.will = Some(will("will/x", "on purpose", QoS::AtMostOnce, false)?);
    cx.client(o)?
        .disconnect_with(ReasonCode::DisconnectWithWill, None)?;
    w.expect_message("will/x", "on purpose")?;
    cx.finish()
}

/// A keep-alive timeout publishes the will (the link counts as lost).
pub fn will_is_published_on_keep_alive_timeout(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    let mut connect = raw::connect(V311, "silent");
    connect.keep_alive = 1;
    connect.will = Some(will("will/x", "silent", QoS::AtMostOnce, false)?);
    let started = Instant::now();
    let (mut peer, _) = cx.raw(connect)?;
    w.expect_message("will/x", "silent")?;
    let elapsed = started.elapsed();
    ensure!(
        elapsed >= Duration::from_millis(1200),
        "will published after {elapsed:?}, before the keep alive ran out"
    );
    peer.expect_closed()?;
    cx.finish()
}

/// A connection closed for a protocol error publishes the will.
pub fn will_is_published_on_a_protocol_error(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    let mut connect = raw::connect(V5, "broken");
    connect.will = Some(will("will/x", "broken", QoS::AtMostOnce, false)?);
    let (mut peer, _) = cx.raw(connect)?;
    // SUBACK is for servers to send.
    peer.send_bytes(&raw::frame(0x90, &[0, 1, 0, 0]))?;
    peer.expect_disconnect(ReasonCode::ProtocolError)?;
    w.expect_message("will/x", "broken")?;
    cx.finish()
}

/// A will with RETAIN is stored as a retained message for later subscribers.
pub fn retained_will_is_kept_for_later_subscribers(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut o = options("dies", V311);
    o.will = Some(will("will/status", "offline", QoS::AtLeastOnce, true)?);
    let client = cx.severable(o)?;
    let mut w = watcher(&cx)?;
    client.kill()?;
    w.expect_message("will/status", "offline")?;
    let mut late = cx.client(options("late", V311))?;
    late.subscribe("will/+", QoS::AtLeastOnce)?;
    let got = late.expect_message("will/status", "offline")?;
    ensure!(
        got.retain,
        "retained will delivered without RETAIN to a new subscription"
    );
    cx.finish()
}

/// The will keeps its QoS and, in 5.0, its properties (Content Type, User Properties,
/// Message Expiry) (spec 3.1.3.2).
pub fn will_qos_and_properties_are_kept(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    let mut wl = will("will/p", "bye", QoS::ExactlyOnce, false)?;
    wl.properties.content_type = Some("text/plain".into());
    wl.properties.user_properties = vec![UserProperty::new("k", "v")];
    wl.properties.message_expiry_interval = Some(300);
    let mut o = options("dies", V5);
    o.will = Some(wl);
    cx.severable(o)?.kill()?;
    let got = w.expect_message("will/p", "bye")?;
    ensure_eq!(got.qos, QoS::ExactlyOnce, "will QoS");
    ensure_eq!(
        got.properties.content_type.as_deref(),
        Some("text/plain"),
        "Content Type"
    );
    ensure_eq!(
        got.properties.user_properties,
        [UserProperty::new("k", "v")],
        "User Properties"
    );
    ensure!(
        got.properties
            .message_expiry_interval
            .is_some_and(|e| (295..=300).contains(&e)),
        "Message Expiry Interval {:?}, expected about 300",
        got.properties.message_expiry_interval
    );
    cx.finish()
}

/// A client whose will has a Will Delay Interval and whose session outlives the link.
fn delayed(id: &str, expiry: u32, delay: u32) -> Result<mqtt_core::client::ClientOptions, Failure> {
    let mut o = persistent(id, V5);
    o.connect_properties.session_expiry_interval = Some(expiry);
    let mut wl = will("will/d", "late", QoS::AtLeastOnce, false)?;
    wl.properties.will_delay_interval = Some(delay);
    o.will = Some(wl);
    Ok(o)
}

/// 5.0: the will waits for its Will Delay Interval after the link is lost [MQTT-3.1.3-9].
pub fn will_delay_publishes_after_the_delay(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    let client = cx.severable(delayed("delayed", 60, 1)?)?;
    let lost = Instant::now();
    client.kill()?;
    w.expect_message("will/d", "late")?;
    let elapsed = lost.elapsed();
    ensure!(
        elapsed >= Duration::from_millis(900),
        "delayed will published after {elapsed:?}, before its 1 s delay"
    );
    cx.finish()
}

/// 5.0: a reconnection within the Will Delay Interval cancels the will [MQTT-3.1.3-9].
pub fn will_delay_is_cancelled_by_a_reconnect(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    cx.severable(delayed("back", 60, 1)?)?.kill()?;
    let mut again = persistent("back", V5);
    again.connect_properties.session_expiry_interval = Some(60);
    let back = cx.client(again)?;
    ensure!(
        back.session_present,
        "session not present on a reconnect in time"
    );
    w.expect_quiet(Duration::from_millis(1500))
        .map_err(|f| f.context("the will of a client that came back in time"))?;
    back.disconnect()?;
    cx.finish()
}

/// 5.0: a will delayed longer than the session lasts is published when the session ends
/// (spec 3.1.3.2.2).
pub fn will_delay_is_cut_short_when_the_session_ends(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    let client = cx.severable(delayed("short", 1, 30)?)?;
    let lost = Instant::now();
    client.kill()?;
    w.expect_message("will/d", "late")?;
    let elapsed = lost.elapsed();
    ensure!(
        elapsed >= Duration::from_millis(900),
        "will published after {elapsed:?}, before the 1 s session expiry"
    );
    cx.finish()
}

/// A takeover ends the old connection without DISCONNECT: its will is published
/// [MQTT-3.1.4-3].
pub fn takeover_publishes_the_old_will(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut w = watcher(&cx)?;
    let mut o = persistent("same", V311);
    o.will = Some(will("will/same", "taken over", QoS::AtLeastOnce, false)?);
    let mut old = cx.client(o)?;
    let new = cx.client(persistent("same", V311))?;
    w.expect_message("will/same", "taken over")?;
    old.expect_disconnected()?;
    new.disconnect()?;
    cx.finish()
}

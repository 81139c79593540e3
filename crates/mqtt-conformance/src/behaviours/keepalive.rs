//! Keep alive: a silent client is closed after one and a half keep-alive periods
//! [MQTT-3.1.2-24], any packet resets the timer, PINGREQ is answered [MQTT-3.12.4-1], and
//! a 5.0 broker may impose Server Keep Alive [MQTT-3.2.2-21].

use super::prelude::*;

/// The broker must close a silent connection with keep alive 1 s at 1.5 s: not before
/// about 1.5 s (less a little for when the clock started), and not much after.
fn closed_in_time(elapsed: Duration) -> Outcome {
    ensure!(
        elapsed >= Duration::from_millis(1300),
        "closed after {elapsed:?}: before one and a half keep-alive periods (1.5 s)"
    );
    ensure!(
        elapsed <= Duration::from_millis(3500),
        "closed only after {elapsed:?}: the keep alive of 1 s is enforced at 1.5 s"
    );
    Ok(())
}

/// A silent 3.1.1 client with keep alive 1 s is closed at 1.5 s [MQTT-3.1.2-24].
pub fn silent_client_is_closed_after_one_and_a_half_keep_alives(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V311, "silent");
    connect.keep_alive = 1;
    let started = Instant::now();
    let (mut peer, _) = cx.raw(connect)?;
    peer.expect_closed()?;
    closed_in_time(started.elapsed())?;
    cx.finish()
}

/// A silent 5.0 client hears DISCONNECT 0x8D (Keep Alive timeout) before the close.
pub fn silent_v5_client_is_told_keep_alive_timeout(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V5, "silent");
    connect.keep_alive = 1;
    let started = Instant::now();
    let (mut peer, _) = cx.raw(connect)?;
    peer.expect_disconnect(ReasonCode::KeepAliveTimeout)?;
    closed_in_time(started.elapsed())?;
    cx.finish()
}

/// PINGREQ is answered with PINGRESP [MQTT-3.12.4-1], and pinging every 0.5 s keeps a
/// connection with keep alive 1 s open well past 1.5 s.
pub fn pingreq_is_answered_and_keeps_the_connection(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V311, "pinger");
    connect.keep_alive = 1;
    let (mut peer, _) = cx.raw(connect)?;
    for _ in 0..5 {
        peer.expect_silence(Duration::from_millis(500))?;
        peer.ping()?;
    }
    peer.disconnect()?;
    cx.finish()
}

/// Any packet resets the keep-alive timer, not only PINGREQ.
pub fn any_packet_resets_the_keep_alive(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V311, "talker");
    connect.keep_alive = 1;
    let (mut peer, _) = cx.raw(connect)?;
    for i in 0..5 {
        peer.expect_silence(Duration::from_millis(500))?;
        peer.send(&Packet::Publish(raw::publish(
            "chatter",
            format!("{i}"),
            QoS::AtMostOnce,
            0,
        )?))?;
    }
    peer.ping()?;
    peer.disconnect()?;
    cx.finish()
}

/// A 5.0 client asking for more than the broker's maximum keep alive is told Server Keep
/// Alive in CONNACK [MQTT-3.2.2-21] and held to it.
pub fn server_keep_alive_replaces_a_larger_one_v5(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cfg = BrokerConfig {
        max_keep_alive: 1,
        ..config()
    };
    let cx = Ctx::start(b, c, cfg)?;
    let mut connect = raw::connect(V5, "greedy");
    connect.keep_alive = 60;
    let started = Instant::now();
    let (mut peer, ack) = cx.raw(connect)?;
    ensure_eq!(
        ack.properties.server_keep_alive,
        Some(1),
        "Server Keep Alive"
    );
    peer.expect_disconnect(ReasonCode::KeepAliveTimeout)?;
    closed_in_time(started.elapsed())?;
    cx.finish()
}

/// An adapter client with keep alive 1 s, idle for 2.5 s, is still connected and served:
/// it pings, and the broker answers.
pub fn adapter_client_keeps_itself_alive(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut o = options("idle", V5);
    o.keep_alive = Duration::from_secs(1);
    let mut idle = cx.client(o)?;
    idle.subscribe("t", QoS::AtLeastOnce)?;
    idle.expect_quiet(Duration::from_millis(2500))
        .map_err(|f| f.context("an idle client with keep alive 1 s"))?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("t", "still there", QoS::AtLeastOnce)?;
    idle.expect_message("t", "still there")?;
    idle.disconnect()?;
    cx.finish()
}

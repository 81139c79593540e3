//! Sessions: clean against persistent, what survives a disconnection, messages queued
//! while offline, Session Present, and 5.0 Clean Start with Session Expiry 0.

use super::prelude::*;
use crate::harness::{marker, MARKER};

/// A clean session forgets its subscriptions when the connection ends [MQTT-3.1.2-6]
/// (5.0: Session Expiry 0).
pub fn clean_session_forgets_subscriptions(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    for version in [V311, V5] {
        let id = format!("s-{version}");
        let mut s = cx.client(options(&id, version))?;
        s.subscribe("t", QoS::AtLeastOnce)?;
        s.disconnect()?;
        let mut s = cx.client(options(&id, version))?;
        ensure!(
            !s.session_present,
            "{version}: Session Present after a clean session"
        );
        s.subscribe(MARKER, QoS::AtLeastOnce)?;
        publisher.send("t", "x", QoS::AtLeastOnce)?;
        marker(&mut publisher, &mut s)
            .map_err(|f| f.context(format!("{version}: a clean session kept its subscription")))?;
        s.disconnect()?;
    }
    cx.finish()
}

/// A persistent session keeps its subscriptions across connections [MQTT-3.1.2-4]
/// [MQTT-3.2.2-2].
pub fn persistent_session_keeps_subscriptions(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    for version in [V311, V5] {
        let id = format!("s-{version}");
        let mut s = cx.client(persistent(&id, version))?;
        s.subscribe("a", QoS::AtLeastOnce)?;
        s.subscribe("b/#", QoS::AtMostOnce)?;
        s.disconnect()?;
        let mut s = cx.client(persistent(&id, version))?;
        ensure!(
            s.session_present,
            "{version}: Session Present 0 for a kept session"
        );
        publisher.send("a", "1", QoS::AtLeastOnce)?;
        publisher.send("b/c", "2", QoS::AtLeastOnce)?;
        let got = s.payloads(2)?;
        ensure_eq!(
            got,
            ["1", "2"],
            "{version}: messages on the kept subscriptions"
        );
        s.disconnect()?;
    }
    cx.finish()
}

/// QoS 1 and 2 messages for an offline persistent session are queued and delivered in
/// order on resume; QoS 0 ones need not be (and this broker drops them) [MQTT-3.1.2-5].
pub fn messages_queued_offline_arrive_on_resume(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V311))?;
    for version in [V311, V5] {
        let id = format!("s-{version}");
        let mut s = cx.client(persistent(&id, version))?;
        s.subscribe("q/+", QoS::ExactlyOnce)?;
        s.subscribe(MARKER, QoS::AtLeastOnce)?;
        s.disconnect()?;
        publisher.send("q/a", "1", QoS::AtLeastOnce)?;
        publisher.send("q/b", "2", QoS::ExactlyOnce)?;
        publisher.send("q/a", "qos0", QoS::AtMostOnce)?;
        publisher.send("q/b", "3", QoS::AtLeastOnce)?;
        let mut s = cx.client(persistent(&id, version))?;
        ensure!(s.session_present, "{version}: Session Present 0 on resume");
        let mut got = Vec::new();
        for _ in 0..3 {
            let p = s.expect_publish()?;
            got.push((String::from_utf8_lossy(&p.payload).into_owned(), p.qos));
        }
        ensure_eq!(
            got,
            [
                ("1".to_string(), QoS::AtLeastOnce),
                ("2".to_string(), QoS::ExactlyOnce),
                ("3".to_string(), QoS::AtLeastOnce),
            ],
            "{version}: queued messages"
        );
        marker(&mut publisher, &mut s)
            .map_err(|f| f.context(format!("{version}: a QoS 0 message was queued")))?;
        s.disconnect()?;
    }
    cx.finish()
}

/// Session Present is 1 only when a session was kept [MQTT-3.2.2-2], 0 for a new one
/// [MQTT-3.2.2-3] and after Clean Session / Clean Start [MQTT-3.2.2-1].
pub fn session_present_reflects_a_kept_session(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for version in [V311, V5] {
        let id = format!("c-{version}");
        let first = cx.client(persistent(&id, version))?;
        ensure!(
            !first.session_present,
            "{version}: present before any session"
        );
        first.disconnect()?;
        let second = cx.client(persistent(&id, version))?;
        ensure!(
            second.session_present,
            "{version}: not present for a kept session"
        );
        second.disconnect()?;
        let mut clean = persistent(&id, version);
        clean.clean_start = true;
        let third = cx.client(clean)?;
        ensure!(
            !third.session_present,
            "{version}: present after a clean start"
        );
        third.disconnect()?;
    }
    cx.finish()
}

/// 5.0 Clean Start discards the old session [MQTT-3.1.2-4] but the new one is kept when
/// its Session Expiry says so.
pub fn clean_start_discards_the_old_session_v5(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(persistent("s", V5))?;
    s.subscribe("old", QoS::AtLeastOnce)?;
    s.disconnect()?;
    let mut clean = persistent("s", V5);
    clean.clean_start = true;
    let s = cx.client(clean)?;
    ensure!(!s.session_present, "Session Present with Clean Start");
    s.disconnect()?;
    let mut s = cx.client(persistent("s", V5))?;
    ensure!(s.session_present, "the new session was not kept");
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("old", "x", QoS::AtLeastOnce)?;
    marker(&mut publisher, &mut s).map_err(|f| f.context("the discarded subscription"))?;
    cx.finish()
}

/// 5.0 with Session Expiry 0 (absent) the session ends with the connection, even with
/// Clean Start 0.
pub fn session_expiry_zero_ends_with_the_connection_v5(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut o = options("s", V5);
    o.clean_start = false;
    let mut s = cx.client(o.clone())?;
    s.subscribe("t", QoS::AtLeastOnce)?;
    s.disconnect()?;
    let s = cx.client(o)?;
    ensure!(
        !s.session_present,
        "a session with expiry 0 outlived its connection"
    );
    s.disconnect()?;
    cx.finish()
}

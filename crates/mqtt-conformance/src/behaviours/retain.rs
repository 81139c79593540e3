//! Retained messages: set, replace, clear; the RETAIN flag on delivery; 5.0 Retain As
//! Published and Retain Handling; wildcards, QoS, shared subscriptions, and the switch.

use super::prelude::*;
use crate::harness::{marker, MARKER};

/// A subscription to `filter` at `qos` with 5.0 options.
fn sub_opts(
    filter: &str,
    qos: QoS,
    retain_handling: RetainHandling,
    retain_as_published: bool,
) -> Result<Subscription, Failure> {
    let mut s = sub(filter, qos)?;
    s.options.retain_handling = retain_handling;
    s.options.retain_as_published = retain_as_published;
    Ok(s)
}

/// Subscribes with the given options and expects the QoS granted.
fn subscribe_opts(client: &mut Client, s: Subscription) -> Outcome {
    let qos = s.options.qos;
    let codes = client.subscribe_with(vec![s], SubscribeProperties::default())?;
    ensure_eq!(codes, [granted(qos)], "SUBACK");
    Ok(())
}

/// A new subscription gets the retained message with RETAIN set [MQTT-3.3.1-6] (3.1.1:
/// [MQTT-3.3.1-8]), in both versions.
pub fn retained_message_is_delivered_on_subscribe(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("r/1", "kept", QoS::AtLeastOnce)?;
    for version in [V311, V5] {
        let mut s = cx.client(options(&format!("s-{version}"), version))?;
        s.subscribe("r/1", QoS::AtLeastOnce)?;
        let got = s.expect_message("r/1", "kept")?;
        ensure!(
            got.retain,
            "{version}: retained message delivered without RETAIN"
        );
        s.disconnect()?;
    }
    cx.finish()
}

/// A new retained message replaces the old one [MQTT-3.3.1-5].
pub fn retained_message_is_replaced_by_a_newer_one(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V311))?;
    publisher.retain("r", "v1", QoS::AtLeastOnce)?;
    publisher.retain("r", "v2", QoS::AtLeastOnce)?;
    let mut s = cx.client(options("s", V311))?;
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    s.subscribe("r", QoS::AtLeastOnce)?;
    s.expect_message("r", "v2")?;
    marker(&mut publisher, &mut s).map_err(|f| f.context("more than the newest retained"))?;
    cx.finish()
}

/// A retained message with an empty payload clears the topic [MQTT-3.3.1-6] and is not
/// stored [MQTT-3.3.1-7]; subscribers there are still get it.
pub fn empty_retained_payload_clears_the_topic(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("r", "v1", QoS::AtLeastOnce)?;
    let mut live = cx.client(options("live", V5))?;
    live.subscribe("r", QoS::AtLeastOnce)?;
    live.expect_message("r", "v1")?;
    publisher.retain("r", "", QoS::AtLeastOnce)?;
    live.expect_message("r", "")
        .map_err(|f| f.context("the clearing message to a live subscriber"))?;
    let mut late = cx.client(options("late", V5))?;
    late.subscribe(MARKER, QoS::AtLeastOnce)?;
    late.subscribe("r", QoS::AtLeastOnce)?;
    marker(&mut publisher, &mut late).map_err(|f| f.context("a cleared retained message"))?;
    cx.finish()
}

/// A message published without RETAIN neither replaces nor clears the retained message
/// [MQTT-3.3.1-8].
pub fn non_retained_publish_leaves_the_retained_message(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("r", "kept", QoS::AtMostOnce)?;
    publisher.send("r", "passing", QoS::AtLeastOnce)?;
    publisher.send("r", "", QoS::AtLeastOnce)?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe("r", QoS::AtLeastOnce)?;
    s.expect_message("r", "kept")?;
    cx.finish()
}

/// A retained message published while a subscription exists is delivered with RETAIN 0
/// (3.1.1 [MQTT-3.3.1-9]; 5.0 without Retain As Published [MQTT-3.3.1-12]).
pub fn live_messages_have_retain_cleared(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut old = cx.client(options("old", V311))?;
    old.subscribe("t", QoS::AtLeastOnce)?;
    let mut five = cx.client(options("five", V5))?;
    five.subscribe("t", QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("t", "r", QoS::AtLeastOnce)?;
    for (name, s) in [("3.1.1", &mut old), ("5.0", &mut five)] {
        let got = s.expect_message("t", "r")?;
        ensure!(!got.retain, "{name}: live message delivered with RETAIN");
    }
    cx.finish()
}

/// 5.0 Retain As Published keeps the RETAIN flag of live messages [MQTT-3.3.1-13].
pub fn retain_as_published_keeps_the_flag(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut rap = cx.client(options("rap", V5))?;
    subscribe_opts(
        &mut rap,
        sub_opts("t", QoS::AtLeastOnce, RetainHandling::SendAtSubscribe, true)?,
    )?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("t", "retained", QoS::AtLeastOnce)?;
    publisher.send("t", "plain", QoS::AtLeastOnce)?;
    ensure!(
        rap.expect_message("t", "retained")?.retain,
        "Retain As Published: RETAIN cleared"
    );
    ensure!(
        !rap.expect_message("t", "plain")?.retain,
        "Retain As Published: RETAIN set on a plain message"
    );
    cx.finish()
}

/// Retain Handling 0 sends the retained messages at every SUBSCRIBE, even one replacing
/// a subscription [MQTT-3.3.1-9].
pub fn retain_handling_0_sends_at_every_subscribe(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("r", "kept", QoS::AtLeastOnce)?;
    let mut s = cx.client(options("s", V5))?;
    for round in 0..2 {
        subscribe_opts(
            &mut s,
            sub_opts(
                "r",
                QoS::AtLeastOnce,
                RetainHandling::SendAtSubscribe,
                false,
            )?,
        )?;
        s.expect_message("r", "kept")
            .map_err(|f| f.context(format!("subscribe #{}", round + 1)))?;
    }
    cx.finish()
}

/// Retain Handling 1 sends the retained messages only if the subscription is new
/// [MQTT-3.3.1-10].
pub fn retain_handling_1_sends_only_for_a_new_subscription(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("r", "kept", QoS::AtLeastOnce)?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    let rh1 = sub_opts("r/#", QoS::AtLeastOnce, RetainHandling::SendIfNew, false)?;
    subscribe_opts(&mut s, rh1.clone())?;
    s.expect_message("r", "kept")?;
    subscribe_opts(&mut s, rh1)?;
    marker(&mut publisher, &mut s)
        .map_err(|f| f.context("Retain Handling 1 on an existing subscription"))?;
    cx.finish()
}

/// Retain Handling 2 never sends retained messages [MQTT-3.3.1-11].
pub fn retain_handling_2_never_sends(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("r", "kept", QoS::AtLeastOnce)?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    subscribe_opts(
        &mut s,
        sub_opts("r", QoS::AtLeastOnce, RetainHandling::DoNotSend, false)?,
    )?;
    marker(&mut publisher, &mut s).map_err(|f| f.context("Retain Handling 2"))?;
    cx.finish()
}

/// A wildcard subscription gets every retained message it matches, and only those.
pub fn retained_messages_match_wildcards(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V311))?;
    for t in ["s/1", "s/2", "s/2/x", "other"] {
        publisher.retain(t, t.to_string(), QoS::AtLeastOnce)?;
    }
    let mut s = cx.client(options("s", V311))?;
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    s.subscribe("s/+", QoS::AtLeastOnce)?;
    let mut got = Vec::new();
    for _ in 0..2 {
        let p = s.expect_publish()?;
        ensure!(p.retain, "retained {} without RETAIN", p.topic.as_str());
        got.push(p.topic.to_string());
    }
    got.sort();
    ensure_eq!(got, ["s/1", "s/2"], "retained topics matched by s/+");
    marker(&mut publisher, &mut s)
        .map_err(|f| f.context("a retained message s/+ does not match"))?;
    cx.finish()
}

/// A retained message is delivered at the lower of its QoS and the subscription's.
pub fn retained_message_takes_the_lower_qos(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("q/2", "two", QoS::ExactlyOnce)?;
    publisher.retain("q/0", "zero", QoS::AtMostOnce)?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe("q/2", QoS::AtLeastOnce)?;
    ensure_eq!(
        s.expect_message("q/2", "two")?.qos,
        QoS::AtLeastOnce,
        "QoS 2 retained, QoS 1 subscription"
    );
    s.subscribe("q/0", QoS::ExactlyOnce)?;
    ensure_eq!(
        s.expect_message("q/0", "zero")?.qos,
        QoS::AtMostOnce,
        "QoS 0 retained, QoS 2 subscription"
    );
    cx.finish()
}

/// Retained messages are not sent to shared subscriptions (5.0 spec 4.8.2).
pub fn retained_messages_are_not_sent_to_shared_subscriptions(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.retain("r", "kept", QoS::AtLeastOnce)?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    s.subscribe("$share/g/r", QoS::AtLeastOnce)?;
    marker(&mut publisher, &mut s).map_err(|f| f.context("retained to a shared subscription"))?;
    cx.finish()
}

/// With retained messages off, CONNACK says Retain Available 0 and a retained PUBLISH is
/// refused with DISCONNECT 0x9A (spec 3.2.2.3.5).
pub fn retain_unavailable_is_announced_and_enforced(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cfg = BrokerConfig {
        retain_available: false,
        ..config()
    };
    let cx = Ctx::start(b, c, cfg)?;
    let (mut p, ack) = cx.raw(raw::connect(V5, "p"))?;
    ensure_eq!(
        ack.properties.retain_available,
        Some(false),
        "Retain Available"
    );
    let mut m = raw::publish("r", "x", QoS::AtMostOnce, 0)?;
    m.retain = true;
    p.send(&Packet::Publish(m))?;
    p.expect_disconnect(ReasonCode::RetainNotSupported)?;
    cx.finish()
}

//! QoS 0, 1 and 2 both ways, the downgrade to the subscription's QoS, acknowledgements,
//! exactly-once delivery, resending on resume, and order.

use super::prelude::*;

/// One message at `qos` from an adapter publisher to an adapter subscriber at `qos`, in
/// 3.1.1 and in 5.0: the publish completes with success, the message arrives at `qos`.
fn round_trip(b: &dyn BrokerAdapter, c: &dyn ClientAdapter, qos: QoS) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for version in [V311, V5] {
        let mut subscriber = cx.client(options(&format!("sub-{version}"), version))?;
        subscriber.subscribe("q/+", qos)?;
        let mut publisher = cx.client(options(&format!("pub-{version}"), version))?;
        let code = publisher.publish("q/x", "payload", qos)?;
        ensure_eq!(code, ReasonCode::Success, "{version}: publish at {qos:?}");
        let got = subscriber.expect_message("q/x", "payload")?;
        ensure_eq!(got.qos, qos, "{version}: delivered QoS");
        ensure_eq!(
            got.packet_id.is_some(),
            qos != QoS::AtMostOnce,
            "{version}: packet id present exactly for QoS 1 and 2"
        );
        ensure!(
            !got.dup,
            "{version}: DUP on a first delivery [MQTT-3.3.1-1]"
        );
        publisher.disconnect()?;
        subscriber.disconnect()?;
    }
    cx.finish()
}

/// QoS 0 goes through, no packet id [MQTT-2.2.1-2].
pub fn qos0_is_delivered(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    round_trip(b, c, QoS::AtMostOnce)
}

/// QoS 1: PUBACK to the publisher, delivery at QoS 1 [MQTT-4.3.2-1].
pub fn qos1_is_delivered_and_acknowledged(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    round_trip(b, c, QoS::AtLeastOnce)
}

/// QoS 2: PUBREC / PUBREL / PUBCOMP with the publisher, delivery at QoS 2 [MQTT-4.3.3-1].
pub fn qos2_is_delivered_and_completed(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    round_trip(b, c, QoS::ExactlyOnce)
}

/// A message is delivered at the lower of its QoS and the subscription's [MQTT-3.8.4-8].
pub fn delivery_is_downgraded_to_the_subscription_qos(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut at0 = cx.client(options("at0", V5))?;
    at0.subscribe("d", QoS::AtMostOnce)?;
    let mut at1 = cx.client(options("at1", V311))?;
    at1.subscribe("d", QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("d", "two", QoS::ExactlyOnce)?;
    ensure_eq!(
        at0.expect_message("d", "two")?.qos,
        QoS::AtMostOnce,
        "QoS 2 to a QoS 0 subscription"
    );
    ensure_eq!(
        at1.expect_message("d", "two")?.qos,
        QoS::AtLeastOnce,
        "QoS 2 to a QoS 1 subscription"
    );
    publisher.send("d", "one", QoS::AtLeastOnce)?;
    ensure_eq!(
        at0.expect_message("d", "one")?.qos,
        QoS::AtMostOnce,
        "QoS 1 to a QoS 0 subscription"
    );
    ensure_eq!(
        at1.expect_message("d", "one")?.qos,
        QoS::AtLeastOnce,
        "QoS 1 to a QoS 1 subscription"
    );
    cx.finish()
}

/// A QoS 0 or 1 message to a QoS 2 subscription keeps its own QoS.
pub fn delivery_is_never_upgraded(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe("u", QoS::ExactlyOnce)?;
    let mut publisher = cx.client(options("pub", V311))?;
    publisher.send("u", "zero", QoS::AtMostOnce)?;
    ensure_eq!(
        s.expect_message("u", "zero")?.qos,
        QoS::AtMostOnce,
        "QoS 0 message"
    );
    publisher.send("u", "one", QoS::AtLeastOnce)?;
    ensure_eq!(
        s.expect_message("u", "one")?.qos,
        QoS::AtLeastOnce,
        "QoS 1 message"
    );
    cx.finish()
}

/// PUBACK, PUBREC and PUBCOMP answer with the packet id of the PUBLISH or PUBREL
/// [MQTT-2.2.1-5]; the broker's own PUBLISH to a raw subscriber is acknowledged and the
/// QoS 2 flow completes with PUBREL (spec 4.3.3) in both versions.
pub fn acknowledgements_carry_the_packet_id(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for version in [V311, V5] {
        let mut s = cx.raw_as(version, "s")?;
        s.subscribe("k", QoS::ExactlyOnce)?;
        let mut p = cx.raw_as(version, "p")?;
        p.send(&Packet::Publish(raw::publish(
            "k",
            "one",
            QoS::AtLeastOnce,
            7,
        )?))?;
        p.expect_ack("PUBACK", 7)?;
        p.send(&Packet::Publish(raw::publish(
            "k",
            "two",
            QoS::ExactlyOnce,
            300,
        )?))?;
        p.expect_ack("PUBREC", 300)?;
        p.send(&raw::ack("PUBREL", 300)?)?;
        p.expect_ack("PUBCOMP", 300)?;

        let one = s.expect_publish()?;
        let Some(id) = one.packet_id else {
            fail!("{version}: QoS 1 delivery without a packet id")
        };
        s.send(&raw::ack("PUBACK", id.get())?)?;
        let two = s.expect_publish()?;
        let Some(id) = two.packet_id else {
            fail!("{version}: QoS 2 delivery without a packet id")
        };
        ensure_eq!(two.qos, QoS::ExactlyOnce, "{version}: delivered QoS");
        s.send(&raw::ack("PUBREC", id.get())?)?;
        s.expect_ack("PUBREL", id.get())?;
        s.send(&raw::ack("PUBCOMP", id.get())?)?;
        s.ping()?;
        p.disconnect()?;
        s.disconnect()?;
    }
    cx.finish()
}

/// A 5.0 broker says 0x10 (No matching subscribers) in PUBACK and in PUBREC when nobody
/// subscribed (PUBCOMP then says success); 3.1.1 has no code and says success.
pub fn no_matching_subscribers_is_0x10_in_v5(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut v5 = cx.client(options("five", V5))?;
    let code = v5.publish("nobody/home", "x", QoS::AtLeastOnce)?;
    ensure_eq!(code, ReasonCode::NoMatchingSubscribers, "5.0 QoS 1 publish");
    let mut v311 = cx.client(options("four", V311))?;
    let code = v311.publish("nobody/home", "x", QoS::AtLeastOnce)?;
    ensure_eq!(code, ReasonCode::Success, "3.1.1 QoS 1 publish");
    let mut p = cx.raw_as(V5, "raw")?;
    p.send(&Packet::Publish(raw::publish(
        "nobody/home",
        "x",
        QoS::ExactlyOnce,
        5,
    )?))?;
    let rec = p.expect_ack("PUBREC", 5)?;
    ensure_eq!(rec.reason_code, ReasonCode::NoMatchingSubscribers, "PUBREC");
    p.send(&raw::ack("PUBREL", 5)?)?;
    let comp = p.expect_ack("PUBCOMP", 5)?;
    ensure_eq!(comp.reason_code, ReasonCode::Success, "PUBCOMP");
    // With a subscriber it is plain success.
    v5.subscribe("nobody/home", QoS::AtMostOnce)?;
    let code = v5.publish("nobody/home", "x", QoS::AtLeastOnce)?;
    ensure_eq!(code, ReasonCode::Success, "5.0 with a subscriber");
    p.send(&Packet::Publish(raw::publish(
        "nobody/home",
        "x",
        QoS::ExactlyOnce,
        6,
    )?))?;
    let rec = p.expect_ack("PUBREC", 6)?;
    ensure_eq!(
        rec.reason_code,
        ReasonCode::Success,
        "PUBREC with a subscriber"
    );
    cx.finish()
}

/// A QoS 2 PUBLISH sent again (DUP) before PUBREL is answered PUBREC again but delivered
/// once (spec 4.3.3); after PUBREL the id is free and a new message with it is new.
pub fn qos2_duplicate_publish_is_delivered_once(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe("x", QoS::ExactlyOnce)?;
    s.subscribe(crate::harness::MARKER, QoS::AtLeastOnce)?;
    let mut marker_pub = cx.client(options("m", V5))?;
    let mut p = cx.raw_as(V5, "p")?;
    let first = raw::publish("x", "once", QoS::ExactlyOnce, 9)?;
    p.send(&Packet::Publish(first.clone()))?;
    p.expect_ack("PUBREC", 9)?;
    let mut again = first;
    again.dup = true;
    p.send(&Packet::Publish(again))?;
    p.expect_ack("PUBREC", 9)?;
    p.send(&raw::ack("PUBREL", 9)?)?;
    p.expect_ack("PUBCOMP", 9)?;
    s.expect_message("x", "once")?;
    crate::harness::marker(&mut marker_pub, &mut s)
        .map_err(|f| f.context("a duplicate was delivered"))?;
    // The id is released: the same id now names a new message.
    p.send(&Packet::Publish(raw::publish(
        "x",
        "new",
        QoS::ExactlyOnce,
        9,
    )?))?;
    p.expect_ack("PUBREC", 9)?;
    p.send(&raw::ack("PUBREL", 9)?)?;
    p.expect_ack("PUBCOMP", 9)?;
    s.expect_message("x", "new")?;
    cx.finish()
}

/// A persistent subscriber that did not acknowledge a QoS 1 message gets it again on
/// resume, with DUP and the same packet id [MQTT-4.4.0-1] [MQTT-3.3.1-1].
pub fn unacknowledged_qos1_is_resent_with_dup_on_resume(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for version in [V311, V5] {
        let id = format!("s-{version}");
        let mut connect = raw::connect(version, &id);
        connect.clean_start = false;
        connect.properties.session_expiry_interval = Some(60);
        let (mut s, _) = cx.raw(connect.clone())?;
        s.subscribe("r", QoS::AtLeastOnce)?;
        let mut publisher = cx.client(options("pub", version))?;
        publisher.send("r", "again", QoS::AtLeastOnce)?;
        let first = s.expect_publish()?;
        ensure!(!first.dup, "{version}: DUP on the first delivery");
        s.drop_link();
        let (mut s, ack) = cx.raw(connect)?;
        ensure!(
            ack.session_present,
            "{version}: session not present on resume"
        );
        let resent = s.expect_publish()?;
        ensure!(resent.dup, "{version}: resent without DUP");
        ensure_eq!(resent.packet_id, first.packet_id, "{version}: packet id");
        ensure_eq!(resent.payload, first.payload, "{version}: payload");
        if let Some(pid) = resent.packet_id {
            s.send(&raw::ack("PUBACK", pid.get())?)?;
        }
        s.ping()?;
        s.disconnect()?;
        publisher.disconnect()?;
    }
    cx.finish()
}

/// A subscriber that answered PUBREC but lost the link before PUBREL gets PUBREL again on
/// resume [MQTT-4.4.0-1], not the message.
pub fn unreleased_qos2_gets_pubrel_again_on_resume(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V311, "s");
    connect.clean_start = false;
    let (mut s, _) = cx.raw(connect.clone())?;
    s.subscribe("r", QoS::ExactlyOnce)?;
    let mut publisher = cx.client(options("pub", V311))?;
    publisher.send("r", "x", QoS::ExactlyOnce)?;
    let got = s.expect_publish()?;
    let Some(id) = got.packet_id else {
        fail!("QoS 2 delivery without a packet id")
    };
    s.send(&raw::ack("PUBREC", id.get())?)?;
    s.expect_ack("PUBREL", id.get())?;
    s.drop_link();
    let (mut s, ack) = cx.raw(connect)?;
    ensure!(ack.session_present, "session not present on resume");
    s.expect_ack("PUBREL", id.get())
        .map_err(|f| f.context("on resume"))?;
    s.send(&raw::ack("PUBCOMP", id.get())?)?;
    s.ping()?;
    cx.finish()
}

/// PUBREL for an id the broker does not know is answered PUBCOMP 0x92 (Packet Identifier
/// not found), and the connection goes on.
pub fn pubrel_for_an_unknown_id_gets_pubcomp_0x92(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut p = cx.raw_as(V5, "p")?;
    p.send(&raw::ack("PUBREL", 42)?)?;
    let comp = p.expect_ack("PUBCOMP", 42)?;
    ensure_eq!(
        comp.reason_code,
        ReasonCode::PacketIdentifierNotFound,
        "PUBCOMP reason code"
    );
    p.ping()?;
    p.disconnect()?;
    cx.finish()
}

/// Two subscriptions of one 5.0 client matching a topic give one copy, at the higher
/// QoS (spec 3.3.4).
pub fn overlapping_subscriptions_give_one_copy_at_the_highest_qos(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe("o/+", QoS::AtMostOnce)?;
    s.subscribe("o/#", QoS::ExactlyOnce)?;
    s.subscribe(crate::harness::MARKER, QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("o/x", "once", QoS::ExactlyOnce)?;
    let got = s.expect_message("o/x", "once")?;
    ensure_eq!(got.qos, QoS::ExactlyOnce, "QoS of the one copy");
    crate::harness::marker(&mut publisher, &mut s).map_err(|f| f.context("a second copy"))?;
    cx.finish()
}

/// Messages from one publisher arrive in the order sent, whatever their QoS
/// [MQTT-4.6.0-5].
pub fn messages_from_one_publisher_arrive_in_order(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe("seq", QoS::ExactlyOnce)?;
    let mut publisher = cx.client(options("pub", V311))?;
    let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce];
    for i in 0..30 {
        let q = qos.get(i % 2).copied().unwrap_or(QoS::AtLeastOnce);
        publisher.send("seq", i.to_string(), q)?;
    }
    let got = s.payloads(30)?;
    let want: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    ensure_eq!(got, want, "order of delivery");
    cx.finish()
}

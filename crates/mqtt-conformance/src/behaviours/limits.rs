//! Limits, both ways: the broker's Maximum Packet Size (0x95) and Receive Maximum (0x93),
//! the client's Receive Maximum and Maximum Packet Size respected by the broker, and the
//! broker's quotas (subscriptions, topic levels, offline queue).

use std::num::{NonZeroU16, NonZeroU32};

use super::prelude::*;
use crate::harness::{marker, MARKER};

fn max_packet(size: u32) -> BrokerConfig {
    let mut cfg = config();
    cfg.limits.max_packet_size = size;
    cfg
}

/// A packet over the broker's Maximum Packet Size is refused from its fixed header with
/// DISCONNECT 0x95 (5.0 spec 3.2.2.3.6, 4.13); the limit is announced in CONNACK.
pub fn packet_over_the_maximum_size_is_0x95(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, max_packet(1024))?;
    let (mut p, ack) = cx.raw(raw::connect(V5, "big"))?;
    ensure_eq!(
        ack.properties.maximum_packet_size.map(NonZeroU32::get),
        Some(1024),
        "Maximum Packet Size in CONNACK"
    );
    // A PUBLISH exactly at the limit is fine.
    let fixed = raw::publish("t", vec![0u8; 0], QoS::AtMostOnce, 0)?;
    let mut wire = bytes::BytesMut::new();
    mqtt_core::codec::encode(&Packet::Publish(fixed), V5, &mut wire)
        .map_err(|e| Failure::new(format!("encode: {e}")))?;
    let room = 1024 - wire.len() - 1;
    p.send(&Packet::Publish(raw::publish(
        "t",
        vec![b'x'; room],
        QoS::AtMostOnce,
        0,
    )?))?;
    p.ping()?;
    // The fixed header of a PUBLISH announcing 2 MB; none of the body is sent.
    p.send_bytes(&[0x30, 0xff, 0xff, 0x7f])?;
    p.expect_disconnect(ReasonCode::PacketTooLarge)?;
    cx.finish()
}

/// 3.1.1 has no DISCONNECT from the server: an oversize packet just closes the
/// connection.
pub fn packet_over_the_maximum_size_closes_v311(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, max_packet(1024))?;
    let mut p = cx.raw_as(V311, "big")?;
    p.send(&Packet::Publish(raw::publish(
        "t",
        vec![0u8; 2000],
        QoS::AtMostOnce,
        0,
    )?))?;
    p.expect_closed()?;
    cx.finish()
}

/// More unacknowledged QoS 2 PUBLISH than the broker's Receive Maximum is refused with
/// DISCONNECT 0x93 [MQTT-3.3.4-8].
pub fn receive_maximum_exceeded_is_0x93(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let mut cfg = config();
    cfg.limits.receive_maximum = 2;
    let cx = Ctx::start(b, c, cfg)?;
    let (mut p, ack) = cx.raw(raw::connect(V5, "eager"))?;
    ensure_eq!(
        ack.properties.receive_maximum.map(NonZeroU16::get),
        Some(2),
        "Receive Maximum in CONNACK"
    );
    for id in 1..=2 {
        p.send(&Packet::Publish(raw::publish(
            "q",
            "x",
            QoS::ExactlyOnce,
            id,
        )?))?;
        p.expect_ack("PUBREC", id)?;
    }
    p.send(&Packet::Publish(raw::publish(
        "q",
        "x",
        QoS::ExactlyOnce,
        3,
    )?))?;
    p.expect_disconnect(ReasonCode::ReceiveMaximumExceeded)?;
    cx.finish()
}

/// The broker never has more unacknowledged QoS 1 messages towards a client than the
/// client's Receive Maximum [MQTT-3.3.4-9]; each acknowledgement lets one more go.
pub fn broker_respects_the_client_receive_maximum(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V5, "slow");
    connect.properties.receive_maximum = NonZeroU16::new(2);
    let (mut s, _) = cx.raw(connect)?;
    s.subscribe("w", QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    for i in 0..5 {
        publisher.send("w", i.to_string(), QoS::AtLeastOnce)?;
    }
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(s.expect_publish()?.packet_id);
    }
    s.ping()
        .map_err(|f| f.context("a third message over Receive Maximum 2"))?;
    let mut received = 2;
    for id in ids.into_iter().flatten() {
        s.send(&raw::ack("PUBACK", id.get())?)?;
    }
    while received < 5 {
        let p = s.expect_publish()?;
        if let Some(id) = p.packet_id {
            s.send(&raw::ack("PUBACK", id.get())?)?;
        }
        received += 1;
    }
    s.ping()?;
    cx.finish()
}

/// A message larger than a client's Maximum Packet Size is not sent to it [MQTT-3.1.2-24]
/// (and does not hold up the next); other subscribers get it.
pub fn broker_respects_the_client_maximum_packet_size(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V5, "small");
    connect.properties.maximum_packet_size = NonZeroU32::new(64);
    let (mut small, _) = cx.raw(connect)?;
    small.subscribe("t", QoS::AtLeastOnce)?;
    let mut big = cx.client(options("big", V5))?;
    big.subscribe("t", QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    let large = "x".repeat(100);
    publisher.send("t", large.clone(), QoS::AtLeastOnce)?;
    publisher.send("t", "small", QoS::AtLeastOnce)?;
    let got = small.expect_publish()?;
    ensure_eq!(
        String::from_utf8_lossy(&got.payload),
        "small",
        "first message to the client with Maximum Packet Size 64"
    );
    if let Some(id) = got.packet_id {
        small.send(&raw::ack("PUBACK", id.get())?)?;
    }
    small.ping()?;
    big.expect_message("t", &large)?;
    big.expect_message("t", "small")?;
    cx.finish()
}

/// Subscriptions over the per-client quota are refused with SUBACK 0x97 (Quota exceeded);
/// the others are granted.
pub fn subscription_quota_is_0x97(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let mut cfg = config();
    cfg.limits.max_subscriptions_per_client = 2;
    let cx = Ctx::start(b, c, cfg)?;
    let mut s = cx.client(options("s", V5))?;
    let codes = s.subscribe_with(
        vec![
            sub("a", QoS::AtMostOnce)?,
            sub("b", QoS::AtLeastOnce)?,
            sub("c", QoS::AtLeastOnce)?,
        ],
        SubscribeProperties::default(),
    )?;
    ensure_eq!(
        codes,
        [
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::QuotaExceeded
        ],
        "SUBACK codes with a quota of 2"
    );
    // Replacing an existing subscription does not count against the quota.
    let codes = s.subscribe_with(
        vec![sub("a", QoS::ExactlyOnce)?],
        SubscribeProperties::default(),
    )?;
    ensure_eq!(codes, [ReasonCode::GrantedQoS2], "replacing a subscription");
    cx.finish()
}

/// Topics deeper than the broker allows: a filter gets SUBACK 0x8F, a PUBLISH is refused
/// with DISCONNECT 0x90.
pub fn topic_levels_are_limited(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let mut cfg = config();
    cfg.limits.max_topic_levels = 3;
    let cx = Ctx::start(b, c, cfg)?;
    let mut s = cx.client(options("s", V5))?;
    let codes = s.subscribe_with(
        vec![
            sub("a/b/c", QoS::AtMostOnce)?,
            sub("a/b/c/d", QoS::AtMostOnce)?,
        ],
        SubscribeProperties::default(),
    )?;
    ensure_eq!(
        codes,
        [ReasonCode::Success, ReasonCode::TopicFilterInvalid],
        "SUBACK codes with at most 3 levels"
    );
    let mut p = cx.raw_as(V5, "deep")?;
    p.send(&Packet::Publish(raw::publish(
        "a/b/c",
        "ok",
        QoS::AtMostOnce,
        0,
    )?))?;
    p.ping()?;
    p.send(&Packet::Publish(raw::publish(
        "a/b/c/d",
        "deep",
        QoS::AtMostOnce,
        0,
    )?))?;
    p.expect_disconnect(ReasonCode::TopicNameInvalid)?;
    s.expect_message("a/b/c", "ok")?;
    cx.finish()
}

/// An offline session's queue holds at most `max_queued_messages`; by default the newest
/// are dropped, and the publisher is acknowledged either way.
pub fn full_offline_queue_drops_the_newest(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let mut cfg = config();
    cfg.limits.max_queued_messages = 3;
    let cx = Ctx::start(b, c, cfg)?;
    let mut s = cx.client(persistent("s", V311))?;
    s.subscribe("t", QoS::AtLeastOnce)?;
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    s.disconnect()?;
    let mut publisher = cx.client(options("pub", V311))?;
    for i in 0..5 {
        publisher.send("t", i.to_string(), QoS::AtLeastOnce)?;
    }
    let mut s = cx.client(persistent("s", V311))?;
    ensure_eq!(s.payloads(3)?, ["0", "1", "2"], "queued messages");
    marker(&mut publisher, &mut s).map_err(|f| f.context("more than the queue holds"))?;
    cx.finish()
}

//! MQTT 5.0 message features: Message Expiry, Topic Aliases both ways, the client's Maximum
//! Packet Size, forwarded properties, and what CONNACK and PUBACK tell.

use bytes::Bytes;
use mqtt_core::broker::CloseReason;
use mqtt_core::packet::UserProperty;
use mqtt_core::{ProtocolVersion, ReasonCode};

use crate::script::*;
use crate::world::World;

/// A persistent 5.0 subscriber `id` to `t` at QoS 1, then offline.
fn offline_subscriber(w: &mut World, id: &str, t: &str) {
    let s = w.connect(v5(id).clean(false).expiry(3600));
    w.send(s, subscribe(1, &[(t, 1)]));
    w.expect_suback(s);
    w.drop_link(s);
}

#[test]
fn expired_queued_messages_are_dropped() {
    let mut w = World::new(config());
    offline_subscriber(&mut w, "s", "t");
    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "short").qos1(1).expiry(10));
    w.send(p, publish("t", "long").qos1(2).expiry(100));
    w.send(p, publish("t", "forever").qos1(3));
    w.advance_secs(10);
    let s = w.connect(v5("s").clean(false).expiry(3600));
    let got = w.publishes(s);
    let seen: Vec<_> = got
        .iter()
        .map(|m| (&m.payload[..], m.properties.message_expiry_interval))
        .collect();
    // [MQTT-3.3.2-5] dropped once expired; [MQTT-3.3.2-6] the rest carry what is left.
    assert_eq!(seen, [(&b"long"[..], Some(90)), (b"forever", None)]);
}

#[test]
fn message_expiry_is_counted_down_on_delivery() {
    let mut w = World::new(config());
    let live = w.connect(v5("live"));
    w.send(live, subscribe(1, &[("t", 1)]));
    w.expect_suback(live);
    offline_subscriber(&mut w, "s", "t");
    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "x").qos1(1).expiry(10));
    let m = w.expect_message(live, "t", "x");
    assert_eq!(m.properties.message_expiry_interval, Some(10));

    w.advance_secs(4);
    let s = w.connect(v5("s").clean(false).expiry(3600));
    let m = w.expect_message(s, "t", "x");
    assert_eq!(m.properties.message_expiry_interval, Some(6));

    // Resent after a lost link: counted down again.
    w.drop_link(s);
    w.advance_secs(3);
    let s = w.connect(v5("s").clean(false).expiry(3600));
    let m = w.expect_message(s, "t", "x");
    assert!(m.dup);
    assert_eq!(m.properties.message_expiry_interval, Some(3));
}

#[test]
fn retained_message_expires_too() {
    let mut w = World::new(config());
    let p = w.connect(v5("pub"));
    w.send(p, publish("r", "x").retain().expiry(5));
    w.advance_secs(2);
    let a = w.connect(v5("a"));
    w.send(a, subscribe(1, &[("r", 0)]));
    w.expect_suback(a);
    assert_eq!(
        w.expect_message(a, "r", "x")
            .properties
            .message_expiry_interval,
        Some(3)
    );
    w.advance_secs(3);
    let b = w.connect(v5("b"));
    w.send(b, subscribe(1, &[("r", 0)]));
    w.expect_suback(b);
    w.expect_idle(b);
}

#[test]
fn topic_alias_from_the_client_is_set_then_reused() {
    let mut w = World::new(config());
    let s = w.connect(v311("s"));
    w.send(s, subscribe(1, &[("#", 0)]));
    w.expect_suback(s);
    let (p, ack) = w.connect_ack(v5("pub"));
    assert_eq!(ack.properties.topic_alias_maximum, Some(64));

    w.send(p, publish("long/topic/name", "1").alias(3));
    w.send(p, publish("", "2").alias(3));
    // A new topic for the same alias replaces the mapping.
    w.send(p, publish("other", "3").alias(3));
    w.send(p, publish("", "4").alias(3));
    w.send(p, publish("long/topic/name", "5"));
    let got: Vec<_> = w
        .publishes(s)
        .iter()
        .map(|m| format!("{} {}", m.topic, String::from_utf8_lossy(&m.payload)))
        .collect();
    assert_eq!(
        got,
        [
            "long/topic/name 1",
            "long/topic/name 2",
            "other 3",
            "other 4",
            "long/topic/name 5"
        ]
    );
    w.expect_idle(p);
}

#[test]
fn unknown_topic_alias_is_a_protocol_error() {
    let mut w = World::new(config());
    let p = w.connect(v5("pub"));
    w.send(p, publish("", "x").alias(5));
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::ProtocolError,
        "[MQTT-3.3.4-?] empty topic with an alias never set"
    );
    w.expect_closed(p);
}

#[test]
fn topic_alias_over_the_maximum_is_refused_with_0x94() {
    let mut w = World::new(config_with(|l| l.topic_alias_maximum = 4));
    let (p, ack) = w.connect_ack(v5("pub"));
    assert_eq!(ack.properties.topic_alias_maximum, Some(4));
    w.send(p, publish("t", "x").alias(4));
    w.expect_idle(p);
    w.send(p, publish("t", "x").alias(5));
    let d = w.expect_disconnect(p);
    assert_eq!(
        d.reason_code,
        ReasonCode::TopicAliasInvalid,
        "[MQTT-3.3.2-9]"
    );
    // The DISCONNECT says why in words too.
    assert_eq!(
        d.properties.reason_string.as_deref(),
        Some("protocol violation: TopicAliasInvalid (0x94)")
    );
    assert_eq!(
        w.expect_closed(p),
        CloseReason::ProtocolViolation(ReasonCode::TopicAliasInvalid)
    );

    // With aliases off the broker announces none, and any alias is invalid.
    let mut w = World::new(config_with(|l| l.topic_alias_maximum = 0));
    let (p, ack) = w.connect_ack(v5("pub"));
    assert_eq!(ack.properties.topic_alias_maximum, None);
    w.send(p, publish("t", "x").alias(1));
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::TopicAliasInvalid
    );
}

#[test]
fn broker_uses_topic_aliases_the_client_allows() {
    let mut w = World::new(config());
    let s = w.connect(v5("s").clean(false).expiry(60).alias_max(2));
    w.send(s, subscribe(1, &[("#", 1)]));
    w.expect_suback(s);
    let none = w.connect(v5("none"));
    w.send(none, subscribe(1, &[("#", 0)]));
    w.expect_suback(none);

    let p = w.connect(v5("pub"));
    for t in ["a", "a", "b", "c", "b", "a", "c"] {
        w.send(p, publish(t, t));
    }
    let got: Vec<_> = w
        .publishes(s)
        .iter()
        .map(|m| {
            (
                m.topic.to_string(),
                m.properties.topic_alias.map(|a| a.get()),
                String::from_utf8_lossy(&m.payload).into_owned(),
            )
        })
        .collect();
    let e = |t: &str, a: Option<u16>, p: &str| (t.to_string(), a, p.to_string());
    assert_eq!(
        got,
        [
            e("a", Some(1), "a"),
            e("", Some(1), "a"),
            e("b", Some(2), "b"),
            // Both aliases in use: the topic goes in full.
            e("c", None, "c"),
            e("", Some(2), "b"),
            e("", Some(1), "a"),
            e("c", None, "c"),
        ]
    );
    // A client that set no Topic Alias Maximum never gets one [MQTT-3.3.2-7].
    assert!(w
        .publishes(none)
        .iter()
        .all(|m| m.properties.topic_alias.is_none()));

    // Aliases belong to a connection: a new one starts with the topic again.
    w.drop_link(s);
    let s = w.connect(v5("s").clean(false).expiry(60).alias_max(2));
    w.send(p, publish("a", "again"));
    let m = w.expect_message(s, "a", "again");
    assert_eq!(m.properties.topic_alias.map(|a| a.get()), Some(1));
}

#[test]
fn too_large_for_one_subscriber_is_dropped_for_that_one_only() {
    let mut w = World::new(config());
    let small = w.connect(v5("small").max_packet(64));
    w.send(small, subscribe(1, &[("t", 1)]));
    w.expect_suback(small);
    let big = w.connect(v5("big"));
    w.send(big, subscribe(1, &[("t", 1)]));
    w.expect_suback(big);

    let p = w.connect(v5("pub"));
    let large = "x".repeat(100);
    w.send(p, publish("t", &large).qos1(1));
    w.send(p, publish("t", "small").qos1(2));
    // [MQTT-3.1.2-24] never sent; the next message is not held up behind it.
    let m = w.expect_message(small, "t", "small");
    w.send(small, puback(m.packet_id.map_or(0, |i| i.get())));
    w.expect_idle(small);
    assert_eq!(w.take_and_ack(big), [large.as_str(), "small"]);
}

#[test]
fn publish_properties_are_forwarded() {
    let mut w = World::new(config());
    let s = w.connect(v5("s"));
    w.send(s, subscribe(1, &[("req", 1)]));
    w.expect_suback(s);
    let old = w.connect(v311("old"));
    w.send(old, subscribe(1, &[("req", 1)]));
    w.expect_suback(old);

    let p = w.connect(v5("pub"));
    let mut m = publish("req", "{}")
        .qos1(1)
        .user("b", "2")
        .user("a", "1")
        .user("b", "3")
        .build();
    m.properties.response_topic = Some(topic("resp/pub"));
    m.properties.correlation_data = Some(Bytes::from_static(b"\x00\x01corr"));
    m.properties.payload_format_indicator = Some(true);
    m.properties.content_type = Some("application/json".into());
    w.send(p, PublishB::from(m));

    let got = w.expect_message(s, "req", "{}");
    assert_eq!(
        got.properties.user_properties,
        [
            UserProperty::new("b", "2"),
            UserProperty::new("a", "1"),
            UserProperty::new("b", "3"),
        ],
        "[MQTT-3.3.2-18] in order"
    );
    assert_eq!(got.properties.response_topic, Some(topic("resp/pub")));
    assert_eq!(
        got.properties.correlation_data.as_deref(),
        Some(&b"\x00\x01corr"[..])
    );
    assert_eq!(got.properties.payload_format_indicator, Some(true));
    assert_eq!(
        got.properties.content_type.as_deref(),
        Some("application/json")
    );

    // 3.1.1 has no properties: the same message, bare.
    let bare = w.expect_message(old, "req", "{}");
    assert!(bare.properties.is_empty());
    assert_eq!(w.peer(old).version, ProtocolVersion::V311);
}

#[test]
fn will_properties_are_forwarded() {
    let mut w = World::new(config());
    let s = w.connect(v5("s"));
    w.send(s, subscribe(1, &[("will", 0)]));
    w.expect_suback(s);
    let mut c: mqtt_core::packet::Connect = v5("c").will(will("will", "bye")).into();
    if let Some(wl) = c.will.as_mut() {
        wl.properties.content_type = Some("text/plain".into());
        wl.properties.user_properties = vec![UserProperty::new("k", "v")];
        wl.properties.message_expiry_interval = Some(30);
    }
    let c = w.connect(c);
    w.drop_link(c);
    let m = w.expect_message(s, "will", "bye");
    assert_eq!(m.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(m.properties.user_properties, [UserProperty::new("k", "v")]);
    assert_eq!(m.properties.message_expiry_interval, Some(30));
}

#[test]
fn puback_says_when_nobody_subscribed() {
    let mut w = World::new(config());
    let p = w.connect(v5("pub"));
    w.send(p, publish("nobody", "x").qos1(1));
    assert_eq!(
        w.expect_puback(p).reason_code,
        ReasonCode::NoMatchingSubscribers
    );
    w.send(p, publish("nobody", "x").qos2(2));
    assert_eq!(
        w.expect_pubrec(p).reason_code,
        ReasonCode::NoMatchingSubscribers
    );
    w.send(p, pubrel(2));
    assert_eq!(w.expect_pubcomp(p).reason_code, ReasonCode::Success);
}

#[test]
fn connack_announces_the_broker_limits() {
    let mut w = World::new(config_with(|l| {
        l.receive_maximum = 10;
        l.max_packet_size = 4096;
        l.topic_alias_maximum = 8;
    }));
    let (_, ack) = w.connect_ack(v5("c"));
    let props = ack.properties;
    assert_eq!(props.receive_maximum.map(|r| r.get()), Some(10));
    assert_eq!(props.maximum_packet_size.map(|m| m.get()), Some(4096));
    assert_eq!(props.topic_alias_maximum, Some(8));
    assert_eq!(props.assigned_client_identifier, None);
}

#[test]
fn an_in_flight_message_that_expired_offline_does_not_hold_its_slot() {
    let mut w = World::new(config());
    let c = || v5("s").clean(false).expiry(3600).receive_max(1);
    let s = w.connect(c());
    w.send(s, subscribe(1, &[("t", 1)]));
    w.expect_suback(s);
    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "short-lived").qos1(1).expiry(5));
    w.expect_message(s, "t", "short-lived");
    // Never acknowledged: the link drops, and the message expires meanwhile.
    w.drop_link(s);
    w.advance_secs(10);
    w.send(p, publish("t", "next").qos1(2));

    let s = w.connect(c());
    // Expired: discarded as if delivered, so the window of one is free for the next.
    assert_eq!(w.take_and_ack(s), ["next"]);
}

#[test]
fn an_in_flight_message_too_large_for_the_new_connection_does_not_hold_its_slot() {
    let mut w = World::new(config());
    let s = w.connect(v5("s").clean(false).expiry(3600));
    w.send(s, subscribe(1, &[("t", 1)]));
    w.expect_suback(s);
    let p = w.connect(v5("pub"));
    let large = "x".repeat(200);
    w.send(p, publish("t", &large).qos1(1));
    w.expect_message(s, "t", &large);
    w.drop_link(s);
    w.send(p, publish("t", "small").qos1(2));

    // [MQTT-3.1.2-25] too large now: discarded, "as if it had completed sending" it.
    let s = w.connect(
        v5("s")
            .clean(false)
            .expiry(3600)
            .max_packet(64)
            .receive_max(1),
    );
    assert_eq!(w.take_and_ack(s), ["small"]);
}

#[test]
fn resending_respects_a_lowered_receive_maximum() {
    let mut w = World::new(config());
    let s = w.connect(v5("s").clean(false).expiry(3600).receive_max(5));
    w.send(s, subscribe(1, &[("t", 1)]));
    w.expect_suback(s);
    let p = w.connect(v5("pub"));
    for i in 0..5u16 {
        w.send(p, publish("t", i.to_string()).qos1(i + 1));
    }
    assert_eq!(w.publishes(s).len(), 5);
    w.drop_link(s);

    // The world checks the window on every PUBLISH: at most 2 unacknowledged now.
    let s = w.connect(v5("s").clean(false).expiry(3600).receive_max(2));
    let mut got = w.take_and_ack(s);
    got.dedup();
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
}

#[test]
fn a_reason_string_is_left_out_when_it_would_not_fit_the_client_maximum() {
    let mut w = World::new(config_with(|l| l.topic_alias_maximum = 4));
    let (p, _) = w.connect_ack(v5("pub").max_packet(12));
    w.send(p, publish("t", "x").alias(5));
    let d = w.expect_disconnect(p);
    assert_eq!(d.reason_code, ReasonCode::TopicAliasInvalid);
    // [MQTT-3.1.2-25] the packet would be larger than the client accepts.
    assert_eq!(d.properties.reason_string, None);
}

#[test]
fn a_connack_too_large_for_the_client_keeps_only_what_the_client_needs() {
    let mut w = World::new(mqtt_core::broker::BrokerConfig::default());
    // An assigned identifier is needed: it stays; the limits the broker announces go.
    let (_, ack) = w.connect_ack(v5("").max_packet(40));
    assert!(
        ack.properties.assigned_client_identifier.is_some(),
        "{ack:?}"
    );
    assert_eq!(ack.properties.receive_maximum, None);
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

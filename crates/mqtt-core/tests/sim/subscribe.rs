//! Subscriptions: wildcards and the `$` rule, overlaps, Subscription Identifiers, No Local,
//! shared subscriptions, SUBACK and UNSUBACK codes.

use std::collections::BTreeMap;

use mqtt_core::broker::{BrokerConfig, CloseReason};
use mqtt_core::{ProtocolVersion, QoS, ReasonCode};

use crate::script::*;
use crate::world::{Peer, World};

/// Connects a 5.0 client `id` subscribed to `filters` at QoS 0.
fn subscriber(w: &mut World, id: &str, filters: &[&str]) -> Peer {
    let p = w.connect(v5(id));
    let subs: Vec<_> = filters.iter().map(|f| (*f, 0)).collect();
    w.send(p, subscribe(1, &subs));
    w.expect_suback(p);
    p
}

/// The topics of the messages waiting for `p`.
fn topics(w: &mut World, p: Peer) -> Vec<String> {
    w.publishes(p).iter().map(|m| m.topic.to_string()).collect()
}

#[test]
fn plus_matches_exactly_one_level() {
    let mut w = World::new(config());
    let s = subscriber(&mut w, "s", &["a/+/c"]);
    let p = w.connect(v5("pub"));
    for t in ["a/b/c", "a//c", "a/b/d/c", "a/c", "a/b/c/d", "b/b/c"] {
        w.send(p, publish(t, "x"));
    }
    assert_eq!(topics(&mut w, s), ["a/b/c", "a//c"]);
}

#[test]
fn hash_matches_the_parent_and_every_level_below() {
    let mut w = World::new(config());
    let s = subscriber(&mut w, "s", &["a/#"]);
    let p = w.connect(v5("pub"));
    for t in ["a", "a/b", "a/b/c", "ab", "b/a", "/a"] {
        w.send(p, publish(t, "x"));
    }
    assert_eq!(topics(&mut w, s), ["a", "a/b", "a/b/c"]);
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let mut w = World::new(config());
    let all = subscriber(&mut w, "all", &["#", "+/x"]);
    let explicit = subscriber(&mut w, "explicit", &["$app/#"]);
    let p = w.connect(v5("pub"));
    w.send(p, publish("$app/x", "x"));
    w.send(p, publish("app/x", "y"));
    // [MQTT-4.7.2-1]
    assert_eq!(topics(&mut w, all), ["app/x"]);
    assert_eq!(topics(&mut w, explicit), ["$app/x"]);
}

#[test]
fn overlapping_subscriptions_give_one_copy_at_the_highest_qos() {
    let mut w = World::new(config());
    let s = w.connect(v311("s"));
    w.send(s, subscribe(1, &[("a/+", 0), ("a/#", 2), ("a/b", 1)]));
    let ack = w.expect_suback(s);
    use ReasonCode::*;
    assert_eq!(ack.reason_codes, [Success, GrantedQoS2, GrantedQoS1]);
    let p = w.connect(v311("pub"));
    w.send(p, publish("a/b", "x").qos2(1));
    let m = w.expect_message(s, "a/b", "x");
    assert_eq!(m.qos, QoS::ExactlyOnce);
    w.expect_idle(s);
}

#[test]
fn v5_overlap_sends_one_copy_with_every_subscription_identifier() {
    let mut w = World::new(config());
    let s = w.connect(v5("s"));
    w.send(s, subscribe(1, &[("a/+", 0)]).sub_id(1));
    w.send(s, subscribe(2, &[("a/#", 1)]).sub_id(2));
    w.send(s, subscribe(3, &[("a/b", 0)]));
    w.send(s, subscribe(4, &[("+/b", 0)]).sub_id(268_435_455));
    for _ in 0..4 {
        w.expect_suback(s);
    }
    let p = w.connect(v5("pub"));
    w.send(p, publish("a/b", "x").qos1(1));
    let m = w.expect_message(s, "a/b", "x");
    assert_eq!(m.qos, QoS::AtLeastOnce);
    let mut ids: Vec<u32> = m
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 268_435_455], "[MQTT-3.3.4-3] [MQTT-3.3.4-5]");
    w.expect_idle(s);

    // Only the matching ones: "a/c" matches "a/+" and "a/#".
    w.send(p, publish("a/c", "y"));
    let m = w.expect_message(s, "a/c", "y");
    let mut ids: Vec<u32> = m
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
}

#[test]
fn resubscribing_replaces_options_and_identifier() {
    let mut w = World::new(config());
    let s = w.connect(v5("s"));
    w.send(s, subscribe(1, &[("t", 2)]).sub_id(7));
    w.expect_suback(s);
    // [MQTT-3.8.4-3] same filter: replaced, not added.
    w.send(s, subscribe(2, &[("t", 0)]));
    w.expect_suback(s);
    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "x").qos2(1));
    let m = w.expect_message(s, "t", "x");
    assert_eq!(m.qos, QoS::AtMostOnce);
    assert!(m.properties.subscription_identifiers.is_empty());
    w.expect_idle(s);
}

#[test]
fn no_local_keeps_a_clients_own_messages_from_coming_back() {
    let mut w = World::new(config());
    let a = w.connect(v5("a"));
    w.send(a, subscribe_with(1, vec![sub("t").no_local()]));
    w.expect_suback(a);
    let b = subscriber(&mut w, "b", &["t"]);
    w.send(a, publish("t", "from a"));
    w.expect_idle(a);
    w.expect_message(b, "t", "from a");
    w.send(b, publish("t", "from b"));
    w.expect_message(a, "t", "from b");
    // Without No Local a client gets its own messages.
    w.expect_message(b, "t", "from b");
}

#[test]
fn shared_subscription_gives_each_message_to_exactly_one_member() {
    let mut w = World::new(config());
    let members: Vec<Peer> = (0..3)
        .map(|i| {
            let p = w.connect(v5(&format!("m{i}")));
            w.send(p, subscribe(1, &[("$share/g/jobs/+", 1)]));
            w.expect_suback(p);
            p
        })
        .collect();
    let other_group = subscriber(&mut w, "h", &["$share/h/jobs/#"]);
    let plain = subscriber(&mut w, "plain", &["jobs/+"]);

    let p = w.connect(v5("pub"));
    for i in 0..30 {
        w.send(p, publish("jobs/x", i.to_string()).qos1(i + 1));
        w.expect_puback(p);
    }
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_member = Vec::new();
    for m in &members {
        let got = w.take_and_ack(*m);
        per_member.push(got.len());
        for g in got {
            *count.entry(g).or_default() += 1;
        }
    }
    assert_eq!(count.len(), 30, "every message reached the group");
    assert!(
        count.values().all(|n| *n == 1),
        "each exactly once: {count:?}"
    );
    assert!(
        per_member.iter().filter(|n| **n > 0).count() > 1,
        "spread over the members: {per_member:?}"
    );
    assert_eq!(
        w.payloads(other_group).len(),
        30,
        "each group gets every message"
    );
    assert_eq!(w.payloads(plain).len(), 30);
}

#[test]
fn shared_subscription_prefers_members_that_are_online() {
    let mut w = World::new(config());
    let online = w.connect(v5("online"));
    w.send(online, subscribe(1, &[("$share/g/t", 1)]));
    w.expect_suback(online);
    let offline = w.connect(v5("offline").clean(false).expiry(600));
    w.send(offline, subscribe(1, &[("$share/g/t", 1)]));
    w.expect_suback(offline);
    w.drop_link(offline);

    let p = w.connect(v5("pub"));
    for i in 0..10 {
        w.send(p, publish("t", i.to_string()).qos1(i + 1));
    }
    assert_eq!(w.take_and_ack(online).len(), 10);
    assert_eq!(w.broker.queued_messages("offline"), Some(0));
}

#[test]
fn invalid_shared_filters_are_refused() {
    let mut w = World::new(config());
    let control = subscriber(&mut w, "control", &["t"]);
    for bad in [
        "$share/g",
        "$share//t",
        "$share/g+/t",
        "$share/g#/t",
        "$share/g/",
    ] {
        let p = w.connect(v5("bad"));
        // Built by hand: the typed filter cannot hold these.
        let body = [&[0, 1, 0][..], &text(bad)[..], &[0]].concat();
        w.send_bytes(p, &raw(0x82, &body));
        assert_eq!(
            w.expect_disconnect(p).reason_code,
            ReasonCode::TopicFilterInvalid,
            "{bad} [MQTT-4.8.2-1] [MQTT-4.8.2-2]"
        );
        w.expect_closed(p);
    }
    let p = w.connect(v5("pub"));
    w.send(p, publish("t", "still here"));
    w.expect_message(control, "t", "still here");
}

#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let mut w = World::new(config());
    let p = w.connect(v5("c"));
    w.send(p, subscribe_with(1, vec![sub("$share/g/t").no_local()]));
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::ProtocolError,
        "[MQTT-3.8.3-4]"
    );
    assert_eq!(
        w.expect_closed(p),
        CloseReason::ProtocolViolation(ReasonCode::ProtocolError)
    );
}

#[test]
fn subscription_quota_fails_the_extra_filters() {
    let mut w = World::new(config_with(|l| l.max_subscriptions_per_client = 2));
    let p = w.connect(v5("five"));
    w.send(p, subscribe(1, &[("a", 0), ("b", 1), ("c", 2)]));
    use ReasonCode::*;
    assert_eq!(
        w.expect_suback(p).reason_codes,
        [Success, GrantedQoS1, QuotaExceeded]
    );
    // Replacing a subscription it has is not a new one.
    w.send(p, subscribe(2, &[("a", 1)]));
    assert_eq!(w.expect_suback(p).reason_codes, [GrantedQoS1]);

    let old = w.open(ProtocolVersion::V311);
    w.send(old, v311("four"));
    w.expect_connack(old);
    w.send(old, subscribe(3, &[("a", 0), ("b", 1), ("c", 2)]));
    // 3.1.1 has one failure code: 0x80.
    let r = w.recv(old).expect("a SUBACK");
    assert_eq!(&r.raw[..], b"\x90\x05\x00\x03\x00\x01\x80");
}

#[test]
fn subscription_failures_name_what_is_not_supported() {
    let mut w = World::new(BrokerConfig {
        shared_subscriptions: false,
        wildcard_subscriptions: false,
        maximum_qos: QoS::AtLeastOnce,
        ..config_with(|l| l.max_topic_levels = 3)
    });
    let (p, ack) = w.connect_ack(v5("c"));
    assert_eq!(ack.properties.shared_subscription_available, Some(false));
    assert_eq!(ack.properties.wildcard_subscription_available, Some(false));
    assert_eq!(ack.properties.maximum_qos, Some(QoS::AtLeastOnce));
    w.send(
        p,
        subscribe(
            1,
            &[("$share/g/t", 0), ("a/+", 0), ("a/b/c/d", 0), ("a/b/c", 2)],
        ),
    );
    use ReasonCode::*;
    assert_eq!(
        w.expect_suback(p).reason_codes,
        [
            SharedSubscriptionsNotSupported,
            WildcardSubscriptionsNotSupported,
            TopicFilterInvalid,
            GrantedQoS1,
        ]
    );
}

#[test]
fn unsuback_says_what_existed() {
    let mut w = World::new(config());
    let p = w.connect(v5("five"));
    w.send(p, subscribe(1, &[("a", 1)]));
    w.expect_suback(p);
    w.send(p, unsubscribe(2, &["a", "b", "a"]));
    let ack = w.expect_unsuback(p);
    assert_eq!(ack.packet_id, pid(2));
    use ReasonCode::*;
    assert_eq!(
        ack.reason_codes,
        [Success, NoSubscriptionExisted, NoSubscriptionExisted]
    );
    let publisher = w.connect(v5("pub"));
    w.send(publisher, publish("a", "x"));
    w.expect_idle(p);

    // 3.1.1: an UNSUBACK with the packet id only [MQTT-3.10.4-5].
    let old = w.connect(v311("four"));
    w.send(old, unsubscribe(9, &["nothing"]));
    assert_eq!(
        &w.recv(old).expect("an UNSUBACK").raw[..],
        b"\xb0\x02\x00\x09"
    );
}

#[test]
fn subscription_identifier_when_not_supported_is_a_protocol_error() {
    let mut w = World::new(BrokerConfig {
        subscription_identifiers: false,
        ..config()
    });
    let (p, ack) = w.connect_ack(v5("c"));
    assert_eq!(
        ack.properties.subscription_identifiers_available,
        Some(false)
    );
    w.send(p, subscribe(1, &[("t", 0)]).sub_id(1));
    assert_eq!(
        w.expect_disconnect(p).reason_code,
        ReasonCode::SubscriptionIdentifiersNotSupported
    );
    w.expect_closed(p);
}

//! Subscriptions: wildcard matching, `$` topics, unsubscribing, 5.0 subscription options
//! and identifiers, and the properties a message carries through.

use super::prelude::*;
use crate::harness::{marker, MARKER};

/// Publishes each of `topics` (payload = topic) and returns, in order, the topics
/// `subscriber` received before the marker.
fn received(
    publisher: &mut Client,
    subscriber: &mut Client,
    topics: &[&str],
) -> Result<Vec<String>, Failure> {
    for t in topics {
        publisher.send(t, t.to_string(), QoS::AtLeastOnce)?;
    }
    publisher.send(MARKER, "end", QoS::AtLeastOnce)?;
    let mut got = Vec::new();
    for _ in 0..=topics.len() {
        let p = subscriber.expect_publish()?;
        if p.topic.as_str() == MARKER {
            return Ok(got);
        }
        got.push(p.topic.to_string());
    }
    fail!("more messages than were published: {got:?}")
}

fn matching(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
    filter: &str,
    topics: &[&str],
    want: &[&str],
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V5))?;
    s.subscribe(filter, QoS::AtLeastOnce)?;
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V311))?;
    let got = received(&mut publisher, &mut s, topics)?;
    ensure_eq!(got, want, "topics matched by {filter:?}");
    cx.finish()
}

/// `+` matches exactly one level, possibly empty (spec 4.7.1.3).
pub fn plus_matches_exactly_one_level(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    matching(
        b,
        c,
        "a/+/c",
        &["a/b/c", "a/c", "a/b/b/c", "a//c", "b/b/c", "a/b/c/d"],
        &["a/b/c", "a//c"],
    )
}

/// `#` matches its parent level and every level below (spec 4.7.1.2).
pub fn hash_matches_the_parent_and_every_level_below(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    matching(
        b,
        c,
        "sport/#",
        &[
            "sport",
            "sport/tennis",
            "sport/tennis/player1",
            "sports",
            "x/sport",
        ],
        &["sport", "sport/tennis", "sport/tennis/player1"],
    )
}

/// A filter starting with a wildcard does not match topics starting with `$`
/// [MQTT-4.7.2-1]; a filter naming `$` explicitly does.
pub fn dollar_topics_are_not_matched_by_leading_wildcards(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut all = cx.client(options("all", V5))?;
    all.subscribe("#", QoS::AtLeastOnce)?;
    let mut plus = cx.client(options("plus", V5))?;
    plus.subscribe("+/x", QoS::AtLeastOnce)?;
    plus.subscribe(MARKER, QoS::AtLeastOnce)?;
    let mut dollar = cx.client(options("dollar", V5))?;
    dollar.subscribe("$app/#", QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("$app/x", "hidden", QoS::AtLeastOnce)?;
    dollar.expect_message("$app/x", "hidden")?;
    marker(&mut publisher, &mut all).map_err(|f| f.context("'#' matched a $ topic"))?;
    marker(&mut publisher, &mut plus).map_err(|f| f.context("'+/x' matched a $ topic"))?;
    cx.finish()
}

/// After UNSUBSCRIBE nothing more arrives on that filter (spec 3.10.4); 5.0 UNSUBACK says
/// 0x00 for a filter that existed and 0x11 (No subscription existed) for one that did not.
pub fn unsubscribe_stops_delivery(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for version in [V311, V5] {
        let mut s = cx.client(options(&format!("s-{version}"), version))?;
        s.subscribe("u/#", QoS::AtLeastOnce)?;
        s.subscribe(MARKER, QoS::AtLeastOnce)?;
        let mut publisher = cx.client(options("pub", version))?;
        publisher.send("u/1", "before", QoS::AtLeastOnce)?;
        s.expect_message("u/1", "before")?;
        let codes = s.unsubscribe(&["u/#", "never"])?;
        let want = if version.is_v5() {
            vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
        } else {
            vec![ReasonCode::Success, ReasonCode::Success]
        };
        ensure_eq!(codes, want, "{version}: UNSUBACK codes");
        publisher.send("u/1", "after", QoS::AtLeastOnce)?;
        marker(&mut publisher, &mut s)
            .map_err(|f| f.context(format!("{version}: delivered after UNSUBSCRIBE")))?;
        s.disconnect()?;
        publisher.disconnect()?;
    }
    cx.finish()
}

/// 5.0 No Local: a client's own messages do not come back on that subscription
/// [MQTT-3.8.3-3]; other clients' messages do.
pub fn no_local_keeps_own_messages_away(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V5))?;
    let mut nl = sub("n", QoS::AtLeastOnce)?;
    nl.options.no_local = true;
    let codes = s.subscribe_with(vec![nl], SubscribeProperties::default())?;
    ensure_eq!(codes, [ReasonCode::GrantedQoS1], "SUBACK");
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    s.send("n", "mine", QoS::AtLeastOnce)?;
    let mut other = cx.client(options("other", V5))?;
    other.send("n", "theirs", QoS::AtLeastOnce)?;
    s.expect_message("n", "theirs")
        .map_err(|f| f.context("No Local: own message came back, or the other's did not come"))?;
    marker(&mut other, &mut s)?;
    cx.finish()
}

/// 5.0 Subscription Identifiers come back with each message the subscription matched
/// [MQTT-3.3.4-3]; one message matching two subscriptions carries both [MQTT-3.3.4-5].
pub fn subscription_identifiers_are_delivered(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V5))?;
    let with_id = |id: u32| SubscribeProperties {
        subscription_identifier: std::num::NonZeroU32::new(id),
        ..SubscribeProperties::default()
    };
    s.subscribe_with(vec![sub("i/+", QoS::AtLeastOnce)?], with_id(7))?;
    s.subscribe_with(vec![sub("i/#", QoS::AtLeastOnce)?], with_id(9))?;
    s.subscribe_with(
        vec![sub("j", QoS::AtLeastOnce)?],
        SubscribeProperties::default(),
    )?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("i/x", "both", QoS::AtLeastOnce)?;
    let got = s.expect_message("i/x", "both")?;
    let mut ids: Vec<u32> = got
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort_unstable();
    ensure_eq!(ids, [7, 9], "Subscription Identifiers");
    publisher.send("j", "none", QoS::AtLeastOnce)?;
    let got = s.expect_message("j", "none")?;
    ensure!(
        got.properties.subscription_identifiers.is_empty(),
        "identifiers on a message of a subscription without one: {:?}",
        got.properties.subscription_identifiers
    );
    cx.finish()
}

/// Subscribing again to the same filter replaces the subscription and its QoS
/// [MQTT-3.8.4-3]: one copy, at the new QoS.
pub fn resubscribing_replaces_the_qos(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V311))?;
    s.subscribe("r", QoS::ExactlyOnce)?;
    s.subscribe("r", QoS::AtMostOnce)?;
    s.subscribe(MARKER, QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V311))?;
    publisher.send("r", "x", QoS::ExactlyOnce)?;
    let got = s.expect_message("r", "x")?;
    ensure_eq!(got.qos, QoS::AtMostOnce, "QoS after resubscribing");
    marker(&mut publisher, &mut s).map_err(|f| f.context("a second copy"))?;
    cx.finish()
}

/// 5.0 PUBLISH properties reach a 5.0 subscriber unchanged, user properties in order
/// [MQTT-3.3.2-17] [MQTT-3.3.2-18]; a 3.1.1 subscriber gets the bare message.
pub fn publish_properties_are_forwarded(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut five = cx.client(options("five", V5))?;
    five.subscribe("req", QoS::AtLeastOnce)?;
    let mut old = cx.client(options("old", V311))?;
    old.subscribe("req", QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    let props = PublishProperties {
        payload_format_indicator: Some(true),
        response_topic: Some(raw::topic_of("resp/1")?),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        content_type: Some("application/json".into()),
        user_properties: vec![
            UserProperty::new("b", "2"),
            UserProperty::new("a", "1"),
            UserProperty::new("b", "3"),
        ],
        ..PublishProperties::default()
    };
    publisher.publish_with("req", "{}", QoS::AtLeastOnce, props.clone())?;
    let got = five.expect_message("req", "{}")?;
    ensure_eq!(
        got.properties.user_properties,
        props.user_properties,
        "user properties"
    );
    ensure_eq!(
        got.properties.response_topic,
        props.response_topic,
        "Response Topic"
    );
    ensure_eq!(
        got.properties.correlation_data,
        props.correlation_data,
        "Correlation Data"
    );
    ensure_eq!(
        got.properties.content_type,
        props.content_type,
        "Content Type"
    );
    ensure_eq!(
        got.properties.payload_format_indicator,
        Some(true),
        "Payload Format Indicator"
    );
    let bare = old.expect_message("req", "{}")?;
    ensure!(
        bare.properties.is_empty(),
        "3.1.1 delivery with properties: {:?}",
        bare.properties
    );
    cx.finish()
}
